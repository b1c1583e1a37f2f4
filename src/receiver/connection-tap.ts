/**
 * Stage 0 of the receive path: a tap on a @discordjs/voice VoiceConnection that somebody else owns (the host bot,
 * or dvrec's own command). It observes; it never joins, rejoins or destroys the connection. It emits, as typed
 * events, what a recording needs: every raw UDP datagram, the transport key (op 4), SSRC → user (op 5), who is in
 * the call (op 11 / op 13), and the connection's life as a state machine with the recording's t=0.
 *
 *   connecting ──first Ready──▶ ready ◀──Ready── reconnecting
 *        │                        │  ╰─resume/close/server move─▶ ╯ │
 *        ╰──────────────▶ ended ◀─┴── kicked/moved/destroyed, an `end` close code, too many closes, not back in time ─╯
 *
 * What each voice close code leads to is decided in close-codes.ts (one table, with Discord's wording), never here.
 *
 * t=0 is the first Ready the tap sees (op 4 received: the first moment audio can be decrypted), or the moment of
 * attaching when the connection is Ready already. Later Ready states keep that t=0: the timeline never restarts.
 *
 * Why the raw socket: `receiver.subscribe()` loses RTP sequence/timestamp, drops packets of SSRCs not yet mapped,
 * and destroys a user's stream on one bad auth tag. And the library's own `VoiceReceiver.onUdpMessage` (attached to
 * every UDP socket the connection creates, subscribed or not) throws outside any try/catch on a datagram of 9–11
 * bytes (@discordjs/voice 0.19.2: `readUInt32BE(8)`), which ends the process. The tap therefore either contains
 * that handler (`libraryReceiver: 'guard'`, the default: the host's `receiver.subscribe()` streams and speaking
 * events keep working, and no datagram shorter than an RTP header, or anything that makes it throw, escapes it) or
 * keeps it off the socket (`'detach'`: a process that does not use the library's receiver saves its per-packet
 * work). Either way, after every networking change (a resume keeps the socket; a server move or rejoin brings a
 * new one and the library re-attaches its handler), and restored as it was when the tap closes.
 *
 * DAVE: the tap owns the connection's DAVE decryption for everyone who reads it (dave-guard.ts judges failures per
 * sender and recovers a broken group state; dave-once.ts makes each frame decrypt once, shared with the host's
 * receiver, whose calls to the library's DAVE wrapper are routed through the same front).
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:dgram';
import type { Client, VoiceState, DMChannel, NonThreadGuildBasedChannel } from 'discord.js';
import {
  NetworkingStatusCode,
  VoiceConnectionStatus,
  VoiceConnectionDisconnectReason,
  type Networking,
  type NetworkingState,
  type VoiceConnection,
  type VoiceConnectionState,
  type VoiceUDPSocket,
  type VoiceWebSocket,
} from '@discordjs/voice';
import { watchNetworking } from './networking-watch.ts';
import { TransportCipher, isTransportMode } from './transport-crypto.ts';
import { DecryptOnce } from './dave-once.ts';
import { DaveGuard, type DaveWrapper } from './dave-guard.ts';
import type { DaveFrameDecryptor } from './dave.ts';
import { closePolicy, RecoveryBudget, type ClosePolicy } from './close-codes.ts';
import { parseVideoOp, type VideoAnnouncement } from './video-streams.ts';

export type TapState =
  | { status: 'connecting' }
  | { status: 'ready'; /** 1 for the first Ready, +1 per recovery. */ readyCount: number }
  | { status: 'reconnecting'; reason: string }
  | {
      status: 'ended';
      /**
       * `disconnected`: kicked, moved to another channel, the channel deleted, or the owner destroyed the
       * connection (a normal end of a recording); `refused`: the voice server refused the session before t=0;
       * `rejected`: after t=0, the voice server ended the session and Discord says not to come back (or a close
       * kept coming back: close-codes.ts); `failed`: lost and not back in time; `closed`: the tap was closed.
       */
      reason: 'disconnected' | 'refused' | 'rejected' | 'failed' | 'closed';
      closeCode?: number;
      detail?: string;
    };

export interface ConnectionTapOptions {
  /** What happens to @discordjs/voice's own receive handler (see the module comment). Default 'guard'. */
  libraryReceiver?: 'guard' | 'detach';
  /** How long a lost connection may take to come back before the tap ends ('failed'). Default 60 s. */
  reconnectTimeoutMs?: number;
  /**
   * The discord.js client that owns the connection, if known: its gateway events end the tap at once when the bot
   * is disconnected from the channel or the channel is deleted (Discord also closes the voice websocket, with 4014
   * or 4022, in either order; whichever comes first ends it). Without it the close code alone decides.
   */
  client?: Client;
}

export interface ConnectionTapEvents {
  state: [next: TapState, previous: TapState];
  /** One raw datagram from the voice UDP socket. */
  datagram: [datagram: Buffer];
  /** A transport key became valid (op 4 of a new voice session). */
  cipher: [cipher: TransportCipher];
  /** op 5 Speaking: this SSRC belongs to this user. */
  speaking: [ssrc: number, userId: string];
  /** op 12 (undocumented): a user's audio SSRC and its video and RTX SSRCs (video-streams.ts). */
  video: [announcement: VideoAnnouncement];
  /** The users the voice gateway says are in the call changed (op 11 / op 13). */
  clients: [userIds: ReadonlySet<string>];
  /** Non-fatal trouble. */
  warn: [message: string];
}

const VOICE_OP_DAVE_EXECUTE_TRANSITION = 22;
const VOICE_OP_SPEAKING = 5;
const VOICE_OP_VIDEO = 12;
const VOICE_OP_CLIENTS_CONNECT = 11;
const VOICE_OP_CLIENT_DISCONNECT = 13;
/** A datagram shorter than this is no RTP packet (the library handler reads bytes 8..11 unchecked). */
const MIN_RTP_BYTES = 12;

/** The part of @discordjs/voice's VoiceReceiver the tap touches (its handler is a bound instance property). */
interface LibraryReceiver {
  onUdpMessage: (msg: Buffer) => void;
  ssrcMap: { map: Map<number, { userId: string; audioSSRC: number }> };
}

export class ConnectionTap extends EventEmitter<ConnectionTapEvents> {
  readonly connection: VoiceConnection;
  /** The channel the connection was in when the tap attached: a move elsewhere ends the tap. */
  readonly channelId: string | null;
  /** performance.now() at t=0; NaN until then. */
  t0Perf = Number.NaN;
  /** Epoch ms (sub-millisecond) of t=0; NaN until then. */
  startedAtMs = Number.NaN;
  #state: TapState = { status: 'connecting' };
  #readyCount = 0;
  readonly #reconnectTimeoutMs: number;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #unwatch: () => void;
  #closed = false;
  #ws: VoiceWebSocket | undefined;
  #udp: VoiceUDPSocket | undefined;
  #cipherKey = '';
  #cipher: TransportCipher | undefined;
  #lastCloseCode: number | undefined;
  /** Users announced by op 11 on the current voice websocket (minus op 13). */
  readonly #clients = new Set<string>();
  /** Every op 5 seen (SSRC → user), including those the library saw before the tap attached. */
  readonly knownSsrcs = new Map<number, string>();
  readonly #receiver: LibraryReceiver;
  /** The library's own handler, as found when the tap attached (restored on close). */
  readonly #libraryHandler: (msg: Buffer) => void;
  /** What the tap put in its place (the guard, or a no-op). */
  readonly #replacement: (msg: Buffer) => void;
  /** Whether the library's receiver still reads the socket (then DAVE decryption is shared with it). */
  readonly #shareDave: boolean;
  /** Judges DAVE failures per sender and recovers the recorder's group state (dave-guard.ts). */
  readonly #daveGuard: DaveGuard;
  /** Each frame decrypted once, whoever asks first (dave-once.ts); what the receivers call. */
  readonly #daveOnce: DecryptOnce;
  /** The current networking's DAVE wrapper, and whether its `decrypt` was routed through {@link #daveOnce}. */
  #dave: { wrapper: DaveWrapper; patched: boolean } | undefined;
  /** Running while a 4022 waits for Discord to name a new voice server (close-codes.ts graceMs). */
  #graceTimer: NodeJS.Timeout | undefined;
  /** Bounds resumes and rejoins, so that a close code that keeps coming back cannot loop. */
  readonly #recoveries = new RecoveryBudget();
  readonly #client: Client | undefined;

  constructor(connection: VoiceConnection, options: ConnectionTapOptions = {}) {
    super();
    this.connection = connection;
    this.channelId = connection.joinConfig.channelId;
    this.#reconnectTimeoutMs = options.reconnectTimeoutMs ?? 60_000;
    this.#receiver = connection.receiver as unknown as LibraryReceiver;
    const original = this.#receiver.onUdpMessage;
    this.#libraryHandler = original;
    this.#replacement = options.libraryReceiver === 'detach' ? noop : guardLibraryHandler(original);
    this.#shareDave = options.libraryReceiver !== 'detach';
    this.#daveGuard = new DaveGuard({
      wrapper: () => this.#currentDave(),
      canSignal: () => (Reflect.get(this.connection.state, 'networking') as Networking | undefined)?.state.code === NetworkingStatusCode.Ready,
      now: () => performance.now(),
      warn: (m) => this.emit('warn', m),
    });
    this.#daveOnce = new DecryptOnce((frame, userId) => this.#daveGuard.decrypt(frame, userId));
    this.#client = options.client;
    this.#client?.on('channelDelete', this.#onChannelDelete);
    this.#client?.on('voiceStateUpdate', this.#onVoiceState);
    for (const [ssrc, data] of this.#receiver.ssrcMap.map) this.knownSsrcs.set(ssrc >>> 0, data.userId);
    // Swap the library's handler before any networking event: updateReceiveBindings attaches
    // `receiver.onUdpMessage` by property lookup, so sockets created from now on get the replacement; the
    // current socket (a connection already Ready) is swapped by #follow below.
    this.#receiver.onUdpMessage = this.#replacement;
    connection.on('stateChange', this.#onConnectionState);
    connection.on('error', this.#onError);
    this.#unwatch = watchNetworking(connection, (s) => this.#onNetworkingState(s));
  }

  /**
   * Takes the connection's present state into account: a connection Ready already is t=0 now (emitted as a
   * `state` event). Call once, after subscribing to the events.
   */
  start(): void {
    if (this.#closed || this.#readyCount > 0 || this.#state.status === 'ended') return;
    const status = this.connection.state.status;
    if (status === VoiceConnectionStatus.Ready) this.#ready();
    else if (status === VoiceConnectionStatus.Destroyed) this.#end({ status: 'ended', reason: 'failed', detail: 'the voice connection was destroyed' });
  }

  get state(): TapState {
    return this.#state;
  }

  /** Milliseconds since t=0 on the recording clock (NaN before t=0). */
  now(): number {
    return performance.now() - this.t0Perf;
  }

  /**
   * Stage 4 of the receive path, DAVE decryption (dave-guard.ts behind dave-once.ts): the same object for the whole
   * recording, whatever the reconnects; without a DAVE session, frames pass as they are (the guard's rule).
   */
  dave(): DaveFrameDecryptor {
    // With the library's receiver detached nobody else decrypts: no need to remember (and copy) every frame.
    return this.#shareDave ? this.#daveOnce : this.#daveGuard;
  }

  /** The DAVE wrapper of the current networking (a new one after every reconnect), fronted on first sight. */
  #currentDave(): DaveWrapper | undefined {
    const networking = Reflect.get(this.connection.state, 'networking') as Networking | undefined;
    const wrapper = networking ? (Reflect.get(networking.state, 'dave') as DaveWrapper | undefined) : undefined;
    if (wrapper && wrapper !== this.#dave?.wrapper) this.#frontDave(wrapper);
    return wrapper ?? undefined;
  }

  /**
   * With the library's receiver active, routes its DAVE decryption (`wrapper.decrypt(packet, userId)`, looked up
   * on every packet) through the shared front: a frame decrypts once, and the library's own failure counter, which
   * re-initialises the session for everyone after 37 failures from anyone, never runs (dave-guard.ts).
   */
  #frontDave(wrapper: DaveWrapper): void {
    this.#unfrontDave();
    let patched = false;
    if (this.#shareDave && !this.#closed) {
      (wrapper as unknown as { decrypt: (p: Buffer, u: string) => Buffer | null }).decrypt = (packet, userId) => this.#daveOnce.decrypt(packet, userId);
      patched = true;
    }
    this.#dave = { wrapper, patched };
  }

  /** Gives the DAVE wrapper its own decrypt back. */
  #unfrontDave(): void {
    const d = this.#dave;
    if (d?.patched) delete (d.wrapper as { decrypt?: unknown }).decrypt;
    this.#dave = undefined;
  }

  /** The current transport cipher, if a session description arrived. */
  get cipher(): TransportCipher | undefined {
    return this.#cipher;
  }

  /** Users the voice gateway announced in the call (op 11 minus op 13) on the current voice websocket. */
  get clients(): ReadonlySet<string> {
    return this.#clients;
  }

  /** The voice UDP socket currently tapped (diagnostics and tests). */
  get udp(): VoiceUDPSocket | undefined {
    return this.#udp;
  }

  /** The close code of the last voice websocket close, if any. */
  get lastCloseCode(): number | undefined {
    return this.#lastCloseCode;
  }

  /** Stops observing and gives the library its receive handler back. Never touches the connection itself. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#graceTimer);
    this.#client?.off('channelDelete', this.#onChannelDelete);
    this.#client?.off('voiceStateUpdate', this.#onVoiceState);
    this.#unwatch();
    this.connection.off('stateChange', this.#onConnectionState);
    this.connection.off('error', this.#onError);
    this.#ws?.off('packet', this.#onWsPacket);
    this.#ws?.off('close', this.#onWsClose);
    this.#udp?.off('message', this.#onDatagram);
    this.#unfrontDave();
    // The library attaches `receiver.onUdpMessage` to the current socket: put the original back in both places.
    if (this.#receiver.onUdpMessage === this.#replacement) {
      this.#receiver.onUdpMessage = this.#libraryHandler;
      const udp = this.#currentUdp();
      if (udp) {
        udp.off('message', this.#replacement);
        if (!udp.listeners('message').includes(this.#libraryHandler)) udp.on('message', this.#libraryHandler);
      }
    }
    this.#end({ status: 'ended', reason: 'closed' });
  }

  readonly #onDatagram = (datagram: Buffer): void => {
    // The tap must never throw back into the socket's emitter (it would surface as an uncaught error).
    try {
      this.emit('datagram', datagram);
    } catch {
      /* a listener's bug must not end the host's process */
    }
  };

  readonly #onError = (e: Error): void => {
    this.emit('warn', `voice connection: ${e.message}`);
  };

  #currentUdp(): VoiceUDPSocket | undefined {
    const networking = Reflect.get(this.connection.state, 'networking') as Networking | undefined;
    return networking ? (Reflect.get(networking.state, 'udp') as VoiceUDPSocket | undefined) : undefined;
  }

  #setState(next: TapState): void {
    const prev = this.#state;
    if (prev.status === 'ended') return; // terminal
    this.#state = next;
    this.emit('state', next, prev);
  }

  #end(state: Extract<TapState, { status: 'ended' }>): void {
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#graceTimer);
    this.#setState(state);
  }

  #ready(): void {
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
  }

  readonly #onConnectionState = (_old: VoiceConnectionState, next: VoiceConnectionState): void => {
    if (this.#closed) return;
    const moved = this.connection.joinConfig.channelId;
    if (this.channelId !== null && moved !== this.channelId && this.#readyCount > 0) {
      // Someone moved the bot to another channel. We end rather than follow: the recording is of THIS channel,
      // and the people in the other one did not agree to be recorded; what was captured here is finished.
      this.#end({ status: 'ended', reason: 'disconnected', detail: `the bot was moved to another channel (${moved}); recording stopped` });
      return;
    }
    switch (next.status) {
      case VoiceConnectionStatus.Ready:
        this.#ready();
        return;
      case VoiceConnectionStatus.Signalling:
      case VoiceConnectionStatus.Connecting:
        if (this.#readyCount > 0) this.#lost(next.status === VoiceConnectionStatus.Signalling ? 'rejoining the voice channel' : 'reconnecting to the voice server');
        return;
      case VoiceConnectionStatus.Disconnected: {
        if (next.reason === VoiceConnectionDisconnectReason.WebSocketClose && next.closeCode === 4014) {
          // Kicked, moved out, or the channel was deleted: Discord says do not reconnect (close-codes.ts).
          const policy = closePolicy(4014);
          if (this.#readyCount === 0) this.#end({ status: 'ended', reason: 'refused', closeCode: 4014, detail: policy.meaning });
          else this.#endByClose(policy);
          return;
        }
        // Endpoint removed (server going away) or adapter unavailable: a new VOICE_SERVER_UPDATE may follow.
        if (this.#readyCount > 0) this.#lost('voice server went away');
        else this.#end({ status: 'ended', reason: 'failed', detail: 'disconnected while joining' });
        return;
      }
      case VoiceConnectionStatus.Destroyed:
        this.#end({ status: 'ended', reason: 'disconnected', detail: 'the voice connection was destroyed; recording stopped' });
        return;
    }
  };

  /** The connection dropped after t=0: report it and give it reconnectTimeoutMs to come back. */
  #lost(reason: string): void {
    if (this.#state.status === 'ended') return;
    if (this.#state.status !== 'reconnecting') this.#setState({ status: 'reconnecting', reason });
    this.#reconnectTimer ??= setTimeout(() => {
      this.#end({ status: 'ended', reason: 'failed', detail: `could not reconnect within ${Math.round(this.#reconnectTimeoutMs / 1000)} s` });
    }, this.#reconnectTimeoutMs);
  }

  #onNetworkingState(state: NetworkingState): void {
    if (this.#closed) return;
    // The UDP socket: listen to it, and keep only the replacement of the library's handler on it.
    const udp = Reflect.get(state, 'udp') as VoiceUDPSocket | undefined;
    if (udp !== this.#udp) {
      this.#udp?.off('message', this.#onDatagram);
      this.#udp = udp;
      udp?.on('message', this.#onDatagram);
      if (udp) deepenReceiveBuffer(udp);
    }
    if (udp) {
      udp.off('message', this.#libraryHandler);
      // 'detach': the library attaches the no-op we put in its place; keep the socket's listeners to the tap's own.
      if (this.#replacement === noop) udp.off('message', noop);
      else if (!udp.listeners('message').includes(this.#replacement)) udp.on('message', this.#replacement);
    }
    // The voice websocket: op 5 / 11 / 13 and close codes.
    const ws = Reflect.get(state, 'ws') as VoiceWebSocket | undefined;
    if (ws !== this.#ws) {
      this.#ws?.off('packet', this.#onWsPacket);
      this.#ws?.off('close', this.#onWsClose);
      this.#ws = ws;
      ws?.on('packet', this.#onWsPacket);
      ws?.on('close', this.#onWsClose);
      this.#clients.clear();
    }
    // The DAVE wrapper: fronted as soon as it exists, so the host's receiver and ours share each decryption.
    const dave = Reflect.get(state, 'dave') as DaveWrapper | undefined;
    if (dave && dave !== this.#dave?.wrapper) this.#frontDave(dave);
    // The transport key (op 4): a new one for every new voice session.
    const data = Reflect.get(state, 'connectionData') as { encryptionMode?: string; secretKey?: Uint8Array } | undefined;
    if (data?.secretKey && data.encryptionMode) {
      const id = `${data.encryptionMode}:${Buffer.from(data.secretKey).toString('hex')}`;
      if (id !== this.#cipherKey) {
        this.#cipherKey = id;
        if (isTransportMode(data.encryptionMode)) {
          this.#cipher = new TransportCipher(data.encryptionMode, data.secretKey);
          this.emit('cipher', this.#cipher);
        } else this.emit('warn', `voice server chose an unsupported encryption mode: ${data.encryptionMode}`);
      }
    }
  }

  /**
   * Runs after @discordjs/voice's own close handler (it subscribed first), so the library has already resumed,
   * rejoined (op 4 sent) or gone to Disconnected; here the tap applies close-codes.ts: end where Discord says so,
   * and bound everything else.
   */
  readonly #onWsClose = (event: { code?: number }): void => {
    this.#lastCloseCode = event.code;
    if (this.#closed || this.#state.status === 'ended') return;
    const policy = closePolicy(event.code ?? 1005);
    const started = this.#readyCount > 0;
    if (policy.action === 'end') {
      if (!started) this.#end({ status: 'ended', reason: 'refused', closeCode: policy.code, detail: policy.meaning });
      else if (policy.graceMs > 0) this.#awaitNewServer(policy);
      else this.#endByClose(policy);
      return;
    }
    if (!this.#recoveries.take(performance.now())) {
      const times = `${this.#recoveries.count} times within ${Math.round(this.#recoveries.windowMs / 1000)} s`;
      this.#end(started
        ? { status: 'ended', reason: 'rejected', closeCode: policy.code, detail: `the voice server closed the session ${times} (last: ${policy.code}, ${policy.meaning})` }
        : { status: 'ended', reason: 'refused', closeCode: policy.code, detail: `${policy.meaning}, ${times}` });
      return;
    }
    if (started) this.emit('warn', `voice websocket closed (${policy.code}: ${policy.meaning}); ${policy.action === 'resume' ? 'resuming' : 'rejoining with a new voice session'}`);
  };

  /** An `end` code after t=0: a clean stop, or a rejection, as its policy says. */
  #endByClose(policy: ClosePolicy): void {
    if (policy.exit === 'stopped') {
      this.#end({ status: 'ended', reason: 'disconnected', closeCode: policy.code, detail: `the voice session ended (${policy.code}: ${policy.meaning}); recording stopped` });
    } else {
      this.#end({ status: 'ended', reason: 'rejected', closeCode: policy.code, detail: `the voice server ended the session (${policy.code}: ${policy.meaning})` });
    }
  }

  /**
   * 4022 after t=0: Discord says not to reconnect, and a deleted channel ends things (CHANNEL_DELETE or the bot's
   * voice state ends the tap at once, when the client is known). A changed voice server is named by Discord in a
   * VOICE_SERVER_UPDATE, which the library follows by itself: Ready again within the grace, the recording goes on.
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

  readonly #onChannelDelete = (deleted: DMChannel | NonThreadGuildBasedChannel): void => {
    // Before t=0 the join itself fails (refused or timed out) and says so.
    if (this.#closed || this.#readyCount === 0 || deleted.id !== this.channelId) return;
    this.#end({ status: 'ended', reason: 'disconnected', detail: `the voice channel ${'name' in deleted ? deleted.name : deleted.id} was deleted; recording stopped` });
  };

  readonly #onVoiceState = (before: VoiceState, after: VoiceState): void => {
    if (this.#closed || this.#readyCount === 0 || after.id !== after.client.user?.id) return;
    if (after.guild.id !== this.connection.joinConfig.guildId) return;
    if (after.channelId === null && before.channelId === this.channelId) {
      // Out of the channel (kicked, disconnected by a moderator, the channel deleted).
      this.#end({ status: 'ended', reason: 'disconnected', detail: 'the bot was disconnected from the voice channel; recording stopped' });
    }
  };

  readonly #onWsPacket = (packet: { op?: number; d?: Record<string, unknown> }): void => {
    const d = packet.d;
    if (!d || this.#closed) return;
    if (packet.op === VOICE_OP_SPEAKING && typeof d.user_id === 'string' && typeof d.ssrc === 'number') {
      this.knownSsrcs.set(d.ssrc >>> 0, d.user_id);
      if (this.knownSsrcs.size > 4096) this.knownSsrcs.delete(this.knownSsrcs.keys().next().value!);
      this.emit('speaking', d.ssrc >>> 0, d.user_id);
    } else if (packet.op === VOICE_OP_VIDEO) {
      const video = parseVideoOp(d);
      if (video) this.emit('video', video);
    } else if (packet.op === VOICE_OP_CLIENTS_CONNECT && Array.isArray(d.user_ids)) {
      for (const id of d.user_ids) if (typeof id === 'string') this.#clients.add(id);
      this.emit('clients', this.#clients);
    } else if (packet.op === VOICE_OP_CLIENT_DISCONNECT && typeof d.user_id === 'string') {
      this.#clients.delete(d.user_id);
      this.emit('clients', this.#clients);
    } else if (packet.op === VOICE_OP_DAVE_EXECUTE_TRANSITION && typeof d.transition_id === 'number') {
      // After @discordjs/voice's own handler (it subscribed first): the guard compares with what it prepared.
      this.#daveGuard.onExecuteTransition(d.transition_id);
    }
  };
}

function noop(): void {}

/**
 * The library's handler, contained: datagrams too short to be RTP never reach it (its unchecked read of bytes 8..11
 * throws on them), and whatever else it throws stays here. Everything else it handles as it always did (speaking
 * events, `receiver.subscribe()` streams).
 */
function guardLibraryHandler(handler: (msg: Buffer) => void): (msg: Buffer) => void {
  return (msg) => {
    if (msg.length < MIN_RTP_BYTES) return;
    try {
      handler(msg);
    } catch {
      /* the host's receiver stumbled on hostile input; the datagram is the tap's to count */
    }
  };
}

/**
 * A burst (a flood of hostile datagrams, or the main thread pausing for GC or a disk write) must not make the
 * kernel drop real audio: ask for a 4 MiB receive buffer (Linux caps it at net.core.rmem_max; best effort).
 * The socket may not be bound yet (IP discovery binds it), so retry once it is listening.
 */
function deepenReceiveBuffer(udp: VoiceUDPSocket): void {
  // `socket` is private in the typings but public at runtime (the dgram.Socket the library created).
  const socket = (udp as unknown as { socket: Socket }).socket;
  const apply = (): void => {
    try {
      socket.setRecvBufferSize(4 * 1024 * 1024);
    } catch {
      /* not bound yet, or refused: keep the default */
    }
  };
  apply();
  socket.once('listening', apply);
}
