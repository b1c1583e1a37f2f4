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
 * - During continuous speech the minimum of (arrival − timestamp) is tracked per window of packets; if it
 *   diverges from the anchor by more than `driftSamples` (the two clocks run at different rates), re-anchor,
 *   so no drift accumulates over hours.
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
  /** Divergence between arrival- and timestamp-derived positions that triggers a re-anchor. Default 2880 (60 ms). */
  driftSamples?: number;
  /** Packets per drift-check window. Default 50 (1 s of 20 ms frames). */
  windowPackets?: number;
}

export class StreamClock {
  /** position = extended timestamp + anchor; null until the first anchor. */
  private anchor: number | null = null;
  private lastTs = 0;
  private lastExt = 0;
  private started = false;
  private readonly driftSamples: number;
  private readonly windowPackets: number;
  private windowMin = Infinity;
  private windowCount = 0;
  /** How many times the anchor moved because of drift (for diagnostics and tests). */
  driftCorrections = 0;

  constructor(opts: StreamClockOptions = {}) {
    this.driftSamples = opts.driftSamples ?? 2880;
    this.windowPackets = opts.windowPackets ?? 50;
  }

  get anchored(): boolean {
    return this.anchor !== null;
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
    this.windowMin = Infinity;
    this.windowCount = 0;
  }

  /**
   * Position (recording-clock sample index) of a released packet's first sample. Commits the timestamp as
   * the new unwrap reference and runs the drift check.
   */
  position(ts: number, arrivalMs: number, samples = FRAME_SAMPLES): number {
    const ext = this.peekExtended(ts);
    this.lastExt = ext;
    this.lastTs = ts;
    this.started = true;
    const c = arrivalMs * SAMPLES_PER_MS - samples - ext;
    if (this.anchor === null) this.anchor = Math.round(c);
    if (c < this.windowMin) this.windowMin = c;
    if (++this.windowCount >= this.windowPackets) {
      if (Math.abs(this.windowMin - this.anchor) > this.driftSamples) {
        this.anchor = Math.round(this.windowMin);
        this.driftCorrections++;
      }
      this.windowMin = Infinity;
      this.windowCount = 0;
    }
    return ext + this.anchor;
  }
}
