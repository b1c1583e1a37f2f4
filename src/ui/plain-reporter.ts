import type { ConvertProgress, LiveStatus, RecordingPhase, StopReason } from '../recording-api.ts';
import { formatBytes, formatClock, formatDuration, logTimestamp, stripControl } from './format.ts';
import type { Output } from './output.ts';
import { summaryLines, type DoneSummary, type Reporter } from './reporter.ts';

/** How often a status line is logged while recording: often enough to see progress in a log, rare enough for cron mail. */
const STATUS_EVERY_MS = 60_000;
/** How often conversion progress is logged. */
const PROGRESS_EVERY_MS = 10_000;

export const STOP_REASONS: Record<StopReason, string> = {
  duration: 'the --duration was reached',
  signal: 'a stop signal was received',
  'max-size': 'the --max-size was reached',
  'empty-channel': 'the channel is empty',
  disconnected: 'the bot was disconnected from the channel',
  error: 'of an error',
};

/**
 * Plain timestamped lines for logs: no spinner, no colour, no cursor movement. Besides phases it logs
 * each new speaker once, a status line every minute, and conversion progress every 10 seconds.
 */
export class PlainReporter implements Reporter {
  readonly mode = 'plain' as const;
  readonly #out: Output;
  readonly #seen = new Set<string>();
  #lastStatusAt = 0;
  #lastProgressAt = 0;
  #lastStatus: LiveStatus | undefined;

  constructor(out: Output) {
    this.#out = out;
  }

  #log(message: string): void {
    this.#out.log(`${logTimestamp(new Date())} ${stripControl(message)}`);
  }

  phase(p: RecordingPhase): void {
    switch (p.phase) {
      case 'connecting':
        return this.#log('connecting to Discord');
      case 'joining':
        return this.#log(`joining voice channel "${p.channelName}" in "${p.guildName}"`);
      case 'recording':
        this.#lastStatusAt = Date.now();
        return this.#log(`recording (t=0 at ${p.startedAt})`);
      case 'reconnecting':
        return this.#log(`reconnecting: ${p.reason}`);
      case 'stopping':
        if (this.#lastStatus) this.#logStatus(this.#lastStatus);
        return this.#log(`stopping because ${STOP_REASONS[p.reason]}`);
      case 'converting':
        return this.#log(`finishing ${p.tracks} track${p.tracks === 1 ? '' : 's'}`);
      case 'done':
        return;
    }
  }

  status(s: LiveStatus): void {
    this.#lastStatus = s;
    for (const t of s.tracks) {
      if (!this.#seen.has(t.userId)) {
        this.#seen.add(t.userId);
        this.#log(`new track: ${t.displayName} (${t.userId})`);
      }
    }
    if (Date.now() - this.#lastStatusAt >= STATUS_EVERY_MS) {
      this.#lastStatusAt = Date.now();
      this.#logStatus(s);
    }
  }

  #logStatus(s: LiveStatus): void {
    const lost = s.tracks.reduce((n, t) => n + t.lost, 0);
    const concealed = s.tracks.reduce((n, t) => n + t.concealed, 0);
    const who = s.tracks.map((t) => `${t.displayName} ${formatDuration(t.activeMs)}`).join(', ');
    this.#log(
      `status: ${formatClock(s.elapsedMs)} elapsed, ${formatBytes(s.bytesWritten)} written, ` +
        `${s.tracks.length} track${s.tracks.length === 1 ? '' : 's'}${who ? ` (${who})` : ''}, ` +
        `${lost} lost, ${concealed} concealed`,
    );
  }

  convertProgress(p: ConvertProgress): void {
    if (Date.now() - this.#lastProgressAt < PROGRESS_EVERY_MS) return;
    this.#lastProgressAt = Date.now();
    const n = p.files.length;
    const done = n ? p.files.reduce((sum, f) => sum + f.done, 0) / n : 0;
    const finished = p.files.filter((f) => f.done >= 1).length;
    // One line per 10 s, not one per file: a log is read afterwards, and 200 tracks would bury it.
    this.#log(
      `converting: ${Math.round(done * 100)}% (${finished} of ${n} file${n === 1 ? '' : 's'} done)` +
        `${p.etaMs !== undefined && finished < n ? `, about ${formatDuration(p.etaMs)} left` : ''}`,
    );
  }

  warn(message: string): void {
    this.#log(`warning: ${message}`);
  }
  note(message: string): void {
    this.#log(message);
  }
  begin(activity: string): void {
    this.#lastProgressAt = Date.now();
    this.#log(activity);
  }
  end(ok: boolean, message?: string): void {
    if (message) this.#log(ok ? message : `failed: ${message}`);
  }
  stopping(signal: string, dir: string | undefined): void {
    this.#log(`${signal}: stopping and finishing the files${dir ? ` in ${dir}` : ''} (send it again to quit at once)`);
  }
  done(summary: DoneSummary): void {
    for (const line of summaryLines(summary)) this.#out.result(line);
  }
  failed(_message: string, _exitCode: number): void {
    // The runner prints the one-line `<time> dvrec: ...` error itself; a plain log needs nothing more.
  }
  close(): void {}
}
