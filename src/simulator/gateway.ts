/**
 * The simulated main gateway (API v10, JSON, no compression). It speaks to discord.js exactly as Discord
 * does for a one-guild bot: Hello → Identify → READY + GUILD_CREATE, heartbeats, resume (op 6 → replayed
 * dispatches + RESUMED), op 7 Reconnect on cue, and op 4 Voice State Update, which it hands to the
 * orchestrator (index.ts) through the 'voice-state-request' event.
 *
 * Close codes: 4001 unknown opcode, 4002 decode error, 4003 not authenticated, 4004 authentication failed,
 * 4005 already authenticated.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { World } from './world.ts';

const HEARTBEAT_INTERVAL_MS = 41_250;
/** How many dispatches a session keeps for resuming. */
const REPLAY_BUFFER = 500;

interface GatewaySession {
  id: string;
  seq: number;
  /** Recent dispatches for op 6 replay. */
  buffer: { s: number; text: string }[];
  ws: WebSocket | null;
}

/** A request from the bot to join, move or leave voice (op 4). */
export interface VoiceStateRequest {
  sessionId: string;
  guildId: string;
  channelId: string | null;
  selfMute: boolean;
  selfDeaf: boolean;
}

export interface MainGatewayEvents {
  identify: [sessionId: string];
  resumed: [sessionId: string];
  'voice-state-request': [req: VoiceStateRequest];
  'auth-failed': [];
}

export class MainGateway extends EventEmitter<MainGatewayEvents> {
  readonly #world: World;
  readonly #wss = new WebSocketServer({ noServer: true });
  readonly #sessions = new Map<string, GatewaySession>();
  #url = '';

  constructor(world: World) {
    super();
    this.#world = world;
    this.#wss.on('connection', (ws) => this.#onConnection(ws));
  }

  /** The ws:// URL the gateway is reachable at (set by the orchestrator once the HTTP server listens). */
  set url(url: string) {
    this.#url = url;
  }

  /** Hands an HTTP upgrade request to the websocket server. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#wss.emit('connection', ws, req));
  }

  /** Sends a dispatch (op 0) to every identified session; buffered for resume even while disconnected. */
  dispatch(t: string, d: unknown): void {
    for (const session of this.#sessions.values()) this.#dispatchTo(session, t, d);
  }

  /** Asks every connected client to reconnect and resume (op 7). Returns how many were asked. */
  requestReconnect(): number {
    let n = 0;
    for (const s of this.#sessions.values()) {
      if (s.ws && s.ws.readyState === s.ws.OPEN) {
        s.ws.send(JSON.stringify({ op: 7, d: null }));
        n++;
      }
    }
    return n;
  }

  close(): void {
    for (const ws of this.#wss.clients) ws.terminate();
    this.#wss.close();
    this.#sessions.clear();
  }

  #dispatchTo(session: GatewaySession, t: string, d: unknown): void {
    const s = ++session.seq;
    const text = JSON.stringify({ op: 0, t, s, d });
    session.buffer.push({ s, text });
    if (session.buffer.length > REPLAY_BUFFER) session.buffer.shift();
    if (session.ws && session.ws.readyState === session.ws.OPEN) session.ws.send(text);
  }

  #tokenOk(token: unknown): boolean {
    const expected = this.#world.scenario.token;
    return token === expected || token === `Bot ${expected}`;
  }

  #onConnection(ws: WebSocket): void {
    let session: GatewaySession | null = null;
    ws.send(JSON.stringify({ op: 10, d: { heartbeat_interval: HEARTBEAT_INTERVAL_MS } }));
    ws.on('error', () => {});
    ws.on('close', () => {
      if (session && session.ws === ws) session.ws = null;
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return ws.close(4002, 'Decode error.');
      let msg: { op: number; d: any };
      try {
        msg = JSON.parse(data.toString());
      } catch {
        return ws.close(4002, 'Decode error.');
      }
      switch (msg.op) {
        case 1: // Heartbeat
          ws.send(JSON.stringify({ op: 11, d: null }));
          return;
        case 2: {
          // Identify
          if (session) return ws.close(4005, 'Already authenticated.');
          if (!this.#tokenOk(msg.d?.token)) {
            this.emit('auth-failed');
            return ws.close(4004, 'Authentication failed.');
          }
          session = { id: randomBytes(16).toString('hex'), seq: 0, buffer: [], ws };
          this.#sessions.set(session.id, session);
          const world = this.#world;
          this.#dispatchTo(session, 'READY', {
            v: 10,
            user: { ...world.user(world.scenario.botUserId), verified: true, mfa_enabled: false, flags: 0 },
            guilds: [{ id: world.guildId, unavailable: true }],
            session_id: session.id,
            session_type: 'normal',
            resume_gateway_url: this.#url,
            shard: [0, 1],
            application: { id: world.scenario.botUserId, flags: 0 },
            private_channels: [],
            relationships: [],
            presences: [],
            guild_join_requests: [],
            user_settings: {},
            geo_ordered_rtc_regions: ['local'],
            _trace: ['dvrec-simulator'],
          });
          this.#dispatchTo(session, 'GUILD_CREATE', world.guildCreate());
          this.emit('identify', session.id);
          return;
        }
        case 6: {
          // Resume
          const old = this.#sessions.get(msg.d?.session_id);
          if (!this.#tokenOk(msg.d?.token)) return ws.close(4004, 'Authentication failed.');
          if (!old) {
            ws.send(JSON.stringify({ op: 9, d: false }));
            return;
          }
          if (old.ws && old.ws !== ws) old.ws.terminate();
          session = old;
          session.ws = ws;
          const since = Number(msg.d?.seq ?? 0);
          for (const item of session.buffer) if (item.s > since) ws.send(item.text);
          this.#dispatchTo(session, 'RESUMED', { _trace: ['dvrec-simulator'] });
          this.emit('resumed', session.id);
          return;
        }
        case 3: // Presence update: accepted, nothing to do.
          if (!session) return ws.close(4003, 'Not authenticated.');
          return;
        case 4: {
          if (!session) return ws.close(4003, 'Not authenticated.');
          this.emit('voice-state-request', {
            sessionId: session.id,
            guildId: String(msg.d?.guild_id),
            channelId: msg.d?.channel_id == null ? null : String(msg.d.channel_id),
            selfMute: Boolean(msg.d?.self_mute),
            selfDeaf: Boolean(msg.d?.self_deaf),
          });
          return;
        }
        case 8: {
          // Request Guild Members: one chunk with everyone.
          if (!session) return ws.close(4003, 'Not authenticated.');
          this.#dispatchTo(session, 'GUILD_MEMBERS_CHUNK', {
            guild_id: this.#world.guildId,
            members: this.#world.members(),
            chunk_index: 0,
            chunk_count: 1,
            nonce: msg.d?.nonce,
          });
          return;
        }
        default:
          ws.close(4001, 'Unknown opcode.');
      }
    });
  }
}
