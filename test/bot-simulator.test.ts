/**
 * The local Discord's bot-facing surface, driven by the real discord.js: several guilds in one simulated Discord,
 * application commands, INTERACTION_CREATE with member permissions, replies (ephemeral, deferred, edits,
 * follow-ups), messages in a voice channel's chat, the voice channel status, the bot's nickname, members joining
 * and leaving voice when the test says, and gateway sharding. What discord.js builds from the payloads (guilds,
 * members, permissions, interaction options) is what is checked, so a payload discord.js misreads fails here.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  ApplicationCommandOptionType, ChannelType, Client, Events, GatewayIntentBits, MessageFlags, PermissionFlagsBits, type ChatInputCommandInteraction,
  type RESTPostAPIChatInputApplicationCommandsJSONBody,
} from 'discord.js';
import { startSimulator, trustSimulatorCertificate, shardOf, type Scenario, type Simulator } from '../src/simulator/index.ts';
import { BOT, TOKEN, scenario } from './record-fixtures.ts';
import { cleanupDirs, member } from './fault-fixtures.ts';

after(cleanupDirs);

const G2 = '100000000000000021';
const C2 = '100000000000000022';
const MOD_ROLE = '100000000000000030';

function twoGuilds(extra: Partial<Scenario> = {}): Scenario {
  return scenario([member(1, 400, []), member(2, 650, [], { roles: [MOD_ROLE] }), member(3, 1000, [])], {
    seed: 5,
    dave: false,
    roles: [{ id: MOD_ROLE, name: 'mods', permissions: String(PermissionFlagsBits.ManageGuild) }],
    guilds: [
      { guildId: G2, channelId: C2, guildName: 'second', channelName: 'Lounge', dave: false, members: [member(4, 500, []), member(5, 800, [], { absent: true })], denyVoiceStatus: true },
    ],
    ...extra,
  });
}

async function login(sim: Simulator, opts: { shards?: number[]; shardCount?: number } = {}): Promise<Client<true>> {
  const client = new Client({
    intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildVoiceStates],
    rest: { api: sim.apiUrl },
    ...(opts.shards ? { shards: opts.shards, shardCount: opts.shardCount } : {}),
  });
  const ready = new Promise<void>((resolve) => client.once(Events.ClientReady, () => resolve()));
  await client.login(TOKEN);
  await ready;
  return client as Client<true>;
}

const COMMANDS: RESTPostAPIChatInputApplicationCommandsJSONBody[] = [
  {
    name: 'record',
    description: 'Record this voice channel',
    options: [
      {
        type: ApplicationCommandOptionType.Subcommand,
        name: 'start',
        description: 'start',
        options: [
          { type: ApplicationCommandOptionType.Channel, name: 'channel', description: 'voice channel', channel_types: [ChannelType.GuildVoice] },
          { type: ApplicationCommandOptionType.String, name: 'format', description: 'format', choices: [{ name: 'wav', value: 'wav' }, { name: 'mp3', value: 'mp3' }] },
        ],
      },
      { type: ApplicationCommandOptionType.Subcommand, name: 'note', description: 'note', options: [{ type: ApplicationCommandOptionType.String, name: 'text', description: 'text', required: true }] },
    ],
  },
];

test('two guilds, commands, interactions with member permissions, replies, messages, status and nickname through discord.js', async () => {
  const sim = await startSimulator(twoGuilds());
  trustSimulatorCertificate(sim);
  const client = await login(sim);
  try {
    assert.deepEqual([...client.guilds.cache.keys()].sort(), ['100000000000000001', G2]);
    const g2 = client.guilds.cache.get(G2)!;
    assert.equal(g2.name, 'second');
    assert.equal(g2.channels.cache.get(C2)?.name, 'Lounge');
    assert.deepEqual([...g2.voiceStates.cache.keys()], ['200000000000000004'], 'member 5 is absent until it joins');
    // The bot's own permissions come from its managed role.
    const me1 = await client.guilds.cache.get('100000000000000001')!.members.fetchMe();
    assert.ok(me1.permissions.has(PermissionFlagsBits.ChangeNickname));

    // Commands: global and per guild; re-registering keeps a command's id.
    const global = await client.application.commands.set(COMMANDS);
    const inGuild = await client.application.commands.set(COMMANDS, G2);
    assert.equal(global.first()!.name, 'record');
    const again = await client.application.commands.set(COMMANDS);
    assert.equal(again.first()!.id, global.first()!.id);
    assert.notEqual(inGuild.first()!.id, global.first()!.id);

    const seen: ChatInputCommandInteraction[] = [];
    client.on(Events.InteractionCreate, async (i) => {
      if (!i.isChatInputCommand()) return;
      seen.push(i);
      const sub = i.options.getSubcommand();
      if (sub === 'start') {
        if (!i.memberPermissions?.has(PermissionFlagsBits.ManageGuild)) return void i.reply({ content: 'no', flags: MessageFlags.Ephemeral });
        await i.deferReply();
        await i.editReply(`recording ${i.options.getChannel('channel')?.name ?? 'here'} as ${i.options.getString('format') ?? 'wav'}`);
        await i.followUp({ content: 'secret', flags: MessageFlags.Ephemeral });
      } else {
        await i.reply(`noted: ${i.options.getString('text', true)}`);
      }
    });
    // Member 3 has no role: refused ephemerally. Member 2 has the mods role (Manage Server). Member 1 owns the guild.
    const refused = sim.interact({ guildId: '100000000000000001', userId: '200000000000000003', command: 'record', subcommand: 'start' });
    assert.deepEqual(await refused.content, { content: 'no', ephemeral: true });
    const ok = sim.interact({ guildId: '100000000000000001', userId: '200000000000000002', command: 'record', subcommand: 'start', options: { channel: '100000000000000002', format: 'mp3' } });
    assert.equal((await ok.response).type, 5);
    assert.deepEqual(await ok.content, { content: 'recording General as mp3', ephemeral: false });
    const owner = sim.interact({ guildId: G2, userId: '200000000000000004', command: 'record', subcommand: 'note', options: { text: 'hello' } });
    assert.deepEqual(await owner.content, { content: 'noted: hello', ephemeral: false });
    await new Promise((r) => setTimeout(r, 200));
    const kinds = sim.botActions().map((a) => a.kind);
    assert.deepEqual(kinds.filter((k) => k !== 'commands'), ['interaction-response', 'interaction-response', 'edit-original', 'followup', 'interaction-response']);
    const follow = sim.botActions().find((a) => a.kind === 'followup')!;
    assert.ok(follow.kind === 'followup' && follow.ephemeral && follow.content === 'secret');
    assert.equal(seen[0]!.member?.user.id, '200000000000000003');
    assert.equal(seen[2]!.guildId, G2);
    assert.throws(() => sim.interact({ guildId: G2, userId: '200000000000000004', command: 'nope' }), /not registered/);
    assert.throws(() => sim.interact({ guildId: G2, userId: '200000000000000004', command: 'record', subcommand: 'note' }), /required/);

    // A second response to the same interaction is refused as Discord does.
    await assert.rejects(seen[2]!.reply('again'), /already been (acknowledged|sent or deferred)/);

    // Messages in a voice channel's chat, the voice channel status, and the nickname.
    const voice = client.channels.cache.get('100000000000000002')!;
    assert.ok(voice.isVoiceBased() && voice.isSendable());
    const msg = await voice.send('🔴 Recording started by Member 2');
    assert.equal(msg.channelId, '100000000000000002');
    // Attachments travel as multipart, byte for byte; over the upload limit (10 MiB here) Discord answers 413.
    const file = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7 + (i >> 8)) & 0xff));
    const withFile = await voice.send({ content: 'files', files: [{ attachment: file, name: 'mix.mp3' }] });
    assert.equal(withFile.attachments.first()?.name, 'mix.mp3');
    assert.equal(withFile.attachments.first()?.size, file.length);
    const posted = sim.botActions().filter((a) => a.kind === 'message').at(-1)!;
    assert.ok(posted.kind === 'message' && posted.attachments[0]!.size === file.length);
    await assert.rejects(voice.send({ files: [{ attachment: Buffer.alloc(10 * 1024 * 1024 + 1), name: 'big.wav' }] }), (e: unknown) => (e as { status?: number }).status === 413);
    await client.rest.put('/channels/100000000000000002/voice-status', { body: { status: '🔴 Recording' } });
    assert.deepEqual(sim.guild('100000000000000001').voiceStatuses(), { '100000000000000002': '🔴 Recording' });
    await client.rest.put('/channels/100000000000000002/voice-status', { body: { status: '' } });
    assert.deepEqual(sim.guild('100000000000000001').voiceStatuses(), {});
    // Guild 2 denies the status (no Set Voice Channel Status): 403, as Discord answers.
    await assert.rejects(client.rest.put(`/channels/${C2}/voice-status`, { body: { status: 'x' } }), (e: unknown) => (e as { status?: number }).status === 403);
    const nickUpdate = new Promise<string | null>((resolve) => client.on(Events.GuildMemberUpdate, (_o, n) => n.id === BOT && resolve(n.nickname)));
    await g2.members.editMe({ nick: '🔴 dvrec-bot' });
    assert.equal(await nickUpdate, '🔴 dvrec-bot');
    assert.equal(sim.guild(G2).botNick(), '🔴 dvrec-bot');
    assert.equal(g2.members.me?.nickname, '🔴 dvrec-bot');

    // Members join and leave voice when the test says (the bot is not in the call).
    const joined = new Promise<string>((resolve) => client.on(Events.VoiceStateUpdate, (o, n) => !o.channelId && n.channelId === C2 && resolve(n.id)));
    sim.guild(G2).join('200000000000000005');
    assert.equal(await joined, '200000000000000005');
    assert.equal(g2.channels.cache.get(C2)!.isVoiceBased() && (g2.channels.cache.get(C2) as { members: Map<string, unknown> }).members.size, 2);
    const left = new Promise<string>((resolve) => client.on(Events.VoiceStateUpdate, (o, n) => o.channelId === C2 && !n.channelId && resolve(n.id)));
    sim.guild(G2).leave('200000000000000004');
    assert.equal(await left, '200000000000000004');
    assert.deepEqual(sim.guild(G2).inVoice(), ['200000000000000005']);
  } finally {
    await client.destroy();
    await sim.close();
  }
});

test('an interaction answered after 3 s is refused (10062), as Discord does', async () => {
  const sim = await startSimulator(twoGuilds());
  trustSimulatorCertificate(sim);
  const client = await login(sim);
  try {
    await client.application.commands.set(COMMANDS);
    const late = new Promise<unknown>((resolve) =>
      client.once(Events.InteractionCreate, (i) => {
        if (!i.isChatInputCommand()) return;
        setTimeout(() => i.reply('late').then(() => resolve(null), resolve), 3300);
      }),
    );
    const it = sim.interact({ guildId: '100000000000000001', userId: '200000000000000001', command: 'record', subcommand: 'note', options: { text: 'x' } });
    await assert.rejects(it.response, /did not respond/);
    const e = (await late) as { code?: number } | null;
    assert.equal(e?.code, 10062);
  } finally {
    await client.destroy();
    await sim.close();
  }
});

test('sharding: GET /gateway/bot recommends the count, each shard session gets only its guilds and their events', async () => {
  // Pick a second guild id that falls on the other shard of two.
  const g1 = '100000000000000001';
  let other = 100000000000000021n;
  while (shardOf(String(other), 2) === shardOf(g1, 2)) other += 1n << 22n;
  const sc = twoGuilds({ shards: 2 });
  sc.guilds![0]!.guildId = String(other);
  const sim = await startSimulator(sc);
  trustSimulatorCertificate(sim);
  const a = await login(sim, { shards: [shardOf(g1, 2)], shardCount: 2 });
  const b = await login(sim, { shards: [shardOf(String(other), 2)], shardCount: 2 });
  try {
    const res = (await a.rest.get('/gateway/bot')) as { shards: number };
    assert.equal(res.shards, 2);
    assert.deepEqual([...a.guilds.cache.keys()], [g1]);
    assert.deepEqual([...b.guilds.cache.keys()], [String(other)]);
    assert.deepEqual(sim.gatewayShards().map((s) => s.join('/')).sort(), ['0/2', '1/2']);
    // A voice state change in guild 2 reaches only shard b.
    let aSaw = 0;
    a.on(Events.VoiceStateUpdate, () => aSaw++);
    const bSaw = new Promise<string>((resolve) => b.on(Events.VoiceStateUpdate, (_o, n) => resolve(n.guild.id)));
    sim.guild(String(other)).join('200000000000000005');
    assert.equal(await bSaw, String(other));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(aSaw, 0);
  } finally {
    await a.destroy();
    await b.destroy();
    await sim.close();
  }
});
