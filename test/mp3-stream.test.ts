/**
 * MP3 encoded while recording (src/sinks/mp3-stream.ts): real Opus through the real WorkerPool with `mp3` on,
 * finished by the real finisher, decoded with mpg123 (a registry decoder) and compared with the captures:
 * the right tone at the right time, silence where nobody spoke, equal lengths; the streamed file is the one
 * the after-stop encoder would have written; and the fallbacks (a worker replaced mid-recording, `convert`
 * after a crash) still give correct files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PoolTrackStats } from '../src/pool/pool.ts';
import { recordingPool } from './pool-fixtures.ts';
import { CAPTURE_DIR, JOURNAL_FILE, capturePath, writeJsonAtomic, type Journal } from '../src/sinks/capture-layout.ts';
import { finishRecordingWithReport } from '../src/sinks/finalize.ts';
import { MP3_STREAM_SUFFIX, type StreamedMp3 } from '../src/sinks/mp3-stream.ts';
import type { AudioPacket } from '../src/sinks/types.ts';
import { FRAME, buildStream, encodeTone, network } from './sink-fixtures.ts';
import { channel, dominantHz, msToFrame, onset, rms } from './format-fixtures.ts';

const A = '111111111111111111';
const B = '222222222222222222';
const END_MS = 12_000;
const N = msToFrame(END_MS);

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'dvrec-mp3s-'));
}

/** The text frames of an ID3v2.4 tag at the start of an MP3 (UTF-8 text; COMM's language and description skipped). */
function readId3(b: Buffer): Record<string, string> {
  assert.equal(b.toString('latin1', 0, 3), 'ID3', 'ID3v2 tag at the start');
  assert.equal(b[3], 4, 'ID3v2.4');
  const ss = (o: number) => (b[o]! << 21) | (b[o + 1]! << 14) | (b[o + 2]! << 7) | b[o + 3]!;
  const end = 10 + ss(6);
  // The audio follows the tag: an MPEG frame sync.
  assert.ok(b[end] === 0xff && (b[end + 1]! & 0xe0) === 0xe0, 'MPEG audio right after the tag');
  const out: Record<string, string> = {};
  for (let o = 10; o + 10 <= end && b[o] !== 0; ) {
    const id = b.toString('latin1', o, o + 4);
    const size = ss(o + 4);
    const body = b.subarray(o + 10, o + 10 + size);
    assert.equal(body[0], 3, `${id}: UTF-8`);
    out[id] = (id === 'COMM' ? body.subarray(body.indexOf(0, 4) + 1) : body.subarray(1)).toString('utf8');
    o += 10 + size;
  }
  return out;
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t = Date.now();
  while (!cond()) {
    if (Date.now() - t > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Alice: 440 Hz at 0.5–3.5 s and 9.5–10.5 s. Bob joins late: 1000 Hz at 2–10 s. Jittered arrivals. */
function packets(): AudioPacket[] {
  const a = buildStream({
    userId: A, ssrc: 1, firstSeq: 65_400, firstTs: 5, startMs: 500,
    spurts: [{ tsOffset: 0, packets: encodeTone(440, 150) }, { tsOffset: 450 * FRAME, packets: encodeTone(440, 50) }],
  });
  const b = buildStream({ userId: B, ssrc: 2, firstSeq: 9, firstTs: 77, startMs: 2000, spurts: [{ tsOffset: 0, packets: encodeTone(1000, 400) }] });
  return network([...a, ...b], { jitterMs: 8, seed: 3 });
}

function journal(stats: Map<string, PoolTrackStats>): Journal {
  const track = (userId: string, stem: string) => {
    const s = stats.get(userId)!;
    return {
      userId, username: stem, displayName: stem, stem, ssrcs: s.ssrcs, startOffsetMs: s.startOffsetMs,
      packets: { received: s.received, lost: s.lost, concealed: s.concealed, late: s.late, duplicate: s.duplicate, undecryptable: s.undecryptable },
    };
  };
  return {
    version: 1, guildId: '100000000000000001', channelId: '100000000000000002',
    startedAt: new Date(1_700_000_000_000).toISOString(), startedAtMs: 1_700_000_000_000, flushedMs: END_MS,
    format: 'mp3', mono: false, bitrateKbps: 128, mix: false,
    tracks: [track(A, 'alice'), track(B, 'bob')],
    endedAt: new Date(1_700_000_000_000 + END_MS).toISOString(), durationMs: END_MS,
  };
}

function streamedOf(stats: Map<string, PoolTrackStats>): StreamedMp3[] {
  const out: StreamedMp3[] = [];
  for (const [userId, stem] of [[A, 'alice'], [B, 'bob']] as const) {
    const m = stats.get(userId)?.mp3;
    if (m?.state === 'done') out.push({ stem, path: m.path, frames: m.frames, bitrateKbps: m.bitrateKbps, mono: m.mono });
  }
  return out;
}

/** Left channel of a capture, as floats. */
function captureLeft(dir: string, stem: string): Float32Array {
  const b = readFileSync(capturePath(dir, stem)).subarray(44);
  return channel(new Int16Array(b.buffer, b.byteOffset, b.length / 2), 2);
}

async function decodeMp3(path: string): Promise<Float32Array> {
  const { MPEGDecoder } = await import('mpg123-decoder');
  const d = new MPEGDecoder();
  await d.ready;
  const ch = d.decode(new Uint8Array(readFileSync(path))).channelData;
  d.free();
  return ch[0]!;
}

/** Alice's and Bob's decoded tracks against their captures: tones, onsets, silences, lengths. */
function assertTracks(alice: Float32Array, bob: Float32Array, capA: Float32Array, capB: Float32Array, label: string): void {
  assert.equal(alice.length, bob.length, `${label}: equal lengths`);
  // Gapless (the LAME tag): exactly the recording's length.
  assert.equal(alice.length, N, `${label}: ${alice.length} frames, want ${N}`);
  for (const [x, cap, name, spurtsMs] of [[alice, capA, 'alice', [500, 9500]], [bob, capB, 'bob', [2000]]] as const) {
    for (const at of spurtsMs) {
      const from = msToFrame(at - 300);
      const want = onset(cap, from);
      const got = onset(x, from);
      assert.ok(want > 0 && Math.abs(got - want) <= 120, `${label} ${name}: spurt at ${at} ms starts at ${got}, capture ${want}`);
      // The fixture's tone is voiced (±6 Hz vibrato): the nominal pitch, and what the capture holds there.
      const hz = dominantHz(x, msToFrame(at + 200), msToFrame(300));
      assert.ok(Math.abs(hz - (name === 'alice' ? 440 : 1000)) <= 10, `${label} ${name}: tone at ${at} ms is ${hz} Hz`);
      assert.ok(Math.abs(hz - dominantHz(cap, msToFrame(at + 200), msToFrame(300))) <= 5, `${label} ${name}: same pitch as the capture`);
    }
  }
  assert.ok(rms(bob, msToFrame(300), msToFrame(1500)) < 0.002, `${label}: bob silent before he joined`);
  assert.ok(rms(alice, msToFrame(3800), msToFrame(5400)) < 0.002, `${label}: alice silent in her pause`);
  assert.ok(rms(alice, msToFrame(10_800), msToFrame(1000)) < 0.002, `${label}: alice silent at the end`);
  assert.ok(rms(bob, msToFrame(10_300), msToFrame(1500)) < 0.002, `${label}: bob silent at the end`);
}

test('MP3 streamed while recording: encoded before stop, tail at stop, same file as the after-stop encoder, right signal', async () => {
  const dir = tmp();
  const pool = recordingPool({ dir, workers: 2, keepOpus: false, clock: 'packets', mp3: { bitrateKbps: 128, mono: false } });
  try {
    pool.addTrack(A, 'alice');
    pool.addTrack(B, 'bob');
    const all = packets();
    const cut = all.findIndex((p) => p.arrivalMs > 8500);
    for (const p of all.slice(0, cut)) pool.onAudio(p);
    // The encoders follow the captures in the background: wait until both are well into the recording,
    // Alice well into her pause (nothing written there: the watermark follows the clock, not the writes).
    await until(() => {
      const s = pool.status();
      return (s.get(A)?.mp3EncodedFrames ?? 0) >= msToFrame(5000) && (s.get(B)?.mp3EncodedFrames ?? 0) >= msToFrame(5000);
    }, 30_000, 'the streamed encoders to reach 5 s');
    for (const p of all.slice(cut)) pool.onAudio(p);
    const stats = await pool.cleanup(END_MS);
    for (const u of [A, B]) {
      const m = stats.get(u)!.mp3;
      assert.equal(m?.state, 'done', `streamed MP3 of ${u}: ${JSON.stringify(m)}`);
      if (m?.state !== 'done') return;
      assert.equal(m.frames, N);
      assert.ok(m.streamedFrames >= msToFrame(5000), `encoded while recording: ${m.streamedFrames}`);
      assert.ok(m.tailFrames <= msToFrame(END_MS - 5000), `only the tail at stop: ${m.tailFrames}`);
      assert.ok(existsSync(m.path) && m.path.endsWith(MP3_STREAM_SUFFIX), m.path);
    }
    const capA = captureLeft(dir, 'alice');
    const capB = captureLeft(dir, 'bob');

    // The same captures finished after stop (as `convert DIR` would after a crash), with leftovers of the
    // streams lying around: they must be ignored and deleted, and the tracks encoded from the captures.
    const dir2 = tmp();
    cpSync(join(dir, CAPTURE_DIR), join(dir2, CAPTURE_DIR), { recursive: true });
    for (const f of readdirSync(dir)) if (f.endsWith(MP3_STREAM_SUFFIX)) cpSync(join(dir, f), join(dir2, f));
    writeJsonAtomic(join(dir, JOURNAL_FILE), journal(stats));
    writeJsonAtomic(join(dir2, JOURNAL_FILE), journal(stats));

    const streamed = await finishRecordingWithReport(dir, { force: false, ffmpegPath: false, streamedMp3: streamedOf(stats) });
    assert.deepEqual(streamed.report.tracks.map((t) => t.encoder), ['lame-wasm-stream', 'lame-wasm-stream']);
    assert.deepEqual(streamed.manifest.tracks.map((t) => t.encoder), ['lame-wasm-stream', 'lame-wasm-stream']);
    assert.deepEqual(readdirSync(dir).sort(), ['alice.mp3', 'bob.mp3', 'manifest.json']);

    const after = await finishRecordingWithReport(dir2, { force: false, ffmpegPath: false });
    assert.deepEqual(after.report.tracks.map((t) => t.encoder), ['lame-wasm', 'lame-wasm']);
    assert.deepEqual(readdirSync(dir2).sort(), ['alice.mp3', 'bob.mp3', 'manifest.json'], 'stream leftovers deleted');

    // Same encoder, same input, same settings: the streamed file is byte for byte the after-stop one.
    for (const f of ['alice.mp3', 'bob.mp3']) {
      assert.ok(readFileSync(join(dir, f)).equals(readFileSync(join(dir2, f))), `${f}: streamed = after-stop encode`);
    }
    // Tagged (ID3v2.4 in the room the stream reserved): whose track it is, as on the ffmpeg path.
    for (const [f, userId] of [['alice.mp3', A], ['bob.mp3', B]] as const) {
      const tags = readId3(readFileSync(join(dir, f)));
      const j = journal(stats).tracks.find((t) => t.userId === userId)!;
      assert.deepEqual(tags, { TIT2: j.displayName, TPE1: j.username, COMM: `Discord user ${userId}` }, f);
    }
    assertTracks(await decodeMp3(join(dir, 'alice.mp3')), await decodeMp3(join(dir, 'bob.mp3')), capA, capB, 'streamed');
    rmSync(dir2, { recursive: true, force: true });
  } finally {
    await pool.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('MP3 streaming falls back to the after-stop encode for a track whose worker was replaced mid-recording', async () => {
  const dir = tmp();
  const pool = recordingPool({ dir, workers: 2, keepOpus: false, clock: 'packets', mp3: { bitrateKbps: 128, mono: false } });
  try {
    pool.addTrack(A, 'alice');
    pool.addTrack(B, 'bob');
    const all = packets();
    const cut = all.findIndex((p) => p.arrivalMs > 3000);
    for (const p of all.slice(0, cut)) pool.onAudio(p);
    await until(() => (pool.status().get(A)?.mp3EncodedFrames ?? 0) >= msToFrame(1500), 30_000, "alice's encoder to start");
    const victim = pool.workerOf(A)!;
    const restarted = once(pool, 'workerRestarted');
    await victim.terminate();
    await restarted;
    await sleep(100);
    for (const p of all.slice(cut)) pool.onAudio(p);
    const stats = await pool.cleanup(END_MS);
    const ma = stats.get(A)!.mp3;
    assert.equal(ma?.state, 'fallback', JSON.stringify(ma));
    assert.match(ma?.state === 'fallback' ? ma.reason : '', /replaced/);
    assert.equal(stats.get(B)!.mp3?.state, 'done', 'the other worker kept streaming');
    assert.ok(!existsSync(join(dir, `alice${MP3_STREAM_SUFFIX}`)), "the dead worker's partial stream was removed");
    const capA = captureLeft(dir, 'alice');
    const capB = captureLeft(dir, 'bob');
    writeJsonAtomic(join(dir, JOURNAL_FILE), journal(stats));
    const { report, manifest } = await finishRecordingWithReport(dir, { force: false, ffmpegPath: false, streamedMp3: streamedOf(stats) });
    assert.deepEqual(report.tracks.map((t) => t.encoder), ['lame-wasm', 'lame-wasm-stream']);
    assert.deepEqual(manifest.tracks.map((t) => t.encoder), ['lame-wasm', 'lame-wasm-stream']);
    assertTracks(await decodeMp3(join(dir, 'alice.mp3')), await decodeMp3(join(dir, 'bob.mp3')), capA, capB, 'fallback');
  } finally {
    await pool.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
