/**
 * Error paths that need Discord, driven through the local simulator: the real CLI (child process, no TTY)
 * against a protocol-faithful server that rejects it in each documented way. Each must end with one
 * `dvrec: ...` line, its exit code, no escape codes, and never the token.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ExitCode, exitCodeOf } from '../src/commands/exit-codes.ts';
import { RECOVERY_LIMIT } from '../src/receiver/close-codes.ts';
import { startSimulator, type Scenario, type Simulator } from '../src/simulator/index.ts';
import { ANSI, baseEnv, collect, errorLines, runCli, silentServer, startCli, waitForOutput, type CliResult } from './cli-helpers.ts';

const GUILD = '1190000000000000001';
const VOICE = '1190000000000000002';
const TEXT = '1190000000000000010';
const HIDDEN = '1190000000000000011';
const LOCKED = '1190000000000000012';
const TOKEN = 'MTE5MDAwMDAwMDAwMDAwMDAwMw.Gsim01.errors-test-token-abcdefghijklmnop';

function scenario(extra: Partial<Scenario> = {}): Scenario {
  return {
    seed: 7,
    guildId: GUILD,
    guildName: 'Errors Guild',
    channelId: VOICE,
    channelName: 'Voice',
    botUserId: '1190000000000000003',
    token: TOKEN,
    dave: true,
    members: [
      { userId: '1190000000000000101', username: 'ann', signal: { kind: 'tone', hz: 300 }, spurts: [{ atMs: 100, durationMs: 2000 }] },
      { userId: '1190000000000000102', username: 'ben', signal: { kind: 'tone', hz: 500 }, spurts: [{ atMs: 300, durationMs: 2000 }] },
    ],
    extraChannels: [
      { id: TEXT, type: 0, name: 'text' },
      { id: HIDDEN, type: 2, name: 'hidden-voice' },
      { id: LOCKED, type: 2, name: 'locked-voice' },
    ],
    denyView: [HIDDEN],
    denyConnect: [LOCKED],
    ...extra,
  };
}

const work = mkdtempSync(join(tmpdir(), 'dvrec-err-'));
after(() => rmSync(work, { recursive: true, force: true }));

/**
 * The documented 30 s connect timeout is tested for real, against a server that never answers. It takes
 * 30 s, so it starts as this file loads and runs alongside the other tests; its test awaits the result.
 */
const timeoutRun = (async () => {
  const server = await silentServer();
  try {
    const out = join(work, 'timeout');
    const started = performance.now();
    const r = await runCli(['record', '--guild', GUILD, '--channel', VOICE, '--out', out], {
      env: baseEnv({ DISCORD_TOKEN: TOKEN, DVREC_API_URL: server.url }),
      timeoutMs: 90_000,
    });
    return { ...r, out, seconds: (performance.now() - started) / 1000, connections: server.connections() };
  } finally {
    await server.close();
  }
})();
// Awaited by its test; never an unhandled rejection if an earlier test fails the file first.
timeoutRun.catch(() => {});

let n = 0;
/**
 * Runs `dvrec record` against the simulator and checks what every failure must do: one `dvrec:` line, no
 * escape codes, no token, and no trace on disk (the output directory it was to create does not exist).
 */
async function record(sim: Simulator, args: { guild?: string; channel?: string; token?: string; out?: string }): Promise<CliResult> {
  const out = args.out ?? join(work, `r${n++}`);
  const r = await runCli(
    ['record', '--guild', args.guild ?? GUILD, '--channel', args.channel ?? VOICE, '--duration', '5', '--out', out],
    {
      env: baseEnv({ DISCORD_TOKEN: args.token ?? TOKEN, DVREC_API_URL: sim.apiUrl, NODE_EXTRA_CA_CERTS: sim.caCertPath }),
      timeoutMs: 60_000,
    },
  );
  const all = r.stdout + r.stderr;
  assert.ok(!all.includes(TOKEN), 'the token is never printed');
  if (args.token) assert.ok(!all.includes(args.token), 'the given token is never printed');
  assert.doesNotMatch(all, ANSI);
  assert.equal(errorLines(r.stderr).length, 1, `exactly one error line:\n${r.stderr}`);
  if (args.out === undefined) assert.ok(!existsSync(out), `nothing was captured, so ${out} was removed again`);
  return r;
}

function lastError(r: CliResult): string {
  return errorLines(r.stderr).pop() ?? '';
}

describe('Discord rejections map to documented exit codes', { concurrency: 2 }, () => {
  let sim: Simulator;
  before(async () => {
    sim = await startSimulator(scenario());
  });
  after(() => sim.close());

  test('invalid token (HTTP 401) → AUTH', async () => {
    const r = await record(sim, { token: 'MTE5MDAwMDAwMDAwMDAwMDAwMw.Gwrong.this-is-not-the-right-token-xyz' });
    assert.equal(r.code, ExitCode.AUTH, r.stderr);
    assert.match(lastError(r), /token/i);
  });
  test('unknown guild → NOT_FOUND', async () => {
    const r = await record(sim, { guild: '1190000000000000999' });
    assert.equal(r.code, ExitCode.NOT_FOUND, r.stderr);
    assert.match(lastError(r), /guild|server/i);
  });
  test('unknown channel → NOT_FOUND', async () => {
    const r = await record(sim, { channel: '1190000000000000998' });
    assert.equal(r.code, ExitCode.NOT_FOUND, r.stderr);
    assert.match(lastError(r), /channel/i);
  });
  test('a text channel → NOT_FOUND (not a voice channel)', async () => {
    const r = await record(sim, { channel: TEXT });
    assert.equal(r.code, ExitCode.NOT_FOUND, r.stderr);
    assert.match(lastError(r), /voice/i);
  });
  test('no View Channel → PERMISSION', async () => {
    const r = await record(sim, { channel: HIDDEN });
    assert.equal(r.code, ExitCode.PERMISSION, r.stderr);
    assert.match(lastError(r), /view|permission|access/i);
  });
  test('no Connect → PERMISSION', async () => {
    const r = await record(sim, { channel: LOCKED });
    assert.equal(r.code, ExitCode.PERMISSION, r.stderr);
    assert.match(lastError(r), /connect|permission/i);
  });
});

describe('voice-level rejections', { concurrency: 2 }, () => {
  test('channel full (user limit reached) → CHANNEL_FULL', async () => {
    const sim = await startSimulator(scenario({ userLimit: 2 }));
    try {
      const r = await record(sim, {});
      assert.equal(r.code, ExitCode.CHANNEL_FULL, r.stderr);
      assert.match(lastError(r), /full/i);
    } finally {
      await sim.close();
    }
  });
  // Discord's voice close codes before t=0 (src/receiver/close-codes.ts): an `end` code refuses at once; a code
  // @discordjs/voice would rejoin after for ever is retried RECOVERY_LIMIT times, then refused. Exit 7 with the code
  // and its meaning in the message, and the number of attempts bounded.
  const refusals: [number, RegExp, number][] = [
    [4017, /close code 4017\): end-to-end encryption \(DAVE\) is required$/, 1],
    [4016, /close code 4016\): unknown encryption mode$/, 1],
    [4012, /close code 4012\): unknown protocol$/, 1],
    [4014, /close code 4014\): disconnected/, 1],
    [4021, /close code 4021\): rate limited \(Discord asks not to reconnect\)$/, 1],
    [4022, /close code 4022\): call terminated/, 1],
    [4006, new RegExp(`close code 4006\\): session no longer valid, ${RECOVERY_LIMIT + 1} times within 60 s$`), RECOVERY_LIMIT + 1],
    [4009, /close code 4009\): session timed out, \d+ times/, RECOVERY_LIMIT + 1],
    [4020, /close code 4020\): bad request, \d+ times/, RECOVERY_LIMIT + 1],
  ];
  for (const [code, pattern, attempts] of refusals) {
    test(`voice server closes with ${code} → VOICE_REJECTED after ${attempts} attempt(s)`, async () => {
      const sim = await startSimulator(scenario({ rejectVoiceWith: code }));
      let rejected = 0;
      sim.events.on('voice-rejected', () => rejected++);
      try {
        const r = await record(sim, {});
        assert.equal(r.code, ExitCode.VOICE_REJECTED, r.stderr);
        assert.match(lastError(r), /^dvrec: the voice server refused the session \(/);
        assert.match(lastError(r), pattern);
        assert.equal(rejected, attempts, 'voice identifies refused: no loop');
      } finally {
        await sim.close();
      }
    });
  }
});

describe('what a failed run leaves on disk', { concurrency: 2 }, () => {
  test('nested output directories created for the run are all removed; the parent that existed stays', async () => {
    const sim = await startSimulator(scenario());
    try {
      const parent = join(work, 'nested');
      mkdirSync(parent);
      const r = await record(sim, { guild: '1190000000000000999', out: join(parent, 'a', 'b', '{guild}') });
      assert.equal(r.code, ExitCode.NOT_FOUND, r.stderr);
      assert.deepEqual(readdirSync(parent), [], 'a/b/<guild> were created by the run and are gone');
    } finally {
      await sim.close();
    }
  });
  test('a directory that existed before is kept, with what it held, and without dvrec\'s .capture/', async () => {
    const sim = await startSimulator(scenario());
    try {
      const out = join(work, 'existing');
      mkdirSync(join(out, 'notes'), { recursive: true });
      writeFileSync(join(out, 'notes', 'agenda.txt'), 'items');
      const r = await record(sim, { token: 'MTE5MDAwMDAwMDAwMDAwMDAwMw.Gwrong.this-is-not-the-right-token-xyz', out });
      assert.equal(r.code, ExitCode.AUTH, r.stderr);
      assert.deepEqual(readdirSync(out, { recursive: true }).map(String).sort(), ['notes', join('notes', 'agenda.txt')]);
    } finally {
      await sim.close();
    }
  });
});

describe('when Discord does not answer', { concurrency: 2 }, () => {
  test('the connection attempt gives up after 30 s → NETWORK, and leaves nothing behind', async () => {
    const r = await timeoutRun;
    assert.equal(r.code, ExitCode.NETWORK, r.stderr);
    assert.ok(r.connections > 0, 'dvrec did try to connect');
    assert.match(lastError(r), /timed out after 30 s logging in to Discord/);
    assert.equal(errorLines(r.stderr).length, 1, r.stderr);
    assert.ok(r.seconds >= 30 && r.seconds < 45, `gave up after ${r.seconds.toFixed(1)} s`);
    assert.ok(!existsSync(r.out), 'no empty output directory');
    assert.ok(!(r.stdout + r.stderr).includes(TOKEN));
  });

  test('a first Ctrl-C while connecting cancels: exit 130, says nothing was recorded, leaves nothing', async () => {
    const server = await silentServer();
    try {
      const out = join(work, 'cancel');
      const env = baseEnv({ DISCORD_TOKEN: TOKEN, DVREC_API_URL: server.url });
      // Plain text: the log says it is connecting, then the one error line.
      const child = startCli(['record', '--guild', GUILD, '--channel', VOICE, '--out', out], { env });
      const result = collect(child);
      await waitForOutput(child, (s) => /connecting to Discord/.test(s), 30_000, 'stderr');
      child.kill('SIGINT');
      const r = await result;
      assert.equal(r.code, ExitCode.INTERRUPTED, r.stderr);
      assert.deepEqual(errorLines(r.stderr), ['dvrec: cancelled by SIGINT while logging in to Discord; nothing was recorded']);
      assert.doesNotMatch(r.stderr, /finishing the files|dvrec convert/, 'no promise of files to finish');
      assert.equal(r.stdout, '', 'no file list');
      assert.ok(!existsSync(out), 'the output directory it had created is removed');

      // --json: the error event says the same, and no `stopping` event promises a stop that finishes files.
      const jsonChild = startCli(['record', '--guild', GUILD, '--channel', VOICE, '--out', out, '--json'], { env });
      const jsonResult = collect(jsonChild);
      await waitForOutput(jsonChild, (s) => /"phase":"connecting"/.test(s));
      jsonChild.kill('SIGTERM');
      const j = await jsonResult;
      assert.equal(j.code, ExitCode.INTERRUPTED, j.stderr);
      const events = j.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; message?: string; exitCode?: number });
      assert.deepEqual(events.map((e) => e.event), ['note', 'phase', 'error'], 'output: DIR, connecting, then the error');
      assert.deepEqual(events[2], { ...events[2], message: 'cancelled by SIGTERM while logging in to Discord; nothing was recorded', exitCode: 130 });
      assert.ok(!existsSync(out));
    } finally {
      await server.close();
    }
  });
});
