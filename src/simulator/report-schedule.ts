/**
 * When the simulated server forwards an RTCP sender report for a stream: about once per interval, each stream on
 * its own phase (the first report a random fraction of an interval after the stream was first seen, then every
 * interval ± 10 %), as RFC 3550 §6.2 randomises report intervals so that senders do not report in lockstep.
 * Seeded, so the same scenario reports at the same instants.
 */
import type { Prng } from './prng.ts';

/** Streams remembered; a stream forgotten here just starts a new phase. */
const MAX_STREAMS = 4096;

export class ReportSchedule {
  readonly intervalMs: number;
  readonly #prng: Prng;
  /** Next report time (scenario ms) per SSRC, insertion order = eviction order. */
  readonly #next = new Map<number, number>();

  constructor(intervalMs: number, prng: Prng) {
    if (!(intervalMs > 0)) throw new RangeError('report interval must be > 0 ms');
    this.intervalMs = intervalMs;
    this.#prng = prng;
  }

  /** True when stream `ssrc` is due a report at `nowMs` (and schedules its next one). */
  due(ssrc: number, nowMs: number): boolean {
    const next = this.#next.get(ssrc);
    if (next === undefined) {
      if (this.#next.size >= MAX_STREAMS) this.#next.delete(this.#next.keys().next().value!);
      this.#next.set(ssrc, nowMs + this.#prng.next() * this.intervalMs);
      return false;
    }
    if (nowMs < next) return false;
    const step = this.intervalMs * (0.9 + 0.2 * this.#prng.next());
    // A stream that was quiet for a while resumes its rhythm from now rather than catching up.
    this.#next.set(ssrc, next + step > nowMs ? next + step : nowMs + step);
    return true;
  }
}
