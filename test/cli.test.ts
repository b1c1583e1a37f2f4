/**
 * The command line without Discord: help and version, every kind of bad value (one line, exit 2, no
 * connection attempted), token and output errors, convert, doctor, output without a TTY, --json, and the
 * manual page. The CLI runs as a child process, as cron would run it (pipes, no TTY).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Command } from 'commander';
import { buildProgram, type Actions } from '../src/commands/program.ts';
import { expandOutTemplate } from '../src/commands/options.ts';
import { validateRecordFlags, type RecordFlags } from '../src/commands/record.ts';
import { ExitCode, exitCodeOf } from '../src/commands/exit-codes.ts';
import { ANSI, PLAIN_ERROR, ROOT, baseEnv, connectionCounter, runCli } from './cli-helpers.ts';

const G = '1180000000000000001';
const C = '1180000000000000002';
const TOKEN = 'MTE4MDAwMDAwMDAwMDAwMDAwMw.Gabcde.cli-test-token-never-printed-123';

const work = mkdtempSync(join(tmpdir(), 'dvrec-cli-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** One line on stderr: without a TTY, `<timestamp> dvrec: <message>` (src/ui/error-line.ts). */
function assertOneLineError(stderr: string, pattern: RegExp): void {
  const lines = stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${stderr}`);
  assert.match(lines[0]!, PLAIN_ERROR);
  assert.match(lines[0]!.replace(PLAIN_ERROR, ''), pattern);
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
    for (const env of ['DISCORD_TOKEN', 'DVREC_API_URL', 'FFMPEG_PATH', 'CI', 'NO_COLOR', 'TERM', 'DVREC_DEBUG']) {
      assert.match(r.stdout, new RegExp(`Environment:.*\\b${env}\\b`, 's'), `--help names ${env}`);
    }
    const record = await runCli(['record', '--help']);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) assert.ok(record.stdout.includes(sig), `record --help names ${sig}`);
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
  test('a usage error with --json is the bare `dvrec: ` line (the JSON stream is stdout\'s)', async () => {
    const r = await runCli(['record', '--json', '--guild', '1']);
    assert.equal(r.code, ExitCode.USAGE);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; exitCode: number; message: string });
    assert.deepEqual(events.map((e) => [e.event, e.exitCode]), [['error', ExitCode.USAGE]]);
    assert.match(events[0]!.message, /^--channel is required/);
    assert.match(r.stderr, /^dvrec: --channel is required/);
    const early = await runCli(['record', '--json', '--colour']);
    assert.equal(early.code, ExitCode.USAGE);
    assert.match(early.stderr, /^dvrec: unknown option '--colour'/);
    assert.equal(r.stderr.split('\n').filter(Boolean).length, 1);
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
    // An unfinished recording: convert finishes it; --force moves it aside (never into the new recording).
    assertOneLineError(r.stderr, new RegExp(`already holds an unfinished recording \\(capture\\.json\\): finish it with dvrec convert ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, choose another --out or pass --force to move it aside$`));
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
    assert.match(r.stderr.trim().split('\n').pop()!, PLAIN_ERROR);
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
    assertOneLineError(r.stderr.split('\n').filter((l) => PLAIN_ERROR.test(l)).join('\n'), /already exists/);
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
    // FLAC without ffmpeg rests on libflacjs: doctor must check it (it encodes a test block).
    assert.ok(res.checks.find((c) => c.name === 'libflacjs')?.ok, 'libflacjs encodes');
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
    // Every option of every command, as the commander program defines it: a new option the manual does not
    // describe fails here. Each must appear under its command's subsection of OPTIONS.
    const program = buildProgram('test');
    const options = sectionOf(text, 'OPTIONS', 'SIGNALS');
    const checked: string[] = [];
    for (const cmd of program.commands.filter((c) => c.name() !== 'help')) {
      const sub = subsectionOf(options, cmd.name());
      assert.ok(sub, `the manual has an OPTIONS subsection for ${cmd.name()}`);
      for (const o of cmd.options) {
        for (const flag of [o.long, o.short].filter((f): f is string => f !== undefined && f !== '-h' && f !== '--help')) {
          assert.match(sub, new RegExp(`(^|[\\s,])${flag}\\b`, 'm'), `man page documents ${cmd.name()} ${flag}`);
          checked.push(`${cmd.name()} ${flag}`);
        }
      }
      assert.match(sectionOf(text, 'SYNOPSIS', 'DESCRIPTION'), new RegExp(`dvrec ${cmd.name()}\\b`), `SYNOPSIS shows ${cmd.name()}`);
    }
    assert.ok(checked.length >= 30, `options found in the program: ${checked.length}`);
    for (const flag of ['--help', '--version']) assert.ok(sectionOf(text, 'OPTIONS', 'SIGNALS').includes(flag), flag);
    const environment = sectionOf(text, 'ENVIRONMENT', 'FILES');
    // Every variable dvrec reads (src/ and bin/): DISCORD_TOKEN, DVREC_*, FFMPEG_PATH, and those deciding the output mode.
    for (const env of ['DISCORD_TOKEN', 'DVREC_API_URL', 'FFMPEG_PATH', 'CI', 'NO_COLOR', 'TERM', 'DVREC_DEBUG', 'DVREC_DEMO_SUBPROCESS', 'NODE_EXTRA_CA_CERTS']) {
      assert.match(environment, new RegExp(`\\b${env}\\b`), `ENVIRONMENT documents ${env}`);
    }
    for (const env of envVarsReadBySources()) assert.match(environment, new RegExp(`\\b${env}\\b`), `ENVIRONMENT documents ${env} (read in the sources)`);
    const groff = spawnSync('groff', ['-man', '-ww', '-z', page], { encoding: 'utf8' });
    assert.equal(groff.stderr, '');
  });
});

/** The text of a manual section, from its heading to the next one. */
function sectionOf(text: string, from: string, to: string): string {
  const a = text.search(new RegExp(`^${from}$`, 'm'));
  const b = text.search(new RegExp(`^${to}$`, 'm'));
  assert.ok(a >= 0 && b > a, `sections ${from} … ${to} in the manual`);
  return text.slice(a, b);
}

/** A subsection (`.SS name`, rendered indented by 3) of a section, up to the next subsection. */
function subsectionOf(section: string, name: string): string | undefined {
  const m = new RegExp(`^ {3}${name}\\n([\\s\\S]*?)(?=^ {3}\\S|$(?![\\s\\S]))`, 'm').exec(section);
  return m?.[1];
}

/** Environment variables the sources read (`process.env.X`, `env.X`), the simulator aside. */
function envVarsReadBySources(): string[] {
  const found = new Set<string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'simulator') walk(p);
      } else if (e.name.endsWith('.ts')) {
        for (const m of readFileSync(p, 'utf8').matchAll(/\benv\.([A-Z][A-Z0-9_]+)\b/g)) found.add(m[1]!);
      }
    }
  };
  walk(join(ROOT, 'src'));
  walk(join(ROOT, 'bin'));
  found.delete('PATH'); // searched for ffmpeg, as every program does; not dvrec's own setting
  return [...found];
}

// ---- the scheduled-recording examples ----

/** Splits a shell command line into words the way sh does for these examples: quotes, $HOME, no globbing. */
function shellWords(line: string, home: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  let cur = '';
  let last = -1;
  for (const m of line.matchAll(re)) {
    const part = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? m[3]!);
    const expanded = m[2] !== undefined ? part : part.replace(/\$HOME\b|\$\{HOME\}/g, home);
    // Adjacent pieces (`--out="$HOME/x"`) form one word.
    if (m.index === last) cur += expanded;
    else {
      if (last !== -1) words.push(cur);
      cur = expanded;
    }
    last = m.index + m[0].length;
  }
  if (last !== -1) words.push(cur);
  return words;
}

/** Checks a crontab time field against its range: `*`, numbers, ranges, lists and steps. */
function validCronField(field: string, min: number, max: number): boolean {
  return field.split(',').every((item) => {
    const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(item);
    if (!m) return false;
    const [lo, hi, step] = [m[2], m[3], m[4]].map((x) => (x === undefined ? undefined : Number(x)));
    if (step !== undefined && step < 1) return false;
    if (lo !== undefined && (lo < min || lo > max)) return false;
    if (hi !== undefined && (hi < lo! || hi > max)) return false;
    return true;
  });
}

describe('the cron examples (README and manual)', () => {
  const manText = (): string => {
    const r = spawnSync('man', ['-l', join(ROOT, 'man', 'dvrec.1')], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '80', MAN_KEEP_FORMATTING: '' } });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.replace(/.\u0008/g, '');
  };
  /** The crontab entries (lines that start with five time fields) of a text, trimmed. */
  const cronLines = (text: string): string[] => text.split('\n').map((l) => l.trim()).filter((l) => /^[\d*][\d*,/-]*(\s+[\d*][\d*,/-]*){4}\s+\S/.test(l));

  test('one line each, the same entry in both, valid for cron, and dvrec parses its command line', async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const block = /```cron\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(block, 'README has a ```cron block');
    const readmeLines = block.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
    assert.equal(readmeLines.length, 1, `the README's crontab block is one entry on one line:\n${block}`);
    const manLines = cronLines(manText());
    assert.equal(manLines.length, 1, `the manual shows one crontab entry on one line: ${manLines.join(' | ')}`);
    const entry = readmeLines[0]!.trim();
    assert.equal(manLines[0], entry, 'README and manual show the same entry');

    // crontab(5): five time fields, then the command, which must not end in a continuation or hold a bare %.
    const fields = entry.split(/\s+/);
    const ranges: [number, number][] = [[0, 59], [0, 23], [1, 31], [1, 12], [0, 7]];
    ranges.forEach(([lo, hi], i) => assert.ok(validCronField(fields[i]!, lo, hi), `time field ${i + 1} '${fields[i]}'`));
    const command = entry.replace(/^(\S+\s+){5}/, '');
    assert.doesNotMatch(command, /\\$/, 'no line continuation');
    assert.doesNotMatch(command, /(^|[^\\])%/, 'no unescaped % (cron turns it into a newline)');

    // The command: `cd <the clone> && npx --no-install dvrec record ... >>LOG 2>&1`, the clone being the
    // systemd unit's WorkingDirectory=%h/dvrec.
    const home = '/home/someone';
    const [cd, run, ...rest] = command.split(/\s*&&\s*/);
    assert.equal(rest.length, 0);
    assert.deepEqual(shellWords(cd!, home), ['cd', `${home}/dvrec`]);
    const unit = /WorkingDirectory=(\S+)/.exec(readme)?.[1];
    assert.equal(unit?.replace('%h', home), `${home}/dvrec`, 'the same directory as the systemd unit');
    const words = shellWords(run!, home);
    const redirect = words.findIndex((w) => /^\d*>/.test(w));
    assert.ok(redirect > 0, 'output goes to a log');
    assert.deepEqual(words.slice(redirect), [`>>${home}/dvrec.log`, '2>&1']);
    assert.deepEqual(words.slice(0, 3), ['npx', '--no-install', 'dvrec']);
    const args = words.slice(3, redirect);

    // dvrec's own parser (the commander program of bin/dvrec.ts) and its validation, without running anything.
    let flags: RecordFlags | undefined;
    const none = async () => assert.fail('only record runs');
    const actions: Actions = { record: async (o) => void (flags = o as RecordFlags), convert: none, demo: none, doctor: none };
    const program: Command = buildProgram('test', actions);
    await program.parseAsync(args, { from: 'user' });
    assert.ok(flags, 'parsed as `dvrec record`');
    const v = validateRecordFlags(flags, {});
    assert.equal(flags.tokenFile, `${home}/.config/dvrec/token`);
    assert.equal(v.durationMs, 2 * 3_600_000);
    const out = expandOutTemplate(v.outTemplate, { guild: v.guildId, channel: v.channelId, now: new Date(2026, 10, 2, 20, 0, 0) });
    assert.equal(out, `${home}/recordings/2026-11-02`);
  });
});
