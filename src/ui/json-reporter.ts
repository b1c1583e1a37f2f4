import type { ConvertProgress, LiveStatus, RecordingPhase } from '../recording-api.ts';
import type { Output } from './output.ts';
import type { DoneSummary, Reporter } from './reporter.ts';

/**
 * `--json`: one JSON object per line on stdout, each with `event` and an ISO `time`. Events:
 * phase, status (about once a second), progress, warning, note, activity, stopping, done, error.
 * The shapes are the engine's own types (recording-api.ts), so scripts see what the engine reports.
 */
export class JsonReporter implements Reporter {
  readonly mode = 'json' as const;
  readonly #out: Output;

  constructor(out: Output) {
    this.#out = out;
  }

  #emit(event: string, body: Record<string, unknown>): void {
    this.#out.event({ event, time: new Date().toISOString(), ...body });
  }

  phase(p: RecordingPhase): void {
    // The manifest is the whole point of `done`; it is sent once, by done().
    if (p.phase === 'done') return;
    this.#emit('phase', { ...p });
  }
  status(s: LiveStatus): void {
    this.#emit('status', { ...s });
  }
  convertProgress(p: ConvertProgress): void {
    this.#emit('progress', { ...p });
  }
  warn(message: string): void {
    this.#emit('warning', { message });
  }
  note(message: string): void {
    this.#emit('note', { message });
  }
  begin(activity: string): void {
    this.#emit('activity', { activity, state: 'started' });
  }
  end(ok: boolean, message?: string): void {
    this.#emit('activity', { state: ok ? 'succeeded' : 'failed', ...(message ? { message } : {}) });
  }
  stopping(signal: string, dir: string | undefined): void {
    this.#emit('stopping', { signal, ...(dir ? { dir } : {}) });
  }
  done(summary: DoneSummary): void {
    this.#emit('done', { dir: summary.dir, ...(summary.manifest ? { manifest: summary.manifest } : {}), ...(summary.files ? { files: summary.files } : {}) });
  }
  failed(message: string, exitCode: number): void {
    this.#emit('error', { message, exitCode });
  }
  close(): void {}
}
