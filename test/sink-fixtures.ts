/**
 * Test fixtures for the sink stack and the pool: real Opus packets of known tones (encoded by
 * @discordjs/opus like a Discord client: 48 kHz stereo, 20 ms, in-band FEC on), RTP packet schedules with
 * known sequence numbers / timestamps / arrival times, and readers for the capture files.
 */
import { readFileSync } from 'node:fs';
import opus from '@discordjs/opus';
import type { AudioPacket } from '../src/sinks/types.ts';

const { OpusEncoder } = opus;

export const FRAME = 960;
export const TONE_AMPLITUDE = 8000;

/** Deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Encodes `frames` 20 ms frames of a tone at `freq` into real Opus packets.
 *
 * By default the tone is "voiced": a slight vibrato and a 7 Hz syllable-rate envelope (0.5–1.0). A perfectly
 * steady sine makes the SILK voice-activity detector decide after ~0.5 s that nobody is talking, and the
 * encoder then stops sending in-band FEC (LBRR is only coded for active frames), unlike real speech.
 * `steady: true` gives the plain sine.
 */
export function encodeTone(freq: number, frames: number, amplitude = TONE_AMPLITUDE, steady = false): Buffer[] {
  return encodeSignal(frames, (n) =>
    steady
      ? amplitude * Math.sin((2 * Math.PI * freq * n) / 48_000)
      : amplitude *
        (0.75 + 0.25 * Math.sin((2 * Math.PI * 7 * n) / 48_000)) *
        Math.sin((2 * Math.PI * freq * n) / 48_000 + 2 * Math.sin((2 * Math.PI * 3 * n) / 48_000)),
  );
}

/** Encodes `frames` 20 ms frames of `sample(n)` (n = sample index at 48 kHz) like {@link encodeTone}. */
export function encodeSignal(frames: number, sample: (n: number) => number): Buffer[] {
  const enc = new OpusEncoder(48_000, 2);
  enc.setBitrate(64_000);
  enc.applyEncoderCTL(4012, 1); // OPUS_SET_INBAND_FEC
  enc.applyEncoderCTL(4014, 10); // OPUS_SET_PACKET_LOSS_PERC
  const out: Buffer[] = [];
  const pcm = Buffer.alloc(FRAME * 4);
  for (let f = 0; f < frames; f++) {
    for (let i = 0; i < FRAME; i++) {
      const v = Math.max(-32768, Math.min(32767, Math.round(sample(f * FRAME + i))));
      pcm.writeInt16LE(v, i * 4);
      pcm.writeInt16LE(v, i * 4 + 2);
    }
    out.push(enc.encode(pcm));
  }
  return out;
}

/** Opus silence frame, as clients send five of at the end of a talk spurt. */
export const SILENCE_FRAME = Buffer.from([0xf8, 0xff, 0xfe]);

export interface Spurt {
  /** Position of the spurt's first sample on the sender's RTP clock, relative to the stream's first timestamp. */
  tsOffset: number;
  packets: Buffer[];
}

export interface StreamSpec {
  userId: string;
  ssrc: number;
  firstSeq: number;
  firstTs: number;
  /** Recording-clock ms at which the stream's first sample (timestamp firstTs) was "spoken". */
  startMs: number;
  spurts: Spurt[];
  /** Sender clock rate relative to ours (1 = no drift). */
  rate?: number;
}

/** Lays out a stream's packets with consecutive sequence numbers and timestamps from the spurts. */
export function buildStream(s: StreamSpec): AudioPacket[] {
  const out: AudioPacket[] = [];
  let seq = s.firstSeq;
  const rate = s.rate ?? 1;
  for (const sp of s.spurts) {
    sp.packets.forEach((opusPkt, i) => {
      const rel = sp.tsOffset + i * FRAME;
      out.push({
        userId: s.userId,
        ssrc: s.ssrc,
        sequence: seq & 0xffff,
        timestamp: (s.firstTs + rel) >>> 0,
        // A packet leaves the sender once its frame is complete: 20 ms after its first sample.
        arrivalMs: s.startMs + (rel + FRAME) / 48 / rate,
        opus: opusPkt,
      });
      seq++;
    });
  }
  return out;
}

export interface NetworkSpec {
  loss?: number;
  /** Fraction of packets delayed extra so they arrive after their successor. */
  reorder?: number;
  /** Uniform random extra delay 0..jitterMs. */
  jitterMs?: number;
  duplicate?: number;
  /** Indices (in send order) to drop. */
  dropIndices?: ReadonlySet<number>;
  baseDelayMs?: number;
  seed?: number;
}

/** Applies loss, jitter, reordering and duplication; returns packets sorted by arrival. */
export function network(packets: AudioPacket[], n: NetworkSpec): AudioPacket[] {
  const rnd = prng(n.seed ?? 1);
  const out: AudioPacket[] = [];
  packets.forEach((p, i) => {
    if (n.dropIndices?.has(i)) return;
    if (n.loss !== undefined && rnd() < n.loss) return;
    let d = (n.baseDelayMs ?? 2) + (n.jitterMs ?? 0) * rnd();
    if (n.reorder !== undefined && rnd() < n.reorder) d += 25 + 10 * rnd();
    out.push({ ...p, arrivalMs: p.arrivalMs + d });
    if (n.duplicate !== undefined && rnd() < n.duplicate) out.push({ ...p, arrivalMs: p.arrivalMs + d + 5 * rnd() });
  });
  return out.sort((a, b) => a.arrivalMs - b.arrivalMs);
}

/** Reads a capture file's PCM (left channel) from byte 44. */
export function readCaptureLeft(path: string): { left: Int16Array; dataBytes: number } {
  const buf = readFileSync(path);
  const data = buf.subarray(44);
  const frames = Math.floor(data.length / 4);
  const left = new Int16Array(frames);
  for (let i = 0; i < frames; i++) left[i] = data.readInt16LE(i * 4);
  return { left, dataBytes: data.length };
}

/** Amplitude of `freq` in a block (Goertzel), normalised so a full-block sine of amplitude A gives ≈A. */
export function toneLevel(x: Int16Array, start: number, len: number, freq: number): number {
  const k = (2 * Math.PI * freq) / 48_000;
  const c = 2 * Math.cos(k);
  let s1 = 0;
  let s2 = 0;
  for (let i = start; i < start + len && i < x.length; i++) {
    const s0 = x[i]! + c * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - c * s1 * s2;
  return (2 * Math.sqrt(Math.max(0, power))) / len;
}

/** Peak absolute sample in a range. */
export function peak(x: Int16Array, start: number, end: number): number {
  let m = 0;
  for (let i = Math.max(0, start); i < Math.min(end, x.length); i++) m = Math.max(m, Math.abs(x[i]!));
  return m;
}

/** First sample index from `from` whose 1 ms window carries `freq` at ≥ half amplitude. */
export function onset(x: Int16Array, freq: number, from = 0): number {
  for (let i = from; i + 480 <= x.length; i += 48) {
    if (toneLevel(x, i, 480, freq) > TONE_AMPLITUDE / 2) return i;
  }
  return -1;
}

/** RMS of a range. */
export function rms(x: Int16Array, start: number, len: number): number {
  let acc = 0;
  let n = 0;
  for (let i = Math.max(0, start); i < start + len && i < x.length; i++, n++) acc += x[i]! * x[i]!;
  return n === 0 ? 0 : Math.sqrt(acc / n);
}

/** The quietest a voiced-tone block can be (envelope minimum 0.5, RMS of a sine = A/√2). */
export const MIN_SPEECH_RMS = (TONE_AMPLITUDE * 0.5) / Math.SQRT2;

/**
 * Counts dropouts among the 20 ms blocks of [startSample, endSample) that should all carry speech: blocks
 * where the audio dropped out, i.e. whose RMS is below 10 % (−20 dB) of the quietest speech block. Concealed
 * audio at a reduced level is not a dropout (counted as `weak` when below half the quietest level); a hole or
 * a misplaced frame is.
 */
export function dropouts(x: Int16Array, startSample: number, endSample: number): { blocks: number; bad: number; weak: number } {
  let blocks = 0;
  let bad = 0;
  let weak = 0;
  for (let s = startSample; s + FRAME <= endSample; s += FRAME) {
    blocks++;
    const got = rms(x, s, FRAME);
    if (got < MIN_SPEECH_RMS * 0.1) bad++;
    else if (got < MIN_SPEECH_RMS * 0.5) weak++;
  }
  return { blocks, bad, weak };
}
