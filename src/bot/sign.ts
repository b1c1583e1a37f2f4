/**
 * Everyone in a voice channel can see that it is being recorded: its voice channel status reads "🔴 Recording"
 * (PUT /channels/{id}/voice-status, which needs Set Voice Channel Status), or, where the bot may not set it, the
 * bot's nickname in that guild gets a "🔴 " prefix. Whatever was changed is undone afterwards (the status people had
 * set, or the nickname, put back); `record` is told
 * what is about to change BEFORE it changes (state.ts persists it), so a crash in between still leaves a record
 * of it to undo.
 */
import type { Client, Guild } from 'discord.js';
import type { SignRecord } from './state.ts';

export const RECORDING_STATUS = '🔴 Recording';
export const NICK_PREFIX = '🔴 ';
/** Discord's nickname limit. */
const NICK_MAX = 32;

const setVoiceStatus = (client: Client, channelId: string, status: string): Promise<unknown> =>
  client.rest.put(`/channels/${channelId}/voice-status`, { body: { status } });

/** Shows the sign for a recording of `channelId`; returns what it changed. Never throws (a sign is not worth a recording). */
export async function showSign(
  client: Client<true>,
  guild: Guild,
  channelId: string,
  previousStatus: string | null,
  record: (sign: SignRecord) => void,
  warn: (message: string) => void,
): Promise<SignRecord> {
  // What people had set is put back afterwards (unless it was ours, left by a crash whose record was lost).
  const previous = previousStatus === RECORDING_STATUS ? null : previousStatus;
  const status: SignRecord = { kind: 'status', channelId, previous };
  record(status);
  try {
    await setVoiceStatus(client, channelId, RECORDING_STATUS);
    return status;
  } catch (e) {
    warn(`cannot set the voice channel status in ${guild.name} (${describe(e)}); using the nickname instead`);
  }
  try {
    const me = guild.members.me ?? (await guild.members.fetchMe());
    const previousNick = me.nickname;
    const base = previousNick ?? client.user.displayName ?? client.user.username;
    const nick: SignRecord = { kind: 'nick', previousNick };
    record(nick);
    if (!base.startsWith(NICK_PREFIX)) await guild.members.editMe({ nick: (NICK_PREFIX + base).slice(0, NICK_MAX) });
    return nick;
  } catch (e) {
    warn(`cannot change the nickname in ${guild.name} either (${describe(e)}): nothing shows the recording but the start message`);
    const none: SignRecord = { kind: 'none' };
    record(none);
    return none;
  }
}

/** Undoes a sign. Returns false (after a warning) when Discord refused. */
export async function removeSign(client: Client<true>, guild: Guild, sign: SignRecord, warn: (message: string) => void): Promise<boolean> {
  try {
    if (sign.kind === 'status') await setVoiceStatus(client, sign.channelId, sign.previous ?? '');
    else if (sign.kind === 'nick') await guild.members.editMe({ nick: sign.previousNick });
    return true;
  } catch (e) {
    warn(`cannot undo the recording sign in ${guild.name} (${describe(e)})`);
    return false;
  }
}

function describe(e: unknown): string {
  const err = e as { status?: number; message?: string };
  return err?.status ? `${err.status} ${err.message ?? ''}`.trim() : String(err?.message ?? e);
}
