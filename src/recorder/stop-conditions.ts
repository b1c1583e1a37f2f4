/**
 * When a recording stops by itself: after a duration (a timer, exact), once the captures hold a size, or once no
 * human has been in the channel for a while (both judged on the recording's heartbeat, about once a second).
 */
import { EventEmitter } from 'node:events';

/** Why a recording stopped. */
export type StopReason =
  /** The duration option elapsed. */
  | 'duration'
  /** stop() was called, or the caller's abort signal fired (the CLI: a stop signal). */
  | 'requested'
  /** The captures reached maxSizeBytes. */
  | 'max-size'
  /** Nobody (no human) was in the channel for stopWhenEmptyMs. */
  | 'empty-channel'
  /** The bot was kicked, moved, the channel deleted, or the connection destroyed by its owner. */
  | 'disconnected'
  /** Something broke (disk full, connection not back in time, a worker that keeps dying): see the error. */
  | 'error';

export interface StopConditionOptions {
  /** Stop after this long (ms), measured from t=0. */
  durationMs?: number;
  /** Stop once the captures hold this many bytes. */
  maxSizeBytes?: number;
  /** Stop once no human other than the bot has been in the channel for this long (ms). */
  stopWhenEmptyMs?: number;
}

/**
 * Checks come from a periodic timer, whose ticks land a little early or late: without this slack, a grace equal to
 * a whole number of check periods would be judged 0.1 ms short at one tick and met only a period later.
 */
const CHECK_SLACK_MS = 50;

export class StopConditions extends EventEmitter<{ stop: [reason: StopReason] }> {
  readonly #opts: StopConditionOptions;
  #durationTimer: NodeJS.Timeout | undefined;
  #emptySince: number | undefined;

  /** `nowMs`: the recording clock at the moment the conditions start being watched (t=0 or later). */
  constructor(opts: StopConditionOptions, nowMs: number) {
    super();
    this.#opts = opts;
    if (opts.durationMs !== undefined) {
      this.#durationTimer = setTimeout(() => this.emit('stop', 'duration'), Math.max(0, opts.durationMs - nowMs));
    }
  }

  /** Judges the heartbeat's measurements; emits `stop` when a condition is met. */
  check(nowMs: number, captureBytes: number, humansInChannel: number): void {
    const o = this.#opts;
    if (o.maxSizeBytes !== undefined && captureBytes >= o.maxSizeBytes) this.emit('stop', 'max-size');
    if (o.stopWhenEmptyMs !== undefined) {
      if (humansInChannel === 0) {
        this.#emptySince ??= nowMs;
        if (nowMs - this.#emptySince + CHECK_SLACK_MS >= o.stopWhenEmptyMs) this.emit('stop', 'empty-channel');
      } else this.#emptySince = undefined;
    }
  }

  close(): void {
    clearTimeout(this.#durationTimer);
  }
}
