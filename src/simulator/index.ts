/**
 * A protocol-faithful local Discord for tests and `dvrec demo`: REST + main gateway (one HTTP port),
 * voice gateway v8 over TLS + voice UDP (per voice server), playing a seeded {@link Scenario}.
 *
 * The real discord.js + @discordjs/voice connect to it unmodified:
 * ```ts
 * const sim = await startSimulator(scenario);
 * trustSimulatorCertificate(sim);               // or NODE_EXTRA_CA_CERTS=sim.caCertPath for a child process
 * const client = new Client({ intents: [Guilds, GuildVoiceStates], rest: { api: sim.apiUrl } });
 * await client.login(scenario.token);
 * ```
 *
 * Timeline: scenario time 0 = "session start", when the recorder's voice session is usable (op 4 Session
 * Description sent; with DAVE, once the recorder executed its transition into the MLS group, or at once when
 * nobody else is in the call to share a group with). Members, faults and spurts are scheduled on 20 ms ticks
 * from that instant by one absolute clock (scheduler.ts).
 *
 * op 5 Speaking (the only SSRC → user mapping a client gets) goes out before an SSRC's first packet on each voice
 * session: up to SPEAKING_LOOKAHEAD_TICKS ahead, and never less than SPEAKING_LEAD_TICKS: when a member is
 * already mid-spurt as it becomes visible (session start, a join or rejoin, a new session after a server move),
 * its first packets are held until op 5 has that lead, so UDP cannot overtake the websocket. A member's
 * `op5DelayMs` sends op 5 late on purpose instead.
 *
 * During a voice websocket outage (e.g. after a 4015 close, until op 7 resume) media keeps going to the
 * recorder's last known UDP address with the same key, as Discord's media servers do: the UDP flow does not
 * depend on the websocket. Speaking (op 5) messages sent during the outage are buffered and replayed on resume.
 * When there is no usable voice session at all (voice server move in progress, bot disconnected), packets due
 * are not delivered and count as lost in the ground truth.
 */
import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:http';
import * as tls from 'node:tls';
import { SimDiscord, type BotAction, type InteractRequest, type SimInteraction } from './app.ts';
import { startCall, type GuildCall } from './call.ts';
import { createCertificate } from './certificate.ts';
import type { DaveStatus } from './dave-api.ts';
import type { SimulatorEvents } from './events.ts';
import { MainGateway } from './gateway.ts';
import { NONCE_NUMBERINGS } from './nonces.ts';
import type { RecorderAudioTruth } from './recorder-audio.ts';
import { createRestHandler } from './rest.ts';
import type { Fault, GroundTruth, Scenario } from './scenario.ts';
import { TICK_MS } from './speaker.ts';
import { VIDEO_PAYLOAD_TYPES } from './video.ts';
import { ChannelType, World } from './world.ts';

export type { SimulatorEvents } from './events.ts';
export type { DaveStatus } from './dave-api.ts';
export type * from './scenario.ts';
export type { BotAction, InteractRequest, SimInteraction } from './app.ts';
export { shardOf } from './gateway.ts';

export interface Simulator {
  /** REST base in discord.js `rest.api` form, e.g. http://127.0.0.1:PORT/api */
  apiUrl: string;
  /** Main gateway URL (also returned by GET /gateway/bot). */
  gatewayUrl: string;
  /** The per-run self-signed certificate of the TLS voice gateway (SAN IP:127.0.0.1), PEM. */
  caCertPem: string;
  /** The same certificate in a temp file, for NODE_EXTRA_CA_CERTS in child processes. Removed by close(). */
  caCertPath: string;
  /** What was played so far (a copy). */
  truth(): GroundTruth;
  /** Typed events, see {@link SimulatorEvents}. */
  events: EventEmitter<SimulatorEvents>;
  /** Plays a fault now (its atMs is ignored). Scheduled faults come from scenario.faults. */
  inject(fault: Fault): void;
  /** The DAVE group as the simulated gateway sees it (null when the scenario has DAVE off). Valid after close(). */
  daveStatus(): DaveStatus | null;
  /** The audio the recorder's own client sent (a bot that also plays), as the voice server checked it. */
  recorderAudio(): RecorderAudioTruth;
  /**
   * One guild of the simulated Discord (the first is the scenario's top-level guild, also what truth(), events,
   * inject() ... above are about): its own call, ground truth and events, and members joining or leaving its
   * voice channel when a test says so. Throws for an unknown guild id.
   */
  guild(guildId: string): SimGuild;
  /** A member types a slash command in a guild: INTERACTION_CREATE with the member's permissions (see app.ts). */
  interact(req: InteractRequest): SimInteraction;
  /** Everything the bot did that members see, in order (a copy). */
  botActions(): BotAction[];
  /** The shard pairs of the gateway sessions that identified so far. */
  gatewayShards(): [number, number][];
  /** Stops everything: sockets closed, ports freed, timers cleared, temp files removed. */
  close(): Promise<void>;
}

/** One call (a voice channel's): its events, ground truth, DAVE group, members joining and leaving. */
export interface SimCallHandle {
  readonly channelId: string;
  events: EventEmitter<SimulatorEvents>;
  truth(): GroundTruth;
  inject(fault: Fault): void;
  daveStatus(): DaveStatus | null;
  recorderAudio(): RecorderAudioTruth;
  /** A member joins the voice channel now (VOICE_STATE_UPDATE; op 11 when the bot is in the call). */
  join(userId: string): void;
  /** A member leaves the voice channel now. */
  leave(userId: string): void;
}

/**
 * One guild and its state, as tests drive and inspect it. Its own fields (truth, events, inject...) are its first
 * call's (the scenario's channel); join/leave find the member's call; call(channelId) reaches another.
 */
export interface SimGuild extends SimCallHandle {
  readonly guildId: string;
  /** The call of one of the guild's voice channels (Scenario.calls). Throws for a channel without one. */
  call(channelId: string): SimCallHandle;
  /** The voice channel statuses the bot set, by channel id (cleared ones absent). */
  voiceStatuses(): Record<string, string>;
  /** The bot's nickname in this guild (null: none). */
  botNick(): string | null;
  /** User ids in a voice channel of this guild now (default: the scenario's channel). */
  inVoice(channelId?: string): string[];
}

/** Makes THIS process trust the simulator's voice-gateway certificate (tls.setDefaultCACertificates, Node ≥ 22.19/24.5). */
export function trustSimulatorCertificate(sim: Simulator): void {
  const current = tls.getCACertificates('default');
  if (current.includes(sim.caCertPem)) return;
  tls.setDefaultCACertificates([...current, sim.caCertPem]);
}

const SNOWFLAKE = /^\d{15,20}$/;

function validateGuild(s: Scenario): void {
  const ids: [string, string][] = [
    ['guildId', s.guildId],
    ['channelId', s.channelId],
    ['botUserId', s.botUserId],
    ...s.members.map((m, i): [string, string] => [`members[${i}].userId`, m.userId]),
  ];
  for (const [name, id] of ids) if (!SNOWFLAKE.test(id)) throw new RangeError(`scenario.${name} must be a numeric snowflake`);
  if (new Set(s.members.map((m) => m.userId)).size !== s.members.length) throw new RangeError('scenario: duplicate member ids');
  s.members.forEach((m, i) => {
    if (m.hostileDave && !(Number.isInteger(m.hostileDave.every) && m.hostileDave.every >= 1)) {
      throw new RangeError(`scenario.members[${i}].hostileDave.every must be an integer ≥ 1`);
    }
    if (m.op5DelayMs !== undefined && !(m.op5DelayMs >= 0)) throw new RangeError(`scenario.members[${i}].op5DelayMs must be ≥ 0`);
    for (const codec of [m.video?.cameraCodec, m.video?.screenCodec]) {
      if (codec !== undefined && !(codec in VIDEO_PAYLOAD_TYPES)) throw new RangeError(`scenario.members[${i}].video: unknown codec ${String(codec)}`);
    }
    if (m.audience && m.spurts.length > 0) throw new RangeError(`scenario.members[${i}]: an audience member is suppressed and sends no audio (no spurts)`);
  });
  if (s.nonces !== undefined && !NONCE_NUMBERINGS.includes(s.nonces)) throw new RangeError(`scenario.nonces must be one of ${NONCE_NUMBERINGS.join(', ')}`);
  if (typeof s.senderReports === 'object' && !(s.senderReports.intervalMs >= TICK_MS)) {
    throw new RangeError(`scenario.senderReports.intervalMs must be ≥ ${TICK_MS}`);
  }
  if (s.channelType !== undefined && s.channelType !== ChannelType.GUILD_VOICE && s.channelType !== ChannelType.GUILD_STAGE_VOICE) {
    throw new RangeError('scenario.channelType must be 2 (voice) or 13 (stage)');
  }
}


/** Every guild of a scenario as a full Scenario (the bot's identity shared; a guild without a seed gets seed + i). */
function guildScenarios(scenario: Scenario): Scenario[] {
  const { guilds = [], shards: _shards, ...first } = scenario;
  const rest = guilds.map((g, i): Scenario => ({ ...g, seed: g.seed ?? scenario.seed + i + 1, botUserId: scenario.botUserId, token: scenario.token }));
  return [first, ...rest];
}

/**
 * A guild's calls as full Scenarios (the first: the guild's own channel and members; then Scenario.calls), and the
 * scenario its World is built from: every call's members, and every call's channel among its channels.
 */
function guildCalls(g: Scenario): { world: Scenario; calls: Scenario[] } {
  const { calls = [], ...first } = g;
  const extra = calls.map((c, k): Scenario => {
    const { extraChannels: _e, faults: _f, voiceStatus: _v, ...rest } = first;
    return { ...rest, seed: c.seed ?? g.seed + 1000 * (k + 1), channelId: c.channelId, members: c.members, ...(c.channelName ? { channelName: c.channelName } : {}), ...(c.userLimit !== undefined ? { userLimit: c.userLimit } : {}) };
  });
  const world: Scenario = {
    ...first,
    members: [...first.members, ...calls.flatMap((c) => c.members)],
    extraChannels: [...(first.extraChannels ?? []), ...calls.map((c) => ({ id: c.channelId, type: ChannelType.GUILD_VOICE, name: c.channelName ?? 'Voice', ...(c.userLimit !== undefined ? { userLimit: c.userLimit } : {}) }))],
  };
  return { world, calls: [first, ...extra] };
}

/** Starts the simulator on free loopback ports. */
export async function startSimulator(scenario: Scenario): Promise<Simulator> {
  const scenarios = guildScenarios(scenario);
  const layouts = scenarios.map(guildCalls);
  for (const l of layouts) {
    for (const c of l.calls) validateGuild(c);
    if (new Set(l.world.members.map((m) => m.userId)).size !== l.world.members.length) throw new RangeError(`scenario: a member of guild ${l.world.guildId} is in two calls`);
  }
  const guildIds = scenarios.map((s) => s.guildId);
  if (new Set(guildIds).size !== guildIds.length) throw new RangeError('scenario: duplicate guild ids');
  const channelIds = layouts.flatMap((l) => [l.world.channelId, ...(l.world.extraChannels ?? []).map((c) => c.id)]);
  if (new Set(channelIds).size !== channelIds.length) throw new RangeError('scenario: a channel id is used twice');
  if (scenario.shards !== undefined && !(Number.isInteger(scenario.shards) && scenario.shards >= 1)) throw new RangeError('scenario.shards must be an integer ≥ 1');

  const events = new EventEmitter<SimulatorEvents>();
  const cert = await createCertificate();
  const worlds = layouts.map((l) => new World(l.world));
  layouts.forEach((_l, i) => {
    for (const c of scenarios[i]!.calls ?? []) if (c.voiceStatus) worlds[i]!.voiceStatuses.set(c.channelId, c.voiceStatus);
  });
  const dir = new SimDiscord(scenario.token, scenario.botUserId, worlds, events);

  // ---- REST + main gateway on one HTTP port ----
  const gateway = new MainGateway(dir);
  dir.gateway = gateway;
  let gatewayUrl = '';
  const http: Server = createServer(createRestHandler({ dir, gatewayUrl: () => gatewayUrl, ...(scenario.shards ? { shards: scenario.shards } : {}) }));
  http.on('upgrade', (req, socket, head) => gateway.handleUpgrade(req, socket, head));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const httpPort = (http.address() as { port: number }).port;
  gatewayUrl = `ws://127.0.0.1:${httpPort}`;
  gateway.url = gatewayUrl;

  // ---- one call per voice channel with a script; the first guild's first call's events are the simulator's own ----
  const calls: GuildCall[] = [];
  /** Per guild: its calls, the first one first. */
  const byGuild = new Map<string, GuildCall[]>();
  try {
    for (const [i, l] of layouts.entries()) {
      const mine: GuildCall[] = [];
      for (const [k, s] of l.calls.entries()) {
        const c = await startCall(s, { world: worlds[i]!, gateway, cert, events: i === 0 && k === 0 ? events : new EventEmitter<SimulatorEvents>() });
        calls.push(c);
        mine.push(c);
      }
      byGuild.set(l.world.guildId, mine);
    }
  } catch (e) {
    await Promise.all(calls.map((c) => c.close()));
    gateway.close();
    await new Promise<void>((resolve) => http.close(() => resolve()));
    await cert.dispose();
    throw e;
  }
  // The bot's op 4 goes to ONE call of its guild: the call of the channel it joins, or of the channel it leaves (a
  // voice channel without a call: the guild's first call). The others only learn that the bot is no longer theirs.
  gateway.on('voice-state-request', (req) => {
    const mine = byGuild.get(req.guildId);
    if (!mine) return void events.emit('voice-join', { channelId: req.channelId, selfDeaf: req.selfDeaf, selfMute: req.selfMute });
    const world = mine[0]!.world;
    const where = req.channelId ?? world.voiceStates.get(world.scenario.botUserId)?.channel_id ?? null;
    const owner = mine.find((c) => c.channelId === where) ?? mine[0]!;
    for (const c of mine) if (c !== owner) c.voiceStateRequest(req, false);
    owner.voiceStateRequest(req, true);
  });
  // A new session of a guild's shard while the bot's voice state there belongs to a session that is gone (the process
  // died): Discord has dropped that voice state by now; the new session must not see the bot in voice.
  gateway.on('identifying', (sessionId) => {
    for (const [guildId, mine] of byGuild) {
      if (!gateway.covers(sessionId, guildId)) continue;
      const world = mine[0]!.world;
      const bot = world.voiceStates.get(world.scenario.botUserId);
      if (!bot || bot.session_id === sessionId || gateway.isConnected(bot.session_id)) continue;
      world.setVoiceState(world.scenario.botUserId, null, bot.session_id);
      for (const c of mine) c.dropBot();
    }
  });
  // Bot actions of every guild reach that guild's other emitters too (a test may listen on the guild's events).
  events.on('bot-action', (a) => {
    for (const c of calls.slice(1)) if ('guildId' in a && a.guildId === c.world.guildId) c.events.emit('bot-action', a);
  });
  const handle = (c: GuildCall): SimCallHandle => ({
    channelId: c.channelId,
    events: c.events,
    truth: () => c.truth(),
    inject: (f) => c.inject(f),
    daveStatus: () => c.daveStatus(),
    recorderAudio: () => c.recorderAudio(),
    join: (id) => c.join(id),
    leave: (id) => c.leave(id),
  });
  const guilds = new Map<string, SimGuild>(
    [...byGuild].map(([guildId, mine]) => {
      const first = mine[0]!;
      const callOf = (userId: string): GuildCall => mine.find((c) => c.has(userId)) ?? first;
      return [
        guildId,
        {
          ...handle(first),
          guildId,
          join: (id: string) => callOf(id).join(id),
          leave: (id: string) => callOf(id).leave(id),
          call(channelId: string) {
            const c = mine.find((x) => x.channelId === channelId);
            if (!c) throw new RangeError(`simulator: no call in channel ${channelId} of guild ${guildId}`);
            return handle(c);
          },
          voiceStatuses: () => Object.fromEntries(first.world.voiceStatuses),
          botNick: () => first.world.botNick,
          inVoice: (channelId = first.channelId) =>
            [...first.world.voiceStates.values()].filter((v) => v.channel_id === channelId).map((v) => v.user_id),
        },
      ];
    }),
  );
  const first = calls[0]!;
  let closed = false;

  return {
    apiUrl: `http://127.0.0.1:${httpPort}/api`,
    gatewayUrl,
    caCertPem: cert.certPem,
    caCertPath: cert.certPath,
    events,
    truth: () => first.truth(),
    inject: (fault) => first.inject(fault),
    recorderAudio: () => first.recorderAudio(),
    daveStatus: () => first.daveStatus(),
    guild(guildId) {
      const g = guilds.get(guildId);
      if (!g) throw new RangeError(`simulator: no guild ${guildId}`);
      return g;
    },
    interact: (req) => dir.interact(req),
    botActions: () => [...dir.actions],
    gatewayShards: () => gateway.shards(),
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all(calls.map((c) => c.close()));
      gateway.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await cert.dispose();
    },
  };
}
