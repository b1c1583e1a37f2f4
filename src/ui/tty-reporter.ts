import ora, { type Ora } from 'ora';
import { basename } from 'node:path';
import { styleText } from 'node:util';
import { redact } from '../errors.ts';
import type { ConvertProgress, LiveStatus, LiveTrackStatus, RecordingPhase } from '../recording-api.ts';
import { formatActive, formatBytes, formatClock, formatDuration, stripControl } from './format.ts';
import type { Output } from './output.ts';
import { STOP_REASONS } from './plain-reporter.ts';
import { summaryLines, type DoneSummary, type Reporter } from './reporter.ts';

/** A slow blink reads as "recording" (a fast spinner reads as "busy"). */
const REC_SPINNER = { interval: 600, frames: ['●', ' '] };
/** At most this many per-file lines under the conversion spinner: a 200-track call must not scroll the screen. */
export const MAX_PROGRESS_LINES = 8;
const BAR_WIDTH = 12;

type Style = Parameters<typeof styleText>[0];

/**
 * For a person at a terminal: an ora spinner while connecting and converting, and while recording a
 * live block redrawn in place, e.g.
 *
 * ```
 * ● REC 1:23  12.4 MiB written  2 speaking  lost 3 · concealed 3
 *   ▶ Alice      0:45  54%
 *     Bob        0:12  14%  lost 3
 * ```
 * and while converting, the files in progress (at most MAX_PROGRESS_LINES) under an overall line:
 * ```
 * ⠋ Converting 12 files: 45%, about 20s left (5 of 12 done)
 *     Alice-118…101.mp3  ██████░░░░░░  52%
 * ```
 * ora redraws the block (it counts the lines it drew); lines are cut to the terminal width so the count
 * stays exact. Other messages are printed above the block.
 *
 * Colour is decided per stream: the live block is on stderr (a TTY, or this reporter would not have been
 * chosen), but the final list of files goes to stdout, which may be a file (`dvrec record ... > files.txt`).
 */
export class TtyReporter implements Reporter {
  readonly mode = 'tty' as const;
  readonly #out: Output;
  readonly #stream: NodeJS.WriteStream;
  #spinner: Ora | undefined;
  /** What the spinner is doing, for the ✖ line when it fails. */
  #activity = '';
  #recording = false;

  constructor(out: Output, stream: NodeJS.WriteStream) {
    this.#out = out;
    this.#stream = stream;
  }

  /**
   * Styles text for one stream: escape codes only when that stream is a terminal. (validateStream: false
   * because Node's own check looks at process.stdout unless told otherwise; the decision is made here.)
   */
  #paint(stream: NodeJS.WritableStream, format: Style, text: string): string {
    return (stream as { isTTY?: boolean }).isTTY ? styleText(format, text, { validateStream: false }) : text;
  }

  #style(format: Style, text: string): string {
    return this.#paint(this.#stream, format, text);
  }

  /** Columns usable for a line of the live block (ora needs lines no wider than the screen to count them). */
  #cols(): number {
    return Math.max(40, (this.#stream.columns || 80) - 1);
  }

  /** Starts (or retitles) the current spinner. Ora's `discardStdin` is off: Ctrl-C must stay a real SIGINT. */
  #spin(text: string, spinner?: typeof REC_SPINNER): void {
    this.#activity = text.split('\n')[0]!;
    if (this.#spinner?.isSpinning && !spinner) {
      this.#spinner.text = redact(text);
      this.#spinner.render();
      return;
    }
    this.#spinner?.stop();
    this.#spinner = ora({
      text: redact(text),
      stream: this.#stream,
      discardStdin: false,
      isEnabled: true,
      ...(spinner ? { spinner: { interval: spinner.interval, frames: spinner.frames.map((f) => this.#style('red', f)) } } : {}),
    }).start();
  }

  #settle(ok: boolean, text: string): void {
    const t = redact(text);
    if (this.#spinner?.isSpinning) {
      if (ok) this.#spinner.succeed(t);
      else this.#spinner.fail(t);
    } else {
      this.#out.log(`${ok ? this.#style('green', '✔') : this.#style('red', '✖')} ${t}`);
    }
    this.#spinner = undefined;
  }

  /** Prints a line above whatever is spinning. */
  #above(line: string): void {
    if (this.#spinner?.isSpinning) {
      this.#spinner.clear();
      this.#out.log(line);
      this.#spinner.render();
    } else {
      this.#out.log(line);
    }
  }

  phase(p: RecordingPhase): void {
    switch (p.phase) {
      case 'connecting':
        return this.#spin('Connecting to Discord…');
      case 'joining':
        return this.#spin(`Joining ${stripControl(p.channelName)} in ${stripControl(p.guildName)}…`);
      case 'recording':
        this.#settle(true, 'Connected; recording (Ctrl-C stops and finishes the files)');
        this.#recording = true;
        this.#spin(this.#statusText({ elapsedMs: 0, bytesWritten: 0, tracks: [] }), REC_SPINNER);
        this.#activity = 'Recording';
        return;
      case 'reconnecting':
        return this.#above(`${this.#style('yellow', '⚠')} reconnecting: ${p.reason}`);
      case 'stopping':
        if (this.#recording) this.#settle(true, `Stopped because ${STOP_REASONS[p.reason]}`);
        this.#recording = false;
        return this.#spin('Finishing the files…');
      case 'converting':
        return this.#spin(`Finishing ${p.tracks} track${p.tracks === 1 ? '' : 's'}…`);
      case 'done':
        return;
    }
  }

  status(s: LiveStatus): void {
    if (!this.#recording || !this.#spinner) return;
    this.#spinner.text = redact(this.#statusText(s));
    // Drawn now, not at the next blink: the numbers are a second old at most, not 1.6 s.
    this.#spinner.render();
  }

  #statusText(s: LiveStatus): string {
    const cols = this.#cols();
    const rows = Math.max(4, (this.#stream.rows || 24) - 2);
    const lost = s.tracks.reduce((n, t) => n + t.lost, 0);
    const concealed = s.tracks.reduce((n, t) => n + t.concealed, 0);
    const speaking = s.tracks.filter((t) => t.speaking).length;
    const head =
      `${this.#style('bold', 'REC')} ${formatClock(s.elapsedMs)}  ${formatBytes(s.bytesWritten)} written  ` +
      `${speaking} speaking  lost ${lost} · concealed ${concealed}`;
    const nameWidth = Math.min(20, Math.max(4, ...s.tracks.map((t) => stripControl(t.displayName).length)));
    // Who is speaking first: on a big call the block is cut to the screen, and the speakers are the point.
    const ordered = [...s.tracks].sort((a, b) => Number(b.speaking) - Number(a.speaking));
    const shown = ordered.slice(0, rows - 1);
    const lines = shown.map((t) => this.#trackLine(t, s.elapsedMs, nameWidth, cols));
    if (s.tracks.length > shown.length) lines.push(`  … and ${s.tracks.length - shown.length} more`);
    if (s.tracks.length === 0) lines.push(this.#style('dim', '  waiting for someone to speak'));
    // ora puts its frame before the first line only; the rest are indented by hand.
    return [head, ...lines].join('\n');
  }

  #trackLine(t: LiveTrackStatus, elapsedMs: number, nameWidth: number, cols: number): string {
    const name = stripControl(t.displayName).slice(0, nameWidth).padEnd(nameWidth);
    const share = elapsedMs > 0 ? `${Math.round((100 * t.activeMs) / elapsedMs)}%` : '';
    const marker = t.speaking ? this.#style('green', '▶') : ' ';
    const loss = t.lost > 0 ? `  lost ${t.lost}, concealed ${t.concealed}` : '';
    const body = `${name}  ${formatActive(t.activeMs).padStart(7)}  ${share.padStart(4)}${loss}`;
    return `  ${marker} ${cut(body, cols - 4)}`;
  }

  convertProgress(p: ConvertProgress): void {
    this.#spin(this.#progressText(p));
  }

  #progressText(p: ConvertProgress): string {
    const n = p.files.length;
    const overall = n ? p.files.reduce((sum, f) => sum + f.done, 0) / n : 0;
    const finished = p.files.filter((f) => f.done >= 1).length;
    const eta = p.etaMs !== undefined && finished < n ? `, about ${formatDuration(p.etaMs)} left` : '';
    const head = `Converting ${n} file${n === 1 ? '' : 's'}: ${Math.round(overall * 100)}%${eta} (${finished} of ${n} done)`;
    const running = p.files.filter((f) => f.done > 0 && f.done < 1);
    const rows = Math.max(1, Math.min(MAX_PROGRESS_LINES, (this.#stream.rows || 24) - 3));
    const shown = running.slice(0, rows);
    // A line is 4 + name + 2 + bar + 2 + 4 columns: the name gets what the screen leaves (the bar is fixed,
    // so no escape code is ever cut).
    const room = this.#cols() - (4 + 2 + BAR_WIDTH + 2 + 4);
    const longest = Math.max(0, ...shown.map((f) => stripControl(basename(f.file)).length));
    const nameWidth = Math.max(4, Math.min(32, room, longest));
    const lines = shown.map((f) => {
      const filled = Math.min(BAR_WIDTH, Math.round(f.done * BAR_WIDTH));
      const bar = this.#style('green', '█'.repeat(filled)) + this.#style('dim', '░'.repeat(BAR_WIDTH - filled));
      const name = cut(stripControl(basename(f.file)), nameWidth).padEnd(nameWidth);
      return `    ${name}  ${bar}  ${String(Math.floor(f.done * 100)).padStart(3)}%`;
    });
    const waiting = n - finished - running.length;
    const more = running.length - shown.length;
    if (more > 0 || (shown.length > 0 && waiting > 0)) {
      lines.push(`    … ${[more > 0 ? `${more} more in progress` : '', waiting > 0 ? `${waiting} waiting` : ''].filter(Boolean).join(', ')}`);
    }
    return [cut(head, this.#cols() - 2), ...lines].join('\n');
  }

  warn(message: string): void {
    this.#above(`${this.#style('yellow', '⚠')} ${stripControl(message)}`);
  }
  note(message: string): void {
    this.#above(stripControl(message));
  }
  begin(activity: string): void {
    this.#spin(activity);
  }
  end(ok: boolean, message?: string): void {
    if (message !== undefined) this.#settle(ok, message);
    else this.#spinner?.stop();
  }
  stopping(signal: string, dir: string | undefined): void {
    const text = `${signal}: stopping and finishing the files${dir ? ` in ${dir}` : ''} (Ctrl-C again quits at once)`;
    if (this.#recording && this.#spinner) this.#above(`${this.#style('yellow', '■')} ${text}`);
    else this.#above(text);
  }
  done(summary: DoneSummary): void {
    this.close();
    const [first, ...rest] = summaryLines(summary);
    this.#out.result(`${this.#paint(this.#out.stdout, 'green', '✔')} ${first}`);
    for (const line of rest) this.#out.result(line);
  }
  failed(_message: string, _exitCode: number): void {
    // The runner prints `dvrec: <message>` on stderr. Here the spinner only says WHAT failed (its activity,
    // e.g. "✖ Connecting to Discord"), so the message is not shown twice.
    if (this.#spinner?.isSpinning) this.#spinner.fail(redact(stripControl(this.#activity.replace(/…$/, ''))));
    this.#spinner = undefined;
    this.#recording = false;
  }
  close(): void {
    this.#spinner?.stop();
    this.#spinner = undefined;
    this.#recording = false;
  }
}

/** Cuts plain text to `width` columns with an ellipsis. */
function cut(text: string, width: number): string {
  return text.length > width ? text.slice(0, Math.max(0, width - 1)) + '…' : text;
}
