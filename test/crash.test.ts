/**
 * Process faults of the whole CLI: `dvrec record` (a real child process, trusting the simulator's certificate
 * through NODE_EXTRA_CA_CERTS) is SIGKILLed mid-recording, then `dvrec convert DIR` finishes the capture. The
 * recovered tracks are decoded and compared with the simulator's ground truth up to the kill instant: every
 * spurt at its true time, all audio up to at most ~1 s before the kill. WAV and MP3. And a file-size limit
 * (RLIMIT_FSIZE via prlimit) makes `dvrec record` stop with exit code 9 (OUTPUT) and a clear message.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startSimulator, type Simulator } from '../src/simulator/index.ts';
import { opusLoop } from '../src/simulator/opus-cache.ts';
import type { Manifest } from '../src/sinks/capture-layout.ts';
import { ExitCode, exitCodeOf } from '../src/commands/exit-codes.ts';
import { BIN, ROOT, baseEnv, collect, runCli } from './cli-helpers.ts';
import { BLOCK, CHANNEL, GUILD, TOKEN, TONE_PEAK, onsetMs, readWavLeft, scenario, toneAmplitude } from './record-fixtures.ts';
import { cleanupDirs, member, offsetMs, silentMs, tempDir } from './fault-fixtures.ts';
import { decodeAudio } from './decoders.ts';
import { noFfmpegEnv } from './format-fixtures.ts';
import { needs } from './strict.ts';

after(cleanupDirs);

const HZ = [400, 650];
const wallNow = (): number => performance.timeOrigin + performance.now();

function recordArgs(out: string, extra: string[] = []): string[] {
  return ['record', '--guild', GUILD, '--channel', CHANNEL, '--out', out, '--duration', '60s', ...extra];
}
function recordEnv(sim: Simulator): NodeJS.ProcessEnv {
  return baseEnv({ DISCORD_TOKEN: TOKEN, DVREC_API_URL: sim.apiUrl, NODE_EXTRA_CA_CERTS: sim.caCertPath });
}

/** Waits for the simulator's session start (scenario t=0), then `ms` more; returns the wall time. */
function afterSessionStart(sim: Simulator, ms: number): Promise<number> {
  return new Promise((resolve) => sim.events.once('session-start', () => setTimeout(() => resolve(wallNow()), ms)));
}

/** Left channel of a stereo track as s16, whatever its format (decoded without ffmpeg: test/decoders.ts). */
async function decodeLeft(path: string): Promise<Int16Array> {
  if (path.endsWith('.wav')) return readWavLeft(path);
  const d = await decodeAudio(path);
  return Int16Array.from(d.channels[0]!, (v) => Math.round(v * 32768));
}

for (const format of ['wav', 'mp3'] as const) {
  test(`SIGKILL of dvrec record (${format}), then dvrec convert DIR recovers all but ≤ 1 s of every track`, async (t) => {
    const members = [member(1, HZ[0]!, [[300, 1200], [2000, 3000]]), member(2, HZ[1]!, [[800, 4200]])];
    for (const m of members) opusLoop(m.signal);
    const sim = await startSimulator(scenario(members));
    const out = join(tempDir('dvrec-crash-'), 'rec');
    try {
      const child = spawn(process.execPath, [BIN, ...recordArgs(out, ['--format', format])], { cwd: ROOT, env: recordEnv(sim), stdio: ['ignore', 'pipe', 'pipe'] });
      const done = collect(child, 60_000);
      // Kill while both members speak (member 1's second spurt and member 2 run until ~5 s).
      const killWall = await afterSessionStart(sim, 4000);
      child.kill('SIGKILL');
      const r = await done;
      assert.equal(r.signal, 'SIGKILL', `killed (exit ${r.code}): ${r.stderr}`);
      const truth = sim.truth();
      assert.ok(existsSync(join(out, 'capture.json')), 'a journal was left');
      assert.ok(!existsSync(join(out, 'manifest.json')), 'not finished by the killed process');

      // Recovered where no ffmpeg can be found (PATH, FFMPEG_PATH, ffmpeg-static hidden): the embedded encoders.
      const conv = await runCli(['convert', out], { env: noFfmpegEnv(baseEnv()) });
      assert.equal(conv.code, 0, `convert: ${conv.stderr}${conv.stdout}`);
      assert.match(conv.stdout + conv.stderr, /recovered \d+\.\d s/);
      const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest;
      assert.equal(manifest.recovered, true);
      assert.equal(manifest.tracks.length, 2);
      for (const tr of manifest.tracks) assert.equal(tr.encoder, format === 'mp3' ? 'lame-wasm' : 'wav-in-place');
      const t0 = Date.parse(manifest.startedAt);
      const kill = killWall - t0;
      const slack = 20; // MP3 too: its LAME tag makes decoders cut the encoder delay exactly
      const figures: string[] = [];
      const onsets: string[] = [];
      for (const [i, mem] of members.entries()) {
        const tr = manifest.tracks.find((x) => x.userId === mem.userId)!;
        assert.ok(tr.file.endsWith(`.${format}`), tr.file);
        const x = await decodeLeft(join(out, tr.file));
        assert.ok(Math.abs(x.length / 48 - manifest.durationMs) <= 60, `${tr.file}: ${x.length / 48} ms vs ${manifest.durationMs}`);
        let lastAudio = 0;
        for (const s of truth.members[i]!.spurts) {
          const start = s.onsetWallMs - t0;
          const end = Math.min(s.endWallMs - t0, kill);
          if (start >= kill - 1000) continue;
          const on = onsetMs(x, start - 100, start + 200);
          assert.ok(on !== null && Math.abs(on - start) <= slack, `${tr.file}: onset ${on?.toFixed(1)} vs truth ${start.toFixed(1)}`);
          onsets.push((on! - start).toFixed(1));
          // Everything of the spurt is there up to at most 1 s before the kill.
          const mustUntil = Math.min(end, kill - 1000);
          const gap = silentMs(x, start + 30, mustUntil - 30, 300);
          assert.ok(gap <= (format === 'mp3' ? 5 : 0), `${tr.file}: ${gap} ms missing between ${start.toFixed(0)} and ${mustUntil.toFixed(0)} ms`);
          lastAudio = offsetMs(x, start, end + 100) ?? lastAudio;
        }
        figures.push(`${tr.file}: audio until ${lastAudio.toFixed(0)} ms, kill at ${kill.toFixed(0)} ms → lost ${(kill - lastAudio).toFixed(0)} ms`);
        assert.ok(kill - lastAudio <= 1000, figures.at(-1));
      }
      t.diagnostic(`${format}: recovered ${(manifest.durationMs / 1000).toFixed(2)} s; onset − truth (ms): ${onsets.join(', ')}; ${figures.join('; ')}`);
    } finally {
      await sim.close();
    }
  });
}

test('record --force into the directory of a SIGKILLed recording: the old capture is moved aside whole, the new recording holds only its own audio', async (t) => {
  // The killed run: three speakers (400, 650, 1000 Hz), all talking at the kill.
  const old = [member(1, 400, [[200, 4000]]), member(2, 650, [[300, 4000]]), member(3, 1000, [[400, 4000]])];
  for (const m of old) opusLoop(m.signal);
  const out = join(tempDir('dvrec-force-'), 'rec');
  const sim1 = await startSimulator(scenario(old));
  let killRel: number;
  try {
    const child = spawn(process.execPath, [BIN, ...recordArgs(out)], { cwd: ROOT, env: recordEnv(sim1), stdio: ['ignore', 'pipe', 'pipe'] });
    const done = collect(child, 60_000);
    const killWall = await afterSessionStart(sim1, 2500);
    child.kill('SIGKILL');
    assert.equal((await done).signal, 'SIGKILL');
    killRel = killWall;
  } finally {
    await sim1.close();
  }
  assert.ok(existsSync(join(out, 'capture.json')) && !existsSync(join(out, 'manifest.json')), 'the killed run left its capture');

  // The new run, in the same directory with --force: members 1 and 2 speak new tones; member 3 is not there.
  const fresh = [member(1, 1300, [[100, 700]]), member(2, 1700, [[200, 600]])];
  for (const m of fresh) opusLoop(m.signal);
  const sim2 = await startSimulator(scenario(fresh, { dave: false }));
  let r;
  try {
    r = await runCli(recordArgs(out, ['--duration', '1', '--force', '--json']), { env: recordEnv(sim2) });
  } finally {
    await sim2.close();
  }
  assert.equal(r.code, 0, r.stderr);
  const asides = readdirSync(out).filter((f) => f.startsWith('unfinished-'));
  assert.equal(asides.length, 1, `one set-aside directory: ${readdirSync(out).join(', ')}`);
  const aside = join(out, asides[0]!);
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; message?: string; manifest?: Manifest });
  assert.ok(events.some((e) => e.event === 'warning' && e.message === `${out} held an unfinished recording: moved it to ${aside}; finish it with dvrec convert ${aside}`), JSON.stringify(events.filter((e) => e.event === 'warning')));
  const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest;
  assert.deepEqual(manifest.tracks.map((x) => x.userId).sort(), fresh.map((m) => m.userId).sort(), 'only the new run\'s speakers');
  for (const [i, m] of fresh.entries()) {
    const x = readWavLeft(join(out, manifest.tracks.find((tr) => tr.userId === m.userId)!.file));
    // The new tone is there; the old run's tone for the same member is nowhere in the track.
    let oldMax = 0;
    let newMax = 0;
    for (let s = 0; s + BLOCK <= x.length; s += BLOCK) {
      oldMax = Math.max(oldMax, toneAmplitude(x, s, BLOCK, (old[i]!.signal as { hz: number }).hz));
      newMax = Math.max(newMax, toneAmplitude(x, s, BLOCK, (m.signal as { hz: number }).hz));
    }
    assert.ok(newMax > 0.5 * TONE_PEAK && oldMax < 0.05 * TONE_PEAK, `${m.username}: new tone ${newMax.toFixed(0)}, old tone ${oldMax.toFixed(0)}`);
  }
  assert.ok(!readdirSync(out).some((f) => f.startsWith('Member') && !manifest.tracks.some((tr) => tr.file === f)), `no file of the old run beside the new one: ${readdirSync(out).join(', ')}`);

  // The old run is still a recording of its own: convert finishes it there, with its three speakers.
  const conv = await runCli(['convert', aside], { env: noFfmpegEnv(baseEnv()) });
  assert.equal(conv.code, 0, `convert: ${conv.stderr}${conv.stdout}`);
  const recovered = JSON.parse(readFileSync(join(aside, 'manifest.json'), 'utf8')) as Manifest;
  assert.equal(recovered.recovered, true);
  assert.equal(recovered.tracks.length, 3);
  const kill = killRel - Date.parse(recovered.startedAt);
  for (const [i, m] of old.entries()) {
    const x = readWavLeft(join(aside, recovered.tracks.find((tr) => tr.userId === m.userId)!.file));
    const start = 200 + i * 100;
    assert.equal(silentMs(x, start + 100, kill - 1000), 0, `${m.username}: old audio intact in the set-aside recording`);
  }
  t.diagnostic(`old run killed at ${kill.toFixed(0)} ms, moved to ${asides[0]}; new run: ${manifest.tracks.length} tracks, ${manifest.durationMs} ms`);
});

test('a file-size limit (RLIMIT_FSIZE) stops dvrec record with exit 9 and a clear message; captures kept', async (t) => {
  let prlimit = true;
  try {
    execFileSync('prlimit', ['--version'], { stdio: 'ignore' });
  } catch {
    prlimit = false;
  }
  if (needs(t, prlimit, 'prlimit (util-linux) is not installed')) return;
  const members = [member(1, HZ[0]!, [[200, 8000]]), member(2, HZ[1]!, [[300, 8000]])];
  for (const m of members) opusLoop(m.signal);
  const sim = await startSimulator(scenario(members, { dave: false }));
  const out = join(tempDir('dvrec-fsize-'), 'rec');
  try {
    // 400 KB per file ≈ 2 s of stereo 48 kHz audio per track.
    const child = spawn('prlimit', ['--fsize=400000', '--', process.execPath, BIN, ...recordArgs(out, ['--duration', '10s'])], {
      cwd: ROOT, env: recordEnv(sim), stdio: ['ignore', 'pipe', 'pipe'],
    });
    const r = await collect(child, 60_000);
    assert.equal(r.code, ExitCode.OUTPUT, `exit ${r.code}: ${r.stderr}`);
    const line = r.stderr.trim().split('\n').at(-1)!;
    assert.match(line, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d dvrec: .*(file size limit reached|disk full|cannot write).*EFBIG.*stopped at \d+\.\d s/, r.stderr);
    assert.ok(!r.stderr.includes(TOKEN) && !r.stdout.includes(TOKEN));
    // Whatever happened to the finishing step, the audio is on disk: finished tracks or captures to convert.
    const files = readdirSync(out, { recursive: true }).map(String);
    const wavs = files.filter((f) => f.endsWith('.wav'));
    assert.equal(wavs.length, 2, files.join(','));
    for (const f of wavs) {
      const x = readWavLeft(join(out, f));
      const s = x.length / 48;
      assert.ok(s > 1000, `${f}: ${s.toFixed(0)} ms kept`);
      assert.ok(silentMs(x, 600, s - 100) === 0, `${f}: audio intact`);
    }
    t.diagnostic(`${line}; kept ${files.join(', ')}`);
  } finally {
    await sim.close();
  }
});
