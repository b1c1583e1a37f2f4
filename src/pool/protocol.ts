/**
 * Messages between the pool (main thread) and its workers.
 *
 * Audio travels in batches: the main thread appends packets to one ArrayBuffer per worker and transfers it
 * every ~20 ms (or when it fills), so there is no per-packet postMessage / structured clone.
 * Batch record layout (little-endian):
 *   u32 trackId | u32 ssrc | u16 sequence | u16 opusLength | u32 timestamp | f64 arrivalMs | opus bytes
 */
import type { TrackResume, TrackSummary } from '../sinks/track.ts';
import type { Mp3Progress, Mp3StreamConfig, Mp3StreamReport } from '../sinks/mp3-stream.ts';

export const RECORD_HEADER_BYTES = 24;

/** Passed as workerData. */
export interface WorkerInit {
  dir: string;
  keepOpus: boolean;
  /** 'wall': the worker's clock is process.hrtime relative to t0; 'packets': driven by batch `nowMs` only. */
  clock: 'wall' | 'packets';
  /** process.hrtime.bigint() value (as a decimal string) at the recording's t=0 (wall clock mode). */
  hrT0: string;
  playoutDelayMs: number;
  tickMs: number;
  statusMs: number;
  flushMs: number;
  /** Set when the output is MP3: stream-encode each track while recording (see src/sinks/mp3-stream.ts). */
  mp3?: Mp3StreamConfig;
  /** Test seam: obey `crash` and `stall` messages (WorkerPool.injectWorkerCrash / injectWorkerStall). Never set in production. */
  faultInjection?: boolean;
}

export type ToWorker =
  | { type: 'add'; trackId: number; userId: string; stem: string; resume?: TrackResume }
  | { type: 'batch'; buf: ArrayBuffer; len: number; nowMs: number }
  | { type: 'cleanup'; endMs: number }
  | { type: 'close' }
  /** Throw an uncaught error (only when WorkerInit.faultInjection is set: fault-injection tests). */
  | { type: 'crash'; message: string }
  /** Block the thread for `ms`, as a page-in or a descheduled core would (only with WorkerInit.faultInjection). */
  | { type: 'stall'; ms: number };

/** Live per-track status, reported about twice a second. */
export interface TrackStatusReport extends TrackSummary {
  trackId: number;
  speaking: boolean;
  writtenEnd: number;
  /** The track's streamed MP3 (pools with `mp3` only): live progress, and at cleanup the outcome. */
  mp3?: Mp3StreamReport;
}

export type FromWorker =
  /**
   * `flushedMs`: every track of this worker has written to disk all audio released before this worker-clock
   * instant, so everything that arrived before `flushedMs − max(playoutDelayMs, PRIMING_MS)` is durable (the pool's heartbeat
   * for the journal).
   */
  | { type: 'status'; tracks: TrackStatusReport[]; flushedMs: number }
  | { type: 'cleaned'; tracks: TrackStatusReport[] }
  | { type: 'closed' }
  /** Streamed-MP3 progress, sent by the encoder pump (also while no audio flows). */
  | Mp3Progress
  | { type: 'trackError'; trackId: number; code: string | undefined; message: string };
