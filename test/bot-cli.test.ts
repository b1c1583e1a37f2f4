/**
 * `dvrec bot` as a process, the way systemd runs it: started from the command line against a local Discord that
 * the test serves, commanded through slash commands, SIGKILLed in the middle of a recording, and started again:
 * the second run must finish the recording (checked against the simulator's truth) and take the sign down.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { RECORDING_STATUS } from '../src/bot/sign.ts';
import { shardOf, startSimulator, trustSimulatorCertificate } from '../src/simulator/index.ts';
import { opusLoop } from '../src/simulator/opus-cache.ts';
import { TOKEN, scenario } from './record-fixtures.ts';
import { cleanupDirs, member, tempDir } from './fault-fixtures.ts';
import { baseEnv, startCli } from './cli-helpers.ts';
import { C1, C2, G1, G2, checkRecording, readManifest, recordingDir, sleep, waitForAction } from './bot-fixtures.ts';

after(cleanupDirs);

/** Output of a running child, and a way to wait for a line. */
function watch(child: ChildProcess): { out: () => string; waitFor: (re: RegExp, timeoutMs?: number) => Promise<void>; exited: Promise<{ code: number | null; signal: string | null }> } {
  let text = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (text += d));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return {
    out: () => text,
    exited,
    waitFor: async (re, timeoutMs = 30_000) => {
      const until = Date.now() + timeoutMs;
      while (!re.test(text)) {
        if (Date.now() > until) throw new Error(`no ${re} in the bot's output within ${timeoutMs} ms:\n${text}`);
        if (child.exitCode !== null) throw new Error(`the bot exited (${child.exitCode}) before ${re}:\n${text}`);
        await sleep(50);
      }
    },
  };
}

/** Every file under a directory (recursively). */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

test('the bot SIGKILLed mid-recording, started again, finishes the recordings, says so, and restores the channel status and the nickname', async () => {
  const m1 = member(1, 400, [[300, 1200], [1800, 2500]]);
  const m2 = member(2, 650, [[600, 1000], [2200, 2500]]);
  const m3 = member(3, 1000, [[400, 3000]]);
  for (const m of [m1, m2, m3]) opusLoop(m.signal);
  // Guild 2 may not have its channel status set: the bot's nickname shows the recording there.
  const sim = await startSimulator(scenario([m1, m2], { seed: 91, guilds: [{ guildId: G2, channelId: C2, dave: true, members: [m3], denyVoiceStatus: true }] }));
  trustSimulatorCertificate(sim);
  const root = tempDir('dvrec-botcli-');
  const args = [
    'bot',
    '--out', join(root, 'rec', '{guild}-{channel}-{datetime}'),
    '--config', join(root, 'bot.json'),
    '--state-dir', join(root, 'state'),
    '--api-url', sim.apiUrl,
  ];
  const env = baseEnv({ DISCORD_TOKEN: TOKEN, NODE_EXTRA_CA_CERTS: sim.caCertPath });
  let child = startCli(args, { env });
  let w = watch(child);
  try {
    await w.waitFor(/ready: serving/);
    assert.ok(sim.botActions().some((a) => a.kind === 'commands' && a.guildId === null), 'commands registered globally');
    const sessionStart = new Promise<number>((resolve) => sim.events.once('session-start', (e) => resolve(e.wallMs)));
    const [reply, reply2] = await Promise.all([
      sim.interact({ guildId: G1, userId: m1.userId, command: 'record', subcommand: 'start' }).content,
      sim.interact({ guildId: G2, userId: m3.userId, command: 'record', subcommand: 'start' }).content,
    ]);
    assert.match(reply.content, /Recording <#100000000000000002>/);
    assert.match(reply2.content, /Recording <#100000000000000022>/);
    const t0 = await sessionStart;
    await waitForAction(sim, 'voice-status', (a) => a.status === RECORDING_STATUS);
    await waitForAction(sim, 'nick', (a) => a.guildId === G2 && a.nick === '🔴 dvrec-bot');
    await sleep(t0 + 3500 - Date.now());
    child.kill('SIGKILL');
    assert.equal((await w.exited).signal, 'SIGKILL');
    const killedAt = Date.now();

    // What a crash leaves: the status and the nickname still up, captures without a manifest, the crash records.
    assert.deepEqual(sim.guild(G1).voiceStatuses(), { [C1]: RECORDING_STATUS });
    assert.equal(sim.guild(G2).botNick(), '🔴 dvrec-bot');
    assert.deepEqual(JSON.parse(readFileSync(join(root, 'state', 'active', `${G2}.json`), 'utf8')).sign, { kind: 'nick', previousNick: null });
    const dir = recordingDir(join(root, 'rec'), G1);
    assert.ok(existsSync(join(dir, 'capture.json')) && !existsSync(join(dir, 'manifest.json')));
    const record = JSON.parse(readFileSync(join(root, 'state', 'active', `${G1}.json`), 'utf8'));
    assert.equal(record.outDir, dir);
    assert.deepEqual(record.sign, { kind: 'status', channelId: C1, previous: null });

    const before = sim.botActions().length;
    child = startCli(args, { env });
    w = watch(child);
    await w.waitFor(/ready: serving/, 60_000);
    const again = sim.botActions().slice(before);
    const told = again.find((a) => a.kind === 'message' && a.channelId === C1 && a.content.startsWith('♻️'));
    assert.ok(told, `a message in the channel: ${JSON.stringify(again)}`);
    assert.ok(again.some((a) => a.kind === 'voice-status' && a.channelId === C1 && a.status === ''), 'the status was cleared');
    assert.deepEqual(sim.guild(G1).voiceStatuses(), {});
    assert.equal(sim.guild(G2).botNick(), null, 'the nickname is back to none');
    assert.ok(again.some((a) => a.kind === 'message' && a.channelId === C2 && a.content.startsWith('♻️')), 'told in guild 2 too');
    assert.match(w.out(), /finished the recording a previous run left/);
    const dir2 = recordingDir(join(root, 'rec'), G2);
    const man2 = readManifest(dir2);
    assert.equal(man2.recovered, true);
    checkRecording(dir2, man2, sim.guild(G2).truth(), [{ userId: m3.userId, hz: 1000 }]);

    const m = readManifest(dir);
    assert.equal(m.recovered, true);
    const startMs = Date.parse(m.startedAt);
    assert.ok(m.durationMs >= 2500 && m.durationMs <= killedAt - startMs + 50, `recovered ${m.durationMs} ms of the ${killedAt - startMs} ms before the kill`);
    checkRecording(dir, m, sim.truth(), [{ userId: m1.userId, hz: 400 }, { userId: m2.userId, hz: 650 }]);
    assert.ok((told as { content: string }).content.includes(dir));
    assert.deepEqual(readdirSync(join(root, 'state', 'active')), []);

    // systemd's stop (SIGTERM) during a second recording: it is finished, announced and the status restored; exit 0.
    const second = await sim.interact({ guildId: G1, userId: m1.userId, command: 'record', subcommand: 'start' }).content;
    assert.match(second.content, /^🔴 Recording/);
    await waitForAction(sim, 'voice-status', (a) => a.status === RECORDING_STATUS && a.wallMs > killedAt);
    await sleep(1000);
    child.kill('SIGTERM');
    const end = await w.exited;
    assert.equal(end.code, 0, w.out());
    const shutdown = sim.botActions().find((a) => a.kind === 'message' && a.content.includes('(the recorder is shutting down)'));
    assert.ok(shutdown, JSON.stringify(sim.botActions().slice(-4)));
    assert.deepEqual(sim.guild(G1).voiceStatuses(), {});
    const dirs = readdirSync(join(root, 'rec')).filter((d) => d.startsWith(`${G1}-`) && join(root, 'rec', d) !== dir);
    assert.equal(dirs.length, 1);
    const m2nd = readManifest(join(root, 'rec', dirs[0]!));
    assert.ok(m2nd.durationMs >= 900 && !m2nd.recovered, `${m2nd.durationMs} ms`);
    assert.deepEqual(readdirSync(join(root, 'state', 'active')), []);
    // The token appears nowhere: not in the output, not in any file written.
    assert.ok(!w.out().includes(TOKEN));
    for (const f of filesUnder(root)) assert.ok(!readFileSync(f).includes(TOKEN), `${f} holds no token`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await sim.close();
  }
});

/** A second guild id on the other shard of two from G1. */
function otherShardGuild(): string {
  let g = 100000000000000021n;
  while (shardOf(String(g), 2) === shardOf(G1, 2)) g += 1n << 22n;
  return String(g);
}

for (const mode of ['--shards auto', '--shard-ids / --shard-count, one process each'] as const) {
  test(`two shards in two processes (${mode}) each record a guild of their own`, async () => {
    const g2 = otherShardGuild();
    const c2 = '100000000000000022';
    const a1 = member(1, 400, [[300, 1800]]);
    const a2 = member(2, 650, [[500, 1600]]);
    for (const m of [a1, a2]) opusLoop(m.signal);
    const sim = await startSimulator(scenario([a1], { seed: 93, shards: 2, guilds: [{ guildId: g2, channelId: c2, dave: true, members: [a2] }] }));
    trustSimulatorCertificate(sim);
    const root = tempDir('dvrec-botshard-');
    const common = ['bot', '--out', join(root, 'rec', '{guild}-{channel}-{datetime}'), '--config', join(root, 'bot.json'), '--state-dir', join(root, 'state'), '--api-url', sim.apiUrl];
    const env = baseEnv({ DISCORD_TOKEN: TOKEN, NODE_EXTRA_CA_CERTS: sim.caCertPath });
    const children =
      mode === '--shards auto'
        ? [startCli([...common, '--shards', 'auto'], { env })]
        : [startCli([...common, '--shard-ids', '0', '--shard-count', '2'], { env }), startCli([...common, '--shard-ids', '1', '--shard-count', '2'], { env })];
    const ws = children.map(watch);
    try {
      // Each shard process says when it serves its commands (the manager's own "started" comes earlier: discord.js
      // counts a shard as spawned once its gateway session is ready, before the bot registered its handlers).
      if (mode === '--shards auto') {
        await ws[0]!.waitFor(/shard 0\/2: ready: serving/, 60_000);
        await ws[0]!.waitFor(/shard 1\/2: ready: serving/, 60_000);
        await ws[0]!.waitFor(/all 2 shards started/, 60_000);
      } else {
        await ws[0]!.waitFor(/shard 0\/2: ready: serving/, 60_000);
        await ws[1]!.waitFor(/shard 1\/2: ready: serving/, 60_000);
      }
      const out = () => ws.map((w) => w.out()).join('\n');
      assert.deepEqual(sim.gatewayShards().map((s) => s.join('/')).sort(), ['0/2', '1/2'], 'one gateway session per shard');
      // Each guild's members command the bot; each guild is served by the process of its own shard.
      const replies = await Promise.all([
        sim.interact({ guildId: G1, userId: a1.userId, command: 'record', subcommand: 'start' }).content,
        sim.interact({ guildId: g2, userId: a2.userId, command: 'record', subcommand: 'start' }).content,
      ]);
      for (const r of replies) assert.match(r.content, /^🔴 Recording/);
      assert.match(out(), new RegExp(`shard ${shardOf(G1, 2)}/2: recording dvrec simulated guild / General`));
      assert.match(out(), new RegExp(`shard ${shardOf(g2, 2)}/2: recording dvrec simulated guild / General`));
      await sleep(2600);
      const stops = await Promise.all([
        sim.interact({ guildId: G1, userId: a1.userId, command: 'record', subcommand: 'stop' }).content,
        sim.interact({ guildId: g2, userId: a2.userId, command: 'record', subcommand: 'stop' }).content,
      ]);
      for (const s of stops) assert.match(s.content, /^⏹️ Stopped: \ds, 1 track/);
      const d1 = recordingDir(join(root, 'rec'), G1);
      const d2 = recordingDir(join(root, 'rec'), g2);
      checkRecording(d1, readManifest(d1), sim.guild(G1).truth(), [{ userId: a1.userId, hz: 400 }]);
      checkRecording(d2, readManifest(d2), sim.guild(g2).truth(), [{ userId: a2.userId, hz: 650 }]);
      for (const c of children) c.kill('SIGTERM');
      for (const w of ws) assert.equal((await w.exited).code, 0, w.out());
      assert.ok(!out().includes(TOKEN));
    } finally {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await sim.close();
    }
  });
}
