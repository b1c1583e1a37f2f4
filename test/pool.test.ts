/**
 * The worker pool as the production AudioSink: real worker threads, real Opus, capture files read back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { recordingPool } from './pool-fixtures.ts';
import { capturePath } from '../src/sinks/capture-layout.ts';
import type { AudioPacket } from '../src/sinks/types.ts';
import { FRAME, buildStream, dropouts, encodeTone, network, onset, peak, readCaptureLeft, toneLevel } from './sink-fixtures.ts';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'dvrec-pool-'));
  dirs.push(d);
  return d;
}
test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const A = '111111111111111111';
const B = '222222222222222222';

/** Mean tone level of `freq` over [start, end) in 100 ms blocks (narrow enough to separate 440 from 660 Hz). */
function meanLevel(x: Int16Array, freq: number, start: number, end: number): number {
  let acc = 0;
  let n = 0;
  for (let s = start; s + 4800 <= end; s += 4800, n++) acc += toneLevel(x, s, 4800, freq);
  return n === 0 ? 0 : acc / n;
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const t = Date.now();
  while (!cond()) {
    if (Date.now() - t > ms) throw new Error('timed out waiting');
    await sleep(20);
  }
}

test('two users in parallel on two workers: each tone in its own file, aligned, exact length, rejoin with new SSRC', async () => {
  const dir = tmp();
  const pool = recordingPool({ dir, workers: 2, keepOpus: true, clock: 'packets' });
  try {
    pool.addTrack(A, 'alice');
    pool.addTrack(B, 'bob');
    assert.notEqual(pool.workerOf(A), pool.workerOf(B), 'least-loaded placement spreads users');
    // Alice: 4 s from t=1 s (seq wraps), then rejoins with a new SSRC at 8 s for 2 s.
    // Bob: 6 s from t=2 s with a 1.5 s pause in the middle.
    const a1 = buildStream({ userId: A, ssrc: 10, firstSeq: 65_400, firstTs: 77, startMs: 1000, spurts: [{ tsOffset: 0, packets: encodeTone(440, 200) }] });
    const a2 = buildStream({ userId: A, ssrc: 11, firstSeq: 3, firstTs: 4_000_000_000, startMs: 8000, spurts: [{ tsOffset: 0, packets: encodeTone(440, 100) }] });
    const bTone = encodeTone(660, 225);
    const b = buildStream({
      userId: B,
      ssrc: 20,
      firstSeq: 500,
      firstTs: 1_000_000,
      startMs: 2000,
      spurts: [
        { tsOffset: 0, packets: bTone.slice(0, 100) },
        { tsOffset: 100 * FRAME + 72_000, packets: bTone.slice(100) },
      ],
    });
    const all = network([...a1, ...a2, ...b], { loss: 0.02, reorder: 0.05, jitterMs: 20, duplicate: 0.01, seed: 11 });
    let i = 0;
    for (const p of all) {
      pool.onAudio(p);
      if (++i % 200 === 0) await sleep(1); // let batches go out as in real life
    }
    await until(() => (pool.status().get(A)?.received ?? 0) > 0, 3000);
    const endMs = 11_000;
    const stats = await pool.cleanup(endMs);
    const sa = stats.get(A)!;
    const sb = stats.get(B)!;
    assert.equal(sa.received + sb.received, all.length);
    assert.deepEqual(sa.ssrcs, [10, 11]);
    assert.ok(sa.lost > 0 && sa.concealed > 0, `alice lost ${sa.lost} concealed ${sa.concealed}`);
    assert.ok(sb.duplicate > 0 || sa.duplicate > 0);
    assert.ok(Math.abs((sa.startOffsetMs ?? 0) - 1000) < 25, `alice starts at ${sa.startOffsetMs}`);
    assert.ok(Math.abs((sb.startOffsetMs ?? 0) - 2000) < 25, `bob starts at ${sb.startOffsetMs}`);

    const fa = readCaptureLeft(capturePath(dir, 'alice'));
    const fb = readCaptureLeft(capturePath(dir, 'bob'));
    assert.equal(fa.dataBytes, endMs * 48 * 4, 'alice length = endMs exactly');
    assert.equal(fb.dataBytes, endMs * 48 * 4, 'bob length = endMs exactly');
    assert.equal(statSync(capturePath(dir, 'alice')).mode & 0o777, 0o600);
    assert.ok(statSync(join(dir, '.capture', 'alice.opus.pkt')).size > 0, 'packet log kept');
    // Alice's tone in Alice's file only, and vice versa.
    assert.ok(meanLevel(fa.left, 440, 48_000, 48_000 + 190 * FRAME) > 3000);
    assert.ok(meanLevel(fa.left, 660, 48_000, 48_000 + 190 * FRAME) < 150);
    assert.ok(meanLevel(fb.left, 660, 96_000, 96_000 + 95 * FRAME) > 3000);
    assert.ok(meanLevel(fb.left, 440, 96_000, 96_000 + 95 * FRAME) < 150);
    // Onsets within a frame of the truth; silence where nobody speaks.
    assert.ok(Math.abs(onset(fa.left, 440) - 48_000) <= FRAME);
    assert.ok(Math.abs(onset(fa.left, 440, 48_000 * 6) - 48_000 * 8) <= FRAME, 'rejoin lands at 8 s');
    assert.equal(peak(fa.left, 48_000 * 5 + FRAME, 48_000 * 8 - FRAME), 0, 'alice silent between sessions');
    assert.ok(Math.abs(onset(fb.left, 660) - 96_000) <= FRAME);
    const bPause = 96_000 + 100 * FRAME;
    assert.equal(peak(fb.left, bPause + FRAME, bPause + 72_000 - FRAME), 0, 'bob exact silence in his pause');
    assert.ok(Math.abs(onset(fb.left, 660, bPause + FRAME) - (bPause + 72_000)) <= FRAME);
    assert.equal(peak(fb.left, 96_000 + 225 * FRAME + 72_000 + FRAME, fb.left.length), 0, 'bob silent after');
    const d = dropouts(fa.left, 48_000 + FRAME, 48_000 + 198 * FRAME);
    assert.ok(d.bad / d.blocks < 0.01, `alice dropouts ${d.bad}/${d.blocks}`);
  } finally {
    await pool.close();
  }
});

test('a payload too large for a batch record is counted (corrupt) and concealed in its place, not dropped uncounted', async () => {
  const dir = tmp();
  const pool = recordingPool({ dir, workers: 1, keepOpus: false, clock: 'packets' });
  try {
    const pkts = buildStream({ userId: A, ssrc: 4, firstSeq: 65_530, firstTs: 9, startMs: 300, spurts: [{ tsOffset: 0, packets: encodeTone(440, 60) }] });
    pkts[30] = { ...pkts[30]!, opus: new Uint8Array(70_000).fill(0x55) };
    pool.addTrack(A, 'alice');
    for (const p of pkts) pool.onAudio(p);
    const stats = await pool.cleanup(2000);
    const s = stats.get(A)!;
    assert.equal(s.received, 60, 'the oversize packet reached the track');
    assert.equal(s.lost, 0, 'and was not taken for a lost one');
    assert.equal(s.corrupt, 1);
    assert.equal(s.concealed, 1);
    const f = readCaptureLeft(capturePath(dir, 'alice'));
    const on = onset(f.left, 440);
    assert.ok(Math.abs(on - 300 * 48) <= FRAME, `onset ${on}`);
    assert.equal(s.activeMs, 60 * 20, 'no hole where it was');
  } finally {
    await pool.close();
  }
});

test('real-time (wall clock): gaps released by the workers’ own ticks, live status, cut at endMs', async () => {
  const dir = tmp();
  const t0 = performance.timeOrigin + performance.now();
  const pool = recordingPool({ dir, workers: 1, keepOpus: false, t0EpochMs: t0 });
  try {
    pool.addTrack(A, 'alice');
    const frames = encodeTone(440, 60); // 1.2 s
    const startMs = 100;
    let seq = 65_530;
    let held: AudioPacket | null = null;
    let sawSpeaking = false;
    for (let i = 0; i < frames.length; i++) {
      // Pace like a real client: frame i is complete at startMs + (i+1)·20 ms.
      const due = startMs + (i + 1) * 20;
      const now = performance.timeOrigin + performance.now() - t0;
      if (due > now) await sleep(due - now);
      const p: AudioPacket = {
        userId: A,
        ssrc: 5,
        sequence: seq++ & 0xffff,
        timestamp: 1000 + i * FRAME,
        arrivalMs: performance.timeOrigin + performance.now() - t0,
        opus: frames[i]!,
      };
      if (i === 20) continue; // lost: concealed
      if (i === 30) {
        held = p; // reordered: arrives after its successor
        continue;
      }
      pool.onAudio(p);
      if (held !== null && i === 31) {
        pool.onAudio({ ...held, arrivalMs: performance.timeOrigin + performance.now() - t0 });
        held = null;
      }
      if (i === 59) pool.onAudio(p); // duplicate
      if (pool.status().get(A)?.speaking) sawSpeaking = true;
    }
    await sleep(700); // workers report about twice a second
    const live = pool.status().get(A)!;
    assert.ok(sawSpeaking, 'status showed the user speaking while they spoke');
    assert.ok(live.received >= 59 && live.concealed === 1, `live status ${JSON.stringify(live)}`);
    // Stop 1 s after t=0: the rest of the tone is cut.
    const stats = await pool.cleanup(1000);
    const s = stats.get(A)!;
    assert.equal(s.lost, 1);
    assert.equal(s.concealed, 1);
    assert.equal(s.duplicate, 1);
    assert.equal(s.late, 0);
    const f = readCaptureLeft(capturePath(dir, 'alice'));
    assert.equal(f.dataBytes, 1000 * 48 * 4);
    const on = onset(f.left, 440);
    assert.ok(Math.abs(on - startMs * 48) <= 2 * FRAME, `onset ${on} ≈ ${startMs * 48} (real scheduling jitter allowed)`);
    const d = dropouts(f.left, on + FRAME, f.left.length - FRAME);
    assert.equal(d.bad, 0, `dropouts ${d.bad}/${d.blocks}`);
  } finally {
    await pool.close();
  }
});

test('a worker killed mid-stream is replaced and its users continue in the same files', async () => {
  const dir = tmp();
  const pool = recordingPool({ dir, workers: 2, keepOpus: false, clock: 'packets' });
  const restarts: { index: number; userIds: string[] }[] = [];
  pool.on('workerRestarted', (e) => restarts.push(e));
  try {
    pool.addTrack(A, 'alice');
    pool.addTrack(B, 'bob');
    const a = buildStream({ userId: A, ssrc: 1, firstSeq: 65_000, firstTs: 5, startMs: 500, spurts: [{ tsOffset: 0, packets: encodeTone(440, 300) }] });
    const b = buildStream({ userId: B, ssrc: 2, firstSeq: 9, firstTs: 5, startMs: 500, spurts: [{ tsOffset: 0, packets: encodeTone(660, 300) }] });
    const all = network([...a, ...b], { jitterMs: 10, seed: 5 });
    const cut = all.findIndex((p) => p.arrivalMs > 3500);
    for (const p of all.slice(0, cut)) pool.onAudio(p);
    // Wait until the workers have processed (and reported) everything sent so far.
    await until(() => {
      const s = pool.status();
      return (s.get(A)?.received ?? 0) + (s.get(B)?.received ?? 0) === cut;
    }, 5000);
    const victim = pool.workerOf(A)!;
    const restarted = once(pool, 'workerRestarted');
    await victim.terminate();
    await restarted;
    assert.equal(restarts.length, 1);
    assert.deepEqual(restarts[0]!.userIds, [A]);
    assert.notEqual(pool.workerOf(A), victim);
    await sleep(100); // the replacement starts (its queued messages are kept anyway)
    for (const p of all.slice(cut)) pool.onAudio(p);
    const stats = await pool.cleanup(7000);
    const sa = stats.get(A)!;
    const sb = stats.get(B)!;
    assert.equal(sb.received, b.length, 'the other worker was untouched');
    assert.equal(sa.received, a.length, 'counts carried over to the replacement');
    const fa = readCaptureLeft(capturePath(dir, 'alice'));
    const fb = readCaptureLeft(capturePath(dir, 'bob'));
    assert.equal(fa.dataBytes, 7000 * 48 * 4);
    // Before the kill (minus what was pending: ≤ flush interval) and after it: Alice's tone is there.
    const killAt = 3500 * 48;
    const before = dropouts(fa.left, 500 * 48 + FRAME, killAt - 400 * 48);
    const after = dropouts(fa.left, killAt + 200 * 48, (500 + 6000) * 48 - FRAME);
    assert.equal(before.bad, 0, `before the kill: ${before.bad}/${before.blocks}`);
    assert.equal(after.bad, 0, `after the kill: ${after.bad}/${after.blocks}`);
    // The whole hole caused by the kill is short.
    const all20 = dropouts(fa.left, 500 * 48 + FRAME, (500 + 6000) * 48 - FRAME);
    assert.ok(all20.bad * 20 <= 600, `audio lost to the kill: ${all20.bad * 20} ms`);
    const bd = dropouts(fb.left, 500 * 48 + FRAME, (500 + 6000) * 48 - FRAME);
    assert.equal(bd.bad, 0);
  } finally {
    await pool.close();
  }
});
