/**
 * The finisher and every format, end to end: recording directories written in the capture layout from real
 * Opus, finished by finishRecording(), decoded again without ffmpeg (test/decoders.ts: registry decoders and an
 * Ogg parser) and, where ffmpeg is installed, with ffmpeg too, and compared with the source signal: length,
 * dominant frequency per spurt, onset positions (alignment). "without ffmpeg" runs where dvrec can find none.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { finishRecording, finishRecordingWithReport } from '../src/sinks/finalize.ts';
import { MIX_CEILING } from '../src/sinks/formats/mix.ts';
import { DvrecError } from '../src/errors.ts';
import { ExitCode, exitCodeOf } from '../src/commands/exit-codes.ts';
import type { ConvertProgress } from '../src/recording-api.ts';
import { findFfmpeg } from '../src/sinks/formats/ffmpeg.ts';
import {
  writeRecordingDir, ffmpegDecode, firstDifference, hasFfmpeg, withoutFfmpeg, channel, onset, dominantHz, rms, msToFrame,
  type FixtureTrack,
} from './format-fixtures.ts';
import { decodeInterleaved } from './decoders.ts';
import { needs } from './strict.ts';

const FF = hasFfmpeg();
const tmp = () => mkdtempSync(join(tmpdir(), 'dvrec-fmt-'));

const TRACKS: FixtureTrack[] = [
  { stem: 'alice', userId: '100000000000000001', hz: 440, spurts: [{ atMs: 250, durationMs: 1000 }, { atMs: 2777, durationMs: 500 }] },
  { stem: 'bob', userId: '100000000000000002', hz: 1000, spurts: [{ atMs: 1713, durationMs: 800 }] },
];
const DURATION_MS = 4000;
const N = msToFrame(DURATION_MS);

/** Compares a decoded track with the source capture PCM: length, per-spurt frequency and onset. */
function assertTrackMatches(decoded: Int16Array, source: Int16Array, t: FixtureTrack, lengthTolerance: number, label: string) {
  const x = channel(decoded, 2);
  const s = channel(source, 2);
  assert.ok(Math.abs(x.length - N) <= lengthTolerance, `${label}: ${x.length} frames, want ${N} ± ${lengthTolerance}`);
  for (const sp of t.spurts) {
    const from = msToFrame(sp.atMs) - 4800;
    const want = onset(s, from);
    const got = onset(x, from);
    assert.ok(want > 0 && Math.abs(got - want) <= 120, `${label}: spurt at ${sp.atMs} ms starts at frame ${got}, source ${want}`);
    const mid = msToFrame(sp.atMs + 100);
    assert.equal(dominantHz(x, mid, msToFrame(300)), t.hz, `${label}: dominant frequency of spurt at ${sp.atMs} ms`);
  }
  // Silence where the member was quiet: the 300 ms before the first spurt.
  const at = t.spurts[0]!.atMs;
  const quietFrom = Math.max(0, at - 200);
  assert.ok(rms(x, msToFrame(quietFrom), msToFrame(at - quietFrom - 10)) < 0.002, `${label}: silence before speech`);
}

const cases: { format: 'wav' | 'mp3' | 'flac' | 'opus'; ffmpeg: boolean }[] = [
  { format: 'wav', ffmpeg: false },
  { format: 'opus', ffmpeg: false },
  { format: 'mp3', ffmpeg: true },
  { format: 'mp3', ffmpeg: false },
  { format: 'flac', ffmpeg: true },
  { format: 'flac', ffmpeg: false },
];

for (const c of cases) {
  const name = `${c.format} ${c.ffmpeg ? 'with ffmpeg' : 'without ffmpeg'}: aligned equal-length tracks + mix decode to the source`;
  test(name, async (t) => {
    if (c.ffmpeg && needs(t, FF, 'no ffmpeg to encode with')) return;
    const dir = tmp();
    const src = await writeRecordingDir(dir, { format: c.format, mix: true, durationMs: DURATION_MS, tracks: TRACKS });
    const progress: ConvertProgress[] = [];
    const run = () => finishRecordingWithReport(dir, { force: false, onProgress: (p) => progress.push(p) });
    // Without: discovery really finds nothing (PATH, FFMPEG_PATH and ffmpeg-static hidden).
    const { manifest, report } = c.ffmpeg
      ? await run()
      : await withoutFfmpeg(async () => {
          assert.equal(await findFfmpeg(undefined), null, 'ffmpeg is hidden');
          return run();
        });

    const expectEncoder = { wav: 'wav-in-place', opus: 'opus-copy', mp3: c.ffmpeg ? 'ffmpeg' : 'lame-wasm', flac: c.ffmpeg ? 'ffmpeg' : 'libflac-js' }[c.format];
    assert.deepEqual(report.tracks.map((t) => t.encoder), [expectEncoder, expectEncoder]);
    assert.equal(manifest.durationMs, DURATION_MS);
    assert.equal(manifest.format, c.format);
    assert.equal(manifest.recovered, undefined);
    assert.deepEqual(manifest.tracks.map((t) => t.file), [`alice.${c.format}`, `bob.${c.format}`]);
    assert.equal(manifest.mix, `mix.${c.format}`);
    assert.equal(manifest.tracks[1]!.startOffsetMs, 1713);
    // Captures removed only after the outputs and the manifest exist.
    assert.deepEqual(readdirSync(dir).sort(), ['alice', 'bob', 'manifest', 'mix'].map((s) => (s === 'manifest' ? 'manifest.json' : `${s}.${c.format}`)).sort());
    assert.ok(progress.length >= 2 && progress.at(-1)!.files.every((f) => f.done === 1), 'progress reaches 1 for every file');

    // Decoded by registry decoders (no ffmpeg), and by ffmpeg as well where it is installed: a standard file.
    const decoders: [string, (f: string) => Promise<Int16Array>][] = [['registry decoder', (f) => decodeInterleaved(f)]];
    if (FF) decoders.push(['ffmpeg', async (f) => ffmpegDecode(f)]);
    for (const [by, decode] of decoders) {
      for (const [i, t] of TRACKS.entries()) {
        // Every format is exactly the recording's length (MP3: the LAME tag; Opus: end trimming).
        assertTrackMatches(await decode(join(dir, manifest.tracks[i]!.file)), src.get(t.stem)!, t, 0, `${c.format}/${t.stem} (${by})`);
      }
      const mix = channel(await decode(join(dir, manifest.mix!)), 2);
      assert.equal(mix.length, N, `mix length (${by})`);
      for (const t of TRACKS) for (const sp of t.spurts) {
        assert.equal(dominantHz(mix, msToFrame(sp.atMs + 100), msToFrame(300)), t.hz, `mix holds ${t.stem} at ${sp.atMs} ms (${by})`);
      }
    }
  });
}

test('wav: header patched in place, mono downmix, RF64 beyond the size limit', async () => {
  const dir = tmp();
  const src = await writeRecordingDir(dir, { format: 'wav', durationMs: DURATION_MS, tracks: TRACKS });
  await finishRecording(dir, { force: false });
  const b = readFileSync(join(dir, 'alice.wav'));
  assert.equal(b.toString('ascii', 0, 4), 'RIFF');
  assert.equal(b.readUInt32LE(40), N * 4);
  assert.equal(b.length, 44 + N * 4);
  // Bit-exact: the capture's PCM, then silence to the end.
  const pcm = new Int16Array(b.buffer, b.byteOffset + 44, N * 2);
  const s = src.get('alice')!;
  assert.equal(firstDifference(pcm.subarray(0, s.length), s), -1);
  assert.ok(pcm.subarray(s.length).every((v) => v === 0));

  const mono = tmp();
  await writeRecordingDir(mono, { format: 'wav', mono: true, durationMs: DURATION_MS, tracks: TRACKS });
  await finishRecording(mono, { force: false });
  const m = readFileSync(join(mono, 'bob.wav'));
  assert.equal(m.readUInt16LE(22), 1, 'one channel');
  const mx = channel(await decodeInterleaved(join(mono, 'bob.wav'), 1), 1);
  assert.equal(mx.length, N);
  assert.equal(dominantHz(mx, msToFrame(1900), msToFrame(300)), 1000);

  const big = tmp();
  await writeRecordingDir(big, { format: 'wav', durationMs: DURATION_MS, tracks: TRACKS });
  await finishRecording(big, { force: false, rf64Limit: 100_000 });
  const r = readFileSync(join(big, 'bob.wav'));
  assert.equal(r.toString('ascii', 0, 4), 'RF64');
  assert.equal(r.toString('ascii', 12, 16), 'ds64');
  assert.equal(Number(r.readBigUInt64LE(28)), N * 4);
  const rx = await decodeInterleaved(join(big, 'bob.wav'));
  assert.equal(rx.length, N * 2);
  assert.equal(firstDifference(rx.subarray(0, src.get('bob')!.length), src.get('bob')!), -1);
});

test('mix is level-safe: overlapping loud speakers never clip, a lone speaker is untouched', async () => {
  const dir = tmp();
  const tracks: FixtureTrack[] = [
    { stem: 'a', userId: '1', hz: 300, spurts: [{ atMs: 200, durationMs: 2000 }] },
    { stem: 'b', userId: '2', hz: 700, spurts: [{ atMs: 1200, durationMs: 2000 }] },
    { stem: 'c', userId: '3', hz: 1100, spurts: [{ atMs: 1500, durationMs: 500 }] },
  ];
  const src = await writeRecordingDir(dir, { format: 'wav', mix: true, durationMs: 3600, tracks, amplitude: 0.7 });
  await finishRecording(dir, { force: false });
  const mix = await decodeInterleaved(join(dir, 'mix.wav'));
  let peak = 0;
  for (const v of mix) peak = Math.max(peak, Math.abs(v));
  assert.ok(peak <= MIX_CEILING, `peak ${peak} <= ceiling ${MIX_CEILING}`);
  // The plain sum would have clipped (that is what the limiter is for).
  const a = src.get('a')!, b = src.get('b')!;
  let sumPeak = 0;
  for (let i = msToFrame(1300) * 2; i < msToFrame(1400) * 2; i++) sumPeak = Math.max(sumPeak, Math.abs(a[i]! + b[i]!));
  assert.ok(sumPeak > 32767, 'fixture overlaps loudly');
  // Where only a speaks (before b starts), the mix is a, sample for sample.
  for (let i = msToFrame(300) * 2; i < msToFrame(1000) * 2; i++) assert.equal(mix[i], a[i], `sample ${i}`);
  const x = channel(mix, 2);
  assert.equal(dominantHz(x, msToFrame(2600), msToFrame(300)), 700);
});

test('flac without ffmpeg: STREAMINFO carries the length and the MD5 of the PCM', async () => {
  const dir = tmp();
  const src = await writeRecordingDir(dir, { format: 'flac', durationMs: 2500, tracks: [TRACKS[0]!] });
  await finishRecording(dir, { force: false, ffmpegPath: false });
  const f = readFileSync(join(dir, 'alice.flac'));
  assert.equal(f.toString('ascii', 0, 4), 'fLaC');
  const total = Number(f.readBigUInt64BE(18) & 0xf_ffff_ffffn);
  const n = msToFrame(2500);
  assert.equal(total, n);
  const pcm = Buffer.alloc(n * 4);
  const s = src.get('alice')!;
  Buffer.from(s.buffer, s.byteOffset, Math.min(s.byteLength, n * 4)).copy(pcm);
  assert.equal(f.subarray(26, 42).toString('hex'), createHash('md5').update(pcm).digest('hex'));
});

test('never overwrites finished files without force; captures survive the refusal', async () => {
  const dir = tmp();
  await writeRecordingDir(dir, { format: 'wav', durationMs: 1500, tracks: [{ stem: 'a', userId: '1', hz: 500, spurts: [{ atMs: 100, durationMs: 300 }] }] });
  writeFileSync(join(dir, 'a.wav'), 'precious');
  await assert.rejects(finishRecording(dir, { force: false }), (e: unknown) => e instanceof DvrecError && exitCodeOf(e) === ExitCode.OUTPUT && /--force/.test(e.message));
  assert.equal(readFileSync(join(dir, 'a.wav'), 'utf8'), 'precious');
  assert.ok(existsSync(join(dir, '.capture', 'a.wav')) && existsSync(join(dir, 'capture.json')));
  const m = await finishRecording(dir, { force: true });
  assert.equal(m.tracks[0]!.file, 'a.wav');
  assert.equal(readFileSync(join(dir, 'a.wav')).length, 44 + msToFrame(1500) * 4);
  await assert.rejects(finishRecording(dir, { force: false }), (e: unknown) => e instanceof DvrecError && exitCodeOf(e) === ExitCode.INPUT && /already finished/.test(e.message));
});

test('an explicit --ffmpeg that does not run is a clear ENCODER error', async () => {
  const dir = tmp();
  await writeRecordingDir(dir, { format: 'mp3', durationMs: 1000, tracks: [{ stem: 'a', userId: '1', hz: 500, spurts: [{ atMs: 100, durationMs: 300 }] }] });
  await assert.rejects(finishRecording(dir, { force: false, ffmpegPath: '/nonexistent/ffmpeg' }), (e: unknown) => e instanceof DvrecError && exitCodeOf(e) === ExitCode.ENCODER);
  assert.ok(existsSync(join(dir, '.capture', 'a.wav')), 'capture kept');
});
