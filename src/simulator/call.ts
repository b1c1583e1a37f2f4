/**
 * One guild's call in the simulated Discord: its members (speakers, networks), the voice servers the bot's
 * connection for this guild uses, its DAVE group, its timeline and ground truth. index.ts builds one per guild
 * of the scenario and shares the HTTP port (REST + main gateway) and the certificate between them. What this
 * file plays is exactly what the single-guild simulator played (the first guild of a scenario is that case).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { extname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { SimulatorCertificate } from './certificate.ts';
import type { DaveEvent, DaveServer, DaveServerOptions, DaveStatus, DaveWire } from './dave-api.ts';
import type { SimulatorEvents } from './events.ts';
import type { MainGateway, VoiceStateRequest } from './gateway.ts';
import { HOSTILE_KINDS, hostileDatagram, rtcpDatagram } from './hostile.ts';
import { DaveForger, isDaveFrame } from './hostile-dave.ts';
import { ImpairmentModel } from './impairments.ts';
import { NonceCounter } from './nonces.ts';
import { Prng } from './prng.ts';
import { ReportSchedule } from './report-schedule.ts';
import { rtcpSenderReport, rtpHeader } from './rtp.ts';
import type { SimCallHandle } from './index.ts';
import type { Fault, GroundTruth, Scenario, TransportMode } from './scenario.ts';
import { TickScheduler } from './scheduler.ts';
import { Speaker, TICK_MS } from './speaker.ts';
import { TruthRecorder } from './truth.ts';
import { RecorderAudio, type RecorderAudioTruth } from './recorder-audio.ts';
import { VideoSender, type VideoSource } from './video.ts';
import { VoiceServer, type VoiceGrant, type VoiceSession } from './voice-gateway.ts';
import { ChannelType, type World } from './world.ts';

/** op 5 goes out this many ticks before a member's first packet on a session. */
const SPEAKING_LOOKAHEAD_TICKS = 5;
/**
 * ...and at least this many: op 5 travels over TLS, media over UDP, and a datagram sent in the same tick can
 * reach the client first. Packets due sooner are held (sent in order at the end of the lead).
 */
const SPEAKING_LEAD_TICKS = 2;
/** Default of Scenario.daveJoinTimeoutMs. */
const DAVE_JOIN_TIMEOUT_MS = 5000;
/** Sender report interval of `senderReports: true`, and of video streams' RTCP. */
const REPORT_INTERVAL_MS = 1000;
/** op 18 flags sent for a connecting member (observed value; meaning undocumented). */
const CLIENT_FLAGS = 2;
const wallNow = (): number => performance.timeOrigin + performance.now();

type DaveCtor = new (opts: DaveServerOptions) => DaveServer;

/** Loads dave.ts only when DAVE is on, so a dave:false run never loads MLS (and never depends on it). */
async function loadDave(): Promise<DaveCtor> {
  const url = new URL('./dave' + extname(fileURLToPath(import.meta.url)), import.meta.url);
  const mod = (await import(url.href)) as { DaveGroupServer?: DaveCtor };
  if (typeof mod.DaveGroupServer !== 'function') throw new Error('simulator: dave.ts does not export DaveGroupServer');
  return mod.DaveGroupServer;
}

interface TimelineEvent {
  tick: number;
  order: number;
  run: (k: number) => void;
}

/** What index.ts shares with every guild's call. */
export interface CallContext {
  world: World;
  gateway: MainGateway;
  cert: SimulatorCertificate;
  events: EventEmitter<SimulatorEvents>;
}

/**
 * One call, as index.ts and tests drive it: what tests see of it ({@link SimCallHandle}; a member's join() works
 * before the bot's session starts too), plus what index.ts needs to route the guild's traffic to it.
 */
export interface GuildCall extends SimCallHandle {
  readonly world: World;
  /** Whether this call scripts this member. */
  has(userId: string): boolean;
  /** The bot's op 4 for this guild; `mine`: this call handles it (index.ts routes). */
  voiceStateRequest(req: VoiceStateRequest, mine: boolean): void;
  /** The bot's gateway session died and Discord dropped its voice state: its session here (if any) is gone. */
  dropBot(): void;
  close(): Promise<void>;
}

/** Builds a guild's call (its first voice server listening). */
export async function startCall(scenario: Scenario, ctx: CallContext): Promise<GuildCall> {
  const { events, world, gateway, cert } = ctx;
  const prng = new Prng(scenario.seed);
  const modes: TransportMode[] = scenario.modes ?? ['aead_aes256_gcm_rtpsize', 'aead_xchacha20_poly1305_rtpsize'];
  const truth = new TruthRecorder(scenario.members);
  const recorderAudio = new RecorderAudio();
  const stage = world.isStage(scenario.channelId);
  /** Discord exempts stage channels from DAVE (its voice server answers dave_protocol_version 0) unless stageDave. */
  const daveOn = scenario.dave && (!stage || scenario.stageDave === true);
  /** Members join a stage suppressed unless they are speakers (Discord's audience). */
  const suppressed = (m: { audience?: boolean } | undefined): boolean => stage && m?.audience === true;

  // Members: a speaker and an impairment model each, with their own PRNG streams.
  const usedSsrcs = new Set<number>();
  const speakers = scenario.members.map((m, i) => new Speaker(m, prng.fork(1000 + i), i % 2 === 0));
  const networks = scenario.members.map((m, i) => new ImpairmentModel(m.impairments ?? scenario.impairments, prng.fork(2000 + i)));
  const hostilePrng = prng.fork(3000);
  // Only when a hostile DAVE member is scripted: remembering members' frames costs a little per packet.
  const forger = daveOn && scenario.members.some((m) => m.hostileDave) ? new DaveForger(prng.fork(4000)) : null;
  /** DAVE-encrypted audio frames per hostile member so far (every `every`-th is forged). */
  const daveFrames = new Map<string, number>();
  const memberVoiceSession = new Map(scenario.members.map((m) => [m.userId, prng.bytes(16).toString('hex')]));
  // Randomness of what later features add (nonce starts, video, report phases) comes from a second stream seeded
  // from the same seed, so that a scenario without them plays exactly as it did before they existed.
  const aux = new Prng((scenario.seed ^ 0x5eed_a0c5) >>> 0);
  const noncePrng = aux.fork(1);
  const videos = scenario.members.map((m, i) => (m.video ? new VideoSender(m.video, aux.fork(100 + i)) : null));
  const reportInterval = scenario.senderReports === true ? REPORT_INTERVAL_MS : scenario.senderReports ? scenario.senderReports.intervalMs : null;
  const audioReports = reportInterval !== null ? new ReportSchedule(reportInterval, aux.fork(2)) : null;
  const videoReports = new ReportSchedule(REPORT_INTERVAL_MS, aux.fork(3));
  /** Codecs whose DAVE encryption failed once (warned once each). */
  const videoDaveFailed = new Set<string>();
  /**
   * In the call when the bot's session starts: the members present from the beginning, as changed by test-triggered
   * joins and leaves before that (join()/leave()). Fixed once the session started.
   */
  const initiallyPresent = scenario.members.filter((m) => !m.absent && (m.joinAtMs === undefined || m.joinAtMs <= 0));
  for (const m of initiallyPresent) world.setVoiceState(m.userId, scenario.channelId, memberVoiceSession.get(m.userId)!, { suppress: suppressed(m) });


  // ---- voice ----
  const grants = new Map<string, VoiceGrant>();
  const servers: VoiceServer[] = [];
  let server: VoiceServer;
  let active: VoiceSession | null = null;
  let gatewaySessionId = '';
  let started = false;
  let closed = false;
  const timers = new Set<NodeJS.Timeout>();
  const warn = (message: string): void => void events.emit('warning', { message });

  // ---- DAVE: the gateway's MLS role; its events become simulator warnings and start the session ----
  let dave: DaveServer | null = null;
  /** The recorder's voice session is attached to the group (between session-ready and detach). */
  let recorderAttached = false;
  let daveWatchdog: NodeJS.Timeout | null = null;
  const daveJoinTimeoutMs = scenario.daveJoinTimeoutMs ?? DAVE_JOIN_TIMEOUT_MS;
  const clearDaveWatchdog = (): void => {
    if (daveWatchdog) clearTimeout(daveWatchdog);
    daveWatchdog = null;
  };
  /**
   * (Re)starts the "recorder not in the group" timer. Alone in the call the recorder has nobody to share a
   * group with (that is normal), so it only warns when someone else is present when it fires.
   */
  const armDaveWatchdog = (): void => {
    clearDaveWatchdog();
    if (!dave || closed) return;
    daveWatchdog = setTimeout(() => {
      daveWatchdog = null;
      if (closed || !dave || !recorderAttached || dave.recorderReady) return;
      const others = started ? presentIds() : initiallyPresent.map((m) => m.userId);
      if (others.length === 0) return;
      warn(`DAVE: the recorder is not in the MLS group ${daveJoinTimeoutMs} ms after it connected (no usable key package, or removed after op 31)`);
    }, daveJoinTimeoutMs);
  };
  const onDaveEvent = (e: DaveEvent): void => {
    if (closed) return;
    switch (e.kind) {
      case 'error':
        return warn(`DAVE: ${e.error.message}`);
      case 'recorder-invalid':
        warn(`DAVE: the recorder reported an invalid commit/welcome (op 31, transition ${e.transitionId}); re-adding it with its next key package`);
        return armDaveWatchdog();
      case 'sole-member-reset':
        if (e.userId === scenario.botUserId) armDaveWatchdog();
        return;
      case 'recorder-commit-dropped':
        return;
      case 'recorder-fault-applied':
        switch (e.fault.kind) {
          case 'missed-commit':
            return settle('dave-missed-commit', `op 29${e.fault.execute ? '' : ' and op 22'} of transition ${e.transitionId} not delivered`);
          case 'missed-execute':
            return settle('dave-missed-execute', `op 22 of transition ${e.transitionId} not delivered`);
          case 'bad-welcome':
            return settle('dave-bad-welcome', `welcome of transition ${e.transitionId} corrupted`);
        }
        return;
      case 'transition-executed': {
        const recorderInGroup = e.members.includes(scenario.botUserId);
        if (e.recorderInvolved && recorderInGroup && !e.recorderAcked) {
          warn(`DAVE: the recorder did not acknowledge transition ${e.transitionId} (op 23) in time; executed anyway`);
        }
        events.emit('dave-transition', { transitionId: e.transitionId, epoch: e.epoch, members: e.members, recorderInGroup, wallMs: wallNow() });
        if (dave?.recorderReady) {
          clearDaveWatchdog();
          if (!started && active) startSession();
        }
        return;
      }
    }
  };
  if (daveOn) {
    const Ctor = await loadDave();
    dave = new Ctor({
      channelId: scenario.channelId,
      botUserId: scenario.botUserId,
      memberIds: initiallyPresent.map((m) => m.userId),
      ...(scenario.daveWelcomeIdZero ? { welcomeIdZero: true } : {}),
      onEvent: (e) => onDaveEvent(e),
    });
  }
  /** The recorder left the call for good (4014, moved, left): the group goes on without it, in a new epoch. */
  const detachDave = (): void => {
    if (!dave || !recorderAttached) return;
    recorderAttached = false;
    clearDaveWatchdog();
    dave.detachRecorder();
  };
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

  /** performance.now() until which the voice servers refuse the bot's identify with 4021 (after a 4021 fault). */
  let rateLimitedUntil = 0;
  /** After a 4022 with `then: 'ignored'`: the main gateway answers no more op 4 joins. */
  let joinsIgnored = false;
  const newVoiceServer = async (): Promise<VoiceServer> => {
    const vs = new VoiceServer({
      certPem: cert.certPem,
      keyPem: cert.keyPem,
      modes,
      daveProtocolVersion: dave ? dave.protocolVersion : 0,
      ...(scenario.rejectVoiceWith !== undefined ? { rejectWith: scenario.rejectVoiceWith } : {}),
      refuseNow: () => (performance.now() < rateLimitedUntil ? 4021 : undefined),
      grantFor: (token) => grants.get(token) ?? null,
      nonceCounter: () => new NonceCounter(scenario.nonces ?? 'per-connection', noncePrng.fork(servers.length)),
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
    // The recorder's own media (a bot that plays while it records): checked like Discord would, then dropped.
    vs.udp.on('datagram', (msg, from) => {
      const session = active;
      if (!session || session.server !== vs || !session.client || from.port !== session.client.port || !session.mode) return;
      recorderAudio.observe(msg, session.mode, session.secretKey, dave ? (frame) => dave!.decryptRecorderFrame(frame) : undefined);
    });
    vs.on('identify', (session) => {
      if ((active && active !== session) || (!active && pending.get('voice-close')?.length)) settle('voice-close', 'reidentified');
      events.emit('voice-identify', { endpoint: vs.endpoint, ssrc: session.ssrc });
    });
    vs.on('session-ready', (session) => {
      active = session;
      events.emit('session-ready', { endpoint: vs.endpoint, mode: session.mode!, daveProtocolVersion: dave?.protocolVersion ?? 0 });
      if (dave) {
        const wire: DaveWire = { json: (op, d) => session.send(op, d), binary: (op, p) => session.sendBinary(op, p) };
        recorderAttached = true;
        guard(() => dave!.attachRecorder(scenario.botUserId, wire));
        armDaveWatchdog();
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
      warn(`DAVE: ${(e as Error).message}`);
    }
  };
  server = await newVoiceServer();

  const grantVoice = (sessionId: string): string => {
    const token = randomBytes(16).toString('hex');
    grants.set(token, { token, sessionId, userId: scenario.botUserId, serverId: scenario.guildId });
    return token;
  };

  gateway.on('identify', (sessionId) => {
    if (!gateway.covers(sessionId, scenario.guildId)) return;
    if (gatewaySessionId) settle('gateway-reconnect', 'reidentified');
    gatewaySessionId = sessionId;
    events.emit('identify', { sessionId });
  });
  gateway.on('resumed', () => {
    settle('gateway-reconnect', 'resumed');
    events.emit('resumed', { kind: 'gateway', wallMs: wallNow() });
  });
  /**
   * The bot's op 4 for this guild. index.ts decides which call of the guild handles it (`mine`): the call of the
   * channel it joins, or of the channel it leaves; a request for a voice channel without a call goes to the guild's
   * first call. A call that has the bot and does not handle the request loses it (it went to another channel).
   */
  const voiceStateRequest = (req: VoiceStateRequest, mine: boolean): void => {
    if (!mine) {
      if (active && req.channelId !== null) {
        active.closeWs(4014, 'Disconnected.', true);
        active = null;
        detachDave();
      }
      return;
    }
    events.emit('voice-join', { channelId: req.channelId, selfDeaf: req.selfDeaf, selfMute: req.selfMute });
    if (req.channelId === null) {
      gateway.dispatch('VOICE_STATE_UPDATE', world.setVoiceState(scenario.botUserId, null, req.sessionId));
      active?.closeWs(1000, 'Left the channel.', true);
      active = null;
      detachDave();
      return;
    }
    if (joinsIgnored) {
      events.emit('voice-join-refused', { channelId: req.channelId, reason: 'ignored' });
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
    // A voice channel without a scripted call (Scenario.calls) is given this call all the same. Not what Discord
    // would do (that channel's call would be empty): said aloud, so that no test mistakes it for the other channel.
    if (req.channelId !== scenario.channelId) {
      warn(`the bot joined voice channel ${req.channelId}, which has no scripted call: it gets the call of ${scenario.channelId}`);
    }
    // Order matters: VOICE_STATE_UPDATE first, then VOICE_SERVER_UPDATE (else @discordjs/voice stalls).
    gateway.dispatch(
      'VOICE_STATE_UPDATE',
      // On a stage the bot joins the audience (suppressed), as Discord does: it can listen, not speak.
      world.setVoiceState(scenario.botUserId, req.channelId, req.sessionId, { selfDeaf: req.selfDeaf, selfMute: req.selfMute, suppress: world.isStage(req.channelId) }),
    );
    gateway.dispatch('VOICE_SERVER_UPDATE', { token: grantVoice(req.sessionId), guild_id: scenario.guildId, endpoint: server.endpoint });
  };

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
    gateway.dispatch('VOICE_STATE_UPDATE', world.setVoiceState(id, scenario.channelId, memberVoiceSession.get(id)!, { suppress: suppressed(sp.member) }));
    active?.send(11, { user_ids: [id] });
    // Observed after op 11 on Discord (undocumented, no SSRC in either): client flags and platform.
    active?.send(18, { user_id: id, flags: CLIENT_FLAGS });
    active?.send(20, { user_id: id, platform: 0 });
    // A failed group change is reported once, through onDaveEvent ('error' → warning).
    if (dave) {
      dave.memberJoined(id).catch(() => {});
      if (recorderAttached && !dave.recorderReady) armDaveWatchdog();
    }
    events.emit('member-join', { userId: id, ssrc: sp.ssrc, rejoin, wallMs: wallNow() });
  };
  const memberLeave = (i: number): void => {
    const sp = speakers[i]!;
    if (!sp.present) return;
    const id = sp.member.userId;
    sp.disconnect();
    videos[i]?.stopAll();
    active?.send(13, { user_id: id });
    gateway.dispatch('VOICE_STATE_UPDATE', world.setVoiceState(id, null, memberVoiceSession.get(id)!));
    if (dave) dave.memberLeft(id).catch(() => {});
    events.emit('member-leave', { userId: id, wallMs: wallNow() });
    // Undocumented, seen on Discord: the recorder's session is closed once nobody else is left in the channel.
    if (scenario.emptyChannelCloseCode !== undefined && active && presentIds().length === 0) {
      playFault({ atMs: 0, kind: 'voice-close', code: scenario.emptyChannelCloseCode });
    }
  };

  scenario.members.forEach((m, i) => {
    if (m.joinAtMs !== undefined && m.joinAtMs > 0) at(m.joinAtMs, (k) => memberJoin(i, k, false));
    if (m.leaveAtMs !== undefined) at(m.leaveAtMs, () => memberLeave(i));
    if (m.rejoinAtMs !== undefined) at(m.rejoinAtMs, (k) => memberJoin(i, k, true));
    for (const source of ['camera', 'screen'] as const) {
      for (const span of videos[i]?.spans[source] ?? []) {
        at(span.atMs, (k) => videoSwitch(i, source, k, true));
        at(span.atMs + span.durationMs, (k) => videoSwitch(i, source, k, false));
      }
    }
  });
  for (const f of scenario.faults ?? []) at(f.atMs, () => playFault(f));
  timeline.sort((a, b) => a.tick - b.tick || a.order - b.order);

  /** op 5 for a member SSRC on a session (always before its packets reach the recorder, unless op5DelayMs). */
  const announce = (session: VoiceSession, sp: Speaker, ssrc: number): void => {
    session.send(5, { user_id: sp.member.userId, ssrc, speaking: 1 });
    events.emit('speaking', { userId: sp.member.userId, ssrc });
  };

  /**
   * The member's frame due at tick k, through DAVE (and, for a hostile DAVE member, forged), sealed ONCE and sent
   * as the network model says: dropped, delayed, or the same datagram twice. The ground truth registers it now
   * (the member's send time) and settles it when its datagrams actually leave, or cannot any more.
   */
  const sendPacket = (i: number, k: number, session: VoiceSession | null): void => {
    const sp = speakers[i]!;
    const frame = sp.frameAt(k);
    if (!frame) return;
    const id = sp.member.userId;
    // Drawn for every packet, session or not, so the network's randomness does not depend on session timing.
    const verdict = networks[i]!.decide();
    // The member's send time is the tick's due time, not when this process got round to it: a real client's
    // frame is captured on schedule, and a late send (a busy event loop here) is network delay to the recorder.
    const dueWallMs = performance.timeOrigin + scheduler.origin + k * TICK_MS;
    const rec = truth.packet(id, frame.spurtIndex, frame.ssrc, frame.sequence, dueWallMs, frame.kind === 'audio');
    if (!session) return truth.lost(rec);
    if (sp.member.op5DelayMs !== undefined && !session.announced.has(frame.ssrc)) {
      // Late on purpose: the recorder sees this SSRC's packets before anyone says whose they are.
      session.announced.add(frame.ssrc);
      const ssrc = frame.ssrc;
      scheduler.at(scheduler.origin + k * TICK_MS + sp.member.op5DelayMs, () => {
        if (!closed && session.state !== 'closed') announce(session, sp, ssrc);
      });
    }
    const net = truth.network(id)!;
    if (verdict.burstStart) net.bursts++;
    if (verdict.lost) {
      if (verdict.cause === 'burst') net.burstLost++;
      else net.randomLost++;
      return truth.lost(rec);
    }
    if (verdict.reordered) net.reordered++;
    let payload = frame.opus;
    let forgedKind: string | null = null;
    if (dave) {
      try {
        payload = dave.encryptOpus(id, frame.opus);
      } catch (e) {
        warn(`DAVE encrypt ${id}: ${(e as Error).message}`);
      }
      if (forger && frame.kind === 'audio' && isDaveFrame(payload)) {
        const n = (daveFrames.get(id) ?? 0) + 1;
        daveFrames.set(id, n);
        const every = sp.member.hostileDave?.every;
        if (every !== undefined && n % every === 0) {
          const forged = forger.forge(id, payload);
          payload = forged.frame;
          forgedKind = forged.kind;
        } else {
          forger.observe(id, payload);
        }
      }
    }
    const header = rtpHeader(frame);
    const datagram = session.seal(header, frame.extension ? Buffer.concat([frame.extension, payload]) : payload);
    // The op 5 lead: hold this SSRC's packets until op 5 has been out for SPEAKING_LEAD_TICKS (released in order,
    // before that tick's own packet: the scheduler runs delayed sends due at a tick before the tick).
    const hold = session.heldUntilTick.get(frame.ssrc);
    let releaseAt: number | null = null;
    if (hold !== undefined) {
      if (k < hold) releaseAt = scheduler.origin + hold * TICK_MS;
      else session.heldUntilTick.delete(frame.ssrc);
    }
    const delays = verdict.delaysMs;
    if (releaseAt === null && delays.length === 1 && delays[0]! <= 0) {
      // The common case: one copy, now (no closure per packet).
      if (session.sendDatagram(datagram)) {
        truth.sent(rec);
        if (forgedKind) truth.forged(rec, forgedKind);
      } else {
        truth.lost(rec);
      }
      return;
    }
    let copiesLeft = delays.length;
    let onWire = 0;
    const send = (): void => {
      // A copy due after its session was replaced or closed has no route to the recorder any more.
      if (session === active && session.sendDatagram(datagram)) {
        if (++onWire === 1) {
          truth.sent(rec);
          if (forgedKind) truth.forged(rec, forgedKind);
        } else {
          net.duplicatesSent++;
        }
      }
      if (--copiesLeft === 0 && onWire === 0) truth.lost(rec);
    };
    for (const delay of delays) {
      if (releaseAt === null && delay <= 0) send();
      else scheduler.at((releaseAt ?? performance.now()) + delay, send);
    }
  };

  /** A member turns its camera or screen share on or off (only while in the call): voice state, then op 12 with its media. */
  const videoSwitch = (i: number, source: VideoSource, k: number, on: boolean): void => {
    const sp = speakers[i]!;
    const v = videos[i]!;
    if (!sp.present) return;
    const id = sp.member.userId;
    if (on) for (const ssrc of v.start(source, k * TICK_MS, usedSsrcs)) truth.videoSsrc(id, ssrc);
    else v.stop(source);
    const flags = { selfVideo: v.isOn('camera'), selfStream: v.isOn('screen') };
    gateway.dispatch('VOICE_STATE_UPDATE', world.setVoiceState(id, scenario.channelId, memberVoiceSession.get(id)!, flags));
  };

  /**
   * A member's video due at tick k: op 12 whenever its set of streams changed on this session (also on a new session),
   * then its frames, DAVE-encrypted as video, in RTP packets (and RTX). Not through the member's network model, so
   * the ground truth counts exactly what reached the wire.
   */
  const sendVideo = (i: number, k: number, session: VoiceSession | null): void => {
    const v = videos[i]!;
    const sp = speakers[i]!;
    const id = sp.member.userId;
    const frames = v.framesDue(k * TICK_MS);
    if (!session) return;
    const signature = v.signature();
    if (session.videoAnnounced.get(id) !== signature) {
      if (session.videoAnnounced.has(id) || v.active) session.send(12, v.announcement(id, sp.ssrc));
      session.videoAnnounced.set(id, signature);
    }
    for (const f of frames) {
      let data = f.data;
      if (dave) {
        try {
          data = dave.encryptVideo(id, f.codec, f.data);
        } catch (e) {
          if (!videoDaveFailed.has(f.codec)) warn(`DAVE encrypt video (${f.codec}) ${id}: ${(e as Error).message}`);
          videoDaveFailed.add(f.codec);
        }
      }
      for (const p of v.packetize(f, data)) if (session.sendMedia(p.aad, p.plaintext)) truth.videoRtp(p.rtx);
    }
  };

  /** RTCP sender reports due at tick k: every active audio sender (Scenario.senderReports) and every video stream. */
  const sendReports = (k: number, session: VoiceSession): void => {
    const nowMs = k * TICK_MS;
    const wallMs = performance.timeOrigin + scheduler.origin + nowMs;
    const send = (clear: Buffer, video: boolean): void => {
      if (session.sendMedia(clear.subarray(0, 8), clear.subarray(8))) truth.senderReport(video);
    };
    if (audioReports) {
      for (const sp of speakers) {
        // Active: it sent audio within the last interval (RFC 3550 §6.4: only senders send SRs).
        if (!sp.present || (k - sp.lastSendTick) * TICK_MS > audioReports.intervalMs) continue;
        if (audioReports.due(sp.ssrc, nowMs)) send(rtcpSenderReport(sp.ssrc, wallMs, sp.timestampAt(k), sp.packetsOnSsrc, sp.octetsOnSsrc), false);
      }
    }
    for (const v of videos) {
      if (!v?.active) continue;
      for (const r of v.reportable()) if (videoReports.due(r.ssrc, nowMs)) send(r.report(nowMs, wallMs), true);
    }
  };

  const onTick = (k: number): void => {
    while (asap.length) asap.shift()!(k);
    while (timelineCursor < timeline.length && timeline[timelineCursor]!.tick <= k) timeline[timelineCursor++]!.run(k);
    const session = active && active.mediaReady ? active : null;
    for (let i = 0; i < speakers.length; i++) {
      const sp = speakers[i]!;
      if (!sp.present) continue;
      if (session && sp.member.op5DelayMs === undefined && !session.announced.has(sp.ssrc)) {
        const next = sp.nextEmitTick(k);
        if (next !== null && next - k <= SPEAKING_LOOKAHEAD_TICKS) {
          session.announced.add(sp.ssrc);
          announce(session, sp, sp.ssrc);
          if (next - k < SPEAKING_LEAD_TICKS) session.heldUntilTick.set(sp.ssrc, k + SPEAKING_LEAD_TICKS);
        }
      }
      sendPacket(i, k, session);
      if (videos[i]) sendVideo(i, k, session);
    }
    if (session) sendReports(k, session);
  };
  const scheduler = new TickScheduler(onTick, TICK_MS);

  const startSession = (): void => {
    if (started || closed) return;
    started = true;
    const origin = performance.now();
    const wallMs = performance.timeOrigin + origin;
    truth.sessionStarted(wallMs);
    for (const m of initiallyPresent) {
      const i = scenario.members.indexOf(m);
      speakers[i]!.connect(0, usedSsrcs);
      truth.ssrc(m.userId, speakers[i]!.ssrc);
    }
    events.emit('session-start', { wallMs });
    scheduler.start(origin);
  };
  /**
   * Without DAVE the session is usable once op 4 is out. With DAVE, once the recorder executed its transition into
   * the group (onDaveEvent 'transition-executed'); alone in the call it has nobody to share a group with, and the
   * call starts without one (the first member to join creates it with the recorder).
   */
  const beginWhenUsable = (): void => {
    if (!dave || dave.recorderReady || initiallyPresent.length === 0) startSession();
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
        const code = fault.code;
        if (code === 4014) {
          active.closeWs(4014, 'Disconnected.', true);
          active = null;
          detachDave();
          return outcome('disconnected');
        }
        if (code === 4015 || code < 4000) {
          // "Try resuming": the session stays on the server, detached, until op 7.
          expect();
          active.closeWs(code, 'Simulated voice server failure.');
          return;
        }
        // Every other code ends the session on the server: a resume is refused (4006), only a new identify works.
        const ended = active;
        active = null; // no route for media until a new session is ready
        if (code === 4021) {
          rateLimitedUntil = performance.now() + (fault.rateLimitMs ?? 30_000);
          ended.closeWs(4021, 'Disconnected: Rate Limited.', true);
          detachDave();
          return outcome('rate-limited');
        }
        if (code === 4022 && fault.then === 'server-changed') {
          // The call moves to another voice server: the old session is terminated, the main gateway names the new
          // server (pushed, and in its answer to any op 4 join, since `server` is the new one from now on).
          expect();
          void newVoiceServer().then((vs) => {
            if (closed) return void vs.close();
            server = vs;
            ended.closeWs(4022, 'Disconnected: Call Terminated.', true);
            later(100, () => gateway.dispatch('VOICE_SERVER_UPDATE', { token: grantVoice(gatewaySessionId), guild_id: scenario.guildId, endpoint: vs.endpoint }));
          });
          return;
        }
        if (code === 4022 && fault.then === 'ignored') {
          ended.closeWs(4022, 'Disconnected: Call Terminated.', true);
          detachDave();
          joinsIgnored = true;
          return outcome('terminated');
        }
        if (code === 4022) {
          // The channel was deleted: the call ends for everyone, the channel is gone (joins to it are refused).
          ended.closeWs(4022, 'Disconnected: Call Terminated.', true);
          detachDave();
          const deleted = world.deleteChannel(scenario.channelId);
          if (deleted) gateway.dispatch('CHANNEL_DELETE', deleted);
          speakers.forEach((sp, i) => sp.present && memberLeave(i));
          gateway.dispatch('VOICE_STATE_UPDATE', world.setVoiceState(scenario.botUserId, null, gatewaySessionId));
          return outcome('channel-deleted');
        }
        expect(); // settled 'reidentified' by the recorder's next identify
        ended.closeWs(code, 'Simulated voice server close.', true);
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
        detachDave(); // it left this channel's call (the simulator plays one call: the scenario's channel)
        return outcome('moved');
      }
      case 'disconnect-bot': {
        gateway.dispatch('VOICE_STATE_UPDATE', world.setVoiceState(scenario.botUserId, null, gatewaySessionId));
        if (active) active.closeWs(4014, 'Disconnected.', true);
        active = null;
        detachDave();
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
      case 'dave-missed-commit':
      case 'dave-missed-execute':
      case 'dave-bad-welcome': {
        // Applied to the recorder's next commit / welcome; the outcome is settled then (onDaveEvent).
        if (!dave) return outcome('no-dave');
        expect();
        dave.injectRecorderFault(
          fault.kind === 'dave-missed-commit' ? { kind: 'missed-commit', execute: fault.execute ?? true }
          : fault.kind === 'dave-missed-execute' ? { kind: 'missed-execute' }
          : { kind: 'bad-welcome' },
        );
        return;
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

  /** Test-triggered joins and leaves while the session runs, played at the next tick (they need its number). */
  const asap: ((k: number) => void)[] = [];
  const memberIndex = (userId: string): number => {
    const i = scenario.members.findIndex((m) => m.userId === userId);
    if (i < 0) throw new RangeError(`simulator: ${userId} is not a member of guild ${scenario.guildId}`);
    return i;
  };

  return {
    world,
    channelId: scenario.channelId,
    events,
    truth: () => truth.snapshot(),
    inject: (fault) => playFault(fault),
    recorderAudio: () => ({ ...recorderAudio.truth }),
    daveStatus: () =>
      dave
        ? {
            ...dave.stats,
            epoch: dave.epoch,
            members: dave.leaves.filter((u): u is string => u !== null),
            recorderReady: dave.recorderReady,
          }
        : null,
    has: (userId) => scenario.members.some((m) => m.userId === userId),
    voiceStateRequest,
    dropBot() {
      if (!active) return;
      active.closeWs(4006, 'Session no longer valid.', true);
      active = null;
      detachDave();
    },
    join(userId) {
      const i = memberIndex(userId);
      if (closed) return;
      if (started) return void asap.push((k) => memberJoin(i, k, speakers[i]!.ssrc !== 0));
      // Before the session: nobody sends media yet; the member is simply in the channel when it starts.
      const m = scenario.members[i]!;
      if (initiallyPresent.includes(m)) return;
      initiallyPresent.push(m);
      gateway.dispatch('VOICE_STATE_UPDATE', world.setVoiceState(userId, scenario.channelId, memberVoiceSession.get(userId)!, { suppress: suppressed(m) }));
      if (dave) dave.memberJoined(userId).catch(() => {});
      events.emit('member-join', { userId, ssrc: 0, rejoin: false, wallMs: wallNow() });
    },
    leave(userId) {
      const i = memberIndex(userId);
      if (closed) return;
      if (started) return void asap.push(() => memberLeave(i));
      const m = scenario.members[i]!;
      const at = initiallyPresent.indexOf(m);
      if (at < 0) return;
      initiallyPresent.splice(at, 1);
      gateway.dispatch('VOICE_STATE_UPDATE', world.setVoiceState(userId, null, memberVoiceSession.get(userId)!));
      if (dave) dave.memberLeft(userId).catch(() => {});
      events.emit('member-leave', { userId, wallMs: wallNow() });
    },
    async close() {
      if (closed) return;
      closed = true;
      scheduler.stop();
      clearDaveWatchdog();
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await Promise.all(servers.map((s) => s.close()));
      try {
        dave?.close();
      } catch {
        /* closing is best effort */
      }
    },
  };
}
