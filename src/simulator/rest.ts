/**
 * The simulated Discord REST API (the subset discord.js and dvrec call), served under `/api/v10/...`.
 * Errors are shaped like Discord's: `{ "message": "...", "code": N }` with the matching HTTP status.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { World } from './world.ts';

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
  world: World;
  /** The main gateway URL handed out by GET /gateway/bot (ws://127.0.0.1:PORT). */
  gatewayUrl: () => string;
  /** Called for every request (method, path, status) — for tests and debugging. */
  onRequest?: (method: string, path: string, status: number) => void;
}

/** Returns an HTTP request handler for the REST API. */
export function createRestHandler(opts: RestOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { world } = opts;
  const scenario = world.scenario;

  const send = (req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
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
    // Drain any body: none of the routes take one, but the socket must be read to be reused.
    req.resume();
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const m = /^\/api\/v\d+(\/.*)$/.exec(url.pathname);
    if (!m) return send(req, res, 404, ApiError.notFound.body);
    const route = m[1]!.replace(/\/+$/, '');

    const auth = req.headers.authorization ?? '';
    if (auth !== `Bot ${scenario.token}`) return send(req, res, 401, ApiError.unauthorized.body);
    if (req.method !== 'GET') return send(req, res, 405, ApiError.methodNotAllowed.body);

    const err = (e: { status: number; body: unknown }) => send(req, res, e.status, e.body);
    let p: RegExpExecArray | null;

    if (route === '/gateway/bot') {
      return send(req, res, 200, {
        url: opts.gatewayUrl(),
        shards: 1,
        session_start_limit: { total: 1000, remaining: 999, reset_after: 0, max_concurrency: 1 },
      });
    }
    if (route === '/gateway') return send(req, res, 200, { url: opts.gatewayUrl() });
    if (route === '/users/@me') return send(req, res, 200, world.user(scenario.botUserId));
    if ((p = /^\/users\/(\d+)$/.exec(route))) {
      const u = world.user(p[1]!);
      return u ? send(req, res, 200, u) : err(ApiError.unknownUser);
    }
    if (route === '/users/@me/guilds') {
      return send(req, res, 200, [{ id: scenario.guildId, name: world.guild().name, icon: null, owner: false, permissions: '0', features: [] }]);
    }
    if ((p = /^\/guilds\/(\d+)(\/.*)?$/.exec(route))) {
      if (p[1] !== scenario.guildId) return err(ApiError.unknownGuild);
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
      const channel = world.channel(p[1]!);
      if (!channel) return err(ApiError.unknownChannel);
      if (!world.botCan(p[1]!, 'view')) return err(ApiError.missingAccess);
      return send(req, res, 200, channel);
    }
    return err(ApiError.notFound);
  };
}
