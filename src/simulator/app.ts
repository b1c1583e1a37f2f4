/**
 * The simulated Discord around the guilds' calls: the bot's identity, the guilds it is in, its application
 * (slash commands registered globally or per guild), interactions members trigger and the bot's answers to them,
 * and everything else the bot does that people see (messages in a voice channel's chat, voice channel statuses,
 * its nickname). Every such thing the bot does is kept in order as a {@link BotAction} (and emitted as the
 * simulator's 'bot-action' event), so tests can assert on what members would have seen.
 *
 * Interaction rules as Discord enforces them: one initial response per interaction (a second one is 400, code
 * 40060), within 3 s of its creation (later: 404 Unknown interaction, code 10062); follow-ups and edits through the
 * interaction's webhook token for 15 minutes.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { SimulatorEvents } from './events.ts';
import type { GatewayDirectory, MainGateway } from './gateway.ts';
import type { ApiUser, World } from './world.ts';

const wallNow = (): number => performance.timeOrigin + performance.now();
/** Discord: the initial response must come within 3 s. */
export const INTERACTION_RESPONSE_MS = 3000;
/** Discord: the interaction token works for 15 minutes. */
const INTERACTION_TOKEN_MS = 15 * 60_000;
const EPHEMERAL = 64;

/** Application command option types (Discord's numbering). */
export const OptionType = { SUB_COMMAND: 1, SUB_COMMAND_GROUP: 2, STRING: 3, INTEGER: 4, BOOLEAN: 5, USER: 6, CHANNEL: 7, ROLE: 8, MENTIONABLE: 9, NUMBER: 10 } as const;

/** Something the bot did that members see (or that a test wants to know it did). `wallMs`: epoch ms. */
export type BotAction =
  | { kind: 'commands'; guildId: string | null; names: string[]; wallMs: number }
  | {
      kind: 'interaction-response';
      interactionId: string;
      guildId: string;
      /** 4 reply, 5 deferred reply, 6 deferred update, 7 update... */
      type: number;
      content: string | null;
      ephemeral: boolean;
      wallMs: number;
    }
  | { kind: 'followup'; interactionId: string; guildId: string; messageId: string; content: string; ephemeral: boolean; wallMs: number }
  | { kind: 'edit-original'; interactionId: string; guildId: string; content: string; wallMs: number }
  | {
      kind: 'message';
      guildId: string;
      channelId: string;
      messageId: string;
      content: string;
      /** Files attached (uploaded with the message). */
      attachments: { filename: string; size: number; sha256: string }[];
      wallMs: number;
    }
  | { kind: 'voice-status'; guildId: string; channelId: string; status: string; wallMs: number }
  | { kind: 'nick'; guildId: string; nick: string | null; wallMs: number };

/** A registered application command (what PUT .../commands stored). */
export interface SimCommand {
  id: string;
  application_id: string;
  guild_id?: string;
  name: string;
  description: string;
  type: number;
  options?: CommandOption[];
  default_member_permissions: string | null;
  version: string;
  [k: string]: unknown;
}

interface CommandOption {
  type: number;
  name: string;
  required?: boolean;
  options?: CommandOption[];
  choices?: { name: string; value: string | number }[];
}

/** A member typing a slash command (sim.interact). */
export interface InteractRequest {
  guildId: string;
  userId: string;
  /** The command's name, e.g. 'record'. */
  command: string;
  /** Its subcommand, e.g. 'start' (required when the command has subcommands). */
  subcommand?: string;
  /** Option values by name (channel, user, role options: the id). */
  options?: Record<string, string | number | boolean>;
  /** The channel whose chat it is typed in. Default: the guild's voice channel (its text chat). */
  channelId?: string;
}

/** The interaction a member triggered, and what the bot answered. */
export interface SimInteraction {
  id: string;
  guildId: string;
  userId: string;
  /** When INTERACTION_CREATE went out (epoch ms). */
  wallMs: number;
  /** The bot's initial response (reply or deferral), once it comes. Rejects if none came within 3 s. */
  response: Promise<Extract<BotAction, { kind: 'interaction-response' }>>;
  /** Resolves with the first content members see: the reply, or (after a deferral) the first edit or follow-up. */
  content: Promise<{ content: string; ephemeral: boolean }>;
}

interface InteractionState {
  id: string;
  token: string;
  guildId: string;
  channelId: string;
  createdMs: number;
  responded: boolean;
  ephemeral: boolean;
  original: Record<string, unknown> | null;
  resolveResponse: (a: Extract<BotAction, { kind: 'interaction-response' }>) => void;
  resolveContent: (c: { content: string; ephemeral: boolean }) => void;
}

/** An HTTP-ish outcome for REST (status, body). */
export interface RestResult {
  status: number;
  body?: unknown;
}

const error = (status: number, message: string, code: number): RestResult => ({ status, body: { message, code } });
export const Errors = {
  unknownInteraction: error(404, 'Unknown interaction', 10062),
  alreadyAcknowledged: error(400, 'Interaction has already been acknowledged.', 40060),
  unknownWebhook: error(404, 'Unknown Webhook', 10015),
  unknownMessage: error(404, 'Unknown Message', 10008),
  unknownChannel: error(404, 'Unknown Channel', 10003),
  unknownGuild: error(404, 'Unknown Guild', 10004),
  missingPermissions: error(403, 'Missing Permissions', 50013),
  invalidBody: error(400, 'Invalid Form Body', 50035),
} as const;

/** Discord-style snowflakes (time-ordered, unique in this process). */
let snowflakeSeq = 0n;
export function snowflake(): string {
  const ms = BigInt(Date.now()) - 1420070400000n;
  return String((ms << 22n) | (snowflakeSeq++ & 0x3fffffn));
}

export class SimDiscord implements GatewayDirectory {
  readonly token: string;
  readonly botUserId: string;
  readonly #worlds: World[];
  readonly #events: EventEmitter<SimulatorEvents>;
  #gateway: MainGateway | null = null;
  readonly actions: BotAction[] = [];
  /** Global commands, and per-guild commands by guild id. */
  globalCommands: SimCommand[] = [];
  readonly guildCommands = new Map<string, SimCommand[]>();
  readonly #interactions = new Map<string, InteractionState>();
  readonly #byToken = new Map<string, InteractionState>();
  /** Messages the bot posted, by id (content), for edits and fetches. */
  readonly #messages = new Map<string, Record<string, unknown>>();

  constructor(token: string, botUserId: string, worlds: World[], events: EventEmitter<SimulatorEvents>) {
    this.token = token;
    this.botUserId = botUserId;
    this.#worlds = worlds;
    this.#events = events;
  }

  set gateway(g: MainGateway) {
    this.#gateway = g;
  }

  worlds(): readonly World[] {
    return this.#worlds;
  }

  world(guildId: string): World | undefined {
    return this.#worlds.find((w) => w.guildId === guildId);
  }

  /** The guild a channel belongs to. */
  worldOfChannel(channelId: string): World | undefined {
    return this.#worlds.find((w) => w.channel(channelId) !== undefined);
  }

  user(userId: string): ApiUser | undefined {
    for (const w of this.#worlds) {
      const u = w.user(userId);
      if (u) return u;
    }
    return undefined;
  }

  #record(a: BotAction): void {
    this.actions.push(a);
    this.#events.emit('bot-action', a);
  }

  // ---- application commands ----

  /** PUT /applications/{app}/commands or .../guilds/{g}/commands: replaces the set, answers the stored commands. */
  putCommands(appId: string, guildId: string | null, body: unknown): RestResult {
    if (appId !== this.botUserId) return Errors.unknownWebhook;
    if (guildId !== null && !this.world(guildId)) return Errors.unknownGuild;
    if (!Array.isArray(body)) return Errors.invalidBody;
    const old = guildId === null ? this.globalCommands : (this.guildCommands.get(guildId) ?? []);
    const stored: SimCommand[] = [];
    for (const c of body as Record<string, unknown>[]) {
      if (typeof c?.name !== 'string' || !/^[-_\p{L}\p{N}]{1,32}$/u.test(c.name)) return Errors.invalidBody;
      const type = Number(c.type ?? 1);
      if (type === 1 && (typeof c.description !== 'string' || c.description.length < 1 || c.description.length > 100)) return Errors.invalidBody;
      const id = old.find((o) => o.name === c.name)?.id ?? snowflake();
      stored.push({
        ...c,
        id,
        application_id: this.botUserId,
        ...(guildId !== null ? { guild_id: guildId } : {}),
        name: c.name,
        description: String(c.description ?? ''),
        type,
        ...(c.options ? { options: c.options as CommandOption[] } : {}),
        default_member_permissions: (c.default_member_permissions as string | null | undefined) ?? null,
        version: snowflake(),
        nsfw: false,
        integration_types: [0],
        contexts: c.contexts ?? null,
      });
    }
    if (guildId === null) this.globalCommands = stored;
    else this.guildCommands.set(guildId, stored);
    this.#record({ kind: 'commands', guildId, names: stored.map((c) => c.name), wallMs: wallNow() });
    return { status: 200, body: stored };
  }

  getCommands(appId: string, guildId: string | null): RestResult {
    if (appId !== this.botUserId) return Errors.unknownWebhook;
    if (guildId !== null && !this.world(guildId)) return Errors.unknownGuild;
    return { status: 200, body: guildId === null ? this.globalCommands : (this.guildCommands.get(guildId) ?? []) };
  }

  // ---- interactions ----

  /**
   * A member types a slash command: INTERACTION_CREATE (with the member's permissions) goes to the bot's session of
   * that guild's shard. Throws (a test mistake, not something Discord would deliver) when the command is not
   * registered for that guild, an option is unknown or a required one missing, or the member may not use it
   * (default_member_permissions).
   */
  interact(req: InteractRequest): SimInteraction {
    const world = this.world(req.guildId);
    if (!world) throw new RangeError(`simulator: no guild ${req.guildId}`);
    const user = world.member(req.userId);
    if (!user || req.userId === this.botUserId) throw new RangeError(`simulator: ${req.userId} is not a member of guild ${req.guildId}`);
    const cmd = [...(this.guildCommands.get(req.guildId) ?? []), ...this.globalCommands].find((c) => c.name === req.command);
    if (!cmd) throw new RangeError(`simulator: /${req.command} is not registered for guild ${req.guildId} (the member's client would not offer it)`);
    const perms = world.permissions(req.userId);
    if (cmd.default_member_permissions !== null && (BigInt(cmd.default_member_permissions) & perms) !== BigInt(cmd.default_member_permissions)) {
      throw new RangeError(`simulator: ${req.userId} may not use /${req.command} (default_member_permissions)`);
    }
    const channelId = req.channelId ?? world.voiceChannelId;
    const channel = world.channel(channelId);
    if (!channel) throw new RangeError(`simulator: no channel ${channelId} in guild ${req.guildId}`);

    // What Discord puts in `resolved` for the options that name something (discord.js reads the objects there).
    const resolvedChannels: Record<string, unknown> = {};
    const resolvedRoles: Record<string, unknown> = {};
    const resolvedUsers: Record<string, unknown> = {};
    const resolvedMembers: Record<string, unknown> = {};
    const build = (defs: CommandOption[] | undefined, values: Record<string, string | number | boolean>): Record<string, unknown>[] => {
      const out: Record<string, unknown>[] = [];
      for (const [name, value] of Object.entries(values)) {
        const def = defs?.find((d) => d.name === name);
        if (!def) throw new RangeError(`simulator: /${req.command}: no option "${name}"`);
        if (def.type === OptionType.CHANNEL) {
          const ch = world.channel(String(value));
          if (!ch) throw new RangeError(`simulator: option ${name}: no channel ${String(value)}`);
          resolvedChannels[String(value)] = { id: ch.id, name: ch.name, type: ch.type, permissions: perms.toString(), parent_id: null };
        }
        if (def.type === OptionType.ROLE) {
          const role = world.roles().find((r) => r.id === String(value));
          if (!role) throw new RangeError(`simulator: option ${name}: no role ${String(value)}`);
          resolvedRoles[String(value)] = role;
        }
        if (def.type === OptionType.USER) {
          const m = world.member(String(value));
          if (!m) throw new RangeError(`simulator: option ${name}: no member ${String(value)}`);
          const { user: u, ...rest } = m as { user: unknown };
          resolvedUsers[String(value)] = u;
          resolvedMembers[String(value)] = { ...rest, permissions: world.permissions(String(value)).toString() };
        }
        if (def.choices && !def.choices.some((c) => c.value === value)) throw new RangeError(`simulator: option ${name}: ${String(value)} is not one of its choices`);
        out.push({ name, type: def.type, value: def.type === OptionType.CHANNEL || def.type === OptionType.USER || def.type === OptionType.ROLE ? String(value) : value });
      }
      for (const d of defs ?? []) if (d.required && !(d.name in values)) throw new RangeError(`simulator: /${req.command}: option ${d.name} is required`);
      return out;
    };
    let options: Record<string, unknown>[];
    const subs = cmd.options?.filter((o) => o.type === OptionType.SUB_COMMAND) ?? [];
    if (subs.length) {
      const sub = subs.find((o) => o.name === req.subcommand);
      if (!sub) throw new RangeError(`simulator: /${req.command} has no subcommand ${String(req.subcommand)}`);
      options = [{ name: sub.name, type: OptionType.SUB_COMMAND, options: build(sub.options, req.options ?? {}) }];
    } else {
      options = build(cmd.options, req.options ?? {});
    }

    const id = snowflake();
    const token = `aW50ZXJhY3Rpb246${randomBytes(24).toString('base64url')}`;
    let resolveResponse!: InteractionState['resolveResponse'];
    let resolveContent!: InteractionState['resolveContent'];
    const response = new Promise<Extract<BotAction, { kind: 'interaction-response' }>>((resolve, reject) => {
      resolveResponse = resolve;
      const t = setTimeout(() => reject(new Error(`simulator: the bot did not respond to /${req.command} ${req.subcommand ?? ''} within 3 s`)), INTERACTION_RESPONSE_MS + 200);
      t.unref();
    });
    response.catch(() => {}); // a test that does not look at it must not get an unhandled rejection
    const content = new Promise<{ content: string; ephemeral: boolean }>((resolve) => (resolveContent = resolve));
    const state: InteractionState = {
      id, token, guildId: req.guildId, channelId, createdMs: wallNow(), responded: false, ephemeral: false, original: null, resolveResponse, resolveContent,
    };
    this.#interactions.set(id, state);
    this.#byToken.set(token, state);
    const data: Record<string, unknown> = {
      id: cmd.id,
      name: cmd.name,
      type: cmd.type,
      ...(cmd.guild_id ? { guild_id: cmd.guild_id } : {}),
      options,
      ...(Object.keys({ ...resolvedChannels, ...resolvedRoles, ...resolvedUsers }).length
        ? {
            resolved: {
              ...(Object.keys(resolvedChannels).length ? { channels: resolvedChannels } : {}),
              ...(Object.keys(resolvedRoles).length ? { roles: resolvedRoles } : {}),
              ...(Object.keys(resolvedUsers).length ? { users: resolvedUsers, members: resolvedMembers } : {}),
            },
          }
        : {}),
    };
    this.#gateway?.dispatch('INTERACTION_CREATE', {
      id,
      application_id: this.botUserId,
      type: 2,
      token,
      version: 1,
      data,
      guild_id: req.guildId,
      guild: { id: req.guildId, locale: 'en-US', features: [] },
      channel_id: channelId,
      channel: { ...channel, permissions: perms.toString() },
      member: { ...user, permissions: perms.toString() },
      app_permissions: world.permissions(this.botUserId).toString(),
      locale: 'en-US',
      guild_locale: 'en-US',
      entitlements: [],
      authorizing_integration_owners: { '0': req.guildId },
      context: 0,
      attachment_size_limit: 10 * 1024 * 1024,
    });
    return { id, guildId: req.guildId, userId: req.userId, wallMs: state.createdMs, response, content };
  }

  /** POST /interactions/{id}/{token}/callback */
  callback(id: string, token: string, body: unknown, withResponse: boolean): RestResult {
    const st = this.#interactions.get(id);
    if (!st || st.token !== token) return Errors.unknownInteraction;
    if (st.responded) return Errors.alreadyAcknowledged;
    if (wallNow() - st.createdMs > INTERACTION_RESPONSE_MS) return Errors.unknownInteraction;
    const b = (body ?? {}) as { type?: number; data?: { content?: string; flags?: number } };
    const type = Number(b.type);
    if (![4, 5, 6, 7].includes(type)) return Errors.invalidBody;
    st.responded = true;
    st.ephemeral = ((b.data?.flags ?? 0) & EPHEMERAL) !== 0;
    const content = typeof b.data?.content === 'string' ? b.data.content : null;
    let message: Record<string, unknown> | null = null;
    if (type === 4 || type === 5) {
      message = this.#message(st, type === 5 ? '' : (content ?? ''), st.ephemeral, true);
      st.original = message;
    }
    const action = { kind: 'interaction-response' as const, interactionId: id, guildId: st.guildId, type, content, ephemeral: st.ephemeral, wallMs: wallNow() };
    this.#record(action);
    st.resolveResponse(action);
    if (type === 4) st.resolveContent({ content: content ?? '', ephemeral: st.ephemeral });
    if (!withResponse) return { status: 204 };
    return {
      status: 200,
      body: {
        interaction: { id, type: 2, activity_instance_id: null, response_message_id: message?.id ?? null, response_message_loading: type === 5, response_message_ephemeral: st.ephemeral },
        resource: { type, ...(message ? { message } : {}) },
      },
    };
  }

  #live(appId: string, token: string): InteractionState | RestResult {
    const st = this.#byToken.get(token);
    if (appId !== this.botUserId || !st || wallNow() - st.createdMs > INTERACTION_TOKEN_MS) return Errors.unknownWebhook;
    return st;
  }

  /** PATCH /webhooks/{app}/{token}/messages/@original (editReply) */
  editOriginal(appId: string, token: string, body: unknown): RestResult {
    const st = this.#live(appId, token);
    if (!('token' in st)) return st;
    if (!st.original) return Errors.unknownMessage;
    const content = String((body as { content?: unknown })?.content ?? st.original.content ?? '');
    st.original = { ...st.original, content, edited_timestamp: new Date().toISOString() };
    this.#record({ kind: 'edit-original', interactionId: st.id, guildId: st.guildId, content, wallMs: wallNow() });
    st.resolveContent({ content, ephemeral: st.ephemeral });
    return { status: 200, body: st.original };
  }

  /** GET /webhooks/{app}/{token}/messages/@original (fetchReply) */
  getOriginal(appId: string, token: string): RestResult {
    const st = this.#live(appId, token);
    if (!('token' in st)) return st;
    return st.original ? { status: 200, body: st.original } : Errors.unknownMessage;
  }

  /** DELETE /webhooks/{app}/{token}/messages/@original */
  deleteOriginal(appId: string, token: string): RestResult {
    const st = this.#live(appId, token);
    if (!('token' in st)) return st;
    if (!st.original) return Errors.unknownMessage;
    st.original = null;
    return { status: 204 };
  }

  /** POST /webhooks/{app}/{token} (followUp) */
  followup(appId: string, token: string, body: unknown): RestResult {
    const st = this.#live(appId, token);
    if (!('token' in st)) return st;
    if (!st.responded) return Errors.unknownWebhook;
    const b = (body ?? {}) as { content?: string; flags?: number };
    const ephemeral = ((b.flags ?? 0) & EPHEMERAL) !== 0;
    const msg = this.#message(st, String(b.content ?? ''), ephemeral, false);
    this.#record({ kind: 'followup', interactionId: st.id, guildId: st.guildId, messageId: msg.id as string, content: msg.content as string, ephemeral, wallMs: wallNow() });
    st.resolveContent({ content: msg.content as string, ephemeral });
    return { status: 200, body: msg };
  }

  #message(st: InteractionState, content: string, ephemeral: boolean, original: boolean): Record<string, unknown> {
    const msg = this.#messageObject(st.guildId, st.channelId, content, ephemeral ? EPHEMERAL : 0);
    Object.assign(msg, {
      webhook_id: this.botUserId,
      application_id: this.botUserId,
      type: original ? 20 : 0,
      interaction_metadata: { id: st.id, type: 2, user: this.user(this.botUserId), authorizing_integration_owners: { '0': st.guildId } },
    });
    return msg;
  }

  #messageObject(guildId: string, channelId: string, content: string, flags: number): Record<string, unknown> {
    const msg = {
      id: snowflake(),
      channel_id: channelId,
      guild_id: guildId,
      author: this.user(this.botUserId),
      content,
      timestamp: new Date().toISOString(),
      edited_timestamp: null,
      tts: false,
      mention_everyone: false,
      mentions: [],
      mention_roles: [],
      attachments: [],
      embeds: [],
      pinned: false,
      type: 0,
      flags,
      components: [],
    };
    this.#messages.set(msg.id, msg);
    return msg;
  }

  // ---- what the bot shows in a guild ----

  /**
   * POST /channels/{id}/messages (a text channel or a voice channel's chat), with attachments (multipart). Files
   * over the guild's upload limit (10 MiB; 50 / 100 MiB for boost tiers 2 / 3) are refused with 413, code 40005.
   */
  postMessage(channelId: string, body: unknown, files: { filename: string; data: Buffer }[] = []): RestResult {
    const world = this.worldOfChannel(channelId);
    if (!world) return Errors.unknownChannel;
    const content = String((body as { content?: unknown })?.content ?? '');
    if ((content.length === 0 && files.length === 0) || content.length > 2000 || files.length > 10) return Errors.invalidBody;
    if (files.some((f) => f.data.length > world.uploadLimitBytes)) return error(413, 'Request entity too large', 40005);
    const msg = this.#messageObject(world.guildId, channelId, content, 0);
    msg.attachments = files.map((f) => ({
      id: snowflake(),
      filename: f.filename,
      size: f.data.length,
      url: `https://cdn.discordapp.com/attachments/${channelId}/${msg.id as string}/${encodeURIComponent(f.filename)}`,
      proxy_url: `https://media.discordapp.net/attachments/${channelId}/${msg.id as string}/${encodeURIComponent(f.filename)}`,
    }));
    const attachments = files.map((f) => ({ filename: f.filename, size: f.data.length, sha256: createHash('sha256').update(f.data).digest('hex') }));
    this.#record({ kind: 'message', guildId: world.guildId, channelId, messageId: msg.id as string, content, attachments, wallMs: wallNow() });
    this.#gateway?.dispatch('MESSAGE_CREATE', { ...msg, member: world.member(this.botUserId) });
    return { status: 200, body: msg };
  }

  /**
   * PUT /channels/{id}/voice-status {status}: the voice channel's status line ('' clears it). 403 Missing
   * Permissions without Set Voice Channel Status (Scenario.denyVoiceStatus). Dispatches VOICE_CHANNEL_STATUS_UPDATE.
   */
  setVoiceStatus(channelId: string, body: unknown): RestResult {
    const world = this.worldOfChannel(channelId);
    if (!world) return Errors.unknownChannel;
    const ch = world.channel(channelId)!;
    if (ch.type !== 2) return Errors.invalidBody;
    if (world.scenario.denyVoiceStatus) return Errors.missingPermissions;
    const raw = (body as { status?: unknown })?.status;
    const status = raw == null ? '' : String(raw);
    if (status.length > 500) return Errors.invalidBody;
    if (status) world.voiceStatuses.set(channelId, status);
    else world.voiceStatuses.delete(channelId);
    this.#record({ kind: 'voice-status', guildId: world.guildId, channelId, status, wallMs: wallNow() });
    this.#gateway?.dispatch('VOICE_CHANNEL_STATUS_UPDATE', { id: channelId, guild_id: world.guildId, status: status || null });
    return { status: 204 };
  }

  /** PATCH /guilds/{g}/members/@me {nick}: the bot's nickname (null or '' resets it). */
  setNick(guildId: string, body: unknown): RestResult {
    const world = this.world(guildId);
    if (!world) return Errors.unknownGuild;
    const raw = (body as { nick?: unknown })?.nick;
    const nick = raw == null || raw === '' ? null : String(raw);
    if (nick !== null && nick.length > 32) return Errors.invalidBody;
    world.botNick = nick;
    const member = world.member(this.botUserId)!;
    this.#record({ kind: 'nick', guildId, nick, wallMs: wallNow() });
    this.#gateway?.dispatch('GUILD_MEMBER_UPDATE', { guild_id: guildId, ...member });
    return { status: 200, body: member };
  }
}
