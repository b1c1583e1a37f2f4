/**
 * A Reporter is how a command talks to its user. It is the engine's {@link RecordingObserver} plus the
 * few things commands themselves say (notes, the final list of files, errors). Three implementations,
 * picked by {@link createReporter} from {@link detectOutputMode}:
 *
 * - TtyReporter: ora spinners while connecting and converting, a live status block while recording.
 * - PlainReporter: timestamped lines, no escape codes; for cron, pipes, CI, NO_COLOR, TERM=dumb.
 * - JsonReporter: one JSON object per line on stdout, for scripts.
 *
 * Every string leaves the process through {@link Output}, which applies redact(): the token cannot be
 * printed even by accident.
 */
import type { Manifest } from '../sinks/capture-layout.ts';
import type { RecordingObserver } from '../recording-api.ts';
import { stripControl } from './format.ts';
import { detectOutputMode, type OutputMode } from './mode.ts';
import { Output } from './output.ts';
import { PlainReporter } from './plain-reporter.ts';
import { JsonReporter } from './json-reporter.ts';
import { TtyReporter } from './tty-reporter.ts';

/** What a finished command hands to the reporter for its final summary. */
export interface DoneSummary {
  /** The recording directory (absolute). */
  dir: string;
  manifest?: Manifest;
  /** Files written when there is no manifest (e.g. `convert raw.pcm`). */
  files?: string[];
}

export interface Reporter extends RecordingObserver {
  readonly mode: OutputMode;
  /** A neutral line worth showing (e.g. "output: /path"). */
  note(message: string): void;
  /** Start/stop a named activity outside a recording (e.g. "Converting raw.pcm"). */
  begin(activity: string): void;
  end(ok: boolean, message?: string): void;
  /** The first stop signal arrived: stopping gracefully. */
  stopping(signal: string, dir: string | undefined): void;
  /** The final summary: where the files are. */
  done(summary: DoneSummary): void;
  /** A fatal error, already formatted as one line (the runner prints `dvrec: ...` to stderr itself). */
  failed(message: string, exitCode: number): void;
  /** Stops spinners and timers; safe to call twice. */
  close(): void;
}

export interface ReporterOptions {
  json: boolean;
  stdout?: NodeJS.WriteStream;
  stderr?: NodeJS.WriteStream;
  env?: NodeJS.ProcessEnv;
}

export function createReporter(opts: ReporterOptions): Reporter {
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  const env = opts.env ?? process.env;
  const out = new Output(stdout, stderr);
  const mode = detectOutputMode({ json: opts.json, stream: stderr, env });
  switch (mode) {
    case 'json':
      return new JsonReporter(out);
    case 'plain':
      return new PlainReporter(out);
    case 'tty':
      return new TtyReporter(out, stderr);
  }
}

/** The lines of a final summary, shared by the plain and TTY reporters. */
export function summaryLines(summary: DoneSummary): string[] {
  const lines: string[] = [];
  const m = summary.manifest;
  if (m) {
    const secs = (m.durationMs / 1000).toFixed(1);
    lines.push(
      `${m.recovered ? 'Recovered' : 'Recorded'} ${secs} s, ${m.tracks.length} track${m.tracks.length === 1 ? '' : 's'} (${m.format}) in ${summary.dir}`,
    );
    for (const t of m.tracks) {
      const p = t.packets;
      const lossNote = p.lost > 0 ? `, ${p.lost} lost / ${p.concealed} concealed` : '';
      lines.push(`  ${t.file}  ${stripControl(t.displayName)} (${t.userId})${lossNote}`);
    }
    if (m.mix) lines.push(`  ${m.mix}  everyone mixed`);
    lines.push(`  manifest.json`);
    if (m.tracks.length === 0) lines.push('  (nobody spoke: no tracks were written)');
  } else {
    lines.push(`Wrote ${summary.files?.length ?? 0} file${summary.files?.length === 1 ? '' : 's'}:`);
    for (const f of summary.files ?? []) lines.push(`  ${f}`);
  }
  return lines;
}
