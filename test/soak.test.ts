/**
 * Accelerated soak: three hours of simulated audio for three speakers fed to the real WorkerPool with
 * `clock: 'packets'` (time advances with packet arrivals, so it runs far faster than real time). Speakers
 * talk and pause (RTP timestamps jump over pauses), one changes SSRC mid-run, every sender's clock is off
 * by a few tens of ppm, and arrivals carry jitter. Checks: process memory (RSS, heap; the workers are threads
 * of this process) stays flat over the run, and a tone spurt that all three start at the same instant near
 * the end lands at the same sample position in every track (within one 20 ms frame) and where arrivals say.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readSync } from 'node:fs';
import opus from '@discordjs/opus';
import { WorkerPool } from '../src/pool/pool.ts';
import { capturePath, WAV_HEADER_BYTES } from '../src/sinks/capture-layout.ts';
import { Prng } from '../src/simulator/prng.ts';
import { cleanupDirs, tempDir } from './fault-fixtures.ts';

const { OpusEncoder } = opus;
after(cleanupDirs);

const HOURS = 3;
const TOTAL_MS = HOURS * 3600_000;
/** Talk `TALK_MS` then pause, every `CYCLE_MS` (offset per speaker). */
const CYCLE_MS = 10_000;
const TALK_MS = 2_000;
/** The final spurt, at the same true instant for everyone. */
const FINAL_MS = TOTAL_MS - 6_000;
const HZ = [400, 650, 1000];
/** Sender clock error (ppm) per speaker: their RTP clocks do not run at exactly 48 kHz. */
const PPM = [0, 30, -25];

/** One second of a tone as 50 Opus frames (integer cycles per second, so the loop is seamless). */
function toneLoop(hz: number): Buffer[] {
  const enc = new OpusEncoder(48_000, 2);
  const frames: Buffer[] = [];
  for (let f = 0; f < 50; f++) {
    const pcm = Buffer.alloc(960 * 4);
    for (let i = 0; i < 960; i++) {
      const v = Math.round(0.3 * 32767 * Math.sin((2 * Math.PI * hz * (f * 960 + i)) / 48_000));
      pcm.writeInt16LE(v, i * 4);
      pcm.writeInt16LE(v, i * 4 + 2);
    }
    frames.push(enc.encode(pcm));
  }
  return frames;
}

interface Sender {
  userId: string;
  ssrc: number;
  seq: number;
  /** RTP timestamp of the sender at true time 0 of its current stream. */
  tsBase: number;
  rate: number;
  frames: Buffer[];
  fed: number;
  /** True time (ms) of the first frame of the final spurt. */
  finalAtMs: number | null;
}

/** First sample at or after `from` whose magnitude exceeds 1000, reading the capture file directly. */
function onsetSample(path: string, from: number, n: number): number | null {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(n * 4);
    const got = readSync(fd, buf, 0, buf.length, WAV_HEADER_BYTES + from * 4);
    for (let i = 0; i + 4 <= got; i += 4) if (Math.abs(buf.readInt16LE(i)) > 1000) return from + i / 4;
    return null;
  } finally {
    closeSync(fd);
  }
}

test(`soak: ${HOURS} h of three speakers through the real pool — flat memory, no drift between tracks`, async (t) => {
  const dir = tempDir('dvrec-soak-');
  const pool = new WorkerPool({ dir, keepOpus: false, clock: 'packets', workers: 2 });
  const prng = new Prng(42);
  const senders: Sender[] = HZ.map((hz, i) => ({
    userId: `30000000000000000${i}`,
    ssrc: prng.u32() || 1,
    seq: prng.u32() & 0xffff,
    tsBase: prng.u32(),
    rate: 1 + PPM[i]! * 1e-6,
    frames: toneLoop(hz),
    fed: 0,
    finalAtMs: null,
  }));
  for (const s of senders) pool.addTrack(s.userId, `u${s.userId}`);

  const samples: { atMs: number; rss: number; heap: number }[] = [];
  const send = (s: Sender, trueMs: number, frameIndex: number): void => {
    // The sender's RTP clock runs at its own rate; its packets leave every 20 ms of ITS clock.
    const ts = (s.tsBase + Math.round(trueMs * 48 * s.rate)) >>> 0;
    pool.onAudio({
      userId: s.userId, ssrc: s.ssrc, sequence: s.seq, timestamp: ts,
      arrivalMs: trueMs + 20 + 5 * prng.next(), // one frame captured + up to 5 ms of network jitter
      opus: s.frames[frameIndex % 50]!,
    });
    s.seq = (s.seq + 1) & 0xffff;
    s.fed++;
  };
  /** Backpressure: let the workers catch up to within ~1 s of what was fed (status comes every 500 ms). */
  const settle = async (): Promise<void> => {
    for (;;) {
      const st = pool.status();
      if (senders.every((s) => (st.get(s.userId)?.received ?? 0) >= s.fed - 100)) return;
      await new Promise((r) => setTimeout(r, 2));
    }
  };

  const STEP = 20;
  let ssrcChanged = false;
  for (let ms = 0; ms < TOTAL_MS; ms += STEP) {
    for (const [i, s] of senders.entries()) {
      if (i === 1 && !ssrcChanged && ms >= TOTAL_MS / 2) {
        // A reconnect/rejoin: new SSRC, new random sequence and timestamp bases.
        ssrcChanged = true;
        s.ssrc = prng.u32() || 2;
        s.seq = prng.u32() & 0xffff;
        s.tsBase = (prng.u32() - Math.round(ms * 48 * s.rate)) >>> 0;
      }
      // Frames on the sender's clock: `ms` is the sender's time; the true send instant is ms/rate.
      const trueMs = ms / s.rate;
      const phase = (ms + i * 3_000) % CYCLE_MS;
      // The final spurt starts at the same TRUE instant for everyone (to within one of their frames).
      const talking = trueMs < FINAL_MS - 2_000 ? phase < TALK_MS : trueMs >= FINAL_MS && trueMs < FINAL_MS + 1_000;
      if (talking && trueMs >= FINAL_MS) s.finalAtMs ??= trueMs;
      if (talking) send(s, trueMs, Math.floor(ms / STEP));
    }
    if (ms % 60_000 === 0) {
      await settle();
      if (ms % 600_000 === 0) {
        const m = process.memoryUsage();
        samples.push({ atMs: ms, rss: m.rss, heap: m.heapUsed });
      }
    }
  }
  await settle();
  const stats = await pool.cleanup(TOTAL_MS);
  await pool.close();

  // Memory: after a 30-minute warm-up, the last hour's peak RSS is within 40 MB of the first hour's.
  const mb = (b: number): number => Math.round(b / 1048576);
  const warm = samples.filter((s) => s.atMs >= 1_800_000);
  const third = Math.floor(warm.length / 3);
  const early = Math.max(...warm.slice(0, third).map((s) => s.rss));
  const late = Math.max(...warm.slice(-third).map((s) => s.rss));
  const heapEarly = Math.max(...warm.slice(0, third).map((s) => s.heap));
  const heapLate = Math.max(...warm.slice(-third).map((s) => s.heap));
  t.diagnostic(`RSS MB every 10 min: ${samples.map((s) => mb(s.rss)).join(' ')}; heap MB: ${samples.map((s) => mb(s.heap)).join(' ')}`);
  assert.ok(late - early < 40 * 1048576, `RSS grew ${mb(late - early)} MB (${mb(early)} → ${mb(late)})`);
  assert.ok(heapLate - heapEarly < 20 * 1048576, `heap grew ${mb(heapLate - heapEarly)} MB`);

  // Every packet reached its track; the SSRC change stayed in the same track.
  for (const s of senders) {
    const st = stats.get(s.userId)!;
    assert.equal(st.received, s.fed, `${s.userId}: received`);
    assert.equal(st.lost, 0);
  }
  assert.equal(stats.get(senders[1]!.userId)!.ssrcs.length, 2, 'one track across the SSRC change');

  // The final spurt, ~3 h in, after ±30 ppm of sender clock error (≈ ±320 ms if followed blindly): its first
  // packet arrives at finalAt+20+jitter and the track places the first sample one frame earlier, at finalAt
  // (+ the least jitter of the window). Compare each track with its sender's true instant, and the tracks
  // with each other.
  const errors = senders.map((s) => {
    const expected = Math.round(s.finalAtMs! * 48);
    const o = onsetSample(capturePath(dir, `u${s.userId}`), expected - 48_000, 96_000);
    assert.ok(o !== null, `${s.userId}: final spurt found`);
    return o - expected;
  });
  const sendSpread = Math.max(...senders.map((s) => s.finalAtMs!)) - Math.min(...senders.map((s) => s.finalAtMs!));
  t.diagnostic(`final spurt at ${(FINAL_MS / 3600_000).toFixed(2)} h: placement error per track (samples) ${errors.join(', ')}; true start spread ${sendSpread.toFixed(1)} ms`);
  for (const e of errors) assert.ok(Math.abs(e) <= 480, `placement error ${e} samples`);
  const spread = Math.max(...errors) - Math.min(...errors);
  assert.ok(spread <= 960, `tracks disagree by ${spread} samples`);
});
