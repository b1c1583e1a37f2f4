/**
 * The simulated guild as Discord would describe it: users, members, roles, channels and voice states,
 * shaped like API v10 objects. REST (rest.ts) and the main gateway (gateway.ts) both read from here, so a
 * REST lookup and a GUILD_CREATE always agree. The orchestrator (index.ts) mutates voice states as the
 * scenario plays.
 */
import type { Scenario } from './scenario.ts';

/** Discord permission bits used by the simulated guild. */
export const Permission = {
  VIEW_CHANNEL: 1n << 10n,
  SEND_MESSAGES: 1n << 11n,
  READ_MESSAGE_HISTORY: 1n << 16n,
  CONNECT: 1n << 20n,
  SPEAK: 1n << 21n,
  USE_VAD: 1n << 25n,
  ADMINISTRATOR: 1n << 3n,
  MANAGE_GUILD: 1n << 5n,
  CHANGE_NICKNAME: 1n << 26n,
  SET_VOICE_CHANNEL_STATUS: 1n << 48n,
} as const;

/** Every permission bit Discord defines up to now (what the owner and administrators have). */
const ALL_PERMISSIONS = (1n << 53n) - 1n;

const EVERYONE_PERMISSIONS =
  Permission.VIEW_CHANNEL |
  Permission.SEND_MESSAGES |
  Permission.READ_MESSAGE_HISTORY |
  Permission.CONNECT |
  Permission.SPEAK |
  Permission.USE_VAD |
  Permission.CHANGE_NICKNAME;

export const ChannelType = { GUILD_TEXT: 0, GUILD_VOICE: 2, GUILD_STAGE_VOICE: 13 } as const;

export interface ApiUser {
  id: string;
  username: string;
  discriminator: string;
  global_name: string | null;
  avatar: null;
  bot?: boolean;
}

export interface ApiVoiceState {
  guild_id: string;
  channel_id: string | null;
  user_id: string;
  session_id: string;
  deaf: boolean;
  mute: boolean;
  self_deaf: boolean;
  self_mute: boolean;
  self_video: boolean;
  /** Sharing the screen (Go Live); absent when not. */
  self_stream?: boolean;
  suppress: boolean;
  request_to_speak_timestamp: null;
  member?: unknown;
}

export class World {
  readonly scenario: Scenario;
  readonly guildId: string;
  readonly voiceChannelId: string;
  /** Current voice states by user id (users in some voice channel of the guild). */
  readonly voiceStates = new Map<string, ApiVoiceState>();
  /** Channels deleted while the scenario played (CHANNEL_DELETE sent): gone from REST, GUILD_CREATE and joins. */
  readonly #deleted = new Set<string>();
  /** Voice channel statuses the bot set (PUT /channels/{id}/voice-status), by channel id. */
  readonly voiceStatuses = new Map<string, string>();
  /** The bot's nickname in this guild (PATCH /guilds/{id}/members/@me). */
  botNick: string | null = null;
  readonly #joinedAt = new Date(Date.now() - 86_400_000).toISOString();
  /**
   * The bot's own managed role, as Discord creates it for a bot invited with permissions: what it may do beyond
   * @everyone (post in a voice channel's chat, set its status unless Scenario.denyVoiceStatus).
   */
  readonly botRoleId: string;

  constructor(scenario: Scenario) {
    this.scenario = scenario;
    this.guildId = scenario.guildId;
    this.voiceChannelId = scenario.channelId;
    this.botRoleId = String(BigInt(scenario.guildId) + 7777n);
    if (scenario.voiceStatus) this.voiceStatuses.set(scenario.channelId, scenario.voiceStatus);
  }

  /** The largest file a message may carry here (Discord: 10 MiB; 50 / 100 MiB for boost tiers 2 / 3). */
  get uploadLimitBytes(): number {
    const tier = this.scenario.premiumTier ?? 0;
    return (tier >= 3 ? 100 : tier === 2 ? 50 : 10) * 1024 * 1024;
  }

  /** The guild owner (all permissions). */
  get ownerId(): string {
    return this.scenario.ownerId ?? this.scenario.members[0]?.userId ?? this.scenario.botUserId;
  }

  /** Role ids of a member (not @everyone). */
  memberRoles(userId: string): string[] {
    if (userId === this.scenario.botUserId) return [this.botRoleId];
    return this.scenario.members.find((m) => m.userId === userId)?.roles ?? [];
  }

  /** A member's guild-level permissions (@everyone + its roles; everything for the owner and administrators). */
  permissions(userId: string): bigint {
    if (userId === this.ownerId) return ALL_PERMISSIONS;
    let p = 0n;
    const mine = new Set([this.guildId, ...this.memberRoles(userId)]);
    for (const r of this.roles()) if (mine.has(r.id as string)) p |= BigInt(r.permissions as string);
    return p & Permission.ADMINISTRATOR ? ALL_PERMISSIONS : p;
  }

  isKnownUser(userId: string): boolean {
    return userId === this.scenario.botUserId || this.scenario.members.some((m) => m.userId === userId);
  }

  user(userId: string): ApiUser | undefined {
    const s = this.scenario;
    if (userId === s.botUserId) {
      return { id: s.botUserId, username: 'dvrec-bot', discriminator: '0', global_name: null, avatar: null, bot: true };
    }
    const m = s.members.find((x) => x.userId === userId);
    if (!m) return undefined;
    return {
      id: m.userId,
      username: m.username,
      discriminator: '0',
      global_name: m.displayName ?? m.username,
      avatar: null,
      ...(m.bot ? { bot: true } : {}),
    };
  }

  member(userId: string): Record<string, unknown> | undefined {
    const user = this.user(userId);
    if (!user) return undefined;
    const nick = userId === this.scenario.botUserId ? this.botNick : null;
    return { user, nick, roles: this.memberRoles(userId), joined_at: this.#joinedAt, deaf: false, mute: false, flags: 0, pending: false };
  }

  members(): Record<string, unknown>[] {
    const ids = [this.scenario.botUserId, ...this.scenario.members.map((m) => m.userId)];
    return ids.map((id) => this.member(id)!);
  }

  roles(): Record<string, unknown>[] {
    return [
      {
        id: this.guildId,
        name: '@everyone',
        permissions: EVERYONE_PERMISSIONS.toString(),
        position: 0,
        color: 0,
        hoist: false,
        managed: false,
        mentionable: false,
        flags: 0,
      },
      {
        id: this.botRoleId,
        name: 'dvrec-bot',
        permissions: (Permission.SEND_MESSAGES | Permission.CHANGE_NICKNAME | (this.scenario.denyVoiceStatus ? 0n : Permission.SET_VOICE_CHANNEL_STATUS)).toString(),
        position: 1,
        color: 0,
        hoist: false,
        managed: true,
        mentionable: false,
        flags: 0,
        tags: { bot_id: this.scenario.botUserId },
      },
      ...(this.scenario.roles ?? []).map((r, i) => ({
        id: r.id,
        name: r.name,
        permissions: r.permissions,
        position: i + 2,
        color: 0,
        hoist: false,
        managed: false,
        mentionable: false,
        flags: 0,
      })),
    ];
  }

  /** Overwrites that take View Channel / Connect away from the bot on the listed channels. */
  #overwrites(channelId: string): Record<string, unknown>[] {
    let deny = 0n;
    if (this.scenario.denyView?.includes(channelId)) deny |= Permission.VIEW_CHANNEL;
    if (this.scenario.denyConnect?.includes(channelId)) deny |= Permission.CONNECT;
    if (deny === 0n) return [];
    return [{ id: this.scenario.botUserId, type: 1, allow: '0', deny: deny.toString() }];
  }

  channels(): Record<string, unknown>[] {
    const s = this.scenario;
    const main = {
      id: s.channelId,
      type: s.channelType ?? ChannelType.GUILD_VOICE,
      guild_id: s.guildId,
      name: s.channelName ?? 'General',
      position: 0,
      parent_id: null,
      bitrate: 64000,
      user_limit: s.userLimit ?? 0,
      rtc_region: null,
      nsfw: false,
      rate_limit_per_user: 0,
      permission_overwrites: this.#overwrites(s.channelId),
      // Discord includes a voice channel's status when one is set.
      ...(this.voiceStatuses.has(s.channelId) ? { status: this.voiceStatuses.get(s.channelId) } : {}),
    };
    const extra = (s.extraChannels ?? []).map((c, i) => {
      const voice = c.type === ChannelType.GUILD_VOICE || c.type === ChannelType.GUILD_STAGE_VOICE;
      return {
        id: c.id,
        type: c.type,
        guild_id: s.guildId,
        name: c.name,
        position: i + 1,
        parent_id: null,
        nsfw: false,
        permission_overwrites: this.#overwrites(c.id),
        ...(voice ? { bitrate: 64000, user_limit: c.userLimit ?? 0, rtc_region: null } : { topic: null, last_message_id: null }),
        ...(voice && this.voiceStatuses.has(c.id) ? { status: this.voiceStatuses.get(c.id) } : {}),
      };
    });
    return [main, ...extra].filter((c) => !this.#deleted.has(c.id));
  }

  /** Whether a channel is a stage channel (type 13): members join it suppressed unless they are speakers. */
  isStage(channelId: string): boolean {
    return this.channel(channelId)?.type === ChannelType.GUILD_STAGE_VOICE;
  }

  /** Deletes a channel; returns the CHANNEL_DELETE payload (the channel as it was), or undefined if unknown. */
  deleteChannel(channelId: string): Record<string, unknown> | undefined {
    const c = this.channel(channelId);
    if (c) this.#deleted.add(channelId);
    return c;
  }

  channel(channelId: string): Record<string, unknown> | undefined {
    return this.channels().find((c) => c.id === channelId);
  }

  /** Whether the bot may see / connect to a channel (after overwrites). */
  botCan(channelId: string, what: 'view' | 'connect'): boolean {
    if (this.scenario.denyView?.includes(channelId)) return false;
    if (what === 'connect' && this.scenario.denyConnect?.includes(channelId)) return false;
    return true;
  }

  /** The REST guild object (GET /guilds/:id). */
  guild(): Record<string, unknown> {
    const s = this.scenario;
    return {
      id: s.guildId,
      name: s.guildName ?? 'dvrec simulated guild',
      icon: null,
      splash: null,
      discovery_splash: null,
      owner_id: this.ownerId,
      afk_channel_id: null,
      afk_timeout: 300,
      verification_level: 0,
      default_message_notifications: 0,
      explicit_content_filter: 0,
      roles: this.roles(),
      emojis: [],
      stickers: [],
      features: [],
      mfa_level: 0,
      application_id: null,
      system_channel_id: null,
      system_channel_flags: 0,
      rules_channel_id: null,
      vanity_url_code: null,
      description: null,
      banner: null,
      premium_tier: s.premiumTier ?? 0,
      preferred_locale: 'en-US',
      public_updates_channel_id: null,
      nsfw_level: 0,
      premium_progress_bar_enabled: false,
    };
  }

  /** The gateway GUILD_CREATE payload (guild + channels, members, voice states). */
  guildCreate(): Record<string, unknown> {
    return {
      ...this.guild(),
      unavailable: false,
      large: false,
      joined_at: this.#joinedAt,
      member_count: this.scenario.members.length + 1,
      channels: this.channels(),
      threads: [],
      members: this.members(),
      voice_states: [...this.voiceStates.values()].map(({ guild_id: _g, member: _m, ...vs }) => vs),
      presences: [],
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: [],
    };
  }

  /** Puts a user into (or, with null, out of) a voice channel and returns the VOICE_STATE_UPDATE payload. */
  setVoiceState(
    userId: string,
    channelId: string | null,
    sessionId: string,
    flags: { selfDeaf?: boolean; selfMute?: boolean; selfVideo?: boolean; selfStream?: boolean; suppress?: boolean } = {},
  ): ApiVoiceState {
    const vs: ApiVoiceState = {
      guild_id: this.guildId,
      channel_id: channelId,
      user_id: userId,
      session_id: sessionId,
      deaf: false,
      mute: false,
      self_deaf: flags.selfDeaf ?? false,
      self_mute: flags.selfMute ?? false,
      self_video: flags.selfVideo ?? false,
      ...(flags.selfStream ? { self_stream: true } : {}),
      // On a stage channel Discord puts everyone who is not a speaker in the audience: suppressed.
      suppress: flags.suppress ?? false,
      request_to_speak_timestamp: null,
    };
    if (channelId) this.voiceStates.set(userId, vs);
    else this.voiceStates.delete(userId);
    return { ...vs, member: this.member(userId) };
  }

  /** Number of users in a voice channel. */
  occupancy(channelId: string): number {
    let n = 0;
    for (const vs of this.voiceStates.values()) if (vs.channel_id === channelId) n++;
    return n;
  }
}
