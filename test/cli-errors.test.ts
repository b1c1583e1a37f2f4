/**
 * Error paths that need Discord, driven through the local simulator: the real CLI (child process, no TTY)
 * against a protocol-faithful server that rejects it in each documented way. Each must end with one
 * `dvrec: ...` line, its exit code, no escape codes, and never the token.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ExitCode } from '../src/errors.ts';
import { startSimulator, type Scenario, type Simulator } from '../src/simulator/index.ts';
import { ANSI, baseEnv, runCli, type CliResult } from './cli-helpers.ts';

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

let n = 0;
async function record(sim: Simulator, args: { guild?: string; channel?: string; token?: string }): Promise<CliResult> {
  const r = await runCli(
    ['record', '--guild', args.guild ?? GUILD, '--channel', args.channel ?? VOICE, '--duration', '5', '--out', join(work, `r${n++}`)],
    {
      env: baseEnv({ DISCORD_TOKEN: args.token ?? TOKEN, DVREC_API_URL: sim.apiUrl, NODE_EXTRA_CA_CERTS: sim.caCertPath }),
      timeoutMs: 60_000,
    },
  );
  const all = r.stdout + r.stderr;
  assert.ok(!all.includes(TOKEN), 'the token is never printed');
  if (args.token) assert.ok(!all.includes(args.token), 'the given token is never printed');
  assert.doesNotMatch(all, ANSI);
  const errLines = r.stderr.split('\n').filter((l) => l.startsWith('dvrec: '));
  assert.equal(errLines.length, 1, `exactly one error line:\n${r.stderr}`);
  return r;
}

function lastError(r: CliResult): string {
  return r.stderr.split('\n').filter((l) => l.startsWith('dvrec: ')).pop() ?? '';
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
  test('voice server closes with 4017 (DAVE required) → VOICE_REJECTED', async () => {
    const sim = await startSimulator(scenario({ rejectVoiceWith: 4017 }));
    try {
      const r = await record(sim, {});
      assert.equal(r.code, ExitCode.VOICE_REJECTED, r.stderr);
      assert.match(lastError(r), /4017|DAVE/);
    } finally {
      await sim.close();
    }
  });
});
