/**
 * The entry point of the library: a {@link Recorder} owns the decoding worker pool that its recordings share, and
 * starts recordings of voice connections its caller made. `record()` is the one-shot form: a recorder of its own
 * that closes when the recording stops.
 */
import type { VoiceConnection } from '@discordjs/voice';
import { UsageError } from '../errors.ts';
import { WorkerPool } from '../pool/pool.ts';
import { resolveOptions, type RecordingOptions } from './options.ts';
import { Recording, type RecordingHooks } from './recording.ts';

/** Options of a {@link Recorder}. */
export interface RecorderOptions {
  /** Decoder threads; default: one per CPU core (os.availableParallelism()). */
  workers?: number;
  /** @internal Test seam: the workers obey fault injection (see WorkerPool). */
  faultInjection?: boolean;
}

/**
 * Records voice connections. One per process is enough: every recording (any guild) shares its worker pool, and
 * stopping one disturbs no other.
 *
 * @example
 * ```ts
 * const recorder = new Recorder();
 * const connection = joinVoiceChannel({ channelId, guildId, adapterCreator, selfDeaf: false });
 * const recording = recorder.record(connection, { outDir: 'recordings/today', format: 'mp3', channel });
 * await recording.ready;              // receiving now
 * // ...
 * const manifest = await recording.stop();
 * await recorder.close();
 * ```
 */
export class Recorder {
  readonly #opts: RecorderOptions;
  #pool: WorkerPool | undefined;
  readonly #recordings = new Set<Recording>();
  readonly #byConnection = new WeakMap<VoiceConnection, Recording>();
  #closed = false;

  constructor(options: RecorderOptions = {}) {
    this.#opts = options;
  }

  /** Recordings that have not stopped yet. */
  get recordings(): ReadonlySet<Recording> {
    return this.#recordings;
  }

  /**
   * Starts recording `connection` (a VoiceConnection the caller made, e.g. with `joinVoiceChannel({ ..., selfDeaf:
   * false })`: a deafened bot receives nothing). Returns at once; `recording.ready` resolves at t=0.
   * Throws UsageError for invalid options, or when this connection is already being recorded.
   *
   * @param hooks - @internal test seams
   */
  record(connection: VoiceConnection, options: RecordingOptions, hooks?: RecordingHooks): Recording {
    if (this.#closed) throw new UsageError('this Recorder is closed');
    const o = resolveOptions(options);
    const current = this.#byConnection.get(connection);
    if (current && this.#recordings.has(current)) throw new UsageError('this voice connection is already being recorded');
    const recording = new Recording(connection, o, {
      pool: () => (this.#pool ??= new WorkerPool({ ...(this.#opts.workers !== undefined ? { workers: this.#opts.workers } : {}), ...(this.#opts.faultInjection ? { faultInjection: true } : {}) })),
      done: (r) => this.#recordings.delete(r),
      ...(hooks ? { hooks } : {}),
    });
    this.#recordings.add(recording);
    this.#byConnection.set(connection, recording);
    return recording;
  }

  /** Stops every recording (finishing their files) and the worker threads. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#recordings].map((r) => r.stop()));
    await this.#pool?.close();
    this.#pool = undefined;
  }
}

/**
 * Records one connection with a recorder of its own, whose workers end when the recording stops. For several
 * recordings in one process, share a {@link Recorder} instead.
 */
export function record(connection: VoiceConnection, options: RecordingOptions): Recording {
  const recorder = new Recorder();
  const recording = recorder.record(connection, options);
  recording.once('stopped', () => void recorder.close());
  return recording;
}
