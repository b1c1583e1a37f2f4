/**
 * Who is who, and who is in the channel, from the discord.js objects the caller handed over (the voice channel).
 * Without a channel, tracks are named by user id ({@link ANONYMOUS}).
 */
import type { VoiceBasedChannel } from 'discord.js';
import type { MemberDirectory, MemberInfo } from './track-registry.ts';

/** Names from the channel's guild (caches first, the API when they do not know the user). */
export function channelDirectory(channel: VoiceBasedChannel): MemberDirectory {
  const guild = channel.guild;
  const client = channel.client;
  const info = (userId: string): MemberInfo => {
    const member = guild.members.cache.get(userId);
    const user = member?.user ?? client.users.cache.get(userId);
    return {
      username: user?.username ?? userId,
      displayName: member?.displayName ?? user?.displayName ?? user?.username ?? userId,
      bot: user?.bot ?? false,
    };
  };
  return {
    info,
    async fetch(userId) {
      if (!guild.members.cache.has(userId)) {
        await guild.members.fetch(userId).catch(() => client.users.fetch(userId).catch(() => undefined));
      }
      return info(userId);
    },
  };
}

/**
 * Humans (not bots, not the recorder itself) in the channel now: the guild's voice states for the channel,
 * together with the users the voice gateway announced (op 11 minus op 13), which can be ahead of the voice states.
 * Audience members of a stage channel count: they are people in the channel.
 */
export function humansInChannel(channel: VoiceBasedChannel, voiceClients: ReadonlySet<string>, directory: MemberDirectory): number {
  const ids = new Set<string>(voiceClients);
  for (const vs of channel.guild.voiceStates.cache.values()) if (vs.channelId === channel.id) ids.add(vs.id);
  const self = channel.client.user?.id;
  if (self) ids.delete(self);
  let n = 0;
  for (const id of ids) if (!directory.info(id).bot) n++;
  return n;
}
