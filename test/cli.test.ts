/**
 * The command line without Discord: help and version, every kind of bad value (one line, exit 2, no
 * connection attempted), token and output errors, convert, doctor, output without a TTY, --json, and the
 * manual page. The CLI runs as a child process, as cron would run it (pipes, no TTY).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ExitCode } from '../src/errors.ts';
import { ANSI, ROOT, baseEnv, connectionCounter, runCli } from './cli-helpers.ts';

const G = '1180000000000000001';
const C = '1180000000000000002';
const TOKEN = 'MTE4MDAwMDAwMDAwMDAwMDAwMw.Gabcde.cli-test-token-never-printed-123';

const work = mkdtempSync(join(tmpdir(), 'dvrec-cli-'));
after(() => rmSync(work, { recursive: true, force: true }));

function assertOneLineError(stderr: string, pattern: RegExp): void {
  const lines = stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${stderr}`);
  assert.match(lines[0]!, /^dvrec: /);
  assert.match(lines[0]!, pattern);
}

describe('help and version', () => {
  test('--version prints package.json version', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await runCli(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), pkg.version);
  });
  test('--help lists every command with examples; each command has its own examples', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    for (const cmd of ['record', 'convert', 'demo', 'doctor']) assert.match(r.stdout, new RegExp(`^\\s+${cmd}\\b`, 'm'));
    assert.match(r.stdout, /Examples:/);
    for (const cmd of ['record', 'convert', 'demo', 'doctor']) {
      const h = await runCli([cmd, '--help']);
      assert.equal(h.code, 0, cmd);
      assert.match(h.stdout, /Examples?:\n(?:\s+.*\n)*?\s+dvrec \w/, `${cmd} --help has examples`);
      assert.doesNotMatch(h.stdout, ANSI);
    }
  });
  test('no command: help on stderr, usage exit', async () => {
    const r = await runCli([]);
    assert.equal(r.code, ExitCode.USAGE);
    assert.match(r.stderr, /Usage: dvrec/);
  });
});

describe('record: every bad value is one line, exit 2, and nothing connects', { concurrency: 2 }, () => {
  let counter: Awaited<ReturnType<typeof connectionCounter>>;
  before(async () => {
    counter = await connectionCounter();
  });
  after(() => counter.close());

  const ok = ['record', '--guild', G, '--channel', C];
  const cases: [string, string[], RegExp][] = [
    ['short guild id', ['record', '--guild', '123', '--channel', C], /--guild: '123' is not a Discord id/],
    ['non-numeric channel', ['record', '--guild', G, '--channel', 'general'], /--channel: 'general'/],
    ['missing guild', ['record', '--channel', C], /--guild is required/],
    ['missing channel', ['record', '--guild', G], /--channel is required/],
    ['guild without value', ['record', '--channel', C, '--guild'], /--guild <id>' argument missing/],
    ['bad duration', [...ok, '--duration', '10 minutes'], /--duration: '10 minutes' is not a duration/],
    ['zero duration', [...ok, '--duration', '0s'], /--duration: '0s' must be longer than zero/],
    ['bad size', [...ok, '--max-size', 'lots'], /--max-size: 'lots' is not a size/],
    ['bad format', [...ok, '--format', 'aac'], /--format: 'aac' is not a format/],
    ['bitrate with wav', [...ok, '--bitrate', '128'], /--bitrate applies to --format mp3 only/],
    ['odd mp3 bitrate', [...ok, '--format', 'mp3', '--bitrate', '100'], /not an MP3 bitrate/],
    ['bad empty grace', [...ok, '--stop-when-empty', 'later'], /--stop-when-empty: 'later'/],
    ['bad user id', [...ok, '--users', `${G},bob`], /--users: 'bob'/],
    ['unknown template key', [...ok, '--out', 'rec/{server}'], /unknown placeholder '\{server\}'/],
    ['bad api url', [...ok, '--api-url', 'localhost:80'], /--api-url: 'localhost:80' (is not a URL|must be an http)/],
    ['mono opus', [...ok, '--format', 'opus', '--mono'], /--mono cannot be used with --format opus/],
    ['unknown option', [...ok, '--colour'], /unknown option '--colour'/],
    ['stray argument', [...ok, 'extra'], /too many arguments/],
    ['unknown command', ['recrod'], /unknown command 'recrod'.*Did you mean record/],
  ];
  for (const [name, args, pattern] of cases) {
    test(name, async () => {
      const before = counter.count();
      const r = await runCli(args, { env: baseEnv({ DISCORD_TOKEN: TOKEN, DVREC_API_URL: counter.url }), cwd: work });
      assert.equal(r.code, ExitCode.USAGE, r.stderr);
      assertOneLineError(r.stderr, pattern);
      assert.equal(r.stdout, '');
      assert.equal(counter.count(), before, 'no connection was attempted');
      assert.ok(!existsSync(join(work, 'recordings')), 'no output directory was created');
    });
  }
  test('bad DVREC_API_URL from the environment', async () => {
    const r = await runCli(ok, { env: baseEnv({ DISCORD_TOKEN: TOKEN, DVREC_API_URL: 'ftp://x' }), cwd: work });
    assert.equal(r.code, ExitCode.USAGE);
    assertOneLineError(r.stderr, /DVREC_API_URL: 'ftp:\/\/x' must be an http/);
  });
});

describe('record: token and output problems are caught before connecting', () => {
  let counter: Awaited<ReturnType<typeof connectionCounter>>;
  before(async () => {
    counter = await connectionCounter();
  });
  after(() => counter.close());
  const ok = ['record', '--guild', G, '--channel', C];

  test('no token → AUTH', async () => {
    const r = await runCli(ok, { env: baseEnv({ DVREC_API_URL: counter.url }), cwd: work });
    assert.equal(r.code, ExitCode.AUTH);
    assertOneLineError(r.stderr, /no bot token: set DISCORD_TOKEN or pass --token-file/);
    assert.equal(counter.count(), 0);
  });
  test('unreadable token file → AUTH, and the file name is shown but never a token', async () => {
    const r = await runCli([...ok, '--token-file', join(work, 'missing-token')], {
      env: baseEnv({ DISCORD_TOKEN: TOKEN, DVREC_API_URL: counter.url }),
      cwd: work,
    });
    assert.equal(r.code, ExitCode.AUTH);
    assertOneLineError(r.stderr, /cannot read token file .*missing-token \(ENOENT\)/);
    assert.ok(!r.stderr.includes(TOKEN));
  });
  test('output under a regular file → OUTPUT', async () => {
    writeFileSync(join(work, 'plainfile'), 'x');
    const r = await runCli([...ok, '--out', join(work, 'plainfile', 'rec')], { env: baseEnv({ DISCORD_TOKEN: TOKEN, DVREC_API_URL: counter.url }) });
    assert.equal(r.code, ExitCode.OUTPUT);
    assertOneLineError(r.stderr, /cannot create output directory .*not a writable directory/);
    assert.equal(counter.count(), 0);
  });
  test('a directory holding a recording needs --force → OUTPUT', async () => {
    const dir = join(work, 'old-rec');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'capture.json'), '{}');
    const r = await runCli([...ok, '--out', dir], { env: baseEnv({ DISCORD_TOKEN: TOKEN, DVREC_API_URL: counter.url }) });
    assert.equal(r.code, ExitCode.OUTPUT);
    assertOneLineError(r.stderr, /already holds a recording \(capture\.json\).*--force/);
  });
  test('a broken --ffmpeg → ENCODER before connecting (FLAC itself needs no ffmpeg: see formats.test.ts)', async () => {
    const r2 = await runCli([...ok, '--ffmpeg', join(work, 'plainfile'), '--out', join(work, 'ff')], {
      env: baseEnv({ DISCORD_TOKEN: TOKEN, DVREC_API_URL: counter.url }),
    });
    assert.equal(r2.code, ExitCode.ENCODER, r2.stderr);
    assertOneLineError(r2.stderr, /--ffmpeg .*plainfile: not a working ffmpeg/);
    assert.equal(counter.count(), 0);
  });
  test('an unreachable API → NETWORK (the first error that needs a connection)', async () => {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    const r = await runCli([...ok, '--out', join(work, 'net')], {
      env: baseEnv({ DISCORD_TOKEN: TOKEN, DVREC_API_URL: 'http://127.0.0.1:1/api' }),
      timeoutMs: 90_000,
    });
    assert.equal(r.code, ExitCode.NETWORK, r.stderr);
    assert.match(r.stderr.trim().split('\n').pop()!, /^dvrec: /);
    assert.ok(!(r.stdout + r.stderr).includes(TOKEN), 'token not printed');
    assert.doesNotMatch(r.stdout + r.stderr, ANSI);
  });
});

describe('convert', () => {
  const pcm = join(work, 'tone.pcm');
  before(() => {
    // One second of a 440 Hz tone, s16le stereo 48 kHz.
    const b = Buffer.alloc(48_000 * 4);
    for (let i = 0; i < 48_000; i++) {
      const v = Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 48_000));
      b.writeInt16LE(v, 4 * i);
      b.writeInt16LE(v, 4 * i + 2);
    }
    writeFileSync(pcm, b);
  });
  test('raw PCM to WAV without a TTY: plain lines, no escape codes, the file listed on stdout', async () => {
    const r = await runCli(['convert', pcm]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, ANSI);
    for (const line of r.stderr.trim().split('\n')) assert.match(line, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d /, `timestamped: ${line}`);
    assert.match(r.stdout, /tone\.wav/);
    const wav = readFileSync(join(work, 'tone.wav'));
    assert.equal(wav.toString('ascii', 0, 4), 'RIFF');
    assert.equal(wav.length, 44 + 48_000 * 4);
  });
  test('--json: every line is a JSON event, ending with done', async () => {
    const r = await runCli(['convert', pcm, '--format', 'mp3', '--json', '-o', join(work, 'tone-json.mp3')]);
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; time: string; files?: string[] });
    assert.ok(events.length >= 2);
    for (const e of events) assert.ok(typeof e.event === 'string' && !Number.isNaN(Date.parse(e.time)));
    const done = events.at(-1)!;
    assert.equal(done.event, 'done');
    assert.deepEqual(done.files, [join(work, 'tone-json.mp3')]);
    assert.ok(existsSync(join(work, 'tone-json.mp3')));
  });
  test('existing output without --force → OUTPUT; missing input / non-recording dir → INPUT', async () => {
    const r = await runCli(['convert', pcm]);
    assert.equal(r.code, ExitCode.OUTPUT);
    assertOneLineError(r.stderr.split('\n').filter((l) => l.startsWith('dvrec:')).join('\n'), /already exists/);
    const missing = await runCli(['convert', join(work, 'nope.pcm')]);
    assert.equal(missing.code, ExitCode.INPUT);
    assertOneLineError(missing.stderr, /nope\.pcm: no such file or directory/);
    const dir = await runCli(['convert', work]);
    assert.equal(dir.code, ExitCode.INPUT);
    assertOneLineError(dir.stderr, /is not a dvrec recording directory/);
  });
  test('raw-only options are refused for a recording directory; bad raw parameters are usage errors', async () => {
    const rec = join(work, 'rec-dir');
    mkdirSync(rec, { recursive: true });
    writeFileSync(join(rec, 'capture.json'), '{}');
    const r = await runCli(['convert', rec, '--format', 'mp3']);
    assert.equal(r.code, ExitCode.USAGE);
    assertOneLineError(r.stderr, /--format applies to raw input/);
    for (const [args, pat] of [
      [['--rate', '48k'], /--rate/],
      [['--channels', '9'], /--channels/],
      [['--format', 'mp3', '--bitrate', '1000'], /not an MP3 bitrate/],
    ] as [string[], RegExp][]) {
      const b = await runCli(['convert', pcm, ...args]);
      assert.equal(b.code, ExitCode.USAGE, args.join(' '));
      assertOneLineError(b.stderr, pat);
    }
  });
});

describe('doctor', () => {
  test('loads the codecs in-process and reports; --json parses', async () => {
    const r = await runCli(['doctor', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { ok: boolean; checks: { name: string; ok: boolean }[] };
    assert.equal(res.ok, true);
    assert.ok(res.checks.find((c) => c.name === '@discordjs/opus')?.ok, '@discordjs/opus loads');
    const plain = await runCli(['doctor']);
    assert.match(plain.stdout, /dvrec can record here/);
    assert.doesNotMatch(plain.stdout + plain.stderr, ANSI);
  });
});

describe('manual page', () => {
  test('renders with man(1) without warnings, and documents every exit code and option', () => {
    const page = join(ROOT, 'man', 'dvrec.1');
    const r = spawnSync('man', ['--warnings', '-l', page], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '80', MAN_KEEP_FORMATTING: '' } });
    assert.equal(r.error, undefined, 'man is installed (apt-get install man-db groff)');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', `man warnings:\n${r.stderr}`);
    const text = r.stdout.replace(/.\u0008/g, '');
    for (const code of Object.values(ExitCode)) assert.match(text, new RegExp(`^\\s+${code}\\s*$|^\\s+${code}\\s+\\S`, 'm'), `exit code ${code}`);
    for (const opt of ['--guild', '--channel', '--out', '--format', '--mono', '--bitrate', '--mix', '--duration', '--max-size', '--stop-when-empty', '--users', '--ffmpeg', '--force', '--json', '--token-file', '--api-url', '--rate', '--channels', '--seconds']) {
      assert.ok(text.includes(opt), `man page documents ${opt}`);
    }
    for (const env of ['DISCORD_TOKEN', 'DVREC_API_URL', 'FFMPEG_PATH', 'NO_COLOR', 'DVREC_DEBUG']) assert.ok(text.includes(env), env);
    const groff = spawnSync('groff', ['-man', '-ww', '-z', page], { encoding: 'utf8' });
    assert.equal(groff.stderr, '');
  });
});
