/**
 * Drift over an hour of continuous speech, through the real Track (jitter buffer → clock → libopus → capture
 * file), fed faster than real time: the sender's clock runs 150 ppm slow (its 20 ms are 20.003 of ours, 540 ms
 * an hour), it never pauses (so no re-anchoring on a new talk spurt can hide the drift), and arrivals carry
 * jitter. The signal is a 400 Hz tone with a 5 ms gap at the start of every second of the sender's clock: the
 * end of each gap is a sharp mark whose true position on the recording clock is known.
 * Checks, on the decoded capture: every mark within 5 ms of the truth over the whole hour, and the audio has no
 * hole and no cut (no silence longer than the gaps, no step sharper than the codec itself produces).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OpusWasm } from '../src/sinks/opus-decoder.ts';
import { Track, type TrackPacket } from '../src/sinks/track.ts';
import { WAV_HEADER_BYTES } from '../src/sinks/capture-layout.ts';
import opus from '@discordjs/opus';
import { FRAME, prng } from './sink-fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'dvrec-drift-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const PPM = -150;
const SECONDS = 3600;
const START_MS = 300;
const GAP = 240; // 5 ms: two whole periods of 400 Hz, so the tone resumes at phase 0
const LOUD = 1000;

/**
 * One second (50 frames) of the marked tone, from the steady state of a two-second encode (a seamless loop).
 * Mono narrowband SILK at 8 kb/s: a legitimate Opus stream that decodes in half the time of full-band stereo,
 * which keeps this hour of audio to a few seconds of test time.
 */
function markedSecond(): Buffer[] {
  const enc = new opus.OpusEncoder(48_000, 1);
  enc.setBitrate(8000);
  const frames: Buffer[] = [];
  const pcm = Buffer.alloc(FRAME * 2);
  for (let f = 0; f < 100; f++) {
    for (let i = 0; i < FRAME; i++) {
      const n = f * FRAME + i;
      pcm.writeInt16LE(n % 48_000 < GAP ? 0 : Math.round(8000 * Math.sin((2 * Math.PI * 400 * n) / 48_000)), i * 2);
    }
    frames.push(enc.encode(pcm));
  }
  return frames.slice(50);
}

/** Left channel of interleaved s16le stereo bytes. */
function left(buf: Buffer, bytes: number): Int16Array {
  const v = new Int16Array(buf.buffer, buf.byteOffset, bytes / 2);
  const out = new Int16Array(v.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = v[i * 2]!;
  return out;
}

/** Where, in decoded output, a mark's tone comes back (relative to its frame) and how steep the codec's own steps are. */
function reference(loop: Buffer[]): { markOffset: number; maxStep: number; maxQuiet: number } {
  const wasm = new OpusWasm();
  const dec = wasm.newDecoder();
  const parts: Int16Array[] = [];
  for (let r = 0; r < 3; r++) for (const p of loop) parts.push(left(Buffer.from(dec.decode(p)!), FRAME * 4));
  const x = new Int16Array(parts.length * FRAME);
  parts.forEach((p, i) => x.set(p, i * FRAME));
  const sec2 = 48_000 * 2; // the third pass: the decoder is in its steady state
  let markOffset = -1;
  for (let i = sec2; i < sec2 + 2000; i++) {
    if (Math.abs(x[i]!) > LOUD && x.subarray(i - GAP / 2, i).every((v) => Math.abs(v) < LOUD)) {
      markOffset = i - sec2;
      break;
    }
  }
  return { markOffset, maxStep: maxStepOf(x, 48_000, x.length), maxQuiet: longestQuiet(x, 48_000, x.length) };
}

function maxStepOf(x: Int16Array, from: number, to: number): number {
  let m = 0;
  for (let i = Math.max(1, from); i < to; i++) m = Math.max(m, Math.abs(x[i]! - x[i - 1]!));
  return m;
}

function longestQuiet(x: Int16Array, from: number, to: number): number {
  let run = 0;
  let best = 0;
  for (let i = from; i < to; i++) {
    if (Math.abs(x[i]!) < 200) best = Math.max(best, ++run);
    else run = 0;
  }
  return best;
}

test(`an hour of continuous speech with the sender's clock ${PPM} ppm off: marks within 5 ms, no hole, no cut`, (t) => {
  const loop = markedSecond();
  const ref = reference(loop);
  // The codec delays everything by its look-ahead (a few ms): the mark comes back that much after the gap's end.
  assert.ok(ref.markOffset >= GAP && ref.markOffset < GAP + 600, `reference mark at ${ref.markOffset}`);

  const path = join(dir, 'u.wav');
  const track = new Track({ capturePath: path, wasm: new OpusWasm() });
  const rate = 1 + PPM * 1e-6;
  const rnd = prng(150);
  const frames = SECONDS * 50;
  let seq = 40_000;
  let ts = 3_000_000_000;
  for (let i = 0; i < frames; i++) {
    // Frame i is 20 ms of the sender's clock; on ours it starts at START_MS + i·20/rate and leaves once captured.
    const spokenMs = START_MS + (i * 20) / rate;
    const p: TrackPacket = { ssrc: 77, sequence: seq, timestamp: ts, arrivalMs: spokenMs + 20 / rate + 10 * rnd(), opus: loop[i % 50]! };
    track.push(p);
    if (i % 10 === 0) track.flushIfDue(p.arrivalMs);
    seq = (seq + 1) & 0xffff;
    ts = (ts + FRAME) >>> 0;
  }
  const endMs = START_MS + (frames * 20) / rate + 100;
  const s = track.finish(endMs);
  assert.equal(s.received, frames);
  assert.equal(s.lost + s.concealed + s.corrupt + s.late, 0);

  // Read the capture once: the marks' positions (every minute) and the whole waveform's continuity.
  const fd = openSync(path, 'r');
  const errorsMs: number[] = [];
  let maxStep = 0;
  let maxQuiet = 0;
  try {
    const chunkFrames = 48_000 * 20; // 20 s
    const buf = Buffer.alloc(chunkFrames * 4 + 4);
    const total = Math.round(endMs * 48);
    // Continuity up to the last frame's last few ms (after it the track is silent, as it should be).
    const audioEnd = Math.round((START_MS + (frames * 20) / rate) * 48) - 480;
    let prev: number | null = null;
    let quiet = 0;
    for (let at = 0; at < total; at += chunkFrames) {
      const n = readSync(fd, buf, 0, Math.min(chunkFrames, total - at) * 4, WAV_HEADER_BYTES + at * 4);
      const x = left(buf, n);
      // Continuity, from the first mark on (before it the track is silent, as it should be).
      const from = Math.max(0, Math.round(START_MS * 48) + 48_000 - at);
      for (let i = from; i < Math.min(x.length, audioEnd - at); i++) {
        const v = x[i]!;
        if (prev !== null) maxStep = Math.max(maxStep, Math.abs(v - prev));
        prev = v;
        if (Math.abs(v) < 200) maxQuiet = Math.max(maxQuiet, ++quiet);
        else quiet = 0;
      }
    }
    for (let sec = 60; sec < SECONDS; sec += 60) {
      const expected = Math.round((START_MS + (sec * 1000) / rate) * 48) + ref.markOffset;
      const n = readSync(fd, buf, 0, 48_000 * 4, WAV_HEADER_BYTES + (expected - 24_000) * 4);
      const x = left(buf, n);
      // The tone's return after the quiet gap nearest the expected position.
      let found = -1;
      for (let i = 24_000 - 2400; i < 24_000 + 2400; i++) {
        if (Math.abs(x[i]!) > LOUD && x.subarray(i - GAP / 2, i).every((v) => Math.abs(v) < LOUD)) {
          found = i;
          break;
        }
      }
      assert.ok(found >= 0, `mark at ${sec} s found`);
      errorsMs.push((found - 24_000) / 48);
    }
  } finally {
    closeSync(fd);
  }
  const worst = errorsMs.reduce((a, b) => Math.max(a, Math.abs(b)), 0);
  t.diagnostic(`${PPM} ppm over ${SECONDS / 3600} h (${((SECONDS * -PPM) / 1000).toFixed(0)} ms of drift uncorrected): mark error per minute (ms) ${errorsMs.map((e) => e.toFixed(1)).join(' ')}; max step ${maxStep} (codec alone ${ref.maxStep}); longest quiet run ${maxQuiet} samples (codec alone ${ref.maxQuiet})`);
  assert.ok(worst < 5, `every mark within 5 ms of the truth: worst ${worst.toFixed(2)} ms`);
  assert.ok(maxQuiet <= ref.maxQuiet + 4, `no hole: longest quiet run ${maxQuiet} vs ${ref.maxQuiet} in the codec's own output`);
  assert.ok(maxStep <= 1.25 * ref.maxStep, `no cut or click: largest step ${maxStep} vs ${ref.maxStep} in the codec's own output`);
});
