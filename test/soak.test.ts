/**
 * Accelerated soak: hours of simulated audio fed to the real WorkerPool with `clock: 'packets'` (time advances with
 * packet arrivals, so it runs far faster than real time). Every sender's RTP clock is off by some ppm, and arrivals
 * carry jitter.
 *
 * 1. Three hours, three speakers who talk and pause (RTP timestamps jump over pauses), one changes SSRC mid-run:
 *    process memory (RSS, heap; the workers are threads of this process) stays flat, and a tone spurt that all
 *    three start at the same instant near the end lands where arrivals say, in every track.
 * 2. Drift: an hour of continuous speech per speaker (no pause long enough to re-anchor the stream's clock; short
 *    marker pauses every 5 minutes show where the clock places audio), sender clocks at +100, −100 and +30 ppm:
 *    every track stays within 20 ms of the truth and of the other tracks all along (±100 ppm followed blindly is
 *    ±360 ms after an hour).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readSync } from 'node:fs';
import opus from '@discordjs/opus';
import { recordingPool } from './pool-fixtures.ts';
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

/** Just past the last sample in [from, from + n) whose magnitude exceeds 1000, reading the capture file directly. */
function offsetSample(path: string, from: number, n: number): number | null {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(n * 4);
    const got = readSync(fd, buf, 0, buf.length, WAV_HEADER_BYTES + from * 4);
    for (let i = Math.floor(got / 4) * 4 - 4; i >= 0; i -= 4) if (Math.abs(buf.readInt16LE(i)) > 1000) return from + i / 4 + 1;
    return null;
  } finally {
    closeSync(fd);
  }
}

/**
 * Silent stretches (1 ms blocks with no sample above 300) inside [from, to) of a capture, longer than `minMs`,
 * read in chunks (a continuous hour is 700 MB per track).
 */
function silences(path: string, from: number, to: number, minMs: number): { atMs: number; ms: number }[] {
  const out: { atMs: number; ms: number }[] = [];
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(48 * 4 * 1000); // one second
  let run = 0;
  try {
    for (let block = Math.ceil(from / 48); block < Math.floor(to / 48); ) {
      const got = readSync(fd, buf, 0, Math.min(buf.length, (Math.floor(to / 48) - block) * 192), WAV_HEADER_BYTES + block * 192);
      if (got < 192) break;
      for (let o = 0; o + 192 <= got; o += 192, block++) {
        let loud = false;
        for (let i = o; i < o + 192; i += 2) if (Math.abs(buf.readInt16LE(i)) > 300) { loud = true; break; }
        if (!loud) run++;
        else {
          if (run > minMs) out.push({ atMs: block - run, ms: run });
          run = 0;
        }
      }
    }
    if (run > minMs) out.push({ atMs: Math.floor(to / 48) - run, ms: run });
    return out;
  } finally {
    closeSync(fd);
  }
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
  const pool = recordingPool({ dir, keepOpus: false, clock: 'packets', workers: 2 });
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

  // Memory: after a 30-minute warm-up, the last hour's peak RSS is within 20 MB of the first hour's (measured: +8 MB).
  const mb = (b: number): number => Math.round(b / 1048576);
  const warm = samples.filter((s) => s.atMs >= 1_800_000);
  const third = Math.floor(warm.length / 3);
  const early = Math.max(...warm.slice(0, third).map((s) => s.rss));
  const late = Math.max(...warm.slice(-third).map((s) => s.rss));
  const heapEarly = Math.max(...warm.slice(0, third).map((s) => s.heap));
  const heapLate = Math.max(...warm.slice(-third).map((s) => s.heap));
  t.diagnostic(`RSS MB every 10 min: ${samples.map((s) => mb(s.rss)).join(' ')}; heap MB: ${samples.map((s) => mb(s.heap)).join(' ')}`);
  assert.ok(late - early < 20 * 1048576, `RSS grew ${mb(late - early)} MB (${mb(early)} → ${mb(late)})`);
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
  // The spurt follows a pause, so its stream is re-anchored on the least-delayed of its first packets: what is left
  // is the network jitter (0..5 ms here). Measured: ≤ 71 samples (1.5 ms).
  for (const e of errors) assert.ok(Math.abs(e) <= 5 * 48, `placement error ${e} samples`);
  const spread = Math.max(...errors) - Math.min(...errors);
  assert.ok(spread <= 5 * 48, `tracks disagree by ${spread} samples`);
});

// ---- Drift: an hour of continuous speech, no pause long enough to re-anchor ----

/** Continuous speech from true time DRIFT_START_MS to DRIFT_END_MS, except a short marker pause every MARK_EVERY_MS. */
const DRIFT_START_MS = 1_000;
const DRIFT_END_MS = DRIFT_START_MS + 61 * 60_000;
const MARK_EVERY_MS = 5 * 60_000;
/**
 * Markers: a 400 ms pause (RTP timestamps jump, sequence numbers do not: a real pause, well below the 1 s after
 * which a new talk spurt is re-anchored), so the onset after it shows where the stream's clock places audio.
 */
const MARK_PAUSE_MS = 400;
/** Sender clock errors: the fastest and slowest ends of what real devices show, and a small one. */
const DRIFT_PPM = [100, -100, 30];
/** The requirement: every track places sound within 20 ms of where it happened, at any time. */
const DRIFT_BOUND_SAMPLES = 20 * 48;

test(`drift: ${(DRIFT_END_MS - DRIFT_START_MS) / 60_000} min of continuous speech, sender clocks ±30..100 ppm — every track stays on the timeline`, async (t) => {
  const dir = tempDir('dvrec-drift-');
  const pool = recordingPool({ dir, keepOpus: false, clock: 'packets', workers: 2 });
  const prng = new Prng(7);
  const senders = DRIFT_PPM.map((ppm, i) => ({
    userId: `31000000000000000${i}`,
    ppm,
    ssrc: prng.u32() || 1,
    seq: prng.u32() & 0xffff,
    tsBase: prng.u32(),
    rate: 1 + ppm * 1e-6,
    frames: toneLoop(HZ[i]!),
    /** Frames sent so far on this sender's clock (frame k leaves at sender time 20·k ms). */
    k: 0,
    paused: false,
    fed: 0,
    /** True send time of the first frame after each marker pause (the onset to find in the track). */
    markers: [] as number[],
    /** True send time of the last frame. */
    lastMs: 0,
  }));
  for (const s of senders) pool.addTrack(s.userId, `d${s.userId}`);
  const settle = async (): Promise<void> => {
    for (;;) {
      const st = pool.status();
      if (senders.every((s) => (st.get(s.userId)?.received ?? 0) >= s.fed - 100)) return;
      await new Promise((r) => setTimeout(r, 2));
    }
  };

  // Frames leave every 20 ms of each SENDER's clock, i.e. at true time 20·k / rate; all senders are fed in
  // true-time order (the pool's clock follows arrivals, as the network would deliver them).
  let nextSettle = 0;
  for (;;) {
    let s = senders[0]!;
    for (const x of senders) if (x.k / x.rate < s.k / s.rate) s = x;
    const senderMs = s.k * 20;
    const trueMs = senderMs / s.rate;
    if (trueMs >= DRIFT_END_MS) break;
    s.k++;
    if (trueMs < DRIFT_START_MS) continue;
    // A marker pause ends at each multiple of MARK_EVERY_MS after the start (true time).
    const toNextMark = MARK_EVERY_MS - ((trueMs - DRIFT_START_MS) % MARK_EVERY_MS);
    if (toNextMark <= MARK_PAUSE_MS && trueMs + MARK_PAUSE_MS < DRIFT_END_MS) {
      s.paused = true;
      continue;
    }
    if (s.paused) s.markers.push(trueMs);
    s.paused = false;
    pool.onAudio({
      userId: s.userId, ssrc: s.ssrc, sequence: s.seq, timestamp: (s.tsBase + senderMs * 48) >>> 0,
      arrivalMs: trueMs + 20 + 5 * prng.next(), // the frame was captured before it left, plus ≤ 5 ms of network jitter
      opus: s.frames[s.k % 50]!,
    });
    s.seq = (s.seq + 1) & 0xffff;
    s.fed++;
    s.lastMs = trueMs;
    if (trueMs >= nextSettle) {
      nextSettle += 60_000;
      await settle();
    }
  }
  await settle();
  const stats = await pool.cleanup(DRIFT_END_MS + 1_000);
  await pool.close();
  for (const s of senders) {
    const st = stats.get(s.userId)!;
    assert.equal(st.received, s.fed, `${s.userId}: received`);
    assert.equal(st.lost, 0, `${s.userId}: lost`);
  }

  // Placement error (samples) of every marker onset and of the end of the speech, per track.
  const rows = senders.map((s) => {
    const path = capturePath(dir, `d${s.userId}`);
    const errs = s.markers.map((m) => {
      const expected = Math.round(m * 48);
      // Search from the middle of the pause (it began 400 ms before `expected`): finds onsets up to 200 ms early.
      const o = onsetSample(path, expected - 200 * 48, 400 * 48);
      assert.ok(o !== null, `${s.userId}: marker at ${(m / 60_000).toFixed(1)} min found`);
      return o - expected;
    });
    // The last frame left at lastMs holding the 20 ms before it: it lands at lastMs, so the sound ends 20 ms later.
    const endExpected = Math.round((s.lastMs + 20) * 48);
    const end = offsetSample(path, endExpected - 200 * 48, 400 * 48);
    assert.ok(end !== null, `${s.userId}: end of speech found`);
    return { s, errs, endErr: end - endExpected };
  });
  for (const r of rows) {
    // Silence inside the speech other than the markers' pauses: holes left by the clock's corrections.
    const holes = silences(capturePath(dir, `d${r.s.userId}`), Math.round((DRIFT_START_MS + 100) * 48), Math.round((r.s.lastMs - 100) * 48), 5)
      .filter((h) => h.ms < MARK_PAUSE_MS - 100);
    t.diagnostic(`${r.s.ppm} ppm: marker placement errors (samples) every 5 min: ${r.errs.join(' ')}; end ${r.endErr}; holes in the speech: ${holes.map((h) => `${h.ms} ms at ${(h.atMs / 60_000).toFixed(1)} min`).join(', ') || 'none'}`);
  }
  for (const r of rows) {
    for (const [i, e] of [...r.errs, r.endErr].entries()) {
      assert.ok(Math.abs(e) <= DRIFT_BOUND_SAMPLES, `${r.s.userId} (${r.s.ppm} ppm): ${i < r.errs.length ? `marker ${i + 1}` : 'end'} placed ${e} samples (${(e / 48).toFixed(1)} ms) from the truth`);
    }
  }
  // Between tracks: the same instant lands at the same place in every track.
  for (let i = 0; i < rows[0]!.errs.length; i++) {
    const at = rows.map((r) => r.errs[i]!);
    assert.ok(Math.max(...at) - Math.min(...at) <= DRIFT_BOUND_SAMPLES, `marker ${i + 1}: tracks disagree by ${Math.max(...at) - Math.min(...at)} samples`);
  }
});
