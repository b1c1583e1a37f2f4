/**
 * The simulated main gateway (API v10, JSON, no compression). It speaks to discord.js exactly as Discord
 * does: Hello → Identify → READY + one GUILD_CREATE per guild of the session's shard, heartbeats, resume (op 6 →
 * replayed dispatches + RESUMED), op 7 Reconnect on cue, and op 4 Voice State Update, which it hands to the
 * guild's call (call.ts) through the 'voice-state-request' event.
 *
 * Sharding as Discord does it: identify may carry `shard: [id, count]`; guild g belongs to shard
 * (g >> 22) % count, and a dispatch about a guild (one whose payload has a guild_id) goes only to the sessions
 * of that guild's shard. Without a shard pair a session is shard [0, 1] (every guild).
 *
 * Close codes: 4001 unknown opcode, 4002 decode error, 4003 not authenticated, 4004 authentication failed,
 * 4005 already authenticated, 4010 invalid shard.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ApiUser, World } from './world.ts';

/** What the gateway serves: the bot's identity and the guilds it is in (index.ts). */
export interface GatewayDirectory {
  readonly token: string;
  readonly botUserId: string;
  user(userId: string): ApiUser | undefined;
  worlds(): readonly World[];
  world(guildId: string): World | undefined;
}

/** The shard a guild belongs to among `count` (Discord: (guild_id >> 22) % shard_count). */
export function shardOf(guildId: string, count: number): number {
  return Number((BigInt(guildId) >> 22n) % BigInt(count));
}

const HEARTBEAT_INTERVAL_MS = 41_250;
/** How many dispatches a session keeps for resuming. */
const REPLAY_BUFFER = 500;

interface GatewaySession {
  id: string;
  seq: number;
  /** Recent dispatches for op 6 replay. */
  buffer: { s: number; text: string }[];
  ws: WebSocket | null;
  /** [shard id, shard count] from identify ([0, 1] without). */
  shard: [number, number];
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
  /** A session identified; emitted before its READY goes out (a guild's call may correct its state first). */
  identifying: [sessionId: string, shard: [number, number]];
  identify: [sessionId: string];
  resumed: [sessionId: string];
  'voice-state-request': [req: VoiceStateRequest];
  'auth-failed': [];
}

export class MainGateway extends EventEmitter<MainGatewayEvents> {
  readonly #dir: GatewayDirectory;
  readonly #wss = new WebSocketServer({ noServer: true });
  readonly #sessions = new Map<string, GatewaySession>();
  #url = '';

  constructor(dir: GatewayDirectory) {
    super();
    this.#dir = dir;
    // Every guild's call listens (identify, resumed, voice-state-request...): 50 guilds are 50 listeners, not a leak.
    this.setMaxListeners(0);
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

  /**
   * Sends a dispatch (op 0) to every identified session whose shard has the payload's guild (every session when
   * the payload names no guild); buffered for resume even while disconnected.
   */
  dispatch(t: string, d: unknown): void {
    const guildId = (d as { guild_id?: unknown } | null)?.guild_id;
    for (const session of this.#sessions.values()) {
      if (typeof guildId === 'string' && !this.#covers(session, guildId)) continue;
      this.#dispatchTo(session, t, d);
    }
  }

  /** Whether a session (by id) is connected now. */
  isConnected(sessionId: string): boolean {
    const ws = this.#sessions.get(sessionId)?.ws;
    return !!ws && ws.readyState === ws.OPEN;
  }

  /** Whether a session's shard has this guild. */
  covers(sessionId: string, guildId: string): boolean {
    const s = this.#sessions.get(sessionId);
    return !!s && this.#covers(s, guildId);
  }

  /** Shard pairs of the identified sessions (connected or not), for tests. */
  shards(): [number, number][] {
    return [...this.#sessions.values()].map((s) => s.shard);
  }

  #covers(session: GatewaySession, guildId: string): boolean {
    return shardOf(guildId, session.shard[1]) === session.shard[0];
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
    const expected = this.#dir.token;
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
          const pair = msg.d?.shard;
          let shard: [number, number] = [0, 1];
          if (pair !== undefined) {
            const ok = Array.isArray(pair) && pair.length === 2 && pair.every((n) => Number.isInteger(n)) && pair[1] >= 1 && pair[0] >= 0 && pair[0] < pair[1];
            if (!ok) return ws.close(4010, 'Invalid shard.');
            shard = [pair[0], pair[1]];
          }
          session = { id: randomBytes(16).toString('hex'), seq: 0, buffer: [], ws, shard };
          this.#sessions.set(session.id, session);
          this.emit('identifying', session.id, shard);
          const dir = this.#dir;
          const mine = dir.worlds().filter((w) => this.#covers(session!, w.guildId));
          this.#dispatchTo(session, 'READY', {
            v: 10,
            user: { ...dir.user(dir.botUserId), verified: true, mfa_enabled: false, flags: 0 },
            guilds: mine.map((w) => ({ id: w.guildId, unavailable: true })),
            session_id: session.id,
            session_type: 'normal',
            resume_gateway_url: this.#url,
            shard,
            application: { id: dir.botUserId, flags: 0 },
            private_channels: [],
            relationships: [],
            presences: [],
            guild_join_requests: [],
            user_settings: {},
            geo_ordered_rtc_regions: ['local'],
            _trace: ['dvrec-simulator'],
          });
          for (const w of mine) this.#dispatchTo(session, 'GUILD_CREATE', w.guildCreate());
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
          const world = this.#dir.world(String(msg.d?.guild_id)) ?? this.#dir.worlds()[0]!;
          this.#dispatchTo(session, 'GUILD_MEMBERS_CHUNK', {
            guild_id: world.guildId,
            members: world.members(),
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
