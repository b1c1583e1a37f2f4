/**
 * The mixed track: every user summed, then a look-ahead peak limiter.
 *
 * Why a limiter and not "divide by the number of speakers" or "normalise by the global peak": in a voice
 * channel people mostly take turns, so the plain sum is at the right level almost all the time. Dividing by N
 * makes a 6-person call 15 dB too quiet; scaling by the loudest overlap makes one shout lower the whole
 * recording. The limiter leaves the sum untouched (gain exactly 1) wherever it stays under the ceiling and
 * only turns the gain down, smoothly, around moments that would clip.
 *
 * Guarantee (no clipping, by construction, not by tuning): let g_req[n] = min(1, ceiling / peak[n]).
 * h[j] = min(g_req[j .. j+L-1]) (sliding minimum, L = look-ahead), h2 = h with a slow release (only ever
 * lowers h), gain[m] = mean(h2[m-L+1 .. m]). Every h2[j] averaged for sample m comes from a window that
 * contains m, so gain[m] <= g_req[m] and |gain[m] * x[m]| <= ceiling. The moving average makes the attack a
 * 5 ms ramp instead of a click. Output is delayed by L-1 internally and realigned, so the mix stays on t=0.
 * The ceiling is -1 dBFS: headroom for MP3/Opus encoders, whose reconstruction can overshoot the input peak.
 */

/** -1 dBFS on a 16-bit scale. */
export const MIX_CEILING = Math.floor(32767 * 10 ** (-1 / 20));
/** Look-ahead in sample frames (5 ms at 48 kHz). */
export const LOOKAHEAD = 240;
/** Release time constant (seconds): how fast the gain recovers after a peak. */
const RELEASE_S = 0.15;

export class Limiter {
  private readonly channels: number;
  private readonly L: number;
  private readonly ceiling: number;
  private readonly alpha: number;
  /** Delay line: x[i] is stored at slot i % L. */
  private readonly delay: Float32Array;
  /** Monotonic deque (indices and values) for the sliding minimum of g_req. */
  private readonly dqIdx: Float64Array;
  private readonly dqVal: Float64Array;
  private dqHead = 0;
  private dqLen = 0;
  /** h2[j] at slot j % L, for the moving average. */
  private readonly h2Ring: Float64Array;
  private h2Sum: number;
  private h2Prev = 1;
  private n = 0;
  /** Output frames still to drop (the delay line's initial silence). */
  private skip: number;

  constructor(channels: number, sampleRate = 48_000, lookahead = LOOKAHEAD, ceiling = MIX_CEILING) {
    this.channels = channels;
    this.L = lookahead;
    this.ceiling = ceiling;
    this.alpha = 1 - Math.exp(-1 / (RELEASE_S * sampleRate));
    this.delay = new Float32Array(lookahead * channels);
    this.dqIdx = new Float64Array(lookahead + 1);
    this.dqVal = new Float64Array(lookahead + 1);
    this.h2Ring = new Float64Array(lookahead).fill(1);
    this.h2Sum = lookahead;
    this.skip = lookahead - 1;
  }

  /**
   * Takes interleaved frames on a 16-bit scale (may exceed it), returns limited s16 frames. Output lags input
   * by L-1 frames; that lag is dropped at the start and returned by {@link flush}, so the concatenated
   * output has exactly as many frames as the input, sample-aligned.
   */
  process(input: Float32Array): Int16Array {
    const ch = this.channels;
    const L = this.L;
    const cap = L + 1;
    const frames = input.length / ch;
    const out = new Int16Array(Math.max(0, frames - this.skip) * ch);
    let o = 0;
    for (let f = 0; f < frames; f++) {
      const i = this.n++;
      let peak = 0;
      for (let c = 0; c < ch; c++) peak = Math.max(peak, Math.abs(input[f * ch + c]!));
      const greq = peak > this.ceiling ? this.ceiling / peak : 1;
      while (this.dqLen > 0 && this.dqVal[(this.dqHead + this.dqLen - 1) % cap]! >= greq) this.dqLen--;
      this.dqIdx[(this.dqHead + this.dqLen) % cap] = i;
      this.dqVal[(this.dqHead + this.dqLen) % cap] = greq;
      this.dqLen++;
      while (this.dqIdx[this.dqHead]! <= i - L) { this.dqHead = (this.dqHead + 1) % cap; this.dqLen--; }
      // j = i-L+1: h[j] = min(g_req[j .. i]) (indices below 0 are silence, g_req = 1).
      const j = i - L + 1;
      const h2 = Math.min(this.dqVal[this.dqHead]!, this.h2Prev + (1 - this.h2Prev) * this.alpha);
      this.h2Prev = h2;
      const hs = ((j % L) + L) % L;
      this.h2Sum += h2 - this.h2Ring[hs]!;
      this.h2Ring[hs] = h2;
      if (hs === 0) { let t = 0; for (let k = 0; k < L; k++) t += this.h2Ring[k]!; this.h2Sum = t; } // no drift
      const gain = Math.min(1, this.h2Sum / L); // mean(h2[j-L+1 .. j]) <= g_req[j]
      const xs = i % L;
      const os = (i + 1) % L; // holds x[i-L+1] = x[j]
      for (let c = 0; c < ch; c++) this.delay[xs * ch + c] = input[f * ch + c]!;
      if (this.skip > 0) { this.skip--; continue; }
      for (let c = 0; c < ch; c++) out[o++] = clamp16(this.delay[os * ch + c]! * gain);
    }
    return o === out.length ? out : out.subarray(0, o);
  }

  /** Pushes the look-ahead out: returns the last L-1 frames. */
  flush(): Int16Array {
    return this.process(new Float32Array((this.L - 1) * this.channels));
  }
}

function clamp16(v: number): number {
  const r = Math.round(v);
  return r > 32767 ? 32767 : r < -32768 ? -32768 : r;
}

/** Sums interleaved s16 chunks (all the same length) into a float buffer on the 16-bit scale. */
export function sumChunks(chunks: Int16Array[], length: number): Float32Array {
  const acc = new Float32Array(length);
  for (const c of chunks) for (let k = 0; k < length; k++) acc[k]! += c[k]!;
  return acc;
}
