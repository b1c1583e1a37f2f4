/**
 * `dvrec bot` in-process (startBot) against the local Discord with the real discord.js: members type the slash
 * commands in the simulator, and what is checked is what people would get — the decoded audio against the
 * simulator's ground truth, notes in the manifest and labels.txt, the channel status, nickname and messages, and
 * what stays untouched when a member may not record.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBot, type DvrecBot } from '../src/bot/bot.ts';
import { NICK_PREFIX, RECORDING_STATUS } from '../src/bot/sign.ts';
import { startSimulator, trustSimulatorCertificate, type Scenario, type Simulator } from '../src/simulator/index.ts';
import { opusLoop } from '../src/simulator/opus-cache.ts';
import { BLOCK, TOKEN, TONE_PEAK, msToSample, readWavLeft, scenario, toneAmplitude } from './record-fixtures.ts';
import { cleanupDirs, member, tempDir } from './fault-fixtures.ts';
import { C1, C2, G1, G2, MOD_ROLE, checkRecording, readManifest, recordingDir, sleep, waitForAction } from './bot-fixtures.ts';

after(cleanupDirs);

const m1 = member(1, 400, [[300, 1500]]);
const m2 = member(2, 650, [[700, 1400]], { roles: [MOD_ROLE] });
const m3 = member(3, 1000, [[500, 1000]]);
const m4 = member(4, 500, [[400, 1400]]);
const m5 = member(5, 800, [[800, 1200]]);

function twoGuilds(extra: Partial<Scenario> = {}): Scenario {
  const sc = scenario([m1, m2, m3], {
    seed: 81,
    roles: [{ id: MOD_ROLE, name: 'recording managers', permissions: '0' }],
    voiceStatus: 'Weekly sync',
    guilds: [{ guildId: G2, channelId: C2, channelName: 'Lounge', dave: true, members: [m4, m5], denyVoiceStatus: true }],
    ...extra,
  });
  for (const m of [m1, m2, m3, m4, m5]) opusLoop(m.signal);
  return sc;
}

async function bot(sim: Simulator, root: string, extra: Partial<Parameters<typeof startBot>[0]> = {}): Promise<{ bot: DvrecBot; logs: string[] }> {
  const logs: string[] = [];
  const b = await startBot({
    token: TOKEN,
    apiUrl: sim.apiUrl,
    outTemplate: join(root, 'rec', '{guild}-{channel}-{datetime}'),
    configFile: join(root, 'dvrec-bot.json'),
    stateDir: join(root, 'state'),
    managerRoles: [MOD_ROLE],
    workers: 2,
    log: (level, m) => logs.push(`${level}: ${m}`),
    ...extra,
  });
  return { bot: b, logs };
}

test('two members start recordings in two guilds at once: both right (identity, onsets, lengths); a note becomes a marker; status, nickname and messages shown and restored', async () => {
  const sim = await startSimulator(twoGuilds());
  trustSimulatorCertificate(sim);
  const root = tempDir('dvrec-bot-');
  const { bot: b, logs } = await bot(sim, root);
  try {
    assert.ok(sim.botActions().some((a) => a.kind === 'commands' && a.guildId === null && a.names.includes('record') && a.names.includes('autorecord')), 'commands registered globally');
    // Member 1 owns guild 1 (Manage Server); member 4 owns guild 2. Both type /record start at once, in their channel.
    const [i1, i2] = [
      sim.interact({ guildId: G1, userId: m1.userId, command: 'record', subcommand: 'start' }),
      sim.interact({ guildId: G2, userId: m4.userId, command: 'record', subcommand: 'start', options: { format: 'wav', mix: true } }),
    ];
    assert.equal((await i1.response).ephemeral, true, 'deferred, ephemeral');
    const [r1, r2] = await Promise.all([i1.content, i2.content]);
    assert.match(r1.content, /Recording <#100000000000000002>/);
    assert.match(r2.content, /Recording <#100000000000000022>/);
    assert.ok(r1.ephemeral && r2.ephemeral);
    // The sign: guild 1 gets the channel status; guild 2 may not set it, so the nickname carries it.
    assert.deepEqual(sim.guild(G1).voiceStatuses(), { [C1]: RECORDING_STATUS });
    assert.equal(sim.guild(G2).botNick(), `${NICK_PREFIX}dvrec-bot`);
    const started1 = await waitForAction(sim, 'message', (a) => a.channelId === C1);
    assert.match(started1.content, /started by Member 1/);
    await waitForAction(sim, 'message', (a) => a.channelId === C2 && /started by Member 4/.test(a.content));

    // Member 2 marks a moment in guild 1 (anyone may add a note).
    const s1 = b.sessions.get(G1)!;
    await sleep(1200 - s1.recording.now());
    const n = sim.interact({ guildId: G1, userId: m2.userId, command: 'record', subcommand: 'note', options: { text: 'the\tbig moment' } });
    const noteReply = await n.content;
    assert.ok(noteReply.ephemeral && /Noted at/.test(noteReply.content), noteReply.content);

    await sleep(3000 - s1.recording.now());
    const [x1, x2] = [
      sim.interact({ guildId: G1, userId: m2.userId, command: 'record', subcommand: 'stop' }), // member 2: by the manager role
      sim.interact({ guildId: G2, userId: m4.userId, command: 'record', subcommand: 'stop' }),
    ];
    const [e1, e2] = await Promise.all([x1.content, x2.content]);
    assert.match(e1.content, /Stopped: \d+s, 3 tracks/);
    assert.match(e2.content, /Stopped: \d+s, 2 tracks/);

    const dir1 = recordingDir(join(root, 'rec'), G1);
    const dir2 = recordingDir(join(root, 'rec'), G2);
    const man1 = readManifest(dir1);
    const man2 = readManifest(dir2);
    checkRecording(dir1, man1, sim.guild(G1).truth(), [{ userId: m1.userId, hz: 400 }, { userId: m2.userId, hz: 650 }, { userId: m3.userId, hz: 1000 }]);
    checkRecording(dir2, man2, sim.guild(G2).truth(), [{ userId: m4.userId, hz: 500 }, { userId: m5.userId, hz: 800 }]);
    assert.equal(man1.guildId, G1);
    assert.equal(man2.guildId, G2);

    // The note: in the manifest and labels.txt, within 20 ms of when it was sent.
    const sentMs = n.wallMs - Date.parse(man1.startedAt);
    assert.equal(man1.notes?.length, 1);
    assert.equal(man1.notes![0]!.text, 'the big moment');
    assert.equal(man1.notes![0]!.userId, m2.userId);
    assert.ok(Math.abs(man1.notes![0]!.atMs - sentMs) <= 20, `note at ${man1.notes![0]!.atMs} ms, sent at ${sentMs.toFixed(1)} ms`);
    const labels = readFileSync(join(dir1, 'labels.txt'), 'utf8').trim().split('\n').map((l) => l.split('\t'));
    assert.equal(labels.length, 1);
    assert.ok(Math.abs(Number(labels[0]![0]) * 1000 - sentMs) <= 20, `label at ${labels[0]![0]} s`);
    assert.equal(labels[0]![2], 'Member 2: the big moment');
    assert.equal(man2.notes, undefined);

    // Restored: the status people had set, the nickname back to none; a stop message with length, speakers and
    // where the files are.
    await waitForAction(sim, 'voice-status', (a) => a.channelId === C1 && a.status === 'Weekly sync');
    assert.deepEqual(sim.guild(G1).voiceStatuses(), { [C1]: 'Weekly sync' });
    assert.equal(sim.guild(G2).botNick(), null);
    const stop1 = await waitForAction(sim, 'message', (a) => a.channelId === C1 && a.content.startsWith('⏹️'));
    assert.match(stop1.content, /^⏹️ Recording of <#100000000000000002> stopped \(stopped by command\): 3s, speakers: (Member [123](, |, 1 note\.)){3} Files: /);
    for (const name of ['Member 1', 'Member 2', 'Member 3']) assert.ok(stop1.content.includes(name), name);
    assert.ok(stop1.content.includes(dir1), stop1.content);
    assert.deepEqual(stop1.attachments, [], 'no mix asked for in guild 1: nothing attached');
    // Guild 2 asked for the mix: it fits the upload limit, so the stop message carries it, byte for byte.
    const stop2 = await waitForAction(sim, 'message', (a) => a.channelId === C2 && a.content.startsWith('⏹️'));
    assert.match(stop2.content, /The mix is attached\.$/);
    assert.equal(man2.mix, 'mix.wav');
    const mixBytes = readFileSync(join(dir2, 'mix.wav'));
    assert.deepEqual(stop2.attachments, [{ filename: 'mix.wav', size: mixBytes.length, sha256: createHash('sha256').update(mixBytes).digest('hex') }]);
    assert.deepEqual(readdirSync(join(root, 'state', 'active')), [], 'nothing left to recover');
    assert.equal(sim.guild(G1).inVoice().includes('100000000000000003'), false, 'the bot left the channel');
    assert.ok(!logs.join('\n').includes(TOKEN));
  } finally {
    await b.close();
    await sim.close();
  }
});

test('a member without permission is refused (ephemeral), nothing records, nothing changes in the guild', async () => {
  const sim = await startSimulator(twoGuilds());
  trustSimulatorCertificate(sim);
  const root = tempDir('dvrec-bot-');
  const joins: unknown[] = [];
  sim.events.on('voice-join', (e) => joins.push(e));
  const { bot: b } = await bot(sim, root);
  try {
    const before = sim.botActions().length;
    const refused = await sim.interact({ guildId: G1, userId: m3.userId, command: 'record', subcommand: 'start' }).content;
    assert.equal(refused.ephemeral, true);
    assert.match(refused.content, /may not/);
    const auto = await sim.interact({ guildId: G1, userId: m3.userId, command: 'autorecord', subcommand: 'on' }).content;
    assert.match(auto.content, /may not/);
    // Stop and status: nothing runs.
    const status = await sim.interact({ guildId: G1, userId: m3.userId, command: 'record', subcommand: 'status' }).content;
    assert.match(status.content, /^Not recording\.$/);
    await sleep(500);
    assert.deepEqual(joins, [], 'the bot never asked to join voice');
    assert.equal(b.sessions.all().length, 0);
    assert.ok(!existsSync(join(root, 'rec')), 'no recording directory');
    assert.ok(!existsSync(join(root, 'dvrec-bot.json')), 'no autorecord rule written');
    const after = sim.botActions().slice(before);
    assert.deepEqual(after.map((a) => a.kind), ['interaction-response', 'interaction-response', 'interaction-response'], 'only the three ephemeral replies');
    assert.ok(after.every((a) => a.kind === 'interaction-response' && a.ephemeral));
    assert.deepEqual(sim.guild(G1).voiceStatuses(), { [C1]: 'Weekly sync' }, 'the status people set is untouched');
  } finally {
    await b.close();
    await sim.close();
  }
});

test('a channel the bot may not connect to: the caller is told why at once; nothing is left behind', async () => {
  const sim = await startSimulator(twoGuilds({ denyConnect: [C1] }));
  trustSimulatorCertificate(sim);
  const root = tempDir('dvrec-bot-');
  const { bot: b } = await bot(sim, root);
  try {
    const it = sim.interact({ guildId: G1, userId: m1.userId, command: 'record', subcommand: 'start' });
    const r = await it.content;
    assert.ok(r.ephemeral);
    assert.equal(r.content, '❌ the bot may not connect to General (needs Connect)');
    assert.ok(Date.now() - it.wallMs < 2000, 'at once, not after a join timeout');
    assert.equal(b.sessions.all().length, 0);
    assert.ok(!existsSync(join(root, 'state', 'active')), 'no crash record was ever needed');
    assert.ok(!existsSync(join(root, 'rec')));
    assert.deepEqual(sim.guild(G1).voiceStatuses(), { [C1]: 'Weekly sync' });
    // The other guild is not affected.
    assert.match((await sim.interact({ guildId: G2, userId: m4.userId, command: 'record', subcommand: 'start' }).content).content, /^🔴 Recording/);
    assert.match((await sim.interact({ guildId: G2, userId: m4.userId, command: 'record', subcommand: 'stop' }).content).content, /^⏹️ Stopped/);
  } finally {
    await b.close();
    await sim.close();
  }
});

test('a second recording in the same guild: the bot joins the call again and records it right; never overwrites a directory', async () => {
  const r1 = member(1, 400, [[300, 4000], [5500, 3000]]);
  opusLoop(r1.signal);
  const sim = await startSimulator(scenario([r1], { seed: 83 }));
  trustSimulatorCertificate(sim);
  const root = tempDir('dvrec-bot-');
  // A template without {datetime}: the second recording must not land in (or be refused by) the first's directory.
  const { bot: b } = await bot(sim, root, { outTemplate: join(root, 'rec', '{guild}') });
  try {
    const run = async (): Promise<void> => {
      assert.match((await sim.interact({ guildId: G1, userId: r1.userId, command: 'record', subcommand: 'start' }).content).content, /^🔴 Recording/);
      await sleep(1500);
      assert.match((await sim.interact({ guildId: G1, userId: r1.userId, command: 'record', subcommand: 'stop' }).content).content, /^⏹️ Stopped: \ds, 1 track/);
    };
    await run();
    await run();
    assert.deepEqual(readdirSync(join(root, 'rec')).sort(), [G1, `${G1}-2`]);
    // The member speaks throughout: the tone fills both recordings from their first to their last block.
    for (const d of [G1, `${G1}-2`]) {
      const m = readManifest(join(root, 'rec', d));
      assert.equal(m.tracks.length, 1);
      const x = readWavLeft(join(root, 'rec', d, m.tracks[0]!.file));
      const weak: number[] = [];
      const t0 = Date.parse(m.startedAt) - sim.truth().sessionStartWallMs!;
      for (let ms = 100; ms + 20 <= m.durationMs - 100; ms += 20) {
        const scenarioMs = t0 + ms;
        const speaking = r1.spurts.some((sp) => scenarioMs >= sp.atMs + 60 && scenarioMs + 20 <= sp.atMs + sp.durationMs - 60);
        if (speaking && toneAmplitude(x, msToSample(ms), BLOCK, 400) < 0.3 * TONE_PEAK) weak.push(ms);
      }
      assert.deepEqual(weak, [], `${d}: the tone in every block`);
    }
  } finally {
    await b.close();
    await sim.close();
  }
});

test('a guild with two voice channels, each its own call: /record start records the caller\'s channel, and only it', async () => {
  const C3 = '100000000000000050';
  const x1 = member(1, 400, [[300, 2500]]);
  const x6 = member(6, 900, [[400, 2500]], { roles: [MOD_ROLE] });
  const x7 = member(7, 1300, [[700, 1500]]);
  for (const m of [x1, x6, x7]) opusLoop(m.signal);
  const sim = await startSimulator(
    scenario([x1], { seed: 85, roles: [{ id: MOD_ROLE, name: 'recording managers', permissions: '0' }], calls: [{ channelId: C3, channelName: 'Studio', members: [x6, x7] }] }),
  );
  trustSimulatorCertificate(sim);
  const root = tempDir('dvrec-bot-');
  const { bot: b } = await bot(sim, root);
  try {
    assert.deepEqual(sim.guild(G1).inVoice(C3).sort(), [x6.userId, x7.userId]);
    const r = await sim.interact({ guildId: G1, userId: x6.userId, command: 'record', subcommand: 'start' }).content;
    assert.match(r.content, /^🔴 Recording <#100000000000000050>/);
    await sleep(3000 - b.sessions.get(G1)!.recording.now());
    assert.match((await sim.interact({ guildId: G1, userId: x6.userId, command: 'record', subcommand: 'stop' }).content).content, /^⏹️ Stopped: \ds, 2 tracks/);
    const dir = recordingDir(join(root, 'rec'), G1);
    const m = readManifest(dir);
    assert.equal(m.channelId, C3);
    checkRecording(dir, m, sim.guild(G1).call(C3).truth(), [{ userId: x6.userId, hz: 900 }, { userId: x7.userId, hz: 1300 }]);
    assert.equal(sim.truth().sessionStartWallMs, null, 'the other channel\'s call never had the bot');
    assert.deepEqual(sim.guild(G1).voiceStatuses(), {}, 'the Studio status was restored');
    assert.ok(sim.botActions().some((a) => a.kind === 'voice-status' && a.channelId === C3 && a.status === RECORDING_STATUS));
  } finally {
    await b.close();
    await sim.close();
  }
});

test('autorecord: starts when the second person joins, stops when the channel empties; the rule is kept in the config file', async () => {
  const a1 = member(1, 400, [[200, 2000]]);
  const a2 = member(2, 650, [[500, 1500]], { absent: true });
  for (const m of [a1, a2]) opusLoop(m.signal);
  const sim = await startSimulator(scenario([a1, a2], { seed: 82 }));
  trustSimulatorCertificate(sim);
  const root = tempDir('dvrec-bot-');
  const { bot: b } = await bot(sim, root, { emptyGraceMs: 1000 });
  try {
    const on = await sim.interact({ guildId: G1, userId: a1.userId, command: 'autorecord', subcommand: 'on', options: { 'min-members': 2 } }).content;
    assert.match(on.content, /Autorecord is on: <#100000000000000002>/);
    assert.deepEqual(JSON.parse(readFileSync(join(root, 'dvrec-bot.json'), 'utf8')).autorecord, { [G1]: { channelId: C1, minMembers: 2 } });
    await sleep(500);
    assert.equal(b.sessions.all().length, 0, 'one person: nothing records');
    const started = new Promise<void>((resolve) => b.sessions.once('started', () => resolve()));
    sim.guild(G1).join(a2.userId);
    await started;
    const s = b.sessions.get(G1)!;
    assert.equal(s.startedBy, 'autorecord');
    await waitForAction(sim, 'message', (a) => /started by autorecord/.test(a.content));
    await sleep(2500 - s.recording.now());
    const ended = new Promise<string>((resolve) => b.sessions.once('ended', (_s, _m, reason) => resolve(reason)));
    sim.guild(G1).leave(a2.userId);
    await sleep(200);
    assert.equal(b.sessions.get(G1)?.recording.state.status, 'recording', 'one person left: still recording');
    sim.guild(G1).leave(a1.userId);
    const leftAt = s.recording.now();
    assert.equal(await ended, 'empty-channel');
    const dir = recordingDir(join(root, 'rec'), G1);
    const m = readManifest(dir);
    assert.ok(m.durationMs >= leftAt + 900 && m.durationMs <= leftAt + 2600, `stopped ${m.durationMs - leftAt} ms after the channel emptied`);
    checkRecording(dir, m, sim.truth(), [{ userId: a1.userId, hz: 400 }, { userId: a2.userId, hz: 650 }]);
    await waitForAction(sim, 'message', (a) => /stopped \(the channel emptied\)/.test(a.content));
    await waitForAction(sim, 'voice-status', (a) => a.status === '');
  } finally {
    await b.close();
    await sim.close();
  }
  assert.ok(readdirSync(join(root, 'rec')).length === 1);
});

test('autorecord with a role: only people with it count; a recording stopped by hand is not restarted before the channel empties', async () => {
  const SPEAKERS = '100000000000000040';
  const a1 = member(1, 400, [[200, 3000]], { roles: [SPEAKERS] });
  const a2 = member(2, 650, [[300, 3000]], { absent: true, roles: [SPEAKERS] });
  const a3 = member(3, 1000, [[300, 3000]], { absent: true });
  for (const m of [a1, a2, a3]) opusLoop(m.signal);
  const sim = await startSimulator(scenario([a1, a2, a3], { seed: 84, roles: [{ id: SPEAKERS, name: 'speakers', permissions: '0' }] }));
  trustSimulatorCertificate(sim);
  const root = tempDir('dvrec-bot-');
  const { bot: b } = await bot(sim, root, { emptyGraceMs: 1000 });
  try {
    const on = await sim.interact({ guildId: G1, userId: a1.userId, command: 'autorecord', subcommand: 'on', options: { role: SPEAKERS } }).content;
    assert.match(on.content, /2 or more people with the role speakers/);
    assert.deepEqual(JSON.parse(readFileSync(join(root, 'dvrec-bot.json'), 'utf8')).autorecord[G1], { channelId: C1, minMembers: 2, roleId: SPEAKERS });
    // Member 3 has no such role: two people in the channel, one who counts.
    sim.guild(G1).join(a3.userId);
    await sleep(600);
    assert.equal(b.sessions.all().length, 0, 'member 3 does not count');
    const started = new Promise<void>((resolve) => b.sessions.once('started', () => resolve()));
    sim.guild(G1).join(a2.userId);
    await started;
    const status = await sim.interact({ guildId: G1, userId: a3.userId, command: 'record', subcommand: 'status' }).content;
    assert.match(status.content, /^🔴 Recording <#100000000000000002>.*Autorecord: on for <#100000000000000002> \(2\+ people with <@&100000000000000040>\)/);
    await sleep(1500);
    // Stopped by hand while people are still there: autorecord does not start again at the next change...
    assert.match((await sim.interact({ guildId: G1, userId: a1.userId, command: 'record', subcommand: 'stop' }).content).content, /^⏹️ Stopped/);
    const m = readManifest(recordingDir(join(root, 'rec'), G1));
    assert.deepEqual(m.tracks.map((t) => t.userId).sort(), [a1.userId, a2.userId, a3.userId], 'everyone in the channel is recorded, whoever counted');
    sim.guild(G1).leave(a3.userId);
    await sleep(600);
    assert.equal(b.sessions.all().length, 0, 'not restarted while the same people are still there');
    // ...until the channel has emptied once.
    sim.guild(G1).leave(a1.userId);
    sim.guild(G1).leave(a2.userId);
    await sleep(300);
    const again = new Promise<void>((resolve) => b.sessions.once('started', () => resolve()));
    sim.guild(G1).join(a1.userId);
    sim.guild(G1).join(a2.userId);
    await again;
    const ended = new Promise<string>((resolve) => b.sessions.once('ended', (_s, _m, reason) => resolve(reason)));
    await sleep(500);
    for (const x of [a1, a2]) sim.guild(G1).leave(x.userId);
    assert.equal(await ended, 'empty-channel');
    assert.equal(readdirSync(join(root, 'rec')).length, 2, 'two recordings');
  } finally {
    await b.close();
    await sim.close();
  }
});
