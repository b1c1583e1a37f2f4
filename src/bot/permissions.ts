/**
 * Who may start and stop recordings, and turn autorecord on or off: members with Manage Server (Administrator
 * implies it), or members with one of the configured manager roles. Decided from the interaction's own member
 * payload (Discord computes those permissions for the channel it was typed in), never from a cache.
 */
import { PermissionFlagsBits, type ChatInputCommandInteraction, type GuildMember } from 'discord.js';

export function mayManage(interaction: ChatInputCommandInteraction, managerRoleIds: ReadonlySet<string>): boolean {
  if (interaction.memberPermissions?.has(PermissionFlagsBits.ManageGuild)) return true;
  const member = interaction.member;
  if (!member || managerRoleIds.size === 0) return false;
  // A cached GuildMember has a role manager; an uncached API member has the role id list.
  const roles: readonly string[] = Array.isArray(member.roles) ? member.roles : [...(member as GuildMember).roles.cache.keys()];
  return roles.some((r) => managerRoleIds.has(r));
}
