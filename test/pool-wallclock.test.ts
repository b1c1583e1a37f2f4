/**
 * The pool in the mode production uses: the wall clock (the soak and drift tests run the packet clock, faster than
 * real time). Two real minutes of three speakers fed in real time, as the receiver would: every packet stamped with
 * the recording clock when it is handed over. Pauses between talk spurts are all longer than a second (each new
 * spurt is re-anchored on its arrivals, whose first three come 12 ms late), one speaker stops every spurt abruptly, without the five closing silence
 * frames real clients send, and two workers are stalled for a second each (a thread the OS did not run while batches
 * kept coming): once in the middle of a spurt, once across the start of one. Asserted from the capture files:
 * every spurt where its packets say it began, every spurt whole (no hole), every pause silent, no packet dropped.
 *
 * Uses only a recording's public pool surface (PoolTracks over a WorkerPool: addTrack, onAudio, cleanup, close) and the
 * fault-injection seam injectWorkerStall.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import opus from '@discordjs/opus';
import { recordingPool } from './pool-fixtures.ts';
import { capturePath } from '../src/sinks/capture-layout.ts';
import { PRIMING_MS } from '../src/sinks/types.ts';
import { FRAME, encodeTone, peak, prng, readCaptureLeft } from './sink-fixtures.ts';
import { cleanupDirs, silentMs, tempDir } from './fault-fixtures.ts';

after(cleanupDirs);

const RUN_MS = 120_000;
const STALL_MS = 1000;
const SILENCE = Buffer.from([0xf8, 0xff, 0xfe]);
const HZ = [400, 650, 1000];
/** How late the first three packets of every spurt arrive. */
const FIRST_LATE_MS = 12;
/**
 * The track anchors a spurt on the least-delayed of the packets it holds when the spurt's priming hold (PRIMING_MS
 * after its first arrival) ends, as far as twice that into the spurt: every packet that arrived within the hold,
 * and perhaps some after it (the worker releases on its next tick). So its anchor lies between the least-delayed
 * of the first 2 × PRIMING_MS / 20 packets and the least-delayed of those that arrived within the hold.
 */
const WINDOW_FRAMES = (2 * PRIMING_MS) / 20;

interface Spurt {
  /** Recording-clock instant the spurt's sound begins (its first frame is captured from here, sent 20 ms later). */
  startMs: number;
  talkMs: number;
  /** Arrival stamps of its first packets (those the track may anchor on: see PRIMING_MS). */
  arrivals: number[];
}

/** Where a spurt's sound is taken to begin: the first sample above this (the silence threshold of silentMs). */
const ONSET_LEVEL = 300;

/**
 * For each spurt, how far into it the decoded sound first exceeds ONSET_LEVEL, decoding exactly what the speaker
 * sends, in order, with a reference libopus decoder (@discordjs/opus): the codec's own fade-in, not placement.
 */
function fadeIns(s: Pick<Speaker, 'spurts' | 'frames' | 'abrupt'>): number[] {
  const dec = new opus.OpusEncoder(48_000, 2);
  return s.spurts.map((sp) => {
    let at = -1;
    const talkFrames = sp.talkMs / 20;
    for (let f = 0; f < talkFrames + (s.abrupt ? 0 : 5); f++) {
      const pcm = dec.decode(f < talkFrames ? s.frames[f % 50]! : SILENCE);
      for (let i = 0; at < 0 && i < pcm.length / 4; i++) if (Math.abs(pcm.readInt16LE(i * 4)) > ONSET_LEVEL) at = (f * FRAME + i) / 48;
    }
    assert.ok(at >= 0 && at < 20, `reference decode: sound within the first frame (${at} ms)`);
    return at;
  });
}

interface Speaker {
  userId: string;
  stem: string;
  frames: Buffer[];
  /** Ends its spurts without the 5 silence frames. */
  abrupt: boolean;
  spurts: Spurt[];
  /** Per spurt: the codec's fade-in (see fadeIns). */
  fadeInMs: number[];
  ssrc: number;
  seq: number;
  tsBase: number;
  /** Next frame to send: index into spurts, frame within it (talk frames, then silence frames). */
  cur: number;
  frame: number;
  fed: number;
}

/** Talk 1.5–5 s, then pause 1.1–3.5 s (always over a second), until near the end of the run. */
function schedule(rand: () => number, firstMs: number): Spurt[] {
  const out: Spurt[] = [];
  for (let t = firstMs; ; ) {
    const talkMs = 20 * Math.round((1500 + rand() * 3500) / 20);
    if (t + talkMs > RUN_MS - 2000) return out;
    out.push({ startMs: t, talkMs, arrivals: [] });
    t += talkMs + 20 * Math.round((1100 + rand() * 2400) / 20);
  }
}

test(`wall clock, ${RUN_MS / 60_000} real minutes: pauses > 1 s, abrupt ends, two stalled workers — every spurt in place, whole`, async (t) => {
  const dir = tempDir('dvrec-wall-');
  const rand = prng(2024);
  const speakers: Speaker[] = HZ.map((hz, i) => ({
    userId: `32000000000000000${i}`,
    stem: `wall-${i}`,
    // A second of tone from a warmed-up encoder (frames 50–99 of two seconds): the very first frame of an Opus
    // stream holds the encoder's 6.5 ms of look-ahead as silence, which would be taken for a late onset.
    frames: encodeTone(hz, 100).slice(50),
    abrupt: i === 2,
    spurts: schedule(rand, 400 + 700 * i),
    ssrc: (rand() * 2 ** 32) >>> 0 || 1,
    seq: (rand() * 65536) | 0,
    tsBase: (rand() * 2 ** 32) >>> 0,
    cur: 0,
    frame: 0,
    fed: 0,
    fadeInMs: [],
  }));
  for (const s of speakers) s.fadeInMs = fadeIns(s);
  // Stall 1: speaker 0's worker, 1 s into a spurt of ≥ 3 s a third of the way in. Stall 2: speaker 1's worker, from
  // 300 ms before one of its spurts starts (two thirds of the way in) until 700 ms into it.
  const mid = speakers[0]!.spurts.find((s) => s.startMs >= RUN_MS / 3 && s.talkMs >= 3000)!;
  const edge = speakers[1]!.spurts.find((s) => s.startMs >= (2 * RUN_MS) / 3)!;
  assert.ok(mid && edge, 'the schedule has the spurts the stalls need');
  const stalls = [
    { atMs: mid.startMs + 1000, speaker: 0 },
    { atMs: edge.startMs - 300, speaker: 1 },
  ];

  const t0Perf = performance.now();
  const pool = recordingPool({ dir, keepOpus: false, workers: 2, t0EpochMs: performance.timeOrigin + t0Perf, faultInjection: true });
  const now = (): number => performance.now() - t0Perf;
  try {
    for (const s of speakers) pool.addTrack(s.userId, s.stem);
    const stalled: { atMs: number; worker: number }[] = [];
    let lateWakes = 0;
    // The receiver's side: every 5 ms, hand over every frame that is due, stamped with the recording clock now.
    while (now() < RUN_MS) {
      while (stalls.length > 0 && now() >= stalls[0]!.atMs) {
        const st = stalls.shift()!;
        stalled.push({ atMs: now(), worker: pool.injectWorkerStall(speakers[st.speaker]!.userId, STALL_MS) });
      }
      for (const s of speakers) {
        for (;;) {
          const sp = s.spurts[s.cur];
          if (!sp) break;
          const talkFrames = sp.talkMs / 20;
          const total = talkFrames + (s.abrupt ? 0 : 5);
          if (s.frame >= total) {
            s.cur++;
            s.frame = 0;
            continue;
          }
          // Frame k covers [start + 20k, start + 20k + 20) and leaves once captured. The first three frames of every
          // spurt arrive FIRST_LATE_MS late (a congested path, or a receiving thread busy with a burst of starters):
          // the track must anchor the spurt on the least-delayed packets of its priming window, not on the first.
          const dueMs = sp.startMs + 20 * (s.frame + 1) + (s.frame < 3 ? FIRST_LATE_MS : 0);
          const at = now();
          if (at < dueMs) break;
          if (at - dueMs > 20) lateWakes++;
          // The sender's RTP clock: 48 kHz from its capture of the frame (a late arrival does not change it).
          const senderMs = sp.startMs + 20 * s.frame;
          const opus = s.frame < talkFrames ? s.frames[s.frame % 50]! : SILENCE;
          pool.onAudio({ userId: s.userId, ssrc: s.ssrc, sequence: s.seq, timestamp: (s.tsBase + senderMs * 48) >>> 0, arrivalMs: at, opus });
          if (s.frame < WINDOW_FRAMES) sp.arrivals.push(at);
          s.seq = (s.seq + 1) & 0xffff;
          s.frame++;
          s.fed++;
        }
      }
      await sleep(5);
    }
    const stats = await pool.cleanup(RUN_MS);

    // Every packet reached its track and was used: none lost, none dropped as late behind the stalls.
    for (const s of speakers) {
      const st = stats.get(s.userId)!;
      assert.equal(st.received, s.fed, `${s.stem}: received`);
      assert.equal(st.lost, 0, `${s.stem}: lost`);
      assert.equal(st.late, 0, `${s.stem}: late`);
    }

    const errors: number[] = [];
    const driftFromTruth: number[] = [];
    let worstTail = 0;
    for (const s of speakers) {
      const x = readCaptureLeft(capturePath(dir, s.stem)).left;
      assert.equal(x.length, RUN_MS * 48, `${s.stem}: the capture is the run's length`);
      s.spurts.forEach((sp, k) => {
        // Where its packets say it began: the least-delayed of its priming window (see WINDOW_FRAMES), one frame
        // before its arrival.
        const implied = sp.arrivals.map((a, i) => a - 20 * (i + 1));
        const earliest = Math.min(...implied);
        const placed = Math.min(...implied.filter((_, i) => sp.arrivals[i]! <= sp.arrivals[0]! + PRIMING_MS));
        // Where its sound then begins: libopus fades a spurt in, by an amount that depends on the decoder's state
        // (a fresh decoder, or one that has just decoded silence frames, reaches the threshold 2–5 ms into the frame;
        // after an abrupt end, at once). The same packets through a reference decoder say how much.
        const expected = placed + s.fadeInMs[k]!;
        const from = Math.round((expected - 100) * 48);
        let on = -1;
        for (let i = Math.max(0, from); i < from + 300 * 48; i++) if (Math.abs(x[i]!) > ONSET_LEVEL) { on = i; break; }
        assert.ok(on >= 0, `${s.stem} spurt ${k} at ${sp.startMs} ms: found`);
        const onMs = on / 48;
        errors.push(onMs - expected);
        driftFromTruth.push(onMs - s.fadeInMs[k]! - sp.startMs);
        // Within the window's bounds, ± 0.5 ms (the onset threshold and the decoder build).
        const low = earliest + s.fadeInMs[k]!;
        assert.ok(onMs >= low - 0.5 && onMs <= expected + 0.5, `${s.stem} spurt ${k}: sound from ${onMs.toFixed(2)} ms, its packets say ${low.toFixed(2)}–${expected.toFixed(2)} ms`);
        assert.ok(Math.abs(onMs - s.fadeInMs[k]! - sp.startMs) <= 20, `${s.stem} spurt ${k}: placed at ${(onMs - s.fadeInMs[k]!).toFixed(2)} ms, sent from ${sp.startMs} ms`);
        // Whole: no silent millisecond inside the spurt.
        const gap = silentMs(x, onMs + 30, expected + sp.talkMs - 30);
        assert.equal(gap, 0, `${s.stem} spurt ${k} (${sp.startMs}–${sp.startMs + sp.talkMs} ms): ${gap} ms missing`);
        // Silent in the pause after it (the decoder's fade-out aside), abrupt end or not.
        const next = s.spurts[k + 1];
        const endMs = expected + sp.talkMs;
        let tail = 0;
        while (tail < 200 && peak(x, Math.round((endMs + tail) * 48), Math.round((endMs + tail + 1) * 48)) >= 300) tail++;
        worstTail = Math.max(worstTail, tail);
        const until = next ? next.startMs - 30 : RUN_MS;
        assert.ok(peak(x, Math.round((endMs + 100) * 48), Math.round(until * 48)) < 300, `${s.stem}: silence after spurt ${k}`);
      });
    }
    const abs = errors.map(Math.abs);
    t.diagnostic(
      `${speakers.reduce((n, s) => n + s.spurts.length, 0)} spurts, ${speakers.reduce((n, s) => n + s.fed, 0)} packets; stalls ${stalled.map((s) => `worker ${s.worker} at ${(s.atMs / 1000).toFixed(1)} s`).join(', ')}; ` +
        `onset vs the least-delayed packet of the priming hold: max |error| ${Math.max(...abs).toFixed(2)} ms, mean ${(abs.reduce((a, b) => a + b, 0) / abs.length).toFixed(2)} ms; ` +
        `vs the sender: max ${Math.max(...driftFromTruth.map(Math.abs)).toFixed(2)} ms; longest sound after a spurt's end ${worstTail} ms; ${lateWakes} frames handed over > 20 ms late`,
    );
  } finally {
    await pool.close();
  }
});
