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

/** Encoder CTLs and values from opus_defines.h. */
const OPUS_SET_APPLICATION = 4000;
const OPUS_APPLICATION_VOIP = 2048;
const OPUS_SET_INBAND_FEC = 4012;
const OPUS_SET_PACKET_LOSS_PERC = 4014;
const OPUS_SET_SIGNAL = 4024;
const OPUS_SIGNAL_VOICE = 3001;
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

/**
 * Voicing: a slight vibrato (±1 % at 5 Hz) and a syllable-rate envelope (4 Hz, 40 % deep). A perfectly steady
 * sine makes libopus's voice-activity detector decide after ~0.5 s that nobody is talking, and it then stops
 * sending in-band FEC, which real speech carries; a voiced tone keeps FEC on, as a real client's would. Both
 * rates are whole numbers of cycles per second, so a 1 s loop stays phase-continuous, and the pitch stays
 * within a 20 ms Goertzel bin of the nominal frequency, so members remain distinguishable.
 */
const VIBRATO_HZ = 5;
const VIBRATO_DEPTH = 0.01;
const ENVELOPE_HZ = 4;
const ENVELOPE_DEPTH = 0.4;

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
    const t = i / SAMPLE_RATE;
    hz *= 1 + VIBRATO_DEPTH * Math.sin(2 * Math.PI * VIBRATO_HZ * t);
    phase += (2 * Math.PI * hz) / SAMPLE_RATE;
    const envelope = 1 - ENVELOPE_DEPTH * (0.5 + 0.5 * Math.cos(2 * Math.PI * ENVELOPE_HZ * t));
    const v = Math.round(amp * envelope * Math.sin(phase));
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
  // As Discord's own clients: VoIP application, voice signal, in-band FEC for the loss they expect.
  enc.applyEncoderCTL(OPUS_SET_APPLICATION, OPUS_APPLICATION_VOIP);
  enc.applyEncoderCTL(OPUS_SET_SIGNAL, OPUS_SIGNAL_VOICE);
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
