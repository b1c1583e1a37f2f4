/**
 * Messages between the pool (main thread) and its workers.
 *
 * One pool serves every recording of the process: each track carries its own files, output settings and the
 * instant of its recording's t=0 on the pool clock (milliseconds since the pool started, the same monotonic
 * clock in every thread), so recordings that started at different times share the workers.
 *
 * Audio travels in batches: the main thread appends packets to one ArrayBuffer per worker and transfers it
 * every ~20 ms (or when it fills), so there is no per-packet postMessage / structured clone.
 * Batch record layout (little-endian):
 *   u32 trackId | u32 ssrc | u16 sequence | u16 opusLength | u32 timestamp | f64 arrivalMs | opus bytes
 * `arrivalMs` is on the track's recording clock (ms since its recording's t=0); a batch's `nowMs` is on the pool clock.
 */
import type { TrackResume, TrackSummary } from '../sinks/track.ts';
import type { Mp3Budget, Mp3Progress, Mp3StreamReport, Mp3TrackConfig } from '../sinks/mp3-stream.ts';
import type { TapConfig } from '../sinks/track-tap.ts';

export const RECORD_HEADER_BYTES = 24;

/** Passed as workerData. */
export interface WorkerInit {
  /** 'wall': the worker's clock is process.hrtime relative to hrT0; 'packets': driven by batch `nowMs` only. */
  clock: 'wall' | 'packets';
  /** process.hrtime.bigint() value (as a decimal string) at the pool clock's 0 (wall clock mode). */
  hrT0: string;
  playoutDelayMs: number;
  tickMs: number;
  statusMs: number;
  flushMs: number;
  /** Limits of the MP3 encoders that tracks with `mp3` run while recording (see src/sinks/mp3-stream.ts). */
  mp3Budget: Mp3Budget;
  /** Test seam: obey `crash` and `stall` messages (WorkerPool.injectWorkerCrash / injectWorkerStall). Never set in production. */
  faultInjection?: boolean;
}

/** Everything a worker needs to run one track. */
export interface TrackSpec {
  userId: string;
  /** File stem, unique in its recording directory. */
  stem: string;
  /** The capture (see capture-layout.ts). */
  capturePath: string;
  /** Also keep the received Opus packets (format opus). */
  packetLogPath?: string;
  /** Where the track appends its utterances (talk spurts placed on the recording clock). */
  utteranceLogPath: string;
  /** Encode MP3 while recording. */
  mp3?: Mp3TrackConfig;
  /** Pool-clock instant of the recording's t=0. */
  t0Ms: number;
  /** What the track hands back to the main thread as it is written (user streams, custom sinks). */
  tap: TapConfig;
}

export type ToWorker =
  | { type: 'add'; trackId: number; spec: TrackSpec; resume?: TrackResume }
  | { type: 'batch'; buf: ArrayBuffer; len: number; nowMs: number }
  /** Start or stop handing a track's output back (listenTo / sinks added or removed). */
  | { type: 'tap'; trackId: number; tap: TapConfig }
  /** A discontinuity the track must not bridge (the recording resumes after a pause): start its streams afresh. */
  | { type: 'restart'; trackId: number }
  /**
   * Finish these tracks at `endMs` (each on its own recording clock), report them, and forget them. `requestId`
   * pairs the answer with the request (several recordings may stop at once).
   */
  | { type: 'cleanup'; requestId: number; trackIds: number[]; endMs: number }
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
  /** The track's streamed MP3 (tracks with `mp3` only): live progress, and at cleanup the outcome. */
  mp3?: Mp3StreamReport;
}

export type FromWorker =
  /**
   * `flushedMs` (pool clock): every track of this worker has written to disk all audio released before this
   * instant, so everything that arrived before `flushedMs − max(playoutDelayMs, PRIMING_MS)` is durable (the
   * journal's heartbeat).
   */
  | { type: 'status'; tracks: TrackStatusReport[]; flushedMs: number }
  | { type: 'cleaned'; requestId: number; tracks: TrackStatusReport[] }
  | { type: 'closed' }
  /** Streamed-MP3 progress, sent by the encoder pump (also while no audio flows). */
  | Mp3Progress
  | { type: 'trackError'; trackId: number; code: string | undefined; message: string }
  /** What tapped tracks wrote since the last tick (see src/sinks/track-tap.ts for the layout). */
  | { type: 'tap'; buf: ArrayBuffer; len: number };
