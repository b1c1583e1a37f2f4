/**
 * The voice session: log in with discord.js, validate the guild/channel, join (not deafened), and follow the
 * connection through resumes, server moves and rejoins until it ends. Everything network-facing about the
 * Discord side of a recording lives here; the audio path (udp-tap → receiver) is fed from it.
 *
 * State machine (typed `state` events):
 *
 *   connecting ──first Ready──▶ ready ◀──Ready── reconnecting
 *        │                        │  ╰─resume/close/server move─▶ ╯ │
 *        ╰──────────────▶ ended ◀─┴── an `end` close code, too many closes, destroy, or reconnect timeout ─╯
 *
 * What each voice close code leads to is decided in close-codes.ts (one table, with Discord's wording), never here.
 *
 * t=0 of the recording is the first Ready (op 4 Session Description received: the first moment audio can be
 * decrypted). Later Ready states keep that t=0: the timeline never restarts.
 */
import { EventEmitter } from 'node:events';
import { Client, Events, GatewayIntentBits, PermissionFlagsBits, type Guild, type VoiceBasedChannel } from 'discord.js';
import {
  joinVoiceChannel,
  NetworkingStatusCode,
  VoiceConnectionStatus,
  VoiceConnectionDisconnectReason,
  type Networking,
  type NetworkingState,
  type VoiceConnection,
  type VoiceConnectionState,
  type VoiceWebSocket,
} from '@discordjs/voice';
import { DvrecError, ExitCode, redact } from '../errors.ts';
import { closePolicy, RecoveryBudget, type ClosePolicy } from './close-codes.ts';
import { watchNetworking } from './networking-watch.ts';
import { UdpTap } from './udp-tap.ts';
import { TransportCipher, isTransportMode } from './transport-crypto.ts';
import type { DaveWrapper } from './dave-guard.ts';
import { parseVideoOp, type VideoAnnouncement } from './video-streams.ts';

export interface VoiceSessionOptions {
  token: string;
  apiUrl?: string;
  guildId: string;
  channelId: string;
  /** How long login and the first voice Ready may take. */
  connectTimeoutMs?: number;
  /** How long a lost connection may try to come back before the session ends. */
  reconnectTimeoutMs?: number;
}

export type SessionState =
  | { status: 'connecting' }
  | { status: 'ready'; /** 1 for the first Ready, +1 per recovery. */ readyCount: number }
  | { status: 'reconnecting'; reason: string }
  /**
   * disconnected: the call is over for us (kicked, moved, channel deleted: a clean stop); closed: we left;
   * failed: the connection did not come back (network); rejected: the voice server ended or refused the session.
   */
  | { status: 'ended'; reason: 'disconnected' | 'closed' | 'failed' | 'rejected'; closeCode?: number; detail?: string };

export interface OpenHooks {
  /** Aborts the login/join (rejects with ExitCode.INTERRUPTED). */
  signal?: AbortSignal;
  /** Called synchronously once the session object exists, before any voice event: subscribe here. */
  attach?: (session: VoiceSession) => void;
}

export interface MemberInfo {
  username: string;
  displayName: string;
  bot: boolean;
}

export interface VoiceSessionEvents {
  state: [next: SessionState, previous: SessionState];
  /** One raw datagram from the voice UDP socket. */
  datagram: [datagram: Buffer];
  /** A transport key became valid (op 4 of a new voice session). */
  cipher: [cipher: TransportCipher];
  /** op 5 Speaking: this SSRC belongs to this user. */
  speaking: [ssrc: number, userId: string];
  /** op 12 (undocumented): a user's audio SSRC and its video and RTX SSRCs (video-streams.ts). */
  video: [announcement: VideoAnnouncement];
  /** Occupancy changed (op 11/13 or a voice state). */
  occupancy: [humans: number];
  /** Non-fatal trouble. */
  warn: [message: string];
  /** op 22 DAVE Execute Transition (emitted after @discordjs/voice handled it). */
  daveExecute: [transitionId: number];
}

const VOICE_OP_SPEAKING = 5;
const VOICE_OP_VIDEO = 12;
const VOICE_OP_CLIENTS_CONNECT = 11;
const VOICE_OP_CLIENT_DISCONNECT = 13;
const VOICE_OP_DAVE_EXECUTE_TRANSITION = 22;

/** A logged-in, joined voice session. Create with {@link VoiceSession.open}. */
export class VoiceSession extends EventEmitter<VoiceSessionEvents> {
  readonly client: Client<true>;
  readonly guild: Guild;
  readonly channel: VoiceBasedChannel;
  readonly connection: VoiceConnection;
  /** performance.now() at t=0 (first Ready); NaN until then. */
  t0Perf = Number.NaN;
  /** Epoch ms (sub-millisecond) of t=0. */
  startedAtMs = Number.NaN;
  #state: SessionState = { status: 'connecting' };
  #readyCount = 0;
  readonly #tap: UdpTap;
  #unwatch: () => void;
  #ws: VoiceWebSocket | undefined;
  #cipherKey = '';
  /** Users announced by op 11 on the current voice websocket (minus op 13). */
  readonly #voiceClients = new Set<string>();
  #reconnectTimer: NodeJS.Timeout | undefined;
  /** Running while a 4022 waits for Discord to name a new voice server (close-codes.ts graceMs). */
  #graceTimer: NodeJS.Timeout | undefined;
  readonly #reconnectTimeoutMs: number;
  /** Bounds resumes and rejoins, so that a close code that keeps coming back cannot loop. */
  readonly #recoveries = new RecoveryBudget();
  #lastCloseCode: number | undefined;
  #closing = false;
  #cipher: TransportCipher | undefined;
  /** Every op 5 seen (SSRC → user), for subscribers that attach late. */
  readonly knownSsrcs = new Map<number, string>();

  private constructor(client: Client<true>, guild: Guild, channel: VoiceBasedChannel, connection: VoiceConnection, opts: VoiceSessionOptions) {
    super();
    this.client = client;
    this.guild = guild;
    this.channel = channel;
    this.connection = connection;
    this.#reconnectTimeoutMs = opts.reconnectTimeoutMs ?? 60_000;
    // Attach before any networking exists, so no datagram ever reaches the library's own handler.
    this.#tap = new UdpTap(connection, (d) => this.emit('datagram', d));
    this.#unwatch = watchNetworking(connection, (s) => this.#onNetworkingState(s));
    connection.on('stateChange', (o, n) => this.#onConnectionState(o, n));
    connection.on('error', (e) => this.emit('warn', `voice connection: ${redact(e.message)}`));
    client.on(Events.ChannelDelete, (deleted) => {
      // Before t=0 the join itself fails (refused or timed out) and says so.
      if (deleted.id === channel.id && this.#readyCount > 0) this.#setState({ status: 'ended', reason: 'disconnected', detail: `the voice channel ${channel.name} was deleted; recording stopped` });
    });
    client.on(Events.VoiceStateUpdate, (before, after) => {
      if (after.id === client.user.id && after.guild.id === guild.id && after.channelId === null && before.channelId === channel.id && this.#readyCount > 0 && !this.#closing) {
        // Out of the channel (kicked, disconnected by a moderator, the channel deleted). Discord also closes the voice
        // websocket (4014 or 4022), in either order; whichever comes first ends the session.
        this.#setState({ status: 'ended', reason: 'disconnected', detail: 'the bot was disconnected from the voice channel; recording stopped' });
        return;
      }
      if (after.id === client.user.id && after.guild.id === guild.id && after.channelId !== null && after.channelId !== channel.id && this.#readyCount > 0) {
        // Someone moved the bot to another channel. We end rather than follow: the user asked for THIS channel,
        // and the people in the other one did not agree to be recorded; what was captured here is finished.
        const name = after.channel?.name ?? after.channelId;
        this.#setState({ status: 'ended', reason: 'disconnected', detail: `the bot was moved to another channel (${name}); recording stopped` });
        return;
      }
      if (before.channelId === channel.id || after.channelId === channel.id) this.emit('occupancy', this.humansInChannel());
    });
  }

  /**
   * Logs in, validates guild and channel, and joins. Resolves once the voice connection is Ready (t=0).
   * Throws DvrecError with the documented exit code on every expected failure; cleans up after itself.
   */
  static async open(opts: VoiceSessionOptions, hooks: OpenHooks = {}): Promise<VoiceSession> {
    const { signal } = hooks;
    const timeoutMs = opts.connectTimeoutMs ?? 30_000;
    const client = new Client({
      intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildVoiceStates],
      ...(opts.apiUrl ? { rest: { api: opts.apiUrl } } : {}),
    });
    client.on(Events.Error, () => {}); // surfaced through login/ready failures; never an uncaught 'error'
    let session: VoiceSession | undefined;
    try {
      await withTimeout(login(client, opts.token), timeoutMs, signal, 'logging in to Discord');
      const { guild, channel } = await resolveChannel(client as Client<true>, opts.guildId, opts.channelId);
      const connection = joinVoiceChannel({
        guildId: guild.id,
        channelId: channel.id,
        adapterCreator: guild.voiceAdapterCreator,
        selfDeaf: false, // a deafened bot receives no audio
        selfMute: true,
        daveEncryption: true,
      });
      session = new VoiceSession(client as Client<true>, guild, channel, connection, opts);
      // Wire the audio path before the first datagram, op 4 or op 5 can arrive.
      hooks.attach?.(session);
      const joining = session;
      await withTimeout(session.#firstReady(), timeoutMs, signal, () => `joining the voice channel (voice connection stuck in ${joining.connection.state.status})`);
      return session;
    } catch (e) {
      session?.close();
      if (!session) await client.destroy().catch(() => {});
      throw toDvrecError(e);
    }
  }

  get state(): SessionState {
    return this.#state;
  }

  /** Milliseconds since t=0 on the recording clock. */
  now(): number {
    return performance.now() - this.t0Perf;
  }

  /** The DAVE session wrapper of the current networking (changes on every reconnect). */
  dave(): DaveWrapper | undefined {
    const networking = Reflect.get(this.connection.state, 'networking') as Networking | undefined;
    return (networking ? (Reflect.get(networking.state, 'dave') as DaveWrapper | undefined) : undefined) ?? undefined;
  }

  /**
   * Whether the DAVE session can signal the voice server now: @discordjs/voice 0.19.2 sends op 31 and a new key
   * package only while its networking is Ready (Networking.onDaveInvalidateTransition / onDaveKeyPackage).
   */
  daveCanSignal(): boolean {
    const networking = Reflect.get(this.connection.state, 'networking') as Networking | undefined;
    return networking?.state.code === NetworkingStatusCode.Ready;
  }

  /** Names of a member from the caches (no network); falls back to the id. */
  memberInfo(userId: string): MemberInfo {
    const member = this.guild.members.cache.get(userId);
    const user = member?.user ?? this.client.users.cache.get(userId);
    return {
      username: user?.username ?? userId,
      displayName: member?.displayName ?? user?.displayName ?? user?.username ?? userId,
      bot: user?.bot ?? false,
    };
  }

  /** Names of a member, asking the API when the cache does not know them. Never throws. */
  async fetchMemberInfo(userId: string): Promise<MemberInfo> {
    if (!this.guild.members.cache.has(userId)) {
      await this.guild.members.fetch(userId).catch(() => this.client.users.fetch(userId).catch(() => undefined));
    }
    return this.memberInfo(userId);
  }

  /** Humans (not bots, not us) currently in the recorded channel: voice states ∪ voice-gateway clients. */
  humansInChannel(): number {
    const ids = new Set<string>(this.#voiceClients);
    for (const vs of this.guild.voiceStates.cache.values()) if (vs.channelId === this.channel.id) ids.add(vs.id);
    ids.delete(this.client.user.id);
    let n = 0;
    for (const id of ids) if (!this.memberInfo(id).bot) n++;
    return n;
  }

  /** Leaves the channel and logs out. Idempotent. */
  close(): void {
    this.#closing = true;
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#graceTimer);
    this.#unwatch();
    this.#unwatch = () => {};
    this.#tap.close();
    if (this.connection.state.status !== VoiceConnectionStatus.Destroyed) {
      try {
        this.connection.destroy();
      } catch {
        /* already gone */
      }
    }
    this.#setState({ status: 'ended', reason: 'closed' });
    void this.client.destroy().catch(() => {});
  }

  #firstReady(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onState = (s: SessionState): void => {
        if (s.status === 'ready') {
          this.off('state', onState);
          resolve();
        } else if (s.status === 'ended') {
          this.off('state', onState);
          reject(new DvrecError(`the voice server refused the session${s.closeCode ? ` (close code ${s.closeCode})` : ''}${s.detail ? `: ${s.detail}` : ''}`, ExitCode.VOICE_REJECTED));
        }
      };
      this.on('state', onState);
    });
  }

  #setState(next: SessionState): void {
    const prev = this.#state;
    if (prev.status === 'ended') return; // terminal
    if (next.status === 'ended') {
      clearTimeout(this.#reconnectTimer);
      clearTimeout(this.#graceTimer);
    }
    this.#state = next;
    this.emit('state', next, prev);
  }

  #onConnectionState(_old: VoiceConnectionState, next: VoiceConnectionState): void {
    switch (next.status) {
      case VoiceConnectionStatus.Ready: {
        clearTimeout(this.#reconnectTimer);
        this.#reconnectTimer = undefined;
        clearTimeout(this.#graceTimer);
        this.#graceTimer = undefined;
        if (this.#readyCount === 0) {
          this.t0Perf = performance.now();
          this.startedAtMs = performance.timeOrigin + this.t0Perf;
        }
        this.#readyCount++;
        this.#setState({ status: 'ready', readyCount: this.#readyCount });
        return;
      }
      case VoiceConnectionStatus.Signalling:
      case VoiceConnectionStatus.Connecting:
        if (this.#readyCount > 0) this.#lost(next.status === VoiceConnectionStatus.Signalling ? 'rejoining the voice channel' : 'reconnecting to the voice server');
        return;
      case VoiceConnectionStatus.Disconnected: {
        if (next.reason === VoiceConnectionDisconnectReason.WebSocketClose && next.closeCode === 4014) {
          // Kicked, moved out, or the channel was deleted: Discord says do not reconnect (close-codes.ts).
          const policy = closePolicy(4014);
          if (this.#readyCount === 0) this.#setState({ status: 'ended', reason: 'failed', closeCode: 4014, detail: policy.meaning });
          else this.#endByClose(policy);
          return;
        }
        // Endpoint removed (server going away) or adapter unavailable: a new VOICE_SERVER_UPDATE may follow.
        if (this.#readyCount > 0) this.#lost('voice server went away');
        else this.#setState({ status: 'ended', reason: 'failed', detail: 'disconnected while joining' });
        return;
      }
      case VoiceConnectionStatus.Destroyed:
        this.#setState({ status: 'ended', reason: 'closed' });
        return;
    }
  }

  /** The connection dropped after t=0: report it and give it reconnectTimeoutMs to come back. */
  #lost(reason: string): void {
    if (this.#state.status === 'ended') return;
    if (this.#state.status !== 'reconnecting') this.#setState({ status: 'reconnecting', reason });
    this.#reconnectTimer ??= setTimeout(() => {
      this.#setState({ status: 'ended', reason: 'failed', detail: `could not reconnect within ${Math.round(this.#reconnectTimeoutMs / 1000)} s` });
    }, this.#reconnectTimeoutMs);
  }

  #onNetworkingState(state: NetworkingState): void {
    const ws = Reflect.get(state, 'ws') as VoiceWebSocket | undefined;
    if (ws !== this.#ws) {
      this.#ws?.off('packet', this.#onWsPacket);
      this.#ws?.off('close', this.#onWsClose);
      this.#ws = ws;
      ws?.on('packet', this.#onWsPacket);
      ws?.on('close', this.#onWsClose);
    }
    const data = Reflect.get(state, 'connectionData') as { encryptionMode?: string; secretKey?: Uint8Array } | undefined;
    if (data?.secretKey && data.encryptionMode) {
      const id = `${data.encryptionMode}:${Buffer.from(data.secretKey).toString('hex')}`;
      if (id !== this.#cipherKey) {
        this.#cipherKey = id;
        if (isTransportMode(data.encryptionMode)) {
          this.#cipher = new TransportCipher(data.encryptionMode, data.secretKey);
          this.emit('cipher', this.#cipher);
        }
        else this.emit('warn', `voice server chose an unsupported encryption mode: ${data.encryptionMode}`);
      }
    }
  }

  /**
   * Runs after @discordjs/voice's own close handler (it subscribed first), so the library has already resumed,
   * rejoined (op 4 sent) or gone to Disconnected; here dvrec applies close-codes.ts: end the session where Discord
   * says so, and bound everything else.
   */
  readonly #onWsClose = (event: { code?: number }): void => {
    this.#lastCloseCode = event.code;
    if (this.#closing || this.#state.status === 'ended') return;
    const policy = closePolicy(event.code ?? 1005);
    const started = this.#readyCount > 0;
    if (policy.action === 'end') {
      if (!started) {
        this.#setState({ status: 'ended', reason: 'failed', closeCode: policy.code, detail: policy.meaning });
      } else if (policy.graceMs > 0) {
        this.#awaitNewServer(policy);
      } else {
        this.#endByClose(policy);
      }
      return;
    }
    if (!this.#recoveries.take(performance.now())) {
      const times = `${this.#recoveries.count} times within ${Math.round(this.#recoveries.windowMs / 1000)} s`;
      const detail = `the voice server closed the session ${times} (last: ${policy.code}, ${policy.meaning})`;
      this.#setState({ status: 'ended', reason: started ? 'rejected' : 'failed', closeCode: policy.code, detail: started ? detail : `${policy.meaning}, ${times}` });
      return;
    }
    if (started) this.emit('warn', `voice websocket closed (${policy.code}: ${policy.meaning}); ${policy.action === 'resume' ? 'resuming' : 'rejoining with a new voice session'}`);
  };

  /** An `end` code after t=0: stop, with the exit its policy gives. */
  #endByClose(policy: ClosePolicy): void {
    if (policy.exit === 'stopped') {
      this.#setState({ status: 'ended', reason: 'disconnected', closeCode: policy.code, detail: `the voice session ended (${policy.code}: ${policy.meaning}); recording stopped` });
    } else {
      this.#setState({ status: 'ended', reason: 'rejected', closeCode: policy.code, detail: `the voice server ended the session (${policy.code}: ${policy.meaning})` });
    }
  }

  /**
   * 4022 after t=0: Discord says not to reconnect, and a deleted channel ends things (the voice state or
   * CHANNEL_DELETE ends the session at once). A changed voice server is named by Discord in a VOICE_SERVER_UPDATE,
   * which the library follows by itself: if the connection is Ready again within the grace, the recording goes on.
   */
  #awaitNewServer(policy: ClosePolicy): void {
    this.emit('warn', `voice websocket closed (${policy.code}: ${policy.meaning}); waiting ${policy.graceMs / 1000} s for Discord to name a new voice server`);
    this.#lost(`call terminated (${policy.code})`);
    clearTimeout(this.#graceTimer);
    this.#graceTimer = setTimeout(() => {
      this.#graceTimer = undefined;
      if (this.#state.status === 'reconnecting') this.#endByClose(policy);
    }, policy.graceMs);
  }

  readonly #onWsPacket = (packet: { op?: number; d?: Record<string, unknown> }): void => {
    const d = packet.d;
    if (!d) return;
    if (packet.op === VOICE_OP_SPEAKING && typeof d.user_id === 'string' && typeof d.ssrc === 'number') {
      this.knownSsrcs.set(d.ssrc >>> 0, d.user_id);
      if (this.knownSsrcs.size > 4096) this.knownSsrcs.delete(this.knownSsrcs.keys().next().value!);
      this.emit('speaking', d.ssrc >>> 0, d.user_id);
    } else if (packet.op === VOICE_OP_VIDEO) {
      const video = parseVideoOp(d);
      if (video) this.emit('video', video);
    } else if (packet.op === VOICE_OP_CLIENTS_CONNECT && Array.isArray(d.user_ids)) {
      for (const id of d.user_ids) if (typeof id === 'string') this.#voiceClients.add(id);
      this.emit('occupancy', this.humansInChannel());
    } else if (packet.op === VOICE_OP_CLIENT_DISCONNECT && typeof d.user_id === 'string') {
      this.#voiceClients.delete(d.user_id);
      this.emit('occupancy', this.humansInChannel());
    } else if (packet.op === VOICE_OP_DAVE_EXECUTE_TRANSITION && typeof d.transition_id === 'number') {
      this.emit('daveExecute', d.transition_id);
    }
  };

  /** The voice UDP socket currently tapped (diagnostics and tests). */
  get udp(): import('@discordjs/voice').VoiceUDPSocket | undefined {
    return this.#tap.socket;
  }

  /** The current transport cipher, if a session description arrived. */
  get cipher(): TransportCipher | undefined {
    return this.#cipher;
  }

  /** The close code of the last voice websocket close, if any. */
  get lastCloseCode(): number | undefined {
    return this.#lastCloseCode;
  }
}

async function login(client: Client, token: string): Promise<void> {
  const ready = new Promise<void>((resolve, reject) => {
    client.once(Events.ClientReady, () => resolve());
    client.once(Events.Invalidated, () => reject(new DvrecError('Discord invalidated the session (bad token?)', ExitCode.AUTH)));
  });
  await client.login(token);
  await ready;
}

async function resolveChannel(client: Client<true>, guildId: string, channelId: string): Promise<{ guild: Guild; channel: VoiceBasedChannel }> {
  const guild = client.guilds.cache.get(guildId);
  if (!guild || !guild.available) {
    throw new DvrecError(`guild ${guildId} not found: is the bot a member of that server?`, ExitCode.NOT_FOUND);
  }
  let channel = guild.channels.cache.get(channelId) ?? null;
  if (!channel) {
    try {
      channel = await guild.channels.fetch(channelId);
    } catch (e) {
      const status = (e as { status?: number }).status;
      if (status === 403) throw new DvrecError(`the bot may not view channel ${channelId} (needs View Channel)`, ExitCode.PERMISSION);
      if (status !== 404 && status !== undefined) throw toDvrecError(e);
      channel = null;
    }
  }
  if (!channel) throw new DvrecError(`channel ${channelId} not found in guild ${guild.name}`, ExitCode.NOT_FOUND);
  if (!channel.isVoiceBased()) throw new DvrecError(`channel ${channel.name} (${channelId}) is not a voice channel`, ExitCode.NOT_FOUND);
  const perms = channel.permissionsFor(client.user.id);
  if (perms) {
    if (!perms.has(PermissionFlagsBits.ViewChannel)) {
      throw new DvrecError(`the bot may not view voice channel ${channel.name} (needs View Channel)`, ExitCode.PERMISSION);
    }
    if (!perms.has(PermissionFlagsBits.Connect)) {
      throw new DvrecError(`the bot may not connect to voice channel ${channel.name} (needs Connect)`, ExitCode.PERMISSION);
    }
  }
  if (channel.full && !perms?.has(PermissionFlagsBits.MoveMembers)) {
    throw new DvrecError(`voice channel ${channel.name} is full (${channel.userLimit} users)`, ExitCode.CHANNEL_FULL);
  }
  return { guild, channel };
}

/** Maps anything thrown while opening to a DvrecError with the right exit code (token redacted). */
export function toDvrecError(e: unknown): DvrecError {
  if (e instanceof DvrecError) return e;
  const err = e as { code?: unknown; status?: number; message?: string; name?: string };
  const message = redact(String(err?.message ?? e));
  if (err?.code === 'TokenInvalid' || err?.status === 401 || /4004|authentication failed/i.test(message)) {
    return new DvrecError('Discord rejected the bot token (check DISCORD_TOKEN)', ExitCode.AUTH);
  }
  if (err?.status === 403) return new DvrecError(`missing permissions: ${message}`, ExitCode.PERMISSION);
  if (err?.status === 404) return new DvrecError(`not found: ${message}`, ExitCode.NOT_FOUND);
  if (typeof err?.code === 'string' && /^E[A-Z]+/.test(err.code)) {
    return new DvrecError(`cannot reach Discord (${err.code}): ${message}`, ExitCode.NETWORK);
  }
  return new DvrecError(`cannot connect to Discord: ${message}`, ExitCode.NETWORK);
}

/** Races a promise against a timeout and an abort signal, both mapped to NETWORK errors. */
async function withTimeout<T>(p: Promise<T>, ms: number, signal: AbortSignal | undefined, describe: string | (() => string)): Promise<T> {
  const what = (): string => (typeof describe === 'string' ? describe : describe());
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DvrecError(`timed out after ${Math.round(ms / 1000)} s ${what()}`, ExitCode.NETWORK)), ms);
        if (signal) {
          onAbort = () => reject(new DvrecError(`interrupted while ${what()}`, ExitCode.INTERRUPTED));
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        }
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}
