/**
 * `dvrec record` end to end through the local simulator, as a child process without a TTY: every flag at
 * once (which also proves that no flag breaks the native codec's loader), --json events, the stop
 * controls (--stop-when-empty, --max-size), a graceful first signal, and a second signal that leaves a
 * capture `dvrec convert DIR` finishes.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { spawnSync } from 'node:child_process';
import { ExitCode, exitCodeOf } from '../src/commands/exit-codes.ts';
import type { Manifest } from '../src/sinks/capture-layout.ts';
import { startSimulator, type Scenario, type Simulator } from '../src/simulator/index.ts';
import { ANSI, baseEnv, collect, errorLines, runCli, startCli, waitForOutput, type CliResult } from './cli-helpers.ts';
import { smallFilesystem } from './private-mount.ts';
import { needs } from './strict.ts';

const GUILD = '1200000000000000001';
const VOICE = '1200000000000000002';
const ANN = '1200000000000000101';
const BEN = '1200000000000000102';
const TOKEN = 'MTIwMDAwMDAwMDAwMDAwMDAwMw.Grec01.record-test-token-abcdefghijklmnop';

function scenario(extra: Partial<Scenario> = {}, members: Partial<Scenario['members'][number]> = {}): Scenario {
  return {
    seed: 11,
    guildId: GUILD,
    guildName: 'Record Guild',
    channelId: VOICE,
    channelName: 'Studio',
    botUserId: '1200000000000000003',
    token: TOKEN,
    dave: true,
    members: [
      { userId: ANN, username: 'ann', displayName: 'Ann', signal: { kind: 'tone', hz: 300 }, spurts: [{ atMs: 100, durationMs: 30_000 }], ...members },
      { userId: BEN, username: 'ben', displayName: 'Ben', signal: { kind: 'tone', hz: 500 }, spurts: [{ atMs: 200, durationMs: 30_000 }], ...members },
    ],
    ...extra,
  };
}

const work = mkdtempSync(join(tmpdir(), 'dvrec-rec-'));
after(() => rmSync(work, { recursive: true, force: true }));

function env(sim: Simulator, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return baseEnv({ DISCORD_TOKEN: TOKEN, DVREC_API_URL: sim.apiUrl, NODE_EXTRA_CA_CERTS: sim.caCertPath, ...extra });
}

interface Event {
  event: string;
  time: string;
  phase?: string;
  reason?: string;
  manifest?: Manifest;
  dir?: string;
  bytesWritten?: number;
}

function parseEvents(stdout: string): Event[] {
  const lines = stdout.trim().split('\n');
  return lines.map((l) => {
    const e = JSON.parse(l) as Event; // throws (fails the test) on any non-JSON line
    assert.equal(typeof e.event, 'string');
    assert.ok(!Number.isNaN(Date.parse(e.time)), 'every event has an ISO time');
    return e;
  });
}

function stopReason(events: Event[]): string | undefined {
  return events.find((e) => e.event === 'phase' && e.phase === 'stopping')?.reason;
}

describe('record through the simulator', { concurrency: 2 }, () => {
  test('every flag at once, --json: events parse, options take effect', async () => {
    const sim = await startSimulator(scenario());
    try {
      const tokenFile = join(work, 'token');
      writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
      // --force must allow recording over an old recording directory.
      const today = new Date();
      const p = (x: number) => String(x).padStart(2, '0');
      const dir = join(work, `${GUILD}-${VOICE}-${today.getFullYear()}-${p(today.getMonth() + 1)}-${p(today.getDate())}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'manifest.json'), '{"stale":true}');
      const ffmpeg = spawnSync('sh', ['-c', 'command -v ffmpeg'], { encoding: 'utf8' }).stdout.trim();
      const args = [
        'record', '--guild', GUILD, '--channel', VOICE,
        '--out', '{guild}-{channel}-{date}', '--format', 'mp3', '--mono', '--bitrate', '64', '--mix',
        '--duration', '3s', '--max-size', '1G', '--stop-when-empty', '1m', '--users', ANN,
        '--force', '--json', '--token-file', tokenFile, '--api-url', sim.apiUrl,
        ...(ffmpeg ? ['--ffmpeg', ffmpeg] : []),
      ];
      const r = await runCli(args, { env: env(sim, { DISCORD_TOKEN: 'MTIwMDAwMDAwMDAwMDAwMDAwMw.Gwrong.not-the-token-from-the-file' }), cwd: work });
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout + r.stderr, ANSI);
      assert.ok(!(r.stdout + r.stderr).includes(TOKEN));
      const events = parseEvents(r.stdout);
      const phases = events.filter((e) => e.event === 'phase').map((e) => e.phase);
      for (const ph of ['connecting', 'recording', 'stopping']) assert.ok(phases.includes(ph), `phase ${ph} in ${phases.join(',')}`);
      assert.ok(phases.indexOf('connecting') < phases.indexOf('recording'));
      assert.ok(events.some((e) => e.event === 'status'), 'status events while recording');
      assert.equal(stopReason(events), 'duration');
      const done = events.at(-1)!;
      assert.equal(done.event, 'done');
      const m = done.manifest!;
      assert.equal(done.dir, dir);
      assert.equal(m.format, 'mp3');
      assert.deepEqual(m.tracks.map((t) => t.userId), [ANN], '--users keeps only Ann');
      assert.ok(Math.abs(m.durationMs - 3000) < 500, `duration ${m.durationMs}`);
      const mp3 = readFileSync(join(dir, m.tracks[0]!.file));
      assert.ok(mp3.length > 1000);
      assert.ok(mp3.toString('latin1', 0, 3) === 'ID3' || (mp3[0] === 0xff && (mp3[1]! & 0xe0) === 0xe0), 'an MP3 file');
      assert.ok(m.mix && existsSync(join(dir, m.mix)), '--mix wrote the mix');
      assert.notDeepEqual(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')), { stale: true });
    } finally {
      await sim.close();
    }
  });

  test('--stop-when-empty stops once everyone has left', async () => {
    const sim = await startSimulator(scenario({}, { leaveAtMs: 1500, spurts: [{ atMs: 100, durationMs: 1000 }] }));
    try {
      const out = join(work, 'empty');
      const r = await runCli(['record', '--guild', GUILD, '--channel', VOICE, '--out', out, '--stop-when-empty', '1s', '--duration', '30', '--json'], { env: env(sim) });
      assert.equal(r.code, 0, r.stderr);
      const events = parseEvents(r.stdout);
      assert.equal(stopReason(events), 'empty-channel');
      const m = events.at(-1)!.manifest!;
      assert.ok(m.durationMs < 10_000, `stopped early: ${m.durationMs} ms`);
      assert.equal(m.tracks.length, 2);
    } finally {
      await sim.close();
    }
  });

  test('--max-size stops once the captures reach the size', async () => {
    const sim = await startSimulator(scenario());
    try {
      const out = join(work, 'maxsize');
      const r = await runCli(['record', '--guild', GUILD, '--channel', VOICE, '--out', out, '--max-size', '1M', '--duration', '30', '--json'], { env: env(sim) });
      assert.equal(r.code, 0, r.stderr);
      const events = parseEvents(r.stdout);
      assert.equal(stopReason(events), 'max-size');
      assert.ok(events.at(-1)!.manifest!.durationMs < 20_000);
    } finally {
      await sim.close();
    }
  });
});

describe('signals', { concurrency: 2 }, () => {
  test('first SIGINT stops gracefully: exit 0, files finished', async () => {
    const sim = await startSimulator(scenario());
    try {
      const out = join(work, 'sigint');
      const child = startCli(['record', '--guild', GUILD, '--channel', VOICE, '--out', out, '--json'], { env: env(sim) });
      const result = collect(child);
      await waitForOutput(child, (s) => /"event":"status".*"bytesWritten":[1-9]/.test(s));
      child.kill('SIGINT');
      const r = await result;
      assert.equal(r.code, 0, r.stderr);
      const events = parseEvents(r.stdout);
      assert.ok(events.some((e) => e.event === 'stopping'), 'the signal was acknowledged');
      assert.equal(stopReason(events), 'signal');
      const m = events.at(-1)!.manifest!;
      assert.equal(m.tracks.length, 2);
      const sizes = m.tracks.map((t) => statSync(join(out, t.file)).size);
      assert.equal(new Set(sizes).size, 1, `equal-length tracks: ${sizes.join(', ')}`);
      assert.ok(existsSync(join(out, 'manifest.json')));
    } finally {
      await sim.close();
    }
  });

  test('a second signal exits at once (130) and `dvrec convert DIR` finishes the capture', async () => {
    const sim = await startSimulator(scenario());
    try {
      const out = join(work, 'sigint2');
      const child = startCli(['record', '--guild', GUILD, '--channel', VOICE, '--out', out, '--json'], { env: env(sim) });
      const result = collect(child);
      await waitForOutput(child, (s) => /"event":"status".*"bytesWritten":[1-9]/.test(s));
      await new Promise((r) => setTimeout(r, 1200)); // let the journal see both speakers
      // Two different signals: two pending SIGINTs could be merged into one by the kernel.
      child.kill('SIGINT');
      child.kill('SIGTERM');
      const r = await result;
      assert.equal(r.code, ExitCode.INTERRUPTED, r.stderr);
      assert.match(r.stderr, new RegExp(`dvrec: second stop signal \\(SIG(INT|TERM)\\): stopped at once; .*dvrec convert ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      assert.ok(!existsSync(join(out, 'manifest.json')), 'not finished');
      // The second signal races the stop sequence the first one began: if that got as far as the final journal
      // (the stop instant written), convert finishes a clean stop; otherwise it recovers a capture cut short.
      const journal = JSON.parse(readFileSync(join(out, 'capture.json'), 'utf8')) as { endedAt?: string };
      const c = await runCli(['convert', out, '--json']);
      assert.equal(c.code, 0, c.stderr);
      const done = parseEvents(c.stdout).at(-1)!;
      assert.equal(done.event, 'done');
      assert.equal(done.manifest!.recovered, journal.endedAt === undefined ? true : undefined);
      assert.equal(done.manifest!.tracks.length, 2);
      for (const t of done.manifest!.tracks) assert.ok(statSync(join(out, t.file)).size > 44 + 48_000 * 4 * 0.5, `${t.file} holds audio`);
    } finally {
      await sim.close();
    }
  });
});

describe('a recording that stops on an error still reports its files', { concurrency: 2 }, () => {
  /**
   * A 1 MiB tmpfs for the output: the disk fills ~2 s into the recording, dvrec stops, and the space it held
   * back lets it finish the files (see recording.ts, RESERVE_BYTES). Mounted in a private mount namespace
   * (test/private-mount.ts: root with CAP_SYS_ADMIN, or an unprivileged user namespace), as the engine-level
   * disk-full test in faults.test.ts; the CLI writes to it through /proc/<pid>/root. Without either, the test fails
   * on CI (strict.ts) and is skipped elsewhere.
   */
  async function recordOntoFullDisk(
    t: TestContext,
    name: string,
    extra: string[],
  ): Promise<{ r: CliResult; out: string; sizes: Record<string, number>; manifest: string | undefined } | undefined> {
    const mnt = join(work, `${name}-mnt`);
    mkdirSync(mnt);
    const fs = await smallFilesystem(mnt, 1024);
    if (needs(t, fs !== null, 'cannot mount a 1 MiB tmpfs: needs CAP_SYS_ADMIN (root) or unprivileged user namespaces (unshare -rm)')) return undefined;
    const sim = await startSimulator(scenario());
    try {
      const out = join(fs!.path, 'rec');
      const r = await runCli(['record', '--guild', GUILD, '--channel', VOICE, '--out', out, '--duration', '20', ...extra], { env: env(sim) });
      // The files are read before the tmpfs goes away.
      const sizes = Object.fromEntries(readdirSync(out).map((f) => [f, statSync(join(out, f)).size]));
      const manifest = existsSync(join(out, 'manifest.json')) ? readFileSync(join(out, 'manifest.json'), 'utf8') : undefined;
      t.diagnostic(`files: ${JSON.stringify(sizes)}`);
      return { r, out, sizes, manifest };
    } finally {
      await sim.close();
      fs!.release();
    }
  }

  test('--json: the done event with the manifest, then the error event; exit 9', async (t) => {
    const run = await recordOntoFullDisk(t, 'full-json', ['--json']);
    if (!run) return;
    const { r, out, sizes, manifest } = run;
    assert.equal(r.code, ExitCode.OUTPUT, r.stderr);
    const events = parseEvents(r.stdout);
    assert.equal(stopReason(events), 'error');
    const [done, error] = events.slice(-2) as [Event, Event & { message: string; exitCode: number }];
    assert.equal(done.event, 'done', `done before the error: ${events.map((e) => e.event).join(',')}`);
    assert.equal(done.dir, out);
    assert.equal(done.manifest!.tracks.length, 2);
    for (const tr of done.manifest!.tracks) assert.ok(sizes[tr.file]! > 44 + 48_000 * 4 / 2, `${tr.file} holds audio: ${sizes[tr.file]} bytes`);
    assert.deepEqual(JSON.parse(manifest!), done.manifest, 'the manifest on disk');
    assert.equal(error.event, 'error');
    assert.equal(error.exitCode, ExitCode.OUTPUT);
    assert.match(error.message, /disk full \((ENOSPC|EDQUOT)\).*stopped at \d+\.\d s; everything captured until then is kept/);
  });

  test('text: the files are listed on stdout, then the timestamped error line on stderr; exit 9', async (t) => {
    const run = await recordOntoFullDisk(t, 'full-text', []);
    if (!run) return;
    const { r, out } = run;
    assert.equal(r.code, ExitCode.OUTPUT, r.stderr);
    assert.match(r.stdout, new RegExp(`^Recorded \\d+\\.\\d s, 2 tracks \\(wav\\) in ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    assert.match(r.stdout, /^ {2}Ann-1200000000000000101\.wav {2}Ann/m);
    assert.match(r.stdout, /^ {2}Ben-1200000000000000102\.wav {2}Ben/m);
    const errs = errorLines(r.stderr);
    assert.equal(errs.length, 1, r.stderr);
    assert.match(errs[0]!, /^dvrec: disk full/);
    assert.match(r.stderr.trim().split('\n').at(-1)!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d dvrec: disk full/, 'the error is the last line');
    for (const line of r.stderr.trim().split('\n')) assert.match(line, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d /, `timestamped: ${line}`);
  });
});
