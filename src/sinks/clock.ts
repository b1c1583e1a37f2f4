/**
 * Maps one RTP stream's timestamps onto the recording clock (sample index since t=0).
 *
 * A sender's RTP timestamps say exactly how far apart its frames are (including pauses inside a talk spurt
 * sequence), but not where they are on OUR clock; packet arrival says roughly where, but with network jitter.
 * So: position = extendedTimestamp + anchor, where the anchor comes from arrivals:
 * - anchor = min over a window of (arrivalSamples − extendedTimestamp). The least-delayed packet of the
 *   window is the best estimate (jitter only ever adds delay).
 * - Between anchors, positions follow timestamps exactly, so pauses come out sample-exact.
 * - The consumer re-anchors on a new talk spurt after a long pause and on a new stream (see JitterBuffer's
 *   `resync`), because after a pause the sender's clock may have been reset or drifted.
 * - During continuous speech the two clocks still run at slightly different rates (a sender's sound card is
 *   off by up to a few hundred ppm: 200 ppm is 12 ms a minute). The floor of (arrival − timestamp) is tracked as
 *   the minimum of each 1 s window of packets; the target is the lowest of the last 8 windows, so a burst of
 *   delay (congestion, a stalled route) shorter than that cannot move it, while arrivals EARLIER than the anchor
 *   allows — which jitter can never cause — count at once. When the anchor is more than 2 ms off the target the
 *   consumer corrects it, until it is within 0.5 ms, without audible damage: the whole correction at once in a
 *   pause (a few samples more or less of silence), otherwise spread over the audio by resampling each frame by
 *   at most 2 samples in 960 (0.2 %, a 3.5-cent pitch change nobody hears; 5 while more than 20 ms off):
 *   see {@link StreamClock.slewStep}.
 *   The error so stays within a few ms over hours (test: 150 ppm, an hour of continuous speech). Only an error
 *   of more than 100 ms — the sender's timestamps jumped, not drift — moves the anchor in one step.
 * Never moving audio back over what was already written is the writer's rule (the track trims overlap).
 *
 * A sender transmits a packet once its frame has been captured, so a packet's first sample was spoken one
 * frame duration before it left: arrival − duration is the arrival-derived position of its first sample.
 * What remains is the network delay, which the minimum over a window keeps small and which is the same
 * for every track (so tracks line up with each other).
 */
import { FRAME_SAMPLES, SAMPLE_RATE } from './types.ts';
import { tsDiff } from './jitter-buffer.ts';

const SAMPLES_PER_MS = SAMPLE_RATE / 1000;

export interface ClockSample {
  timestamp: number;
  arrivalMs: number;
  /** Samples of audio in the packet (default 960 = 20 ms). */
  samples?: number;
}

export interface StreamClockOptions {
  /** Packets per measurement window. Default 50 (1 s of 20 ms frames). */
  windowPackets?: number;
  /** Windows whose lowest minimum is the target. Default 8. */
  windows?: number;
  /** Anchor error (samples) at which a correction starts. Default 96 (2 ms). */
  startSamples?: number;
  /** Anchor error (samples) at which a correction is complete. Default 24 (0.5 ms). */
  stopSamples?: number;
  /** Anchor error (samples) beyond which the anchor jumps at once. Default 4800 (100 ms). */
  jumpSamples?: number;
}

/** Largest stretch of one packet's audio while correcting: 1 sample per 480 (2 per 20 ms frame, 0.21 %). */
const MAX_SLEW = 1 / 480;
/**
 * While the anchor is more than 20 ms off (a talk spurt anchored on a congested window), up to 5 per 960
 * (0.52 %, 9 cents): being that far off is worse than a pitch change a listener can barely notice.
 */
const FAST_SLEW = 1 / 192;
const FAST_SLEW_ABOVE = 960;

export class StreamClock {
  /** position = extended timestamp + anchor; null until the first anchor. */
  private anchor: number | null = null;
  private lastTs = 0;
  private lastExt = 0;
  private started = false;
  private readonly windowPackets: number;
  private readonly startSamples: number;
  private readonly stopSamples: number;
  private readonly jumpSamples: number;
  private windowMin = Infinity;
  private windowCount = 0;
  /** Minima of the last windows (ring), oldest overwritten first. */
  private readonly mins: Float64Array;
  private minsHead = 0;
  private minsCount = 0;
  /** Samples the anchor still has to move (0 when no correction is running). */
  private pendingSamples = 0;
  /** Times the anchor jumped (an error beyond jumpSamples). */
  driftCorrections = 0;
  /** Samples of correction applied by {@link shift} (absolute sum; diagnostics and tests). */
  slewedSamples = 0;

  constructor(opts: StreamClockOptions = {}) {
    this.windowPackets = opts.windowPackets ?? 50;
    this.mins = new Float64Array(opts.windows ?? 8);
    this.startSamples = opts.startSamples ?? 96;
    this.stopSamples = opts.stopSamples ?? 24;
    this.jumpSamples = opts.jumpSamples ?? 4800;
  }

  get anchored(): boolean {
    return this.anchor !== null;
  }

  /**
   * Samples by which the anchor should still move (positive: later), or 0 when it is close enough. The consumer
   * makes room for them ({@link shift}) in a pause, or bit by bit ({@link slewStep}).
   */
  get pending(): number {
    return this.pendingSamples;
  }

  /** Extended (unwrapped, 53-bit) value of a 32-bit RTP timestamp near the last one, without committing it. */
  peekExtended(ts: number): number {
    if (!this.started) return ts >>> 0;
    return this.lastExt + tsDiff(ts, this.lastTs);
  }

  /**
   * Anchors on the least-delayed of `window` (which must include the packet being released). `minPosition`
   * is the first sample not yet written by this track: the anchor is never placed so that this packet
   * would land before it.
   */
  anchorOn(window: Iterable<ClockSample>, releasedTs: number, minPosition: number): void {
    let best = Infinity;
    for (const s of window) {
      const c = s.arrivalMs * SAMPLES_PER_MS - (s.samples ?? FRAME_SAMPLES) - this.peekExtended(s.timestamp);
      if (c < best) best = c;
    }
    const ext = this.peekExtended(releasedTs);
    let anchor = Math.round(best);
    if (ext + anchor < minPosition) anchor = minPosition - ext;
    this.anchor = anchor;
    this.resetWindows();
  }

  /**
   * Position (recording-clock sample index) of a released packet's first sample. Commits the timestamp as
   * the new unwrap reference and feeds the drift measurement.
   */
  position(ts: number, arrivalMs: number, samples = FRAME_SAMPLES): number {
    const ext = this.peekExtended(ts);
    this.lastExt = ext;
    this.lastTs = ts;
    this.started = true;
    const c = arrivalMs * SAMPLES_PER_MS - samples - ext;
    if (this.anchor === null) this.anchor = Math.round(c);
    const pos = ext + this.anchor;
    if (c < this.windowMin) this.windowMin = c;
    if (++this.windowCount >= this.windowPackets) this.endWindow();
    return pos;
  }

  /**
   * How many samples to add to (positive) or drop from (negative) the audio of a packet of `samples` samples
   * while a correction runs: at most 2 per 960 (5 while more than 20 ms off). The consumer stretches that packet's audio to `samples + step`
   * and then calls {@link shift}(step), so the next packet follows on without a gap or an overlap.
   */
  slewStep(samples: number): number {
    const p = this.pendingSamples;
    if (p === 0) return 0;
    const max = Math.max(1, Math.floor(samples * (Math.abs(p) > FAST_SLEW_ABOVE ? FAST_SLEW : MAX_SLEW)));
    return p > 0 ? Math.min(p, max) : Math.max(p, -max);
  }

  /** Moves the anchor by `delta` samples, which the consumer has made room for (a pause, or a stretched frame). */
  shift(delta: number): void {
    if (delta === 0 || this.anchor === null) return;
    this.anchor += delta;
    this.slewedSamples += Math.abs(delta);
    const p = this.pendingSamples - delta;
    // Done once within the stop margin, or if the move overshot (the next window re-measures anyway).
    this.pendingSamples = Math.abs(p) <= this.stopSamples || Math.sign(p) !== Math.sign(this.pendingSamples) ? 0 : p;
  }

  private endWindow(): void {
    this.mins[this.minsHead] = this.windowMin;
    this.minsHead = (this.minsHead + 1) % this.mins.length;
    if (this.minsCount < this.mins.length) this.minsCount++;
    this.windowMin = Infinity;
    this.windowCount = 0;
    let low = Infinity;
    for (let i = 0; i < this.minsCount; i++) if (this.mins[i]! < low) low = this.mins[i]!;
    const err = low - this.anchor!;
    // Later arrivals count only once every window of the span saw them (a delay burst is not drift);
    // earlier ones at once (jitter never makes a packet early).
    if (err > 0 && this.minsCount < this.mins.length) return;
    const mag = Math.abs(err);
    if (mag > this.jumpSamples) {
      this.anchor! += Math.round(err);
      this.driftCorrections++;
      this.pendingSamples = 0;
      this.resetWindows();
      return;
    }
    if (this.pendingSamples !== 0 || mag > this.startSamples) {
      this.pendingSamples = mag <= this.stopSamples ? 0 : Math.round(err);
    }
  }

  private resetWindows(): void {
    this.windowMin = Infinity;
    this.windowCount = 0;
    this.minsHead = 0;
    this.minsCount = 0;
    this.pendingSamples = 0;
  }
}
