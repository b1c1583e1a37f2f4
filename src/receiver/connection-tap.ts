/**
 * Stage 0 of the receive path: a tap on a @discordjs/voice VoiceConnection that somebody else owns (the host bot,
 * or dvrec's own command). It observes; it never joins, rejoins or destroys the connection. It emits, as typed
 * events, what a recording needs: every raw UDP datagram, the transport key (op 4), SSRC → user (op 5), who is in
 * the call (op 11 / op 13), and the connection's life as a state machine with the recording's t=0.
 *
 *   connecting ──first Ready──▶ ready ◀──Ready── reconnecting
 *        │                        │  ╰─resume/close/server move─▶ ╯ │
 *        ╰──────────────▶ ended ◀─┴── kicked/moved/destroyed, refused, or not back in time ─╯
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
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:dgram';
import {
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
import { DecryptOnce, type DaveDecryptor } from './dave-once.ts';
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
       * `failed`: lost and not back in time.
       */
      reason: 'disconnected' | 'refused' | 'failed' | 'closed';
      closeCode?: number;
      detail?: string;
    };

export interface ConnectionTapOptions {
  /** What happens to @discordjs/voice's own receive handler (see the module comment). Default 'guard'. */
  libraryReceiver?: 'guard' | 'detach';
  /** How long a lost connection may take to come back before the tap ends ('failed'). Default 60 s. */
  reconnectTimeoutMs?: number;
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
  /** The current networking's DAVE session and its decrypt-once front (see dave-once.ts). */
  #dave: { session: DaveDecryptor; once: DecryptOnce; patched: boolean } | undefined;

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
   * The DAVE session of the current networking (it changes on every reconnect), if any, behind the decrypt-once
   * front that the library's own receiver shares (dave-once.ts).
   */
  dave(): DaveDecryptor | undefined {
    const networking = Reflect.get(this.connection.state, 'networking') as Networking | undefined;
    const session = networking ? (Reflect.get(networking.state, 'dave') as DaveDecryptor | undefined) : undefined;
    if (!session) return undefined;
    if (this.#dave?.session !== session) this.#frontDave(session);
    return this.#dave!.once;
  }

  /** Puts a decrypt-once front on a (new) DAVE session; with the library's receiver active, routes it through it too. */
  #frontDave(session: DaveDecryptor): void {
    this.#unfrontDave();
    const original = session.decrypt.bind(session);
    const once = new DecryptOnce(original);
    let patched = false;
    if (this.#shareDave && !this.#closed) {
      // The host's receiver calls `dave.decrypt(packet, userId)` by property lookup on every packet.
      session.decrypt = (packet, userId) => once.decrypt(packet, userId);
      patched = true;
    }
    this.#dave = { session, once, patched };
  }

  /** Gives the DAVE session its own decrypt back. */
  #unfrontDave(): void {
    const d = this.#dave;
    if (d?.patched) delete (d.session as { decrypt?: unknown }).decrypt;
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
    this.#setState(state);
  }

  #ready(): void {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
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
          // Kicked, moved out, or the channel was deleted: Discord says do not reconnect.
          this.#end({ status: 'ended', reason: 'disconnected', closeCode: 4014, detail: 'the bot was disconnected from the voice channel (4014); recording stopped' });
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
    // The DAVE session: fronted as soon as it exists, so the host's receiver and ours share each decryption.
    const dave = Reflect.get(state, 'dave') as DaveDecryptor | undefined;
    if (dave && dave !== this.#dave?.session) this.#frontDave(dave);
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

  readonly #onWsClose = (event: { code?: number }): void => {
    this.#lastCloseCode = event.code;
    if (this.#closed) return;
    const code = event.code ?? 0;
    // Before t=0, a close Discord does not resume from means the server refused us (4017 DAVE required, 4014 ...).
    if (this.#readyCount === 0 && code >= 4000 && code !== 4015) {
      this.#end({ status: 'ended', reason: 'refused', closeCode: code, detail: describeVoiceClose(code) });
    } else if (this.#readyCount > 0 && code !== 4014) {
      this.emit('warn', `voice websocket closed (code ${code}); ${code === 4015 || code < 4000 ? 'resuming' : 'rejoining'}`);
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

/** A one-line reason for a voice close code (discord-api-docs, topics/opcodes-and-status-codes, Voice Close Event Codes). */
export function describeVoiceClose(code: number): string {
  switch (code) {
    case 4017: return 'end-to-end encryption (DAVE) is required';
    case 4016: return 'unknown encryption mode';
    case 4014: return 'disconnected (kicked, moved or channel deleted)';
    case 4011: return 'server not found';
    case 4012: return 'unknown protocol';
    case 4006: return 'session no longer valid';
    case 4004: return 'authentication failed';
    default: return `close code ${code}`;
  }
}
