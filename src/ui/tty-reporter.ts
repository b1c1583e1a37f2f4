import ora, { type Ora } from 'ora';
import { styleText } from 'node:util';
import { redact } from '../errors.ts';
import type { ConvertProgress, LiveStatus, LiveTrackStatus, RecordingPhase } from '../recording-api.ts';
import { formatActive, formatBytes, formatClock, formatDuration, stripControl } from './format.ts';
import type { Output } from './output.ts';
import { STOP_REASONS } from './plain-reporter.ts';
import { summaryLines, type DoneSummary, type Reporter } from './reporter.ts';

/** A slow blink reads as "recording" (a fast spinner reads as "busy"). */
const REC_SPINNER = { interval: 600, frames: ['●', ' '] };

/**
 * For a person at a terminal: an ora spinner while connecting and converting, and while recording a
 * live block redrawn in place, e.g.
 *
 * ```
 * ● REC 1:23  12.4 MiB written  2 speaking  lost 3 · concealed 3
 *   ▶ Alice      0:45  54%
 *     Bob        0:12  14%  lost 3
 * ```
 * ora redraws the block (it counts the lines it drew); lines are cut to the terminal width so the count
 * stays exact. Other messages are printed above the block.
 */
export class TtyReporter implements Reporter {
  readonly mode = 'tty' as const;
  readonly #out: Output;
  readonly #stream: NodeJS.WriteStream;
  #spinner: Ora | undefined;
  #recording = false;
  #lastStatus: LiveStatus | undefined;

  constructor(out: Output, stream: NodeJS.WriteStream) {
    this.#out = out;
    this.#stream = stream;
  }

  #style(format: Parameters<typeof styleText>[0], text: string): string {
    return styleText(format, text, { stream: this.#stream });
  }

  /** Starts (or retitles) the current spinner. Ora's `discardStdin` is off: Ctrl-C must stay a real SIGINT. */
  #spin(text: string, spinner?: typeof REC_SPINNER): void {
    if (this.#spinner?.isSpinning && !spinner) {
      this.#spinner.text = redact(text);
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
        return this.#spin(this.#statusText({ elapsedMs: 0, bytesWritten: 0, tracks: [] }), REC_SPINNER);
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
    this.#lastStatus = s;
    if (this.#recording && this.#spinner) this.#spinner.text = redact(this.#statusText(s));
  }

  #statusText(s: LiveStatus): string {
    const cols = Math.max(40, (this.#stream.columns ?? 80) - 1);
    const rows = Math.max(4, (this.#stream.rows ?? 24) - 2);
    const lost = s.tracks.reduce((n, t) => n + t.lost, 0);
    const concealed = s.tracks.reduce((n, t) => n + t.concealed, 0);
    const speaking = s.tracks.filter((t) => t.speaking).length;
    const head =
      `${this.#style('bold', 'REC')} ${formatClock(s.elapsedMs)}  ${formatBytes(s.bytesWritten)} written  ` +
      `${speaking} speaking  lost ${lost} · concealed ${concealed}`;
    const nameWidth = Math.min(20, Math.max(4, ...s.tracks.map((t) => stripControl(t.displayName).length)));
    const shown = s.tracks.slice(0, rows - 1);
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
    const room = cols - 4;
    return `  ${marker} ${body.length > room ? body.slice(0, room - 1) + '…' : body}`;
  }

  convertProgress(p: ConvertProgress): void {
    const done = p.files.length ? p.files.reduce((n, f) => n + f.done, 0) / p.files.length : 0;
    const eta = p.etaMs !== undefined ? `, about ${formatDuration(p.etaMs)} left` : '';
    this.#spin(`Converting ${p.files.length} file${p.files.length === 1 ? '' : 's'}: ${Math.round(done * 100)}%${eta}`);
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
    this.#out.result(`${this.#style('green', '✔')} ${first}`);
    for (const line of rest) this.#out.result(line);
  }
  failed(message: string, _exitCode: number): void {
    // The runner prints `dvrec: <message>` on stderr; here only the spinner is closed as failed.
    if (this.#spinner?.isSpinning) this.#spinner.fail(redact(stripControl(message)));
    this.#spinner = undefined;
  }
  close(): void {
    this.#spinner?.stop();
    this.#spinner = undefined;
    this.#recording = false;
  }
}
