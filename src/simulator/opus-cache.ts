/**
 * Pre-encoded Opus loops for simulated members. Each distinct signal is synthesised and encoded ONCE
 * (48 kHz stereo, 20 ms frames, in-band FEC on), then played from the cache in a loop: packet sending
 * never touches the encoder, so hundreds of members cost little CPU.
 *
 * Loop lengths are chosen so the loop is phase-continuous: a tone of an integer frequency completes a whole
 * number of cycles in 1 s (50 frames); a chirp loops over its own period.
 */
import opus from '@discordjs/opus';
import type { Signal } from './scenario.ts';

const { OpusEncoder } = opus;

export const SAMPLE_RATE = 48_000;
export const CHANNELS = 2;
export const FRAME_SAMPLES = 960; // 20 ms
/** An Opus "silence" frame, 5 of which end every talk spurt. */
export const SILENCE_FRAME = Buffer.from([0xf8, 0xff, 0xfe]);

/** OPUS_SET_INBAND_FEC / OPUS_SET_PACKET_LOSS_PERC (opus_defines.h). */
const OPUS_SET_INBAND_FEC = 4012;
const OPUS_SET_PACKET_LOSS_PERC = 4014;
const EXPECTED_LOSS_PERCENT = 10;

const cache = new Map<string, Buffer[]>();

/** A stable cache key for a signal. */
export function signalKey(s: Signal): string {
  return s.kind === 'tone'
    ? `tone:${s.hz}:${s.amplitude ?? 0.3}`
    : `chirp:${s.fromHz}:${s.toHz}:${s.periodMs}:${s.amplitude ?? 0.3}`;
}

/** Number of 20 ms frames in the signal's loop. */
function loopFrames(s: Signal): number {
  if (s.kind === 'tone') return Number.isInteger(s.hz) ? 50 : 250; // 1 s; 5 s for non-integer Hz
  return Math.max(1, Math.round(s.periodMs / 20));
}

/** Synthesises the loop as interleaved s16le stereo PCM (same sound on both channels). */
export function synthesize(s: Signal): Int16Array {
  const frames = loopFrames(s);
  const n = frames * FRAME_SAMPLES;
  const pcm = new Int16Array(n * CHANNELS);
  const amp = Math.round(32767 * Math.min(1, Math.max(0, s.amplitude ?? 0.3)));
  let phase = 0;
  for (let i = 0; i < n; i++) {
    let hz: number;
    if (s.kind === 'tone') hz = s.hz;
    else hz = s.fromHz + ((s.toHz - s.fromHz) * i) / n; // linear sweep over the period
    phase += (2 * Math.PI * hz) / SAMPLE_RATE;
    const v = Math.round(amp * Math.sin(phase));
    pcm[2 * i] = v;
    pcm[2 * i + 1] = v;
  }
  return pcm;
}

/** The signal's Opus loop (encoded on first use, then cached). */
export function opusLoop(s: Signal): Buffer[] {
  const key = signalKey(s);
  const hit = cache.get(key);
  if (hit) return hit;
  const enc = new OpusEncoder(SAMPLE_RATE, CHANNELS);
  enc.applyEncoderCTL(OPUS_SET_INBAND_FEC, 1);
  enc.applyEncoderCTL(OPUS_SET_PACKET_LOSS_PERC, EXPECTED_LOSS_PERCENT);
  enc.setBitrate(64_000);
  const pcm = synthesize(s);
  const bytes = Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  const frameBytes = FRAME_SAMPLES * CHANNELS * 2;
  // Warm the encoder up with the loop's last frames first, so the first frame is encoded as if it followed
  // the loop's end (no start-up artefact each time the loop wraps).
  const count = bytes.length / frameBytes;
  const warmup = Math.min(count, 5);
  for (let i = count - warmup; i < count; i++) enc.encode(bytes.subarray(i * frameBytes, (i + 1) * frameBytes));
  const frames: Buffer[] = [];
  for (let i = 0; i < count; i++) frames.push(Buffer.from(enc.encode(bytes.subarray(i * frameBytes, (i + 1) * frameBytes))));
  cache.set(key, frames);
  return frames;
}
