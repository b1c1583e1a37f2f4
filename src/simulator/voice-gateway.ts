/**
 * One simulated voice server ("endpoint"): a TLS websocket speaking voice gateway v8 plus its UDP socket
 * (voice-udp.ts). A voice server move creates a second instance on new ports.
 *
 * Per recorder identify there is one {@link VoiceSession}; it outlives its websocket so that a close with a
 * resumable code (< 4000 or 4015) can be resumed with op 7 → op 9 and the v8 buffered messages (those with
 * `seq` > the client's `seq_ack`) are replayed. The session's state machine:
 *
 *   identified (op 2 Ready sent) ──op 1──▶ ready (op 4 Session Description sent) ──close──▶ detached
 *        ▲                                      ▲                                            │
 *        └─────────────── (new identify = new session) ◀───── op 7 resume (op 9) ────────────┘
 *
 * Text frames carry JSON; binary frames are DAVE: server→client `[u16 seq][u8 op][payload]`,
 * client→server `[u8 op][payload]`. The JSON `seq` and the binary u16 share one counter.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:https';
import { WebSocketServer, type WebSocket } from 'ws';
import type { TransportMode } from './scenario.ts';
import { TransportEncryptor } from './transport-crypto.ts';
import type { NonceCounter } from './nonces.ts';
import { VoiceUdp, type ClientAddress } from './voice-udp.ts';

/** Heartbeat interval announced in op 8 Hello (Discord uses 41,250 ms for voice too; 13,750 is common). */
const HEARTBEAT_INTERVAL_MS = 13_750;
const REPLAY_BUFFER = 256;
/** JSON ops the recorder may send (0 identify, 1 select, 3 heartbeat, 5 speaking, 7 resume, 12 video, 23/31 DAVE). */
const KNOWN_CLIENT_OPS = new Set([0, 1, 3, 5, 7, 12, 15, 16, 23, 31]);

/** What the orchestrator issued in VOICE_SERVER_UPDATE / VOICE_STATE_UPDATE, to check op 0 Identify against. */
export interface VoiceGrant {
  token: string;
  sessionId: string;
  userId: string;
  serverId: string;
}

export type VoiceSessionState = 'identified' | 'ready' | 'detached' | 'closed';

/** One recorder voice session on this server. */
export class VoiceSession {
  readonly grant: VoiceGrant;
  readonly server: VoiceServer;
  /** The recorder's own SSRC (op 2). */
  readonly ssrc: number;
  readonly secretKey = randomBytes(32);
  state: VoiceSessionState = 'identified';
  mode: TransportMode | null = null;
  encryptor: TransportEncryptor | null = null;
  /** Where media goes: Select Protocol's address (falls back to the discovery source). */
  client: ClientAddress | null = null;
  /** Member SSRCs already announced with op 5 on this session (or whose late op 5 is scheduled). */
  readonly announced = new Set<number>();
  /**
   * Member SSRC → scheduler tick before which its packets are held: op 5 went out less than the lead before its
   * first packet, and UDP must not overtake the TLS websocket (index.ts SPEAKING_LEAD_TICKS).
   */
  readonly heldUntilTick = new Map<number, number>();
  /** Per member, the set of video streams last announced with op 12 on this session (index.ts sendVideo). */
  readonly videoAnnounced = new Map<string, string>();
  ws: WebSocket | null;
  #seq = 0;
  readonly #buffer: { seq: number; frame: string | Buffer }[] = [];

  constructor(server: VoiceServer, grant: VoiceGrant, ws: WebSocket, ssrc: number) {
    this.server = server;
    this.grant = grant;
    this.ws = ws;
    this.ssrc = ssrc;
  }

  /** True when media can be sent (op 4 given, address known). Also true while detached (see index.ts). */
  get mediaReady(): boolean {
    return (this.state === 'ready' || this.state === 'detached') && this.encryptor !== null && this.client !== null;
  }

  /** Sends a sequenced JSON op (buffered for resume). */
  send(op: number, d: unknown): void {
    const seq = this.#nextSeq();
    this.#push(seq, JSON.stringify({ op, seq, d }));
  }

  /** Sends a sequenced binary DAVE op. */
  sendBinary(op: number, payload: Buffer): void {
    const seq = this.#nextSeq();
    const frame = Buffer.allocUnsafe(3 + payload.length);
    frame.writeUInt16BE(seq & 0xffff, 0);
    frame[2] = op;
    payload.copy(frame, 3);
    this.#push(seq, frame);
  }

  /** Sends an unsequenced JSON op (hello, heartbeat ack, resumed). */
  sendRaw(op: number, d: unknown): void {
    if (this.ws && this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify({ op, d }));
  }

  /** Re-sends everything after `seqAck` on the (new) websocket. */
  replayAfter(seqAck: number): number {
    let n = 0;
    for (const item of this.#buffer) {
      if (item.seq > seqAck && this.ws) {
        this.ws.send(item.frame);
        n++;
      }
    }
    return n;
  }

  /** Closes the websocket with `code`; the session stays resumable unless `final`. */
  closeWs(code: number, reason: string, final = false): void {
    if (final) this.state = 'closed';
    this.ws?.close(code, reason);
  }

  /** Encrypts one media datagram (RTP or RTCP) with this session's key and its stream's next nonce. Needs mediaReady. */
  seal(aad: Buffer, plaintext: Buffer): Buffer {
    if (!this.encryptor) throw new Error('voice session has no transport key yet');
    return this.encryptor.seal(aad, plaintext);
  }

  /**
   * Sends one sealed datagram to the recorder, as is: a network duplicate is the same bytes sent twice.
   * Returns false (nothing sent) when the session can no longer carry media.
   */
  sendDatagram(datagram: Buffer): boolean {
    if (!this.mediaReady) return false;
    return this.server.udp.send(datagram, this.client!);
  }

  /** Seals and sends one media datagram (RTP or RTCP) to the recorder. */
  sendMedia(aad: Buffer, plaintext: Buffer): boolean {
    if (!this.mediaReady) return false;
    return this.sendDatagram(this.seal(aad, plaintext));
  }

  #nextSeq(): number {
    this.#seq = (this.#seq + 1) & 0xffff;
    return this.#seq;
  }

  #push(seq: number, frame: string | Buffer): void {
    this.#buffer.push({ seq, frame });
    if (this.#buffer.length > REPLAY_BUFFER) this.#buffer.shift();
    if (this.ws && this.ws.readyState === this.ws.OPEN) this.ws.send(frame);
  }
}

export interface VoiceServerOptions {
  certPem: string;
  keyPem: string;
  modes: TransportMode[];
  /** 1 with DAVE, 0 without (op 4 dave_protocol_version). */
  daveProtocolVersion: number;
  /** Close right after identify with this code (e.g. 4017), for error-path tests. */
  rejectWith?: number;
  /** Asked at every valid identify: a close code to refuse it with now (e.g. 4021 while rate limited), or undefined. */
  refuseNow?: () => number | undefined;
  /** Looks up the grant for an identify token; null if unknown. */
  grantFor(token: string): VoiceGrant | null;
  /** Allocates the recorder's SSRC. */
  allocateSsrc(): number;
  /** A new nonce numbering for a new transport key (Scenario.nonces); default one counter per connection from 0. */
  nonceCounter?(): NonceCounter;
  /** User ids currently in the call, for op 11 right after op 2. */
  connectedUserIds(): string[];
}

export interface VoiceServerEvents {
  /** op 0 accepted and op 2 sent. */
  identify: [session: VoiceSession];
  /** op 4 sent: media may flow. */
  'session-ready': [session: VoiceSession];
  /** op 7 accepted, op 9 sent. */
  resumed: [session: VoiceSession, replayed: number];
  /** The session's websocket closed (by either side). */
  'ws-close': [session: VoiceSession, code: number];
  /** Identify refused (bad token / session, DAVE required, scripted rejection). */
  rejected: [code: number];
  /** DAVE traffic from the recorder. */
  'dave-binary': [session: VoiceSession, op: number, payload: Buffer];
  'dave-json': [session: VoiceSession, op: number, d: unknown];
}

export class VoiceServer extends EventEmitter<VoiceServerEvents> {
  readonly udp = new VoiceUdp();
  readonly #opts: VoiceServerOptions;
  readonly #https: Server;
  readonly #wss: WebSocketServer;
  readonly #sessions = new Map<string, VoiceSession>();
  #port = 0;

  constructor(opts: VoiceServerOptions) {
    super();
    this.#opts = opts;
    this.#https = createServer({ cert: opts.certPem, key: opts.keyPem });
    this.#wss = new WebSocketServer({ server: this.#https });
    this.#wss.on('connection', (ws) => this.#onConnection(ws));
    this.udp.on('discovery', (ssrc, from) => {
      for (const s of this.#sessions.values()) if (s.ssrc === ssrc && !s.client) s.client = from;
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#https.listen(0, '127.0.0.1', resolve));
    this.#port = (this.#https.address() as { port: number }).port;
    await this.udp.listen();
  }

  /** `host:port` as sent in VOICE_SERVER_UPDATE. */
  get endpoint(): string {
    return `127.0.0.1:${this.#port}`;
  }

  sessions(): VoiceSession[] {
    return [...this.#sessions.values()];
  }

  async close(): Promise<void> {
    for (const ws of this.#wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
    this.#https.closeAllConnections();
    await new Promise<void>((resolve) => this.#https.close(() => resolve()));
    await this.udp.close();
    this.#sessions.clear();
  }

  #onConnection(ws: WebSocket): void {
    let session: VoiceSession | null = null;
    ws.on('error', () => {});
    ws.send(JSON.stringify({ op: 8, d: { heartbeat_interval: HEARTBEAT_INTERVAL_MS, v: 8 } }));
    ws.on('close', (code) => {
      if (session && session.ws === ws) {
        session.ws = null;
        if (session.state !== 'closed') session.state = session.state === 'ready' ? 'detached' : 'closed';
        this.emit('ws-close', session, code);
      }
    });
    ws.on('message', (data, isBinary) => {
      const buf = data as Buffer;
      if (isBinary) {
        if (!session || buf.length < 1) return ws.close(4003, 'Not authenticated.');
        this.emit('dave-binary', session, buf[0]!, buf.subarray(1));
        return;
      }
      let msg: { op: number; d: any };
      try {
        msg = JSON.parse(buf.toString('utf8'));
      } catch {
        return ws.close(4002, 'Failed to decode payload.');
      }
      if (!KNOWN_CLIENT_OPS.has(msg.op)) return ws.close(4001, 'Unknown opcode.');
      switch (msg.op) {
        case 0:
          if (session) return ws.close(4005, 'Already authenticated.');
          session = this.#identify(ws, msg.d);
          return;
        case 7:
          if (session) return ws.close(4005, 'Already authenticated.');
          session = this.#resume(ws, msg.d);
          return;
        case 3: {
          const t = msg.d?.t ?? msg.d;
          const ack = JSON.stringify({ op: 6, d: { t } });
          ws.send(ack);
          return;
        }
      }
      if (!session) return ws.close(4003, 'Not authenticated.');
      switch (msg.op) {
        case 1:
          this.#selectProtocol(session, msg.d);
          return;
        case 23:
        case 31:
          this.emit('dave-json', session, msg.op, msg.d);
          return;
        default:
          return; // op 5 speaking, 12 video etc.: the recorder does not send media we care about
      }
    });
  }

  #identify(ws: WebSocket, d: any): VoiceSession | null {
    const grant = this.#opts.grantFor(String(d?.token ?? ''));
    if (
      !grant ||
      String(d?.server_id) !== grant.serverId ||
      String(d?.user_id) !== grant.userId ||
      String(d?.session_id) !== grant.sessionId
    ) {
      this.emit('rejected', 4004);
      ws.close(4004, 'Authentication failed.');
      return null;
    }
    const refuse = this.#opts.rejectWith ?? this.#opts.refuseNow?.();
    if (refuse) {
      this.emit('rejected', refuse);
      ws.close(refuse, 'Rejected by scenario.');
      return null;
    }
    if (this.#opts.daveProtocolVersion > 0 && !(Number(d?.max_dave_protocol_version) >= 1)) {
      this.emit('rejected', 4017);
      ws.close(4017, 'E2EE/DAVE protocol required.');
      return null;
    }
    // A new identify replaces any older session of the same user on this server.
    for (const [id, old] of this.#sessions) {
      if (old.grant.userId === grant.userId) {
        old.state = 'closed';
        this.#sessions.delete(id);
      }
    }
    const session = new VoiceSession(this, grant, ws, this.#opts.allocateSsrc());
    this.#sessions.set(grant.sessionId, session);
    session.send(2, { ssrc: session.ssrc, ip: '127.0.0.1', port: this.udp.port, modes: this.#opts.modes, experiments: [] });
    const others = this.#opts.connectedUserIds();
    if (others.length > 0) session.send(11, { user_ids: others });
    // Observed after op 11 on Discord (undocumented, no SSRC in either): each client's flags and platform.
    for (const id of others) {
      session.send(18, { user_id: id, flags: 2 });
      session.send(20, { user_id: id, platform: 0 });
    }
    this.emit('identify', session);
    return session;
  }

  #resume(ws: WebSocket, d: any): VoiceSession | null {
    const session = this.#sessions.get(String(d?.session_id ?? ''));
    if (!session || session.grant.token !== String(d?.token ?? '') || String(d?.server_id) !== session.grant.serverId || session.state === 'closed') {
      ws.close(4006, 'Session no longer valid.');
      return null;
    }
    if (session.ws && session.ws !== ws) session.ws.terminate();
    session.ws = ws;
    if (session.state === 'detached') session.state = 'ready';
    session.sendRaw(9, null);
    const seqAck = Number(d?.seq_ack ?? -1);
    const replayed = session.replayAfter(seqAck);
    this.emit('resumed', session, replayed);
    return session;
  }

  #selectProtocol(session: VoiceSession, d: any): void {
    if (d?.protocol !== 'udp') return session.closeWs(4012, 'Unknown protocol.', true);
    const mode = d?.data?.mode as TransportMode;
    if (!this.#opts.modes.includes(mode)) return session.closeWs(4016, 'Unknown encryption mode.', true);
    const address = String(d?.data?.address ?? '');
    const port = Number(d?.data?.port);
    if (address && port > 0 && port < 65536) session.client = { address, port };
    session.mode = mode;
    session.encryptor = new TransportEncryptor(mode, session.secretKey, this.#opts.nonceCounter?.() ?? 0);
    session.state = 'ready';
    session.send(4, {
      audio_codec: 'opus',
      video_codec: 'H264',
      media_session_id: randomBytes(16).toString('hex'),
      mode,
      secret_key: [...session.secretKey],
      dave_protocol_version: this.#opts.daveProtocolVersion,
    });
    this.emit('session-ready', session);
  }
}
