/**
 * Resamples one frame of s16le stereo PCM to a slightly different length (a few samples more or fewer), for
 * drift correction during continuous speech (see clock.ts): inserting silence or cutting audio would click,
 * a 0.2 % change of rate for one frame is inaudible.
 *
 * The frame's first and last samples stay where they are and the ones between are spread evenly, read with
 * Catmull-Rom (cubic) interpolation, so the waveform stays continuous across the frame boundaries: the next
 * frame starts one input step after this one's last sample, as it would have without stretching.
 */

/** Reads sample `i` (frame index) of channel `c` from s16le interleaved stereo bytes, clamping the index. */
function at(src: Uint8Array, frames: number, i: number, c: number): number {
  const k = i < 0 ? 0 : i >= frames ? frames - 1 : i;
  const o = (k * 2 + c) * 2;
  return ((src[o]! | (src[o + 1]! << 8)) << 16) >> 16;
}

/**
 * Writes `src` (`frames` stereo sample frames, s16le) stretched to `outFrames` frames into `out` (interleaved
 * stereo, at least 2·outFrames long; a typed array is little-endian on every host Node runs on, like the
 * decoder's output) and returns the bytes written as a view of `out`.
 */
export function stretchFrame(src: Uint8Array, frames: number, outFrames: number, out: Int16Array): Uint8Array {
  const step = outFrames > 1 ? (frames - 1) / (outFrames - 1) : 0;
  for (let j = 0; j < outFrames; j++) {
    const x = j * step;
    const i = Math.floor(x);
    const t = x - i;
    for (let c = 0; c < 2; c++) {
      const p0 = at(src, frames, i - 1, c);
      const p1 = at(src, frames, i, c);
      const p2 = at(src, frames, i + 1, c);
      const p3 = at(src, frames, i + 2, c);
      const y = p1 + 0.5 * t * (p2 - p0 + t * (2 * p0 - 5 * p1 + 4 * p2 - p3 + t * (3 * (p1 - p2) + p3 - p0)));
      out[j * 2 + c] = y > 32767 ? 32767 : y < -32768 ? -32768 : Math.round(y);
    }
  }
  return new Uint8Array(out.buffer, out.byteOffset, outFrames * 4);
}
