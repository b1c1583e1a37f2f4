/**
 * The command line's own Discord session: log in with discord.js, check the guild and channel, and join the voice
 * channel (not deafened). What a bot author does in their own bot; the recording itself is the library's
 * (`Recorder.record(connection)`).
 */
import { Client, Events, GatewayIntentBits, PermissionFlagsBits, type Guild, type VoiceBasedChannel } from 'discord.js';
import { joinVoiceChannel, type VoiceConnection } from '@discordjs/voice';
import {
  AuthError, CancelledError, ChannelFullError, ConnectionError, DvrecError, NotFoundError, PermissionError, redact,
} from '../errors.ts';

export interface JoinOptions {
  token: string;
  /** REST base in discord.js `rest.api` form; undefined = Discord. */
  apiUrl?: string;
  guildId: string;
  channelId: string;
  /** How long logging in may take. Default 30 s. */
  timeoutMs?: number;
  /** Aborts the login (rejects with CancelledError). */
  signal?: AbortSignal;
}

/** A logged-in client with a voice connection being established (not yet Ready). */
export interface Joined {
  client: Client<true>;
  guild: Guild;
  channel: VoiceBasedChannel;
  connection: VoiceConnection;
  /** Leaves the channel and logs out. Idempotent. */
  leave(): void;
}

/**
 * Logs in, validates guild and channel, and starts joining. Returns as soon as `joinVoiceChannel` was called,
 * synchronously after it, so the caller can tap the connection before its first voice event.
 * Throws typed errors on every expected failure; cleans up after itself.
 */
export async function loginAndJoin(opts: JoinOptions): Promise<Joined> {
  const client = new Client({
    intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildVoiceStates],
    ...(opts.apiUrl ? { rest: { api: opts.apiUrl } } : {}),
  });
  client.on(Events.Error, () => {}); // surfaced through login/ready failures; never an uncaught 'error'
  try {
    await withTimeout(login(client, opts.token), opts.timeoutMs ?? 30_000, opts.signal, 'logging in to Discord');
    const { guild, channel } = await resolveChannel(client as Client<true>, opts.guildId, opts.channelId);
    const connection = joinVoiceChannel({
      guildId: guild.id,
      channelId: channel.id,
      adapterCreator: guild.voiceAdapterCreator,
      selfDeaf: false, // a deafened bot receives no audio
      selfMute: true,
      daveEncryption: true,
    });
    let left = false;
    return {
      client: client as Client<true>,
      guild,
      channel,
      connection,
      leave: () => {
        if (left) return;
        left = true;
        try {
          connection.destroy();
        } catch {
          /* already gone */
        }
        void client.destroy().catch(() => {});
      },
    };
  } catch (e) {
    await client.destroy().catch(() => {});
    throw toDvrecError(e);
  }
}

async function login(client: Client, token: string): Promise<void> {
  const ready = new Promise<void>((resolve, reject) => {
    client.once(Events.ClientReady, () => resolve());
    client.once(Events.Invalidated, () => reject(new AuthError('Discord invalidated the session (bad token?)')));
  });
  await client.login(token);
  await ready;
}

async function resolveChannel(client: Client<true>, guildId: string, channelId: string): Promise<{ guild: Guild; channel: VoiceBasedChannel }> {
  const guild = client.guilds.cache.get(guildId);
  if (!guild || !guild.available) {
    throw new NotFoundError(`guild ${guildId} not found: is the bot a member of that server?`);
  }
  let channel = guild.channels.cache.get(channelId) ?? null;
  if (!channel) {
    try {
      channel = await guild.channels.fetch(channelId);
    } catch (e) {
      const status = (e as { status?: number }).status;
      if (status === 403) throw new PermissionError(`the bot may not view channel ${channelId} (needs View Channel)`);
      if (status !== 404 && status !== undefined) throw toDvrecError(e);
      channel = null;
    }
  }
  if (!channel) throw new NotFoundError(`channel ${channelId} not found in guild ${guild.name}`);
  if (!channel.isVoiceBased()) throw new NotFoundError(`channel ${channel.name} (${channelId}) is not a voice channel`);
  const perms = channel.permissionsFor(client.user.id);
  if (perms) {
    if (!perms.has(PermissionFlagsBits.ViewChannel)) {
      throw new PermissionError(`the bot may not view voice channel ${channel.name} (needs View Channel)`);
    }
    if (!perms.has(PermissionFlagsBits.Connect)) {
      throw new PermissionError(`the bot may not connect to voice channel ${channel.name} (needs Connect)`);
    }
  }
  if (channel.full && !perms?.has(PermissionFlagsBits.MoveMembers)) {
    throw new ChannelFullError(`voice channel ${channel.name} is full (${channel.userLimit} users)`);
  }
  return { guild, channel };
}

/** Maps anything thrown while logging in or joining to a typed error (token redacted). */
export function toDvrecError(e: unknown): DvrecError {
  if (e instanceof DvrecError) return e;
  const err = e as { code?: unknown; status?: number; message?: string; name?: string };
  const message = redact(String(err?.message ?? e));
  if (err?.code === 'TokenInvalid' || err?.status === 401 || /4004|authentication failed/i.test(message)) {
    return new AuthError('Discord rejected the bot token (check DISCORD_TOKEN)');
  }
  if (err?.status === 403) return new PermissionError(`missing permissions: ${message}`);
  if (err?.status === 404) return new NotFoundError(`not found: ${message}`);
  if (typeof err?.code === 'string' && /^E[A-Z]+/.test(err.code)) {
    return new ConnectionError(`cannot reach Discord (${err.code}): ${message}`);
  }
  return new ConnectionError(`cannot connect to Discord: ${message}`);
}

/** Races a promise against a timeout and an abort signal. */
async function withTimeout<T>(p: Promise<T>, ms: number, signal: AbortSignal | undefined, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ConnectionError(`timed out after ${Math.round(ms / 1000)} s ${what}`)), ms);
        if (signal) {
          onAbort = () => reject(new CancelledError(`interrupted while ${what}`));
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
