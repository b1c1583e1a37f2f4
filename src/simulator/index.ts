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
 * Description sent; with DAVE, once the DAVE server reports `recorderReady`). Members, faults and spurts are
 * scheduled on 20 ms ticks from that instant by one absolute clock (scheduler.ts).
 *
 * During a voice websocket outage (e.g. after a 4015 close, until op 7 resume) media keeps going to the
 * recorder's last known UDP address with the same key, as Discord's media servers do: the UDP flow does not
 * depend on the websocket. Speaking (op 5) messages sent during the outage are buffered and replayed on resume.
 * When there is no usable voice session at all (voice server move in progress, bot disconnected), packets due
 * are not delivered and count as lost in the ground truth.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:http';
import { extname } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { createCertificate, type SimulatorCertificate } from './certificate.ts';
import type { DaveServer, DaveWire } from './dave-api.ts';
import type { SimulatorEvents } from './events.ts';
import { MainGateway, type VoiceStateRequest } from './gateway.ts';
import { HOSTILE_KINDS, hostileDatagram, rtcpDatagram } from './hostile.ts';
import { ImpairmentModel } from './impairments.ts';
import { Prng } from './prng.ts';
import { createRestHandler } from './rest.ts';
import { rtpHeader } from './rtp.ts';
import type { Fault, GroundTruth, Scenario, TransportMode } from './scenario.ts';
import { TickScheduler } from './scheduler.ts';
import { Speaker, TICK_MS } from './speaker.ts';
import { TruthRecorder } from './truth.ts';
import { VoiceServer, type VoiceGrant, type VoiceSession } from './voice-gateway.ts';
import { ChannelType, World } from './world.ts';

export type { SimulatorEvents } from './events.ts';
export type * from './scenario.ts';

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
  /** Stops everything: sockets closed, ports freed, timers cleared, temp files removed. */
  close(): Promise<void>;
}

/** Makes THIS process trust the simulator's voice-gateway certificate (tls.setDefaultCACertificates, Node ≥ 22.19/24.5). */
export function trustSimulatorCertificate(sim: Simulator): void {
  const current = tls.getCACertificates('default');
  if (current.includes(sim.caCertPem)) return;
  tls.setDefaultCACertificates([...current, sim.caCertPem]);
}

const SNOWFLAKE = /^\d{15,20}$/;
/** op 5 goes out this many ticks before a member's first packet on a session (TLS vs UDP race). */
const SPEAKING_LOOKAHEAD_TICKS = 5;
const wallNow = (): number => performance.timeOrigin + performance.now();

type DaveCtor = new (opts: { channelId: string; botUserId: string; memberIds: string[] }) => DaveServer;

/** Loads dave.ts only when DAVE is on, so a dave:false run never loads MLS (and never depends on it). */
async function loadDave(): Promise<DaveCtor> {
  const url = new URL('./dave' + extname(fileURLToPath(import.meta.url)), import.meta.url);
  const mod = (await import(url.href)) as { DaveGroupServer?: DaveCtor };
  if (typeof mod.DaveGroupServer !== 'function') throw new Error('simulator: dave.ts does not export DaveGroupServer');
  return mod.DaveGroupServer;
}

function validate(s: Scenario): void {
  const ids: [string, string][] = [
    ['guildId', s.guildId],
    ['channelId', s.channelId],
    ['botUserId', s.botUserId],
    ...s.members.map((m, i): [string, string] => [`members[${i}].userId`, m.userId]),
  ];
  for (const [name, id] of ids) if (!SNOWFLAKE.test(id)) throw new RangeError(`scenario.${name} must be a numeric snowflake`);
  if (new Set(s.members.map((m) => m.userId)).size !== s.members.length) throw new RangeError('scenario: duplicate member ids');
}

interface TimelineEvent {
  tick: number;
  order: number;
  run: (k: number) => void;
}

/** Starts the simulator on free loopback ports. */
export async function startSimulator(scenario: Scenario): Promise<Simulator> {
  validate(scenario);
  const events = new EventEmitter<SimulatorEvents>();
  const prng = new Prng(scenario.seed);
  const modes: TransportMode[] = scenario.modes ?? ['aead_aes256_gcm_rtpsize', 'aead_xchacha20_poly1305_rtpsize'];
  const world = new World(scenario);
  const truth = new TruthRecorder(scenario.members);
  const cert: SimulatorCertificate = await createCertificate();

  // Members: a speaker and an impairment model each, with their own PRNG streams.
  const usedSsrcs = new Set<number>();
  const speakers = scenario.members.map((m, i) => new Speaker(m, prng.fork(1000 + i), i % 2 === 0));
  const networks = scenario.members.map((_, i) => new ImpairmentModel(scenario.impairments, prng.fork(2000 + i)));
  const hostilePrng = prng.fork(3000);
  const memberVoiceSession = new Map(scenario.members.map((m) => [m.userId, prng.bytes(16).toString('hex')]));
  const initiallyPresent = scenario.members.filter((m) => m.joinAtMs === undefined || m.joinAtMs <= 0);
  for (const m of initiallyPresent) world.setVoiceState(m.userId, scenario.channelId, memberVoiceSession.get(m.userId)!);

  let dave: DaveServer | null = null;
  if (scenario.dave) {
    const Ctor = await loadDave();
    dave = new Ctor({ channelId: scenario.channelId, botUserId: scenario.botUserId, memberIds: initiallyPresent.map((m) => m.userId) });
  }

  // ---- REST + main gateway on one HTTP port ----
  const gateway = new MainGateway(world);
  const http: Server = createServer(createRestHandler({ world, gatewayUrl: () => gatewayUrl }));
  http.on('upgrade', (req, socket, head) => gateway.handleUpgrade(req, socket, head));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const httpPort = (http.address() as { port: number }).port;
  const gatewayUrl = `ws://127.0.0.1:${httpPort}`;
  gateway.url = gatewayUrl;

  // ---- voice ----
  const grants = new Map<string, VoiceGrant>();
  const servers: VoiceServer[] = [];
  let server: VoiceServer;
  let active: VoiceSession | null = null;
  let gatewaySessionId = '';
  let started = false;
  let closed = false;
  let davePoll: NodeJS.Timeout | null = null;
  const timers = new Set<NodeJS.Timeout>();
  /** Faults waiting for their outcome, by kind. */
  const pending = new Map<Fault['kind'], { outcome?: string }[]>();
  const settle = (kind: Fault['kind'], outcome: string): void => {
    const list = pending.get(kind);
    const rec = list?.shift();
    if (!rec) return;
    rec.outcome = outcome;
    events.emit('fault-outcome', { kind, outcome, wallMs: wallNow() });
  };

  const presentIds = (): string[] => speakers.filter((s) => s.present).map((s) => s.member.userId);

  const newVoiceServer = async (): Promise<VoiceServer> => {
    const vs = new VoiceServer({
      certPem: cert.certPem,
      keyPem: cert.keyPem,
      modes,
      daveProtocolVersion: dave ? dave.protocolVersion : 0,
      ...(scenario.rejectVoiceWith !== undefined ? { rejectWith: scenario.rejectVoiceWith } : {}),
      grantFor: (token) => grants.get(token) ?? null,
      allocateSsrc: () => {
        let s: number;
        do s = prng.u32() || 1;
        while (usedSsrcs.has(s));
        usedSsrcs.add(s);
        return s;
      },
      // Before session start nobody is "connected" yet except the initially present members.
      connectedUserIds: () => (started ? presentIds() : initiallyPresent.map((m) => m.userId)),
    });
    await vs.listen();
    servers.push(vs);
    vs.on('identify', (session) => {
      if (active && active !== session) settle('voice-close', 'reidentified');
      events.emit('voice-identify', { endpoint: vs.endpoint, ssrc: session.ssrc });
    });
    vs.on('session-ready', (session) => {
      active = session;
      events.emit('session-ready', { endpoint: vs.endpoint, mode: session.mode!, daveProtocolVersion: dave?.protocolVersion ?? 0 });
      if (dave) {
        const wire: DaveWire = { json: (op, d) => session.send(op, d), binary: (op, p) => session.sendBinary(op, p) };
        dave.attachRecorder(scenario.botUserId, wire);
      }
      if (pending.get('voice-server-move')?.length) {
        settle('voice-server-move', 'moved');
        // The old servers have no more business: close them.
        for (const old of servers.filter((x) => x !== vs)) {
          servers.splice(servers.indexOf(old), 1);
          void old.close();
        }
      }
      if (!started) beginWhenUsable();
    });
    vs.on('resumed', (session, replayed) => {
      if (session === active || !active) active = session;
      settle('voice-close', 'resumed');
      events.emit('resumed', { kind: 'voice', wallMs: wallNow(), replayed });
    });
    vs.on('ws-close', (_session, code) => events.emit('voice-ws-close', { code, wallMs: wallNow() }));
    vs.on('rejected', (code) => events.emit('voice-rejected', { code }));
    vs.on('dave-binary', (session, op, payload) => {
      if (dave && session === active) guard(() => dave!.onRecorderBinary(op, payload));
    });
    vs.on('dave-json', (session, op, d) => {
      if (dave && session === active) guard(() => dave!.onRecorderJson(op, d));
    });
    return vs;
  };
  const guard = (fn: () => void): void => {
    try {
      fn();
    } catch (e) {
      events.emit('warning', { message: `DAVE: ${(e as Error).message}` });
    }
  };
  server = await newVoiceServer();

  const grantVoice = (sessionId: string): string => {
    const token = randomBytes(16).toString('hex');
    grants.set(token, { token, sessionId, userId: scenario.botUserId, serverId: scenario.guildId });
    return token;
  };

  gateway.on('identify', (sessionId) => {
    if (gatewaySessionId) settle('gateway-reconnect', 'reidentified');
    gatewaySessionId = sessionId;
    events.emit('identify', { sessionId });
  });
  gateway.on('resumed', () => {
    settle('gateway-reconnect', 'resumed');
    events.emit('resumed', { kind: 'gateway', wallMs: wallNow() });
  });
  gateway.on('voice-state-request', (req: VoiceStateRequest) => {
    events.emit('voice-join', { channelId: req.channelId, selfDeaf: req.selfDeaf, selfMute: req.selfMute });
    if (req.guildId !== scenario.guildId) return;
    if (req.channelId === null) {
      gateway.dispatch('VOICE_STATE_UPDATE', world.setVoiceState(scenario.botUserId, null, req.sessionId));
      active?.closeWs(1000, 'Left the channel.', true);
      active = null;
      return;
    }
    const channel = world.channel(req.channelId);
    if (!channel || (channel.type !== ChannelType.GUILD_VOICE && channel.type !== ChannelType.GUILD_STAGE_VOICE)) {
      events.emit('voice-join-refused', { channelId: req.channelId, reason: 'unknown-channel' });
      return;
    }
    if (!world.botCan(req.channelId, 'connect')) {
      events.emit('voice-join-refused', { channelId: req.channelId, reason: 'no-permission' });
      return;
    }
    const limit = Number(channel.user_limit ?? 0);
    const alreadyIn = world.voiceStates.get(scenario.botUserId)?.channel_id === req.channelId;
    if (limit > 0 && !alreadyIn && world.occupancy(req.channelId) >= limit) {
      events.emit('voice-join-refused', { channelId: req.channelId, reason: 'full' });
      return;
    }
    // Order matters: VOICE_STATE_UPDATE first, then VOICE_SERVER_UPDATE (else @discordjs/voice stalls).
    gateway.dispatch(
      'VOICE_STATE_UPDATE',
      world.setVoiceState(scenario.botUserId, req.channelId, req.sessionId, { selfDeaf: req.selfDeaf, selfMute: req.selfMute }),
    );
    gateway.dispatch('VOICE_SERVER_UPDATE', { token: grantVoice(req.sessionId), guild_id: scenario.guildId, endpoint: server.endpoint });
  });

  // ---- the timeline ----
  const timeline: TimelineEvent[] = [];
  let order = 0;
  const at = (ms: number, run: (k: number) => void): void => {
    timeline.push({ tick: Math.max(0, Math.ceil(ms / TICK_MS)), order: order++, run });
  };
  let timelineCursor = 0;

  const memberJoin = (i: number, k: number, rejoin: boolean): void => {
    const sp = speakers[i]!;
    if (sp.present) return;
    const id = sp.member.userId;
    sp.connect(k, usedSsrcs);
    truth.ssrc(id, sp.ssrc);
    gateway.dispatch('VOICE_STATE_UPDATE', world.setVoiceState(id, scenario.channelId, memberVoiceSession.get(id)!));
    active?.send(11, { user_ids: [id] });
    if (dave) dave.memberJoined(id).catch((e: Error) => events.emit('warning', { message: `DAVE join ${id}: ${e.message}` }));
    events.emit('member-join', { userId: id, ssrc: sp.ssrc, rejoin, wallMs: wallNow() });
  };
  const memberLeave = (i: number): void => {
    const sp = speakers[i]!;
    if (!sp.present) return;
    const id = sp.member.userId;
    sp.disconnect();
    active?.send(13, { user_id: id });
    gateway.dispatch('VOICE_STATE_UPDATE', world.setVoiceState(id, null, memberVoiceSession.get(id)!));
    if (dave) dave.memberLeft(id).catch((e: Error) => events.emit('warning', { message: `DAVE leave ${id}: ${e.message}` }));
    events.emit('member-leave', { userId: id, wallMs: wallNow() });
  };

  scenario.members.forEach((m, i) => {
    if (m.joinAtMs !== undefined && m.joinAtMs > 0) at(m.joinAtMs, (k) => memberJoin(i, k, false));
    if (m.leaveAtMs !== undefined) at(m.leaveAtMs, () => memberLeave(i));
    if (m.rejoinAtMs !== undefined) at(m.rejoinAtMs, (k) => memberJoin(i, k, true));
  });
  for (const f of scenario.faults ?? []) at(f.atMs, () => playFault(f));
  timeline.sort((a, b) => a.tick - b.tick || a.order - b.order);

  const sendPacket = (i: number, k: number): void => {
    const sp = speakers[i]!;
    const frame = sp.frameAt(k);
    if (!frame) return;
    const id = sp.member.userId;
    const wall = wallNow();
    const session = active && active.mediaReady ? active : null;
    const verdict = networks[i]!.decide();
    const lost = verdict.lost || session === null;
    truth.packet(id, frame.spurtIndex, frame.ssrc, wall, frame.kind === 'audio', lost);
    if (lost) return;
    let payload = frame.opus;
    if (dave) {
      try {
        payload = dave.encryptOpus(id, frame.opus);
      } catch (e) {
        events.emit('warning', { message: `DAVE encrypt ${id}: ${(e as Error).message}` });
      }
    }
    const header = rtpHeader(frame);
    const plaintext = frame.extension ? Buffer.concat([frame.extension, payload]) : payload;
    for (const delay of verdict.delaysMs) {
      if (delay <= 0) session!.sendMedia(header, plaintext);
      else scheduler.at(performance.now() + delay, () => session!.sendMedia(header, plaintext));
    }
  };

  const onTick = (k: number): void => {
    while (timelineCursor < timeline.length && timeline[timelineCursor]!.tick <= k) timeline[timelineCursor++]!.run(k);
    const session = active && active.mediaReady ? active : null;
    for (let i = 0; i < speakers.length; i++) {
      const sp = speakers[i]!;
      if (!sp.present) continue;
      if (session && !session.announced.has(sp.ssrc)) {
        const next = sp.nextEmitTick(k);
        if (next !== null && next - k <= SPEAKING_LOOKAHEAD_TICKS) {
          session.announced.add(sp.ssrc);
          session.send(5, { user_id: sp.member.userId, ssrc: sp.ssrc, speaking: 1 });
          events.emit('speaking', { userId: sp.member.userId, ssrc: sp.ssrc });
        }
      }
      sendPacket(i, k);
    }
  };
  const scheduler = new TickScheduler(onTick, TICK_MS);

  const startSession = (): void => {
    if (started || closed) return;
    started = true;
    const wallMs = wallNow();
    truth.sessionStarted(wallMs);
    for (const m of initiallyPresent) {
      const i = scenario.members.indexOf(m);
      speakers[i]!.connect(0, usedSsrcs);
      truth.ssrc(m.userId, speakers[i]!.ssrc);
    }
    events.emit('session-start', { wallMs });
    scheduler.start();
  };
  const beginWhenUsable = (): void => {
    if (!dave) return startSession();
    if (davePoll) return;
    const check = (): void => {
      if (dave!.recorderReady) {
        if (davePoll) clearInterval(davePoll);
        davePoll = null;
        startSession();
      }
    };
    davePoll = setInterval(check, 5);
    check();
  };

  // ---- faults ----
  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!closed) fn();
    }, ms);
    timers.add(t);
  };
  const playFault = (fault: Fault): void => {
    if (closed) return;
    const wallMs = wallNow();
    const rec = truth.fault(fault.kind, wallMs);
    events.emit('fault', { fault, wallMs });
    const expect = (): void => {
      const list = pending.get(fault.kind) ?? [];
      list.push(rec);
      pending.set(fault.kind, list);
    };
    const outcome = (o: string): void => {
      rec.outcome = o;
      events.emit('fault-outcome', { kind: fault.kind, outcome: o, wallMs: wallNow() });
    };
    switch (fault.kind) {
      case 'voice-close': {
        if (!active) return outcome('no-session');
        if (fault.code === 4014) {
          active.closeWs(4014, 'Disconnected.', true);
          active = null;
          return outcome('disconnected');
        }
        expect();
        active.closeWs(fault.code, 'Simulated voice server failure.');
        return;
      }
      case 'voice-server-move': {
        expect();
        void newVoiceServer().then((vs) => {
          if (closed) return void vs.close();
          server = vs;
          const sessionId = gatewaySessionId;
          active = null; // the old session is going away: media has no route until the new one is ready
          gateway.dispatch('VOICE_SERVER_UPDATE', { token: grantVoice(sessionId), guild_id: scenario.guildId, endpoint: null });
          later(100, () =>
            gateway.dispatch('VOICE_SERVER_UPDATE', { token: grantVoice(sessionId), guild_id: scenario.guildId, endpoint: vs.endpoint }),
          );
        });
        return;
      }
      case 'gateway-reconnect': {
        expect();
        if (gateway.requestReconnect() === 0) settle('gateway-reconnect', 'no-session');
        return;
      }
      case 'move-bot': {
        // As Discord does on a move: the bot's voice state now names the other channel, and the voice
        // websocket of the old channel is closed with 4014 (the client must not resume it).
        gateway.dispatch('VOICE_STATE_UPDATE', world.setVoiceState(scenario.botUserId, fault.channelId, gatewaySessionId));
        if (active) active.closeWs(4014, 'Disconnected.', true);
        active = null;
        return outcome('moved');
      }
      case 'disconnect-bot': {
        gateway.dispatch('VOICE_STATE_UPDATE', world.setVoiceState(scenario.botUserId, null, gatewaySessionId));
        if (active) active.closeWs(4014, 'Disconnected.', true);
        active = null;
        return outcome('disconnected');
      }
      case 'hostile': {
        const s = active && active.mediaReady ? active : null;
        if (!s) return outcome('no-session');
        const known = speakers.filter((x) => x.present).map((x) => x.ssrc);
        for (let i = 0; i < fault.count; i++) {
          const kind = HOSTILE_KINDS[i % HOSTILE_KINDS.length]!;
          s.server.udp.send(hostileDatagram(kind, hostilePrng, s.encryptor!, known, usedSsrcs), s.client!);
        }
        truth.hostile(fault.count);
        return outcome('sent');
      }
      case 'rtcp': {
        const s = active && active.mediaReady ? active : null;
        if (!s) return outcome('no-session');
        const known = speakers.filter((x) => x.present).map((x) => x.ssrc);
        for (let i = 0; i < fault.count; i++) {
          const ssrc = known.length ? known[i % known.length]! : hostilePrng.u32();
          s.server.udp.send(rtcpDatagram(i, hostilePrng, s.encryptor!, ssrc, s.ssrc, wallNow()), s.client!);
        }
        truth.rtcp(fault.count);
        return outcome('sent');
      }
    }
  };

  return {
    apiUrl: `http://127.0.0.1:${httpPort}/api`,
    gatewayUrl,
    caCertPem: cert.certPem,
    caCertPath: cert.certPath,
    events,
    truth: () => truth.snapshot(),
    inject: (fault) => playFault(fault),
    async close() {
      if (closed) return;
      closed = true;
      scheduler.stop();
      if (davePoll) clearInterval(davePoll);
      for (const t of timers) clearTimeout(t);
      timers.clear();
      gateway.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await Promise.all(servers.map((s) => s.close()));
      try {
        dave?.close();
      } catch {
        /* closing is best effort */
      }
      await cert.dispose();
    },
  };
}
