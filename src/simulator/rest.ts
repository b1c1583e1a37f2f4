/**
 * The simulated Discord REST API (the subset discord.js and dvrec call), served under `/api/v10/...`.
 * Errors are shaped like Discord's: `{ "message": "...", "code": N }` with the matching HTTP status.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Errors, type RestResult, type SimDiscord } from './app.ts';

/** Discord JSON error codes used here (https://discord.com/developers/docs/topics/opcodes-and-status-codes). */
const ApiError = {
  unauthorized: { status: 401, body: { message: '401: Unauthorized', code: 0 } },
  notFound: { status: 404, body: { message: '404: Not Found', code: 0 } },
  unknownGuild: { status: 404, body: { message: 'Unknown Guild', code: 10004 } },
  unknownChannel: { status: 404, body: { message: 'Unknown Channel', code: 10003 } },
  unknownMember: { status: 404, body: { message: 'Unknown Member', code: 10007 } },
  unknownUser: { status: 404, body: { message: 'Unknown User', code: 10013 } },
  missingAccess: { status: 403, body: { message: 'Missing Access', code: 50001 } },
  methodNotAllowed: { status: 405, body: { message: '405: Method Not Allowed', code: 0 } },
} as const;

export interface RestOptions {
  /** The simulated Discord: the bot, its guilds, its application. */
  dir: SimDiscord;
  /** GET /gateway/bot's recommended shard count. */
  shards?: number;
  /** The main gateway URL handed out by GET /gateway/bot (ws://127.0.0.1:PORT). */
  gatewayUrl: () => string;
  /** Called for every request (method, path, status) — for tests and debugging. */
  onRequest?: (method: string, path: string, status: number) => void;
}

/** Returns an HTTP request handler for the REST API. */
export function createRestHandler(opts: RestOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { dir } = opts;
  /** Request bodies beyond this are refused: Discord's largest upload (a tier 3 server) plus the form around it. */
  const MAX_BODY = 101 << 20;

  const send = (req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void => {
    const text = status === 204 ? '' : JSON.stringify(body);
    res.writeHead(status, {
      ...(status === 204 ? {} : { 'content-type': 'application/json' }),
      'content-length': Buffer.byteLength(text),
      // discord.js's REST reads these; a generous bucket keeps it from queueing.
      'x-ratelimit-limit': '50',
      'x-ratelimit-remaining': '49',
      'x-ratelimit-reset-after': '1',
      'x-ratelimit-bucket': 'sim',
    });
    res.end(text);
    opts.onRequest?.(req.method ?? 'GET', req.url ?? '', status);
  };

  return (req, res) => {
    // Read the whole body first (JSON for the routes that take one; others ignore it, but the socket must be
    // read to be reused).
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => handle(req, res, size > MAX_BODY ? null : Buffer.concat(chunks)));
  };

  function handle(req: IncomingMessage, res: ServerResponse, raw: Buffer | null): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const m = /^\/api\/v\d+(\/.*)$/.exec(url.pathname);
    if (!m) return send(req, res, 404, ApiError.notFound.body);
    // discord.js percent-encodes path segments such as @original.
    let route: string;
    try {
      route = decodeURIComponent(m[1]!).replace(/\/+$/, '');
    } catch {
      return send(req, res, 404, ApiError.notFound.body);
    }

    const err = (e: { status: number; body?: unknown }) => send(req, res, e.status, e.body);
    const reply = (r: RestResult) => send(req, res, r.status, r.body);
    const method = req.method ?? 'GET';
    let p: RegExpExecArray | null;
    let body: unknown = undefined;
    let files: UploadedFile[] = [];
    if (raw === null) return send(req, res, 413, { message: 'Request entity too large', code: 40005 });
    if (raw.length) {
      try {
        ({ json: body, files } = parseBody(raw, String(req.headers['content-type'] ?? '')));
      } catch {
        return err(Errors.invalidBody);
      }
    }

    // Interaction callbacks and the interaction webhook are authorised by the interaction token in the path
    // (discord.js sends them without the bot token).
    if ((p = /^\/interactions\/(\d+)\/([^/]+)\/callback$/.exec(route)) && method === 'POST') {
      return reply(dir.callback(p[1]!, p[2]!, body, url.searchParams.get('with_response') === 'true'));
    }
    if ((p = /^\/webhooks\/(\d+)\/([^/]+)(\/messages\/@original)?$/.exec(route))) {
      const [, app, token, original] = p;
      if (!original && method === 'POST') return reply(dir.followup(app!, token!, body));
      if (original && method === 'PATCH') return reply(dir.editOriginal(app!, token!, body));
      if (original && method === 'GET') return reply(dir.getOriginal(app!, token!));
      if (original && method === 'DELETE') return reply(dir.deleteOriginal(app!, token!));
      return send(req, res, 405, ApiError.methodNotAllowed.body);
    }

    const auth = req.headers.authorization ?? '';
    if (auth !== `Bot ${dir.token}`) return send(req, res, 401, ApiError.unauthorized.body);

    if ((p = /^\/applications\/(\d+)(?:\/guilds\/(\d+))?\/commands$/.exec(route))) {
      const guildId = p[2] ?? null;
      if (method === 'PUT') return reply(dir.putCommands(p[1]!, guildId, body));
      if (method === 'GET') return reply(dir.getCommands(p[1]!, guildId));
      return send(req, res, 405, ApiError.methodNotAllowed.body);
    }
    if ((p = /^\/channels\/(\d+)\/messages$/.exec(route)) && method === 'POST') {
      const w = dir.worldOfChannel(p[1]!);
      if (w && !w.botCan(p[1]!, 'view')) return err(ApiError.missingAccess);
      return reply(dir.postMessage(p[1]!, body, files));
    }
    if ((p = /^\/channels\/(\d+)\/voice-status$/.exec(route)) && method === 'PUT') return reply(dir.setVoiceStatus(p[1]!, body));
    if ((p = /^\/guilds\/(\d+)\/members\/@me$/.exec(route)) && method === 'PATCH') return reply(dir.setNick(p[1]!, body));
    if (method !== 'GET') return send(req, res, 405, ApiError.methodNotAllowed.body);

    if (route === '/gateway/bot') {
      return send(req, res, 200, {
        url: opts.gatewayUrl(),
        shards: opts.shards ?? 1,
        session_start_limit: { total: 1000, remaining: 999, reset_after: 0, max_concurrency: 1 },
      });
    }
    if (route === '/gateway') return send(req, res, 200, { url: opts.gatewayUrl() });
    if (route === '/users/@me') return send(req, res, 200, dir.user(dir.botUserId));
    if ((p = /^\/users\/(\d+)$/.exec(route))) {
      const u = dir.user(p[1]!);
      return u ? send(req, res, 200, u) : err(ApiError.unknownUser);
    }
    if (route === '/users/@me/guilds') {
      return send(
        req,
        res,
        200,
        dir.worlds().map((w) => ({ id: w.guildId, name: w.guild().name, icon: null, owner: false, permissions: w.permissions(dir.botUserId).toString(), features: [] })),
      );
    }
    if (route === '/oauth2/applications/@me' || route === '/applications/@me') {
      return send(req, res, 200, { id: dir.botUserId, name: 'dvrec-bot', icon: null, description: '', bot_public: true, bot_require_code_grant: false, verify_key: '0'.repeat(64), flags: 0, team: null, owner: dir.user(dir.botUserId) });
    }
    if ((p = /^\/guilds\/(\d+)(\/.*)?$/.exec(route))) {
      const world = dir.world(p[1]!);
      if (!world) return err(ApiError.unknownGuild);
      const scenario = world.scenario;
      const sub = p[2] ?? '';
      if (sub === '') return send(req, res, 200, world.guild());
      if (sub === '/channels') {
        return send(req, res, 200, world.channels().filter((c) => world.botCan(c.id as string, 'view')));
      }
      if (sub === '/roles') return send(req, res, 200, world.roles());
      if (sub === '/members/@me') return send(req, res, 200, world.member(scenario.botUserId));
      let q: RegExpExecArray | null;
      if ((q = /^\/members\/(\d+)$/.exec(sub))) {
        const member = world.member(q[1]!);
        return member ? send(req, res, 200, member) : err(ApiError.unknownMember);
      }
      if ((q = /^\/voice-states\/(@me|\d+)$/.exec(sub))) {
        const id = q[1] === '@me' ? scenario.botUserId : q[1]!;
        const vs = world.voiceStates.get(id);
        return vs ? send(req, res, 200, vs) : err(ApiError.unknownMember);
      }
      return err(ApiError.notFound);
    }
    if ((p = /^\/channels\/(\d+)$/.exec(route))) {
      const world = dir.worldOfChannel(p[1]!);
      const channel = world?.channel(p[1]!);
      if (!channel) return err(ApiError.unknownChannel);
      if (!world!.botCan(p[1]!, 'view')) return err(ApiError.missingAccess);
      return send(req, res, 200, channel);
    }
    return err(ApiError.notFound);
  }
}

/** A file part of a multipart request (discord.js sends attachments as `files[n]`). */
export interface UploadedFile {
  field: string;
  filename: string;
  data: Buffer;
}

/** A JSON body, or discord.js's multipart form: `payload_json` holds the JSON, `files[n]` the attachments. */
function parseBody(raw: Buffer, contentType: string): { json: unknown; files: UploadedFile[] } {
  if (!contentType.startsWith('multipart/form-data')) return { json: JSON.parse(raw.toString('utf8')), files: [] };
  const boundary = /boundary=("?)([^";]+)\1/.exec(contentType)?.[2];
  if (!boundary) throw new Error('no boundary');
  const delimiter = Buffer.from(`--${boundary}`);
  let json: unknown = {};
  const files: UploadedFile[] = [];
  let at = raw.indexOf(delimiter);
  while (at >= 0) {
    const start = at + delimiter.length;
    if (raw.subarray(start, start + 2).toString() === '--') break; // the closing delimiter
    const next = raw.indexOf(delimiter, start);
    if (next < 0) break;
    // A part: CRLF, headers, CRLF CRLF, body, CRLF (before the next delimiter). Bytes, not text: files are binary.
    const part = raw.subarray(start + 2, next - 2);
    const split = part.indexOf('\r\n\r\n');
    const headers = part.subarray(0, split).toString('utf8');
    const data = part.subarray(split + 4);
    const field = /name="([^"]*)"/.exec(headers)?.[1] ?? '';
    const filename = /filename="([^"]*)"/.exec(headers)?.[1];
    if (field === 'payload_json') json = JSON.parse(data.toString('utf8'));
    else if (filename !== undefined) files.push({ field, filename, data: Buffer.from(data) });
    at = next;
  }
  return { json, files };
}
