/**
 * Shared helpers for the receiver and end-to-end recording tests: scenario building, reading WAV tracks, and
 * measuring tones per 20 ms block (Goertzel) so tests check WHICH sound is WHERE, not that files exist.
 */
import { readFileSync } from 'node:fs';
import type { Scenario, SimMember } from '../src/simulator/scenario.ts';

export const GUILD = '100000000000000001';
export const CHANNEL = '100000000000000002';
export const BOT = '100000000000000003';
export const TOKEN = 'MTAwMDAwMDAwMDAwMDAwMDAz.test-token.abcdefghijklmnop';
export const BLOCK = 960; // 20 ms at 48 kHz
/** Tone amplitude the simulator uses by default (0.3 of full scale). */
export const TONE_PEAK = 0.3 * 32767;

export function scenario(members: SimMember[], extra: Partial<Scenario> = {}): Scenario {
  return { seed: 7, guildId: GUILD, channelId: CHANNEL, botUserId: BOT, token: TOKEN, dave: true, members, ...extra };
}

/** Left channel of a 16-bit stereo WAV as numbers (asserts the canonical 44-byte header). */
export function readWavLeft(path: string): Int16Array {
  const buf = readFileSync(path);
  if (buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') throw new Error(`${path}: not a WAV`);
  // Find the data chunk (robust to extra chunks).
  let at = 12;
  while (at + 8 <= buf.length) {
    const id = buf.toString('ascii', at, at + 4);
    const size = buf.readUInt32LE(at + 4);
    if (id === 'data') {
      const frames = Math.floor(Math.min(size, buf.length - at - 8) / 4);
      const out = new Int16Array(frames);
      for (let i = 0; i < frames; i++) out[i] = buf.readInt16LE(at + 8 + i * 4);
      return out;
    }
    at += 8 + size + (size & 1);
  }
  throw new Error(`${path}: no data chunk`);
}

/** Amplitude of a sine at `hz` in samples [from, from+n) (Goertzel; exact for bin-centred frequencies). */
export function toneAmplitude(x: Int16Array, from: number, n: number, hz: number): number {
  const k = (2 * Math.PI * hz) / 48_000;
  const c = 2 * Math.cos(k);
  let s1 = 0;
  let s2 = 0;
  const end = Math.min(x.length, from + n);
  for (let i = Math.max(0, from); i < end; i++) {
    const s0 = x[i]! + c * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - c * s1 * s2;
  return (2 * Math.sqrt(Math.max(0, power))) / n;
}

export function rms(x: Int16Array, from: number, n: number): number {
  let sum = 0;
  const end = Math.min(x.length, from + n);
  for (let i = Math.max(0, from); i < end; i++) sum += x[i]! * x[i]!;
  return Math.sqrt(sum / Math.max(1, end - Math.max(0, from)));
}

/** First sample at or after `from` whose magnitude exceeds `threshold`, in ms; null if none before `to`. */
export function onsetMs(x: Int16Array, fromMs: number, toMs: number, threshold = 1000): number | null {
  const a = Math.max(0, Math.floor((fromMs * 48_000) / 1000));
  const b = Math.min(x.length, Math.ceil((toMs * 48_000) / 1000));
  for (let i = a; i < b; i++) if (Math.abs(x[i]!) > threshold) return (i * 1000) / 48_000;
  return null;
}

export const msToSample = (ms: number): number => Math.round((ms * 48_000) / 1000);
