/**
 * Security (issue 6):
 *  - the bot token never appears in any byte dvrec writes: the real CLI (`node bin/dvrec.ts record`) as a child
 *    process against the simulator — a normal run, --json with DVREC_DEBUG=1, a --token-file run killed with
 *    SIGKILL (its crash leftovers), a bad token, a run that fails after the voice gateway saw the token — with
 *    stdout, stderr, every file under the output directory and the process's /proc cmdline and thread names
 *    (sampled while it runs) searched for the token and its encoded forms; MP3 and FLAC runs with --mix, through
 *    ffmpeg and through the embedded encoders, searched the same way, and the environment and arguments of every
 *    ffmpeg child (a stand-in --ffmpeg records them) checked for the token and for DISCORD_TOKEN;
 *  - file names derived from hostile user names stay inside the output directory and never collide (unit, and
 *    end to end with such names in the simulator), and nothing a user name carries reaches the terminal raw;
 *  - output directories are private (0700) and files are not readable by others.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ExitCode, exitCodeOf } from '../src/commands/exit-codes.ts';
import type { Manifest } from '../src/sinks/capture-layout.ts';
import { sanitizeName, trackStem } from '../src/sinks/naming.ts';
import { startSimulator, type Scenario, type Simulator } from '../src/simulator/index.ts';
import type { SimMember } from '../src/simulator/scenario.ts';
import { PLAIN_ERROR, baseEnv, collect, startCli, waitForOutput, type CliResult } from './cli-helpers.ts';
import { hasFfmpeg } from './format-fixtures.ts';
import { needs } from './strict.ts';

const GUILD = '1300000000000000001';
const VOICE = '1300000000000000002';
const BOT = '1300000000000000003';
/** Distinctive parts, so that any fragment that leaks is found. */
const TOKEN = 'MTMwMDAwMDAwMDAwMDAwMDAwMw.GsEcR7.Zq9-secretHmacPart_mustNeverLeak-Xw42';
const WRONG_TOKEN = 'MTMwMDAwMDAwMDAwMDAwMDAwMw.GwRoNg.An0ther-secret_thatIsNotValid-Kv77';

/** Every form in which a token could be written: raw, base64, base64url, hex, URL-encoded, and its secret part. */
function tokenForms(token: string): { name: string; bytes: Buffer }[] {
  const secretPart = token.split('.').slice(1).join('.');
  const hmac = token.split('.')[2]!;
  const forms: [string, string][] = [
    ['raw', token],
    ['base64', Buffer.from(token).toString('base64')],
    ['base64url', Buffer.from(token).toString('base64url')],
    ['hex', Buffer.from(token).toString('hex')],
    ['HEX', Buffer.from(token).toString('hex').toUpperCase()],
    ['url-encoded', encodeURIComponent(`Bot ${token}`)],
    ['secret part', secretPart],
    ['hmac', hmac],
    ['hmac base64', Buffer.from(hmac).toString('base64').replace(/=+$/, '')],
  ];
  return forms.flatMap(([name, s]) => [
    { name, bytes: Buffer.from(s, 'utf8') },
    { name: `${name} (utf-16le)`, bytes: Buffer.from(s, 'utf16le') },
  ]);
}

/** Every file (recursively, hidden ones too) under `dir`, with its bytes. */
function walk(dir: string): { path: string; mode: number; isDir: boolean }[] {
  const out: { path: string; mode: number; isDir: boolean }[] = [];
  const visit = (p: string) => {
    const st = lstatSync(p);
    out.push({ path: p, mode: st.mode & 0o777, isDir: st.isDirectory() });
    if (st.isDirectory()) for (const e of readdirSync(p)) visit(join(p, e));
  };
  if (existsSync(dir)) visit(dir);
  return out;
}

function assertNoToken(where: string, bytes: Buffer, tokens: string[]): void {
  for (const t of tokens) {
    for (const f of tokenForms(t)) assert.equal(bytes.indexOf(f.bytes), -1, `${where} contains the token (${f.name})`);
  }
}

function assertOutputsClean(label: string, r: CliResult, dir: string | null, tokens: string[]): void {
  assertNoToken(`${label} stdout`, Buffer.from(r.stdout), tokens);
  assertNoToken(`${label} stderr`, Buffer.from(r.stderr), tokens);
  if (!dir) return;
  for (const f of walk(dir)) {
    assertNoToken(`${label} file ${relative(dir, f.path) || '.'} (its name)`, Buffer.from(f.path), tokens);
    if (!f.isDir) assertNoToken(`${label} file ${relative(dir, f.path)}`, readFileSync(f.path), tokens);
  }
}

/**
 * Samples /proc/<pid>/cmdline, comm and every thread's comm while the child runs: the process title and
 * argv visible to other local users (`ps`) must not hold the token.
 */
function sampleProc(pid: number): { stop(): string[] } {
  const seen = new Set<string>();
  const read = () => {
    try {
      seen.add(readFileSync(`/proc/${pid}/cmdline`).toString('latin1'));
      seen.add(readFileSync(`/proc/${pid}/comm`).toString('latin1'));
      for (const t of readdirSync(`/proc/${pid}/task`)) seen.add(readFileSync(`/proc/${pid}/task/${t}/comm`).toString('latin1'));
      // Open file descriptors: no file whose NAME holds the token.
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        try {
          seen.add(readlinkSync(`/proc/${pid}/fd/${fd}`));
        } catch {
          /* closed meanwhile */
        }
      }
    } catch {
      /* exited */
    }
  };
  read();
  const timer = setInterval(read, 100);
  return {
    stop: () => {
      clearInterval(timer);
      return [...seen];
    },
  };
}

const member = (n: number, username: string, displayName: string | undefined, hz: number): SimMember => ({
  userId: `14000000000000000${String(n).padStart(2, '0')}`,
  username,
  ...(displayName !== undefined ? { displayName } : {}),
  signal: { kind: 'tone', hz },
  spurts: [{ atMs: 100 + 30 * n, durationMs: 30_000 }],
});

/** User names chosen to break file names and terminals. */
const HOSTILE_NAMES: [string, string | undefined][] = [
  ['../../../../tmp/dvrec-escape', '../../../../tmp/dvrec-escape'],
  ['con', 'CON'],
  ['nul.txt', 'NUL.txt'],
  ['com1', 'COM1'],
  ['bell', 'bell\u0007\u001b[31mred\u001b]0;title\u0007'],
  ['rtl', 'evil\u202Egnp.exe'],
  ['long', 'L'.repeat(300)],
  ['emoji', '🎙️名前 Ünïcødé'],
  ['slash', 'a/b'],
  ['backslash', 'a\\b'],
  ['colon', 'a:b'],
  ['empty', ''],
  ['dots', '...'],
  ['dash', '-rf --no-preserve-root'],
];

const work = mkdtempSync(join(tmpdir(), 'dvrec-sec-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('the token search finds every encoded form (so the checks below can fail)', () => {
  const forms = tokenForms(TOKEN);
  for (const f of forms) {
    const blob = Buffer.concat([Buffer.from('{"x":"'), f.bytes, Buffer.from('"}')]);
    assert.throws(() => assertNoToken('probe', blob, [TOKEN]), /contains the token/, f.name);
  }
  assert.doesNotThrow(() => assertNoToken('probe', Buffer.from(`Bot user ${BOT} in ${GUILD}`), [TOKEN]));
});

describe('file names from hostile user names', () => {
  test('stems stay in the directory, are portable, bounded, and unique even on case-insensitive filesystems', () => {
    const dir = resolve(work, 'names');
    const names = [
      ...HOSTILE_NAMES.flatMap(([u, d]) => [u, d ?? '']),
      '..', '.', ' ', '\u0000', 'a\u0000b', 'CON.', 'con ', 'aux.tar.gz', 'LPT9', 'COM¹', 'x\u2028y', 'x\u200By',
      '\uD800lonely surrogate', 'Bob', 'bob', 'BOB', 'e\u0301' /* NFD é */, '\u00e9' /* NFC é */, '🎧'.repeat(100),
      '\u0661\u0662' /* arabic digits */, 'a'.repeat(10_000),
    ];
    const stems: string[] = [];
    names.forEach((name, i) => {
      const id = `15000000000000${String(i).padStart(4, '0')}`;
      const stem = trackStem(id, name, name);
      stems.push(stem);
      for (const ext of ['.wav', '.opus.pkt', '.flac', '.mp3']) {
        const file = resolve(dir, `${stem}${ext}`);
        assert.equal(dirname(file), dir, `${JSON.stringify(name)} → ${stem}: stays in the directory`);
        assert.ok(Buffer.byteLength(`${stem}${ext}`) <= 255, `${stem}${ext}: ≤ 255 bytes`);
      }
      assert.doesNotMatch(stem, /[/\\:*?"<>|\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u, `${JSON.stringify(name)} → ${JSON.stringify(stem)}`);
      assert.ok(!/^[.\s-]/.test(stem) && !/[.\s]$/.test(stem), `no leading dot/space/dash, no trailing dot/space: ${stem}`);
      assert.doesNotMatch(stem.split('.')[0]!, /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])$/i);
      assert.ok(stem.endsWith(id));
    });
    // Unique as a case-insensitive, normalisation-insensitive filesystem (NTFS, APFS) compares them.
    const folded = new Set(stems.map((s) => s.normalize('NFD').toLowerCase()));
    assert.equal(folded.size, stems.length);
    // Ids that are not snowflakes (only a broken or hostile server sends them) and would sanitise alike.
    const odd = ['a/b', 'a_b', 'A_B', 'a\\b', '../x', '..', '', 'x'.repeat(500), 'CON'].map((id) => trackStem(id, 'same', 'same'));
    assert.equal(new Set(odd.map((s) => s.toLowerCase())).size, odd.length, `distinct: ${odd}`);
    for (const s of odd) assert.match(s, /^same-u[0-9a-f]{16}$/);
    assert.equal(sanitizeName('\u202Eevil'), 'evil');
  });
});

/** Starts `dvrec record` against the simulator; resolves with its result, the /proc samples and the output dir. */
async function record(sim: Simulator, name: string, args: string[], env: Record<string, string>, opts: { killAfterRecording?: boolean } = {}) {
  const out = join(work, name);
  const child = startCli(['record', '--guild', GUILD, '--channel', VOICE, '--out', out, ...args], {
    env: baseEnv({ DVREC_API_URL: sim.apiUrl, NODE_EXTRA_CA_CERTS: sim.caCertPath, ...env }),
  });
  const proc = sampleProc(child.pid!);
  const result = collect(child, 60_000);
  if (opts.killAfterRecording) {
    await waitForOutput(child, (s) => /"phase":"recording"/.test(s));
    await new Promise((r) => setTimeout(r, 1500));
    child.kill('SIGKILL');
  }
  const r = await result;
  return { r, proc: proc.stop(), out };
}

describe('the bot token never leaves the process (real CLI, child processes)', () => {
  const members = HOSTILE_NAMES.map(([u, d], i) => member(i + 1, u, d, 300 + 50 * i));
  const scenario: Scenario = {
    seed: 13, guildId: GUILD, guildName: 'Sec Guild', channelId: VOICE, channelName: 'Vault', botUserId: BOT, token: TOKEN,
    dave: true, members, faults: [{ atMs: 500, kind: 'hostile', count: 260 }],
  };

  test('record (text), record --json with DVREC_DEBUG=1, a SIGKILLed --token-file run, a bad token, a rejected voice session', async () => {
    const sim = await startSimulator(scenario);
    const rejecting = await startSimulator({ ...scenario, rejectVoiceWith: 4017 });
    try {
      // 1. A normal run: tracks for every hostile name, inside the directory, private, token nowhere.
      const plain = await record(sim, 'plain', ['--duration', '4'], { DISCORD_TOKEN: TOKEN });
      assert.equal(plain.r.code, ExitCode.OK, plain.r.stderr);
      assertOutputsClean('plain run', plain.r, plain.out, [TOKEN]);
      assertNoToken('plain run /proc', Buffer.from(plain.proc.join('\n')), [TOKEN]);
      assert.ok(plain.proc.some((s) => s.includes('bin/dvrec.ts')), 'the /proc sampler saw the process');
      checkHostileNamesRun(plain.out, plain.r, members);

      // 2. --json, with debug output on.
      const json = await record(sim, 'json', ['--duration', '2', '--json'], { DISCORD_TOKEN: TOKEN, DVREC_DEBUG: '1' });
      assert.equal(json.r.code, ExitCode.OK, json.r.stderr);
      assert.ok(json.r.stdout.split('\n').filter(Boolean).every((l) => JSON.parse(l)), 'JSON lines');
      assertOutputsClean('--json run', json.r, json.out, [TOKEN]);
      assertNoToken('--json run /proc', Buffer.from(json.proc.join('\n')), [TOKEN]);

      // 3. Token from a file (with "Bot " prefix and newline), killed with SIGKILL mid-recording: the crash
      // leftovers (capture.json, .capture/) hold no token either.
      const tokenFile = join(work, 'token');
      writeFileSync(tokenFile, `Bot ${TOKEN}\n`, { mode: 0o600 });
      const killed = await record(sim, 'killed', ['--duration', '30', '--json', '--token-file', tokenFile], {}, { killAfterRecording: true });
      assert.equal(killed.r.signal, 'SIGKILL');
      assert.ok(existsSync(join(killed.out, 'capture.json')), 'a crash leaves the journal');
      assertOutputsClean('SIGKILLed run', killed.r, killed.out, [TOKEN]);
      assertNoToken('SIGKILLed run /proc', Buffer.from(killed.proc.join('\n')), [TOKEN]);
      checkPrivate(killed.out);

      // 4. A wrong token: exit 3, and the wrong token (it may be someone's real token) is not echoed either.
      const bad = await record(sim, 'bad', ['--duration', '2'], { DISCORD_TOKEN: WRONG_TOKEN });
      assert.equal(bad.r.code, ExitCode.AUTH, bad.r.stderr);
      assert.match(bad.r.stderr, new RegExp(PLAIN_ERROR.source + ".+", "m"));
      assertOutputsClean('bad-token run', bad.r, bad.out, [WRONG_TOKEN, TOKEN]);
      assertNoToken('bad-token run /proc', Buffer.from(bad.proc.join('\n')), [WRONG_TOKEN]);

      // 5. A failure after the token went to the gateway and the voice gateway (DAVE required, 4017).
      const rejected = await record(rejecting, 'rejected', ['--duration', '2'], { DISCORD_TOKEN: TOKEN, DVREC_DEBUG: '1' });
      assert.equal(rejected.r.code, ExitCode.VOICE_REJECTED, rejected.r.stderr);
      assertOutputsClean('rejected run', rejected.r, rejected.out, [TOKEN]);
    } finally {
      await sim.close();
      await rejecting.close();
    }
  });
});

/**
 * A stand-in for ffmpeg that records what dvrec hands its children (environment and arguments, from
 * /proc/self/environ: the exact bytes) and then runs the real ffmpeg, so the run still produces real files.
 */
function fakeFfmpeg(dumpDir: string): string {
  const real = spawnSync('sh', ['-c', 'command -v ffmpeg'], { encoding: 'utf8' }).stdout.trim();
  const script = join(work, 'fake-ffmpeg');
  writeFileSync(script, [
    '#!/bin/sh',
    `cat /proc/$$/environ > '${dumpDir}/env.'$$`,
    `for a in "$@"; do printf '%s\\n' "$a"; done > '${dumpDir}/args.'$$`,
    `exec '${real}' "$@"`,
    '',
  ].join('\n'), { mode: 0o700 });
  return script;
}

describe('the token in encoded output and in ffmpeg children (MP3 and FLAC with --mix)', () => {
  const members = [member(1, 'ann', 'Ann', 440), member(2, 'bob', 'Bob', 660)];
  const scenario: Scenario = { seed: 19, guildId: GUILD, channelId: VOICE, botUserId: BOT, token: TOKEN, dave: true, members };

  for (const format of ['mp3', 'flac'] as const) {
    test(`${format} --mix through ffmpeg: no token in the files, and ffmpeg's environment and arguments hold none`, async (t) => {
      if (needs(t, hasFfmpeg(), 'no ffmpeg to stand behind the fake one')) return;
      const dumps = mkdtempSync(join(work, `ffdump-${format}-`));
      const sim = await startSimulator(scenario);
      try {
        const run = await record(sim, `ff-${format}`, ['--duration', '2', '--format', format, '--mix', '--ffmpeg', fakeFfmpeg(dumps)], { DISCORD_TOKEN: TOKEN, DVREC_DEBUG: '1' });
        assert.equal(run.r.code, ExitCode.OK, run.r.stderr);
        const manifest = JSON.parse(readFileSync(join(run.out, 'manifest.json'), 'utf8')) as Manifest;
        // The ffmpeg path really ran: FLAC tracks and the mix came from ffmpeg (MP3 tracks from the streaming LAME).
        for (const tr of manifest.tracks) assert.equal(tr.encoder, format === 'flac' ? 'ffmpeg' : 'lame-wasm-stream', `${tr.file}: ${tr.encoder}`);
        assert.ok(manifest.mix && existsSync(join(run.out, manifest.mix)), `mix written: ${manifest.mix}`);
        assertOutputsClean(`${format} ffmpeg run`, run.r, run.out, [TOKEN]);
        assertNoToken(`${format} ffmpeg run /proc`, Buffer.from(run.proc.join('\n')), [TOKEN]);
        checkPrivate(run.out);
        // Every ffmpeg dvrec started (the --ffmpeg check, each encode): no DISCORD_TOKEN variable, no token anywhere.
        const envs = readdirSync(dumps).filter((f) => f.startsWith('env.'));
        const encodes = readdirSync(dumps).filter((f) => f.startsWith('args.') && readFileSync(join(dumps, f), 'utf8').includes('pipe:0'));
        assert.equal(encodes.length, format === 'flac' ? 3 : 1, `ffmpeg encodes: ${readdirSync(dumps).join(', ')}`);
        assert.ok(encodes.some((f) => readFileSync(join(dumps, f), 'utf8').includes(manifest.mix!)), 'ffmpeg encoded the mix');
        for (const f of readdirSync(dumps)) {
          const bytes = readFileSync(join(dumps, f));
          const args = readFileSync(join(dumps, `args.${f.split('.')[1]}`), 'utf8').trim().split('\n').join(' ');
          assertNoToken(`ffmpeg ${f} (ffmpeg ${args})`, bytes, [TOKEN]);
          if (f.startsWith('env.')) {
            const names = bytes.toString('utf8').split('\0').map((kv) => kv.split('=')[0]);
            assert.ok(!names.includes('DISCORD_TOKEN'), `ffmpeg ${f} (ffmpeg ${args}) inherited DISCORD_TOKEN`);
          }
        }
        t.diagnostic(`${envs.length} ffmpeg processes (${encodes.length} encodes) checked`);
      } finally {
        await sim.close();
      }
    });

    test(`${format} --mix with the embedded encoders (no ffmpeg): no token in the files`, async () => {
      const sim = await startSimulator(scenario);
      try {
        // No ffmpeg anywhere dvrec looks: a PATH without one (dvrec starts no other program), no FFMPEG_PATH (baseEnv
        // passes none), and the ffmpeg-static package skipped (DVREC_NO_FFMPEG_STATIC=1), which CI may have downloaded.
        const run = await record(sim, `embedded-${format}`, ['--duration', '2', '--format', format, '--mix'], {
          DISCORD_TOKEN: TOKEN, DVREC_DEBUG: '1', PATH: mkdtempSync(join(work, 'empty-path-')), DVREC_NO_FFMPEG_STATIC: '1',
        });
        assert.equal(run.r.code, ExitCode.OK, run.r.stderr);
        const manifest = JSON.parse(readFileSync(join(run.out, 'manifest.json'), 'utf8')) as Manifest;
        for (const tr of manifest.tracks) assert.equal(tr.encoder, format === 'flac' ? 'libflac-js' : 'lame-wasm-stream', `${tr.file}: ${tr.encoder}`);
        // No ffmpeg was reachable, so the mix came from the embedded encoder too.
        assert.ok(manifest.mix && existsSync(join(run.out, manifest.mix)), `mix written: ${manifest.mix}`);
        assertOutputsClean(`${format} embedded run`, run.r, run.out, [TOKEN]);
        assertNoToken(`${format} embedded run /proc`, Buffer.from(run.proc.join('\n')), [TOKEN]);
        checkPrivate(run.out);
      } finally {
        await sim.close();
      }
    });
  }
});

/** Files and directories dvrec leaves: directories 0700, files not readable by group/others. */
function checkPrivate(dir: string): void {
  for (const f of walk(dir)) {
    if (f.isDir) assert.equal(f.mode, 0o700, `${f.path}: directory mode ${f.mode.toString(8)}`);
    else assert.equal(f.mode & 0o077, 0, `${f.path}: file mode ${f.mode.toString(8)} is readable by others`);
  }
}

/** What the plain run with hostile user names printed (checked for terminal control sequences below). */
let printedByHostileRun: string | undefined;

function checkHostileNamesRun(out: string, r: CliResult, members: SimMember[]): void {
  const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest;
  assert.equal(manifest.tracks.length, members.length, 'one track per member');
  const real = realpathSync(out);
  const files = new Set<string>();
  for (const t of manifest.tracks) {
    const p = resolve(out, t.file);
    assert.equal(dirname(p), resolve(out), `${t.file} is directly in the output directory`);
    assert.ok(realpathSync(p).startsWith(real + sep), `${t.file} resolves inside`);
    assert.ok(t.file.endsWith(`${t.userId}.wav`));
    files.add(t.file.toLowerCase());
  }
  assert.equal(files.size, members.length, 'no two tracks share a file name (case-insensitively)');
  // The manifest keeps the real (hostile) names as data, JSON-escaped.
  const m5 = manifest.tracks.find((t) => t.userId === members[4]!.userId)!;
  assert.equal(m5.displayName, members[4]!.displayName);
  // Nothing escaped: the only entries are the tracks and the manifest, and nothing was created beside the directory.
  const entries = readdirSync(out).sort();
  assert.deepEqual(entries, [...manifest.tracks.map((t) => t.file), 'manifest.json'].sort());
  assert.ok(!existsSync('/tmp/dvrec-escape') && !existsSync('/tmp/dvrec-escape-1400000000000000001.wav'));
  printedByHostileRun = r.stdout + r.stderr;
  checkPrivateDirs(out);
}

function checkPrivateDirs(dir: string): void {
  for (const f of walk(dir)) if (f.isDir) assert.equal(f.mode, 0o700, `${f.path}: directory mode ${f.mode.toString(8)}`);
}

describe('terminal safety', () => {
  test(
    'a user name cannot drive the terminal: no BEL, ESC/CSI/OSC sequences or bidi overrides in what dvrec prints',
    () => {
      assert.ok(printedByHostileRun !== undefined, 'the hostile-names run happened');
      // eslint-disable-next-line no-control-regex
      const bad = /[\u0007\u001b\u009b\u202a-\u202e\u2066-\u2069]/u;
      const lines = printedByHostileRun.split('\n').filter((l) => bad.test(l));
      assert.deepEqual(lines.map((l) => JSON.stringify(l)), [], 'raw control characters from user names');
    },
  );
});

describe('output permissions', () => {
  test('finished tracks and manifest are not readable by other users', async () => {
    const sim = await startSimulator({
      seed: 17, guildId: GUILD, channelId: VOICE, botUserId: BOT, token: TOKEN, dave: true,
      members: [member(1, 'ann', 'Ann', 440)],
    });
    try {
      mkdirSync(join(work, 'perm-parent'), { recursive: true });
      const run = await record(sim, join('perm-parent', 'perm'), ['--duration', '2'], { DISCORD_TOKEN: TOKEN });
      assert.equal(run.r.code, ExitCode.OK, run.r.stderr);
      checkPrivate(run.out);
    } finally {
      await sim.close();
    }
  });
});
