/**
 * `dvrec convert`: raw PCM to every format (decoded back and compared), its error paths with their exit
 * codes, and `convert DIR` on a crashed recording directory (no endedAt, torn last frame, an orphan capture).
 * Outputs are decoded without ffmpeg (test/decoders.ts), and checked with ffmpeg too where it is installed; the
 * "without ffmpeg" cases run where dvrec can find none (PATH, FFMPEG_PATH and ffmpeg-static all hidden).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, appendFileSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertRaw, convertDir } from '../src/sinks/convert-raw.ts';
import { findFfmpeg } from '../src/sinks/formats/ffmpeg.ts';
import { DvrecError } from '../src/errors.ts';
import { ExitCode, exitCodeOf } from '../src/commands/exit-codes.ts';
import {
  writeRecordingDir, ffmpegDecode, hasFfmpeg, withoutFfmpeg, channel, onset, dominantHz, msToFrame, type FixtureTrack,
} from './format-fixtures.ts';
import { decodeAudio, decodeInterleaved } from './decoders.ts';
import { needs } from './strict.ts';
import { runCli } from './cli-helpers.ts';

const FF = hasFfmpeg();
const tmp = () => mkdtempSync(join(tmpdir(), 'dvrec-conv-'));

function rawTone(path: string, hz: number, seconds: number, rate: number, channels: number): number {
  const frames = Math.round(seconds * rate);
  const b = Buffer.alloc(frames * channels * 2);
  for (let i = 0; i < frames; i++) {
    // silence for the first 0.25 s, then the tone: an onset to check alignment
    const v = i < rate / 4 ? 0 : Math.round(12000 * Math.sin((2 * Math.PI * hz * i) / rate));
    for (let c = 0; c < channels; c++) b.writeInt16LE(v, (i * channels + c) * 2);
  }
  writeFileSync(path, b);
  return frames;
}

const isErr = (code: number, re?: RegExp) => (e: unknown) => e instanceof DvrecError && exitCodeOf(e) === code && (!re || re.test(e.message));

for (const format of ['wav', 'mp3', 'flac', 'opus'] as const) {
  for (const ffmpeg of format === 'mp3' || format === 'flac' ? [true, false] : [false]) {
    test(`convert raw.pcm → ${format} ${ffmpeg ? 'with' : 'without'} ffmpeg`, async (t) => {
      if (ffmpeg && needs(t, FF, 'no ffmpeg to encode with')) return;
      const dir = tmp();
      const input = join(dir, 'raw.pcm');
      const frames = rawTone(input, 660, 1.5, 48_000, 2);
      // Without: nothing to find (PATH, FFMPEG_PATH, ffmpeg-static hidden), so discovery itself must fall back.
      const r = ffmpeg
        ? await convertRaw(input, { format, force: false })
        : await withoutFfmpeg(async () => {
            assert.equal(await findFfmpeg(undefined), null, 'ffmpeg is hidden');
            return convertRaw(input, { format, force: false });
          });
      assert.equal(r.out, join(dir, `raw.${format}`));
      assert.equal(r.encoder, { wav: 'dvrec-wav', opus: 'libopus', mp3: ffmpeg ? 'ffmpeg' : 'lame-wasm', flac: ffmpeg ? 'ffmpeg' : 'libflac-js' }[format]);
      assert.equal(r.durationMs, 1500);
      const decoded: [string, Float32Array][] = [['registry decoder', channel(await decodeInterleaved(r.out), 2)]];
      if (FF) decoded.push(['ffmpeg', channel(ffmpegDecode(r.out), 2)]);
      for (const [by, x] of decoded) {
        // Every format gives back exactly the input's length (MP3: the LAME tag; Opus: pre-skip + end trimming).
        assert.equal(x.length, frames, `${by}: ${x.length} vs ${frames}`);
        assert.ok(Math.abs(onset(x) - msToFrame(250)) <= 120, `${by}: onset ${onset(x)}`);
        assert.equal(dominantHz(x, msToFrame(500), msToFrame(500)), 660, by);
      }
    });
  }
}

test('convert raw: other rates and channel counts (16 kHz mono → flac, 44.1 kHz stereo → mono wav)', async () => {
  const dir = tmp();
  const a = join(dir, 'a.raw');
  rawTone(a, 500, 1, 16_000, 1);
  const r = await convertRaw(a, { format: 'flac', rate: 16_000, channels: 1, force: false, ffmpegPath: false });
  const f = await decodeAudio(r.out);
  assert.equal(f.sampleRate, 16_000);
  assert.equal(f.channels.length, 1);
  assert.equal(f.frames, 16_000);
  assert.equal(dominantHz(f.channels[0]!, 8_000, 4_000, 16_000), 500);
  assert.ok(Math.abs(onset(f.channels[0]!) - 4_000) <= 40, `onset ${onset(f.channels[0]!)}`);
  const b = join(dir, 'b.raw');
  rawTone(b, 800, 1, 44_100, 2);
  const w = await convertRaw(b, { format: 'wav', rate: 44_100, channels: 2, mono: true, out: join(dir, 'b-mono.wav'), force: false });
  const h = readFileSync(w.out);
  assert.equal(h.readUInt16LE(22), 1);
  assert.equal(h.readUInt32LE(24), 44_100);
  assert.equal(h.readUInt32LE(40), 44_100 * 2);
  const m = await decodeAudio(w.out);
  assert.equal(m.frames, 44_100);
  assert.equal(dominantHz(m.channels[0]!, 22_050, 11_025, 44_100), 800);
});

test('convert raw: bad input gets a clear error and its exit code', async () => {
  const dir = tmp();
  await assert.rejects(convertRaw(join(dir, 'missing.pcm'), { format: 'wav', force: false }), isErr(ExitCode.INPUT, /no such file/));
  const odd = join(dir, 'odd.pcm');
  writeFileSync(odd, Buffer.alloc(4 * 100 + 3));
  await assert.rejects(convertRaw(odd, { format: 'wav', force: false }), isErr(ExitCode.INPUT, /not a whole number of s16le sample frames/));
  const ok = join(dir, 'ok.pcm');
  writeFileSync(ok, Buffer.alloc(4 * 480));
  await assert.rejects(convertRaw(ok, { format: 'aac', force: false }), isErr(ExitCode.USAGE, /unknown format "aac"/));
  await assert.rejects(convertRaw(ok, { format: 'mp3', bitrateKbps: 129, force: false }), isErr(ExitCode.USAGE));
  await assert.rejects(convertRaw(ok, { format: 'wav', out: join(dir, 'no', 'such', 'dir', 'x.wav'), force: false }), isErr(ExitCode.OUTPUT, /cannot write/));
  writeFileSync(join(dir, 'ok.wav'), 'keep me');
  await assert.rejects(convertRaw(ok, { format: 'wav', force: false }), isErr(ExitCode.OUTPUT, /already exists.*--force/));
  assert.equal(readFileSync(join(dir, 'ok.wav'), 'utf8'), 'keep me');
  const r = await convertRaw(ok, { format: 'wav', force: true });
  assert.equal(readFileSync(r.out).length, 44 + 4 * 480);
  await assert.rejects(convertRaw(dir, { format: 'wav', force: false }), isErr(ExitCode.INPUT, /directory/));
});

const CRASH_TRACKS: FixtureTrack[] = [
  { stem: 'alice', userId: '100000000000000001', hz: 440, spurts: [{ atMs: 300, durationMs: 700 }, { atMs: 2500, durationMs: 900 }] },
  { stem: 'bob', userId: '100000000000000002', hz: 1000, spurts: [{ atMs: 1100, durationMs: 600 }] },
  // Spoke only after the journal's last write: in .capture but not in capture.json.
  { stem: 'carol-100000000000000003', userId: '100000000000000003', hz: 1500, spurts: [{ atMs: 2900, durationMs: 300 }], orphan: true },
];

for (const format of ['wav', 'mp3', 'opus'] as const) {
  test(`convert DIR recovers a crashed ${format} recording up to its last written frame`, async () => {
    const dir = tmp();
    // Journal heartbeat at 2 s; alice's capture reaches ~3.5 s (the partial last second), torn mid-frame.
    const src = await writeRecordingDir(dir, { format, flushedMs: 2000, tracks: CRASH_TRACKS, tornBytes: 2 });
    const aliceEnd = src.get('alice')!.length / 2 - 1; // the torn frame is dropped
    if (format === 'opus') appendFileSync(join(dir, '.capture', 'alice.opus.pkt'), Buffer.from([1, 2, 3, 4, 200, 0, 9])); // torn record
    // No ffmpeg anywhere: finishing a crashed recording must not depend on one.
    const { manifest, report } = await withoutFfmpeg(() => convertDir(dir, { force: false }));
    assert.equal(manifest.recovered, true);
    assert.equal(report.recovered, true);
    assert.equal(report.lengthFrom, 'captures');
    const wantMs = Math.round((aliceEnd / 48_000) * 1000);
    assert.ok(Math.abs(manifest.durationMs - wantMs) <= 1, `${manifest.durationMs} vs ${wantMs}`);
    assert.ok(manifest.durationMs > 3400, 'recovered past the journal heartbeat');
    assert.deepEqual(report.tracks.map((t) => [t.stem, t.orphan]), [['alice', false], ['bob', false], ['carol-100000000000000003', true]]);
    assert.equal(manifest.tracks[2]!.userId, '100000000000000003');
    const carolStart = manifest.tracks[2]!.startOffsetMs;
    assert.ok(carolStart >= 2900 && carolStart <= 2920, `orphan's start found in its capture: ${carolStart}`);
    // bob: 600 ms of speech + Discord's 5 silence frames (100 ms) from 1100 ms
    assert.equal(report.tracks[1]!.capturedMs, 1800);
    assert.ok(!existsSync(join(dir, '.capture')) && !existsSync(join(dir, 'capture.json')));
    assert.ok(readdirSync(dir).includes('manifest.json'));
    const lengths: number[] = [];
    for (const [i, t] of CRASH_TRACKS.entries()) {
      const x = channel(await decodeInterleaved(join(dir, manifest.tracks[i]!.file)), 2);
      lengths.push(x.length);
      const s = channel(src.get(t.stem)!, 2);
      for (const sp of t.spurts) {
        const from = msToFrame(sp.atMs) - 4800;
        assert.ok(Math.abs(onset(x, from) - onset(s, from)) <= 120, `${t.stem} onset at ${sp.atMs}`);
        assert.equal(dominantHz(x, msToFrame(sp.atMs + 60), msToFrame(200)), t.hz);
      }
    }
    // Every track exactly as long as the recording: up to alice's last whole frame (Opus: her packet log, which
    // holds the packet of the frame the WAV capture tore, whole).
    const total = format === 'opus' ? src.get('alice')!.length / 2 : aliceEnd;
    for (const len of lengths) assert.equal(len, total, `length ${len} vs ${total}`);
  });
}

test('convert DIR: not a recording, or already finished', async () => {
  const dir = tmp();
  await assert.rejects(convertDir(dir, { force: false }), isErr(ExitCode.INPUT, /not a dvrec recording directory/));
  await assert.rejects(convertDir(join(dir, 'nope'), { force: false }), isErr(ExitCode.INPUT, /no such directory/));
});

test('dvrec convert checks every input before converting any: a bad, clashing or duplicate later input leaves nothing written', async () => {
  const dir = tmp();
  const good = join(dir, 'good.pcm');
  rawTone(good, 440, 0.2, 48_000, 2);
  const odd = join(dir, 'odd.pcm');
  writeFileSync(odd, Buffer.alloc(4 * 100 + 3));
  const r1 = await runCli(['convert', good, odd]);
  assert.equal(r1.code, ExitCode.INPUT, r1.stderr);
  assert.match(r1.stderr, /odd\.pcm: 403 bytes is not a whole number/);
  assert.ok(!existsSync(join(dir, 'good.wav')), 'good.pcm was not converted before odd.pcm was found bad');
  // Two inputs that would write one file.
  const twin = join(dir, 'good.raw');
  rawTone(twin, 440, 0.2, 48_000, 2);
  const r2 = await runCli(['convert', good, twin]);
  assert.equal(r2.code, ExitCode.USAGE, r2.stderr);
  assert.match(r2.stderr, /would both be written to .*good\.wav/);
  assert.ok(!existsSync(join(dir, 'good.wav')));
  // A recording directory whose finished track is already there (no --force), after a good raw input.
  const rec = join(dir, 'rec');
  await writeRecordingDir(rec, { format: 'wav', durationMs: 1000, tracks: [{ stem: 'a', userId: '1', hz: 500, spurts: [{ atMs: 100, durationMs: 300 }] }] });
  writeFileSync(join(rec, 'a.wav'), 'precious');
  const r3 = await runCli(['convert', good, rec]);
  assert.equal(r3.code, ExitCode.OUTPUT, r3.stderr);
  assert.match(r3.stderr, /a\.wav already exists/);
  assert.ok(!existsSync(join(dir, 'good.wav')), 'the good input was not converted before the bad one was found');
  assert.ok(existsSync(join(rec, 'capture.json')) && readFileSync(join(rec, 'a.wav'), 'utf8') === 'precious');
  // And once the inputs are right, both are done.
  const r4 = await runCli(['convert', good, rec, '--force']);
  assert.equal(r4.code, 0, r4.stderr);
  assert.ok(existsSync(join(dir, 'good.wav')) && existsSync(join(rec, 'manifest.json')));
});

