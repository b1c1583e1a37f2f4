/**
 * Resamples one frame of s16le stereo PCM to a slightly different length (a few samples more or fewer), for
 * drift correction during continuous speech (see clock.ts): inserting silence or cutting audio would click,
 * a 0.2 % change of rate for one frame is inaudible.
 *
 * The frame's first and last samples stay where they are and the ones between are spread evenly, read with
 * Catmull-Rom (cubic) interpolation, so the waveform stays continuous across the frame boundaries: the next
 * frame starts one input step after this one's last sample, as it would have without stretching.
 */

/** Only the last this-many sample frames of a frame are resampled: the change is confined to 5 ms of audio. */
const SEGMENT = 240;

/**
 * Writes `src` (`frames` stereo sample frames, s16le) stretched to `outFrames` frames into `out` (interleaved
 * stereo, at least 2·outFrames long; a typed array is little-endian on every host Node runs on, like the
 * decoder's output) and returns the bytes written as a view of `out`.
 *
 * Hot while a correction runs (one call per frame of every stretched track, beside a ~25 µs decode), so only the
 * frame's last {@link SEGMENT} samples are resampled (2 samples in 240: a 0.8 % rate change for 5 ms, still
 * inaudible) and the rest is copied: ~8× cheaper than resampling the whole frame, same continuity at both ends.
 */
export function stretchFrame(src: Uint8Array, frames: number, outFrames: number, out: Int16Array): Uint8Array {
  const x = (src.byteOffset & 1) === 0
    ? new Int16Array(src.buffer, src.byteOffset, frames * 2)
    : Int16Array.from({ length: frames * 2 }, (_, k) => ((src[k * 2]! | (src[k * 2 + 1]! << 8)) << 16) >> 16);
  const delta = outFrames - frames;
  const seg = Math.min(frames, Math.max(SEGMENT, 4 * Math.abs(delta)));
  const head = frames - seg;
  out.set(x.subarray(0, head * 2), 0);
  const segOut = seg + delta;
  const last = frames - 1;
  // Positions run from the segment's first sample to the frame's last, evenly; taps may reach into the head.
  const step = segOut > 1 ? (seg - 1) / (segOut - 1) : 0;
  for (let j = 0; j < segOut; j++) {
    const pos = head + j * step;
    const i = pos | 0;
    const t = pos - i;
    const i0 = (i > 0 ? i - 1 : 0) * 2;
    const i1 = i * 2;
    const i2 = (i < last ? i + 1 : last) * 2;
    const i3 = (i + 2 < last ? i + 2 : last) * 2;
    const o = (head + j) * 2;
    for (let c = 0; c < 2; c++) {
      const p0 = x[i0 + c]!;
      const p1 = x[i1 + c]!;
      const p2 = x[i2 + c]!;
      const p3 = x[i3 + c]!;
      const y = p1 + 0.5 * t * (p2 - p0 + t * (2 * p0 - 5 * p1 + 4 * p2 - p3 + t * (3 * (p1 - p2) + p3 - p0)));
      out[o + c] = y > 32767 ? 32767 : y < -32768 ? -32768 : Math.round(y);
    }
  }
  return new Uint8Array(out.buffer, out.byteOffset, outFrames * 4);
}
