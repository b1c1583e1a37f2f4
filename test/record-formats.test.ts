/**
 * `--format opus` and `--format flac` end to end: the simulator plays members with known tones, runRecording
 * (real discord.js, @discordjs/voice, receiver, DAVE, worker pool, finisher) records them, and the finished files
 * are decoded without ffmpeg (test/decoders.ts) and compared with the simulator's ground truth: each member's tone
 * in their own track only, onsets within 20 ms of the truth, silence before they speak, every track exactly the
 * recording's length. Ogg Opus is also checked page by page (RFC 7845): pre-skip 0 (the packets are Discord's,
 * not re-encoded), granule positions that never go back, the final granule = the recording's length in samples.
 * FLAC is recorded where no ffmpeg can be found, so the embedded libFLAC writes it.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BLOCK, TONE_PEAK, msToSample, onsetMs, rms, scenario, toneAmplitude } from './record-fixtures.ts';
import { cleanupDirs, member, recordScenario, type Run } from './fault-fixtures.ts';
import { withoutFfmpeg } from './format-fixtures.ts';
import { decodeAudio, decodeOggOpus } from './decoders.ts';

after(cleanupDirs);

const HZ = [400, 650];
const members = [
  member(1, HZ[0]!, [[200, 700], [1500, 500]]),
  // Joins late: the Opus track's lead-in before the first packet is filled, not skipped.
  member(2, HZ[1]!, [[900, 800]], { joinAtMs: 500 }),
];

/** Left channel of a finished track as s16 numbers, decoded without ffmpeg. */
async function left(path: string): Promise<Int16Array> {
  const d = await decodeAudio(path);
  assert.equal(d.sampleRate, 48_000, path);
  assert.equal(d.channels.length, 2, `${path}: stereo`);
  return Int16Array.from(d.channels[0]!, (v) => Math.round(v * 32768));
}

/** Checks every track against the truth; returns the onset errors (ms) for the test's diagnostic line. */
function checkAgainstTruth(run: Run, pcm: Map<string, Int16Array>, label: string): string[] {
  const deltas: string[] = [];
  const manifest = run.manifest!;
  const n = msToSample(manifest.durationMs);
  for (const [i, m] of members.entries()) {
    const x = pcm.get(m.userId)!;
    assert.equal(x.length, n, `${label} ${m.userId}: ${x.length} samples, recording ${n}`);
    const spurts = run.truth.members[i]!.spurts.filter((s) => s.packetsSent > 0);
    assert.ok(spurts.length > 0);
    const firstMs = spurts[0]!.onsetWallMs - run.startedAtMs;
    assert.ok(rms(x, 0, msToSample(firstMs - 60)) < 30, `${label} ${m.userId}: silent before speaking`);
    for (const s of spurts) {
      const startMs = s.onsetWallMs - run.startedAtMs;
      const endMs = s.endWallMs - run.startedAtMs;
      const on = onsetMs(x, startMs - 100, startMs + 200);
      assert.ok(on !== null && Math.abs(on - startMs) <= 20, `${label} ${m.userId}: onset ${on?.toFixed(1)} ms vs truth ${startMs.toFixed(1)} ms`);
      deltas.push((on! - startMs).toFixed(1));
      for (let ms = startMs + 40; ms + 20 <= Math.min(endMs, manifest.durationMs) - 40; ms += 20) {
        const own = toneAmplitude(x, msToSample(ms), BLOCK, HZ[i]!);
        assert.ok(own > 0.5 * TONE_PEAK, `${label} ${m.userId}: own tone at ${ms.toFixed(0)} ms is ${own.toFixed(0)}`);
        const other = toneAmplitude(x, msToSample(ms), BLOCK, HZ[1 - i]!);
        assert.ok(other < 0.1 * TONE_PEAK, `${label} ${m.userId}: the other member's tone at ${ms.toFixed(0)} ms (${other.toFixed(0)})`);
      }
    }
  }
  return deltas;
}

test('record --format opus: the received packets in Ogg, aligned to the truth, granules on the recording clock', async (t) => {
  const run = await recordScenario(scenario(members), { format: 'opus', durationMs: 2600 });
  assert.ok(run.manifest, String(run.error));
  const manifest = run.manifest;
  assert.equal(manifest.format, 'opus');
  assert.equal(manifest.tracks.length, 2);
  const n = msToSample(manifest.durationMs);
  const pcm = new Map<string, Int16Array>();
  for (const t of manifest.tracks) {
    assert.equal(t.encoder, 'opus-copy', `${t.file}: the packets as received`);
    const { ogg, head, tags, audio } = decodeOggOpus(join(run.dir, t.file));
    assert.equal(head.preSkip, 0, 'not re-encoded: no encoder delay');
    assert.equal(head.channels, 2);
    assert.ok(tags.includes(`TITLE=${t.displayName}`) && tags.includes(`DISCORD_USER_ID=${t.userId}`), tags.join('|'));
    const granules = ogg.pages.map((p) => p.granule).filter((g) => g !== -1n);
    for (let k = 1; k < granules.length; k++) assert.ok(granules[k]! >= granules[k - 1]!, `${t.file}: granule ${granules[k]} after ${granules[k - 1]}`);
    assert.equal(ogg.pages.at(-1)!.granule, BigInt(n), `${t.file}: final granule = the recording's length`);
    assert.equal(audio.frames, n);
    // Pauses and the late joiner's lead-in are filled with (silence or empty) frames: no granule jumps.
    assert.ok(ogg.packets.length - 2 >= n / 960, `${t.file}: ${ogg.packets.length - 2} packets for ${n} samples`);
    pcm.set(t.userId, Int16Array.from(audio.channels[0]!, (v) => Math.round(v * 32768)));
  }
  t.diagnostic(`opus: onset − truth (ms): ${checkAgainstTruth(run, pcm, 'opus').join(', ')}`);
  // The Ogg file is Discord's packets: far smaller than the PCM it decodes to.
  const size = readFileSync(join(run.dir, manifest.tracks[0]!.file)).length;
  assert.ok(size < n * 4 / 10, `${size} bytes for ${n} stereo samples`);
});

test('record --format flac without any ffmpeg: the embedded libFLAC, lossless, aligned to the truth', async (t) => {
  const run = await withoutFfmpeg(() => recordScenario(scenario(members), { format: 'flac', durationMs: 2600 }));
  assert.ok(run.manifest, String(run.error));
  const manifest = run.manifest;
  assert.equal(manifest.format, 'flac');
  const n = msToSample(manifest.durationMs);
  const pcm = new Map<string, Int16Array>();
  for (const t of manifest.tracks) {
    assert.equal(t.encoder, 'libflac-js');
    const f = readFileSync(join(run.dir, t.file));
    assert.equal(f.toString('ascii', 0, 4), 'fLaC');
    assert.equal(Number(f.readBigUInt64BE(18) & 0xf_ffff_ffffn), n, 'STREAMINFO total samples');
    pcm.set(t.userId, await left(join(run.dir, t.file)));
  }
  t.diagnostic(`flac: onset − truth (ms): ${checkAgainstTruth(run, pcm, 'flac').join(', ')}`);
});
