/**
 * MP3 specifics: the one table of bitrates (src/sinks/formats/mp3-params.ts) is what the CLI accepts, what both
 * encoders produce exactly, and what the README and the man page list; and the LAME tag (mp3-info-tag.ts) keeps
 * every input sample, aligned to t=0, at 48 kHz and at other rates, with and without ffmpeg.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MP3_BITRATES, MP3_SAMPLE_RATES, formatBitrates, mp3BitratesAt } from '../src/sinks/formats/mp3-params.ts';
import { mp3FrameAt } from '../src/sinks/formats/mp3-info-tag.ts';
import { openEncoder } from '../src/sinks/formats/encoders.ts';
import { parseBitrate } from '../src/commands/options.ts';
import { convertRaw } from '../src/sinks/convert-raw.ts';
import { finishRecordingWithReport } from '../src/sinks/finalize.ts';
import { DvrecError } from '../src/errors.ts';
import { ExitCode, exitCodeOf } from '../src/commands/exit-codes.ts';
import { decodeMp3, decodeAudio } from './decoders.ts';
import { hasFfmpeg, ffmpegDecode, writeRecordingDir, channel, dominantHz, msToFrame } from './format-fixtures.ts';
import { needs } from './strict.ts';

const ROOT = join(import.meta.dirname, '..');
const tmp = () => mkdtempSync(join(tmpdir(), 'dvrec-mp3-'));

test('README and man page list exactly the bitrates `record --bitrate` accepts (no 56: the embedded LAME lacks it)', () => {
  assert.ok(!MP3_BITRATES.includes(56));
  const want = formatBitrates(MP3_BITRATES);
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const row = /^\| `--bitrate <kbps>` \| MP3 bitrate: ([\d, ]+)\b/m.exec(readme);
  assert.equal(row?.[1], want, 'README --bitrate row');
  // The man page source: ".BI \-\-bitrate" then the list, split over lines, ending in "or 320.".
  const man = readFileSync(join(ROOT, 'man', 'dvrec.1'), 'utf8').replace(/\\-/g, '-');
  const m = /\.BI --bitrate " kbps"\nMP3 bitrate: ([^.]+)\./.exec(man);
  assert.ok(m, 'man page --bitrate entry');
  assert.equal(m[1]!.replace(/\s+/g, ' ').replace(' (default)', '').replace(' or ', ', '), want, 'man page --bitrate list');
  for (const kbps of MP3_BITRATES) assert.equal(parseBitrate(String(kbps), 'mp3'), kbps);
  assert.throws(() => parseBitrate('56', 'mp3'), (e: unknown) => e instanceof DvrecError && exitCodeOf(e) === ExitCode.USAGE && /not an MP3 bitrate/.test(e.message));
});

test('raw input: the bitrates follow the sample rate; a rate no MP3 holds is refused', () => {
  assert.equal(parseBitrate('8', 'mp3', 16_000), 8);
  assert.equal(parseBitrate(undefined, 'mp3', 16_000), 128);
  assert.equal(parseBitrate(undefined, 'mp3', 8_000), 64, 'the default is capped at what MPEG-2.5 allows');
  assert.throws(() => parseBitrate('192', 'mp3', 16_000), /not an MP3 bitrate at 16000 Hz \(choose 8, 16, .*, 160\)/);
  assert.throws(() => parseBitrate('8', 'mp3'), /not an MP3 bitrate/);
  assert.throws(() => parseBitrate(undefined, 'mp3', 96_000), /--format mp3 needs --rate/);
  assert.equal(parseBitrate(undefined, 'wav', 96_000), 128, 'other formats do not care');
});

/** Every frame header after the LAME tag (the first frame): sample rate index, bitrate, and their count. */
function audioFrames(file: Buffer): { headers: number[]; tag: Buffer } {
  let at = 0;
  if (file.toString('latin1', 0, 3) === 'ID3') at = 10 + ((file[6]! << 21) | (file[7]! << 14) | (file[8]! << 7) | file[9]!);
  const headers: number[] = [];
  const first = mp3FrameAt(file.readUInt32BE(at))!;
  const tag = file.subarray(at, at + first.bytes);
  for (at += first.bytes; at + 4 <= file.length; ) {
    const h = file.readUInt32BE(at);
    const f = mp3FrameAt(h);
    assert.ok(f, `frame header at ${at}`);
    headers.push(h);
    at += f.bytes;
  }
  assert.equal(at, file.length, 'the file ends on a frame boundary');
  return { headers, tag };
}

test('the embedded LAME encodes every rate × bitrate of the table as asked (no resampling, no clamping), gapless', async () => {
  const dir = tmp();
  const rateOf = (h: number) => MP3_SAMPLE_RATES.find((r) => {
    const ver = (h >>> 19) & 3;
    const table = ver === 3 ? [44_100, 48_000, 32_000] : ver === 2 ? [22_050, 24_000, 16_000] : [11_025, 12_000, 8_000];
    return table[(h >>> 10) & 3] === r;
  });
  const kbpsOf = (h: number) => {
    const f = mp3FrameAt(h)!;
    const rate = rateOf(h)!;
    return Math.round(((f.bytes - ((h >>> 9) & 1)) * rate) / ((f.samples === 1152 ? 144 : 72) * 1000));
  };
  let n = 0;
  for (const rate of MP3_SAMPLE_RATES) {
    const list = mp3BitratesAt(rate);
    assert.ok(list.length >= 6, `${rate} Hz has bitrates`);
    for (const kbps of list) {
      // Stereo everywhere; mono at one rate of each MPEG version (the side info, and so the tag, differs).
      for (const channels of [48_000, 22_050, 8_000].includes(rate) ? [1, 2] : [2]) {
        const frames = Math.round(rate * 0.05) + 7;
        const pcm = new Int16Array(frames * channels);
        for (let i = 0; i < pcm.length; i++) pcm[i] = Math.round(8000 * Math.sin((2 * Math.PI * 500 * Math.floor(i / channels)) / rate));
        const out = join(dir, `${rate}-${kbps}-${channels}.mp3`);
        const { encoder } = openEncoder(out, { format: 'mp3', sampleRate: rate, channels, totalFrames: frames, bitrateKbps: kbps, ffmpeg: null });
        await encoder.write(pcm);
        await encoder.finish();
        const label = `${rate} Hz ${kbps} kbps ${channels} ch`;
        const { headers, tag } = audioFrames(readFileSync(out));
        assert.ok(headers.length > 0);
        for (const h of headers) {
          assert.equal(rateOf(h), rate, `${label}: output sample rate`);
          assert.equal(kbpsOf(h), kbps, `${label}: output bitrate`);
          assert.equal(((h >>> 6) & 3) === 3 ? 1 : 2, channels, `${label}: channels`);
        }
        assert.equal(tag.toString('latin1').includes('Info'), true, `${label}: LAME tag`);
        const d = await decodeMp3(out);
        assert.equal(d.sampleRate, rate);
        assert.equal(d.frames, frames, `${label}: decoded length = input length`);
        n++;
      }
    }
  }
  assert.ok(n > 90, `${n} combinations`);
});

/** Raw PCM: a tone from the very first sample for 200 ms, silence, then a burst at 400 ms + 3 samples. */
function writeRaw(path: string, rate: number, channels: number): { frames: number; burstAt: number } {
  const frames = Math.round(rate * 0.7) + 17;
  const burstAt = Math.round(rate * 0.4) + 3;
  const b = Buffer.alloc(frames * channels * 2);
  for (let i = 0; i < frames; i++) {
    const on = i < rate * 0.2 || (i >= burstAt && i < burstAt + rate * 0.1);
    const v = on ? Math.round(12_000 * Math.sin((2 * Math.PI * 440 * i) / rate)) : 0;
    for (let c = 0; c < channels; c++) b.writeInt16LE(v, (i * channels + c) * 2);
  }
  writeFileSync(path, b);
  return { frames, burstAt };
}

const firstAbove = (x: Float32Array, from: number, threshold = 0.05) => {
  for (let i = from; i < x.length; i++) if (Math.abs(x[i]!) > threshold) return i;
  return -1;
};

for (const [rate, channels, kbps] of [[48_000, 2, 128], [16_000, 1, 64]] as const) {
  for (const withFfmpeg of [false, true]) {
    test(`convert raw.pcm → mp3 at ${rate} Hz ${withFfmpeg ? 'with' : 'without'} ffmpeg: every sample kept, decoded onsets exact`, async (t) => {
      if (withFfmpeg && needs(t, hasFfmpeg(), 'no ffmpeg to encode with')) return;
      const dir = tmp();
      const input = join(dir, 'raw.pcm');
      const { frames, burstAt } = writeRaw(input, rate, channels);
      const r = await convertRaw(input, { format: 'mp3', rate, channels, bitrateKbps: kbps, force: false, ffmpegPath: withFfmpeg ? undefined : false });
      assert.equal(r.encoder, withFfmpeg ? 'ffmpeg' : 'lame-wasm');
      const decoders: [string, () => Promise<Float32Array>][] = [['mpg123', async () => (await decodeMp3(r.out)).channels[0]!]];
      if (hasFfmpeg()) decoders.push(['ffmpeg', async () => channel(ffmpegDecode(r.out, 1, rate), 1)]);
      for (const [name, decode] of decoders) {
        const x = await decode();
        assert.equal(x.length, frames, `${name}: decoded length`);
        // The tone starts at sample 0: the first 23 ms (LAME's delay) are there, not dropped.
        assert.ok(firstAbove(x, 0) <= 3, `${name}: first sound at ${firstAbove(x, 0)}`);
        const hz = dominantHz(x, 0, Math.round(rate * 0.023), rate);
        assert.ok(Math.abs(hz - 440) <= 10, `${name}: the first 23 ms hold the tone (${hz} Hz)`);
        const at = firstAbove(x, Math.round(rate * 0.3));
        assert.ok(Math.abs(at - burstAt) <= 2, `${name}: burst at ${at}, source ${burstAt}`);
      }
    });
  }
}

test('a recording journalled at 56 kbps by an older dvrec is still finished (at 64) without ffmpeg', async () => {
  const dir = tmp();
  const tracks = [{ stem: 'a', userId: '100000000000000001', hz: 500, spurts: [{ atMs: 100, durationMs: 400 }] }];
  await writeRecordingDir(dir, { format: 'mp3', bitrateKbps: 56, durationMs: 1000, tracks });
  const { report } = await finishRecordingWithReport(dir, { force: false, ffmpegPath: false });
  assert.deepEqual(report.tracks.map((x) => x.encoder), ['lame-wasm']);
  const d = await decodeAudio(join(dir, 'a.mp3'));
  assert.equal(d.frames, msToFrame(1000));
  assert.equal(dominantHz(d.channels[0]!, msToFrame(200), msToFrame(200)), 500);
  const { headers } = audioFrames(readFileSync(join(dir, 'a.mp3')));
  assert.equal(mp3FrameAt(headers[0]!)!.bytes, (144 * 64_000) / 48_000, '64 kbps frames');
});
