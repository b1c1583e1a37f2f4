/**
 * Autorecord: a guild's configured voice channel is recorded once `minMembers` people (not bots; with the rule's
 * role, when it names one) are in it, and
 * the recording stops once it has been empty for the grace period (the recording's own stop-when-empty, judged on
 * its heartbeat). Judged on every voice state change in the guild and when a rule is set or the bot starts.
 */
import type { Client, Guild } from 'discord.js';
import type { BotConfig } from './config.ts';
import type { Sessions } from './sessions.ts';

export interface AutorecordDeps {
  client: Client<true>;
  config: BotConfig;
  sessions: Sessions;
  /** How long the channel must be empty before the recording stops. */
  emptyGraceMs: number;
  format: 'wav' | 'mp3' | 'flac' | 'opus';
  /**
   * Guilds where someone stopped a recording by hand (/record stop) while people were still in the channel: autorecord
   * waits there until the channel has been empty once, or the very next voice state change would start it again.
   */
  heldUntilEmpty: Set<string>;
  /** A log line (the caller redacts it). */
  warn(message: string): void;
}

/** Starts the guild's autorecording when its rule says so. Never throws. */
export function evaluateAutorecord(guild: Guild, d: AutorecordDeps): void {
  const rule = d.config.autorecord(guild.id);
  if (!rule || d.sessions.busy(guild.id)) return;
  const channel = guild.channels.cache.get(rule.channelId);
  if (!channel?.isVoiceBased()) return;
  if (d.heldUntilEmpty.has(guild.id)) {
    if (channel.members.some((m) => !m.user.bot)) return;
    d.heldUntilEmpty.delete(guild.id);
  }
  // The people who count: not bots, and with the rule's role when it names one.
  const people = channel.members.filter((m) => !m.user.bot && (rule.roleId === undefined || m.roles.cache.has(rule.roleId))).size;
  if (people < rule.minMembers) return;
  d.sessions
    .start({ guild, channel, format: d.format, mix: false, startedBy: 'autorecord', stopWhenEmptyMs: d.emptyGraceMs })
    .catch((e: unknown) => d.warn(`autorecord in ${guild.name}: ${String((e as Error)?.message ?? e)}`));
}
