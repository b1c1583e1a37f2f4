/**
 * The slash commands' behaviour. Replies only the caller needs are ephemeral (refusals, confirmations, status);
 * what everyone in the channel must know (a recording started or stopped) goes to the channel's chat (sessions.ts).
 * /record start and stop are deferred first: joining and finishing files can take longer than Discord's 3 s.
 */
import { MessageFlags, type ChatInputCommandInteraction, type VoiceBasedChannel } from 'discord.js';
import { DvrecError } from '../errors.ts';
import type { AudioFormat } from '../sinks/capture-layout.ts';
import type { BotConfig } from './config.ts';
import { FORMAT_CHOICES } from './commands.ts';
import { channelMention, formatLength } from './messages.ts';
import { mayManage } from './permissions.ts';
import type { Sessions } from './sessions.ts';

export interface CommandContext {
  sessions: Sessions;
  config: BotConfig;
  /** Called after /autorecord changed a guild's rule (to act on it at once). */
  autorecordChanged(guildId: string): void;
  /** /record stop: autorecord must not start again in this guild before its channel has emptied. */
  stoppedByHand(guildId: string): void;
  /** The format when /record start names none. */
  defaultFormat: AudioFormat;
  warn(message: string): void;
  /** Removes the token (and any other secret) from text that goes to Discord. */
  redact(text: string): string;
}

const REFUSAL = 'You may not do that here: it needs the Manage Server permission or a recording manager role.';
const ephemeral = (content: string) => ({ content, flags: MessageFlags.Ephemeral as const, allowedMentions: { parse: [] } });
/** An edit of a (deferred, ephemeral) reply: it stays ephemeral. */
const edit = (content: string) => ({ content, allowedMentions: { parse: [] } });

export async function handleCommand(i: ChatInputCommandInteraction, ctx: CommandContext): Promise<void> {
  if (!i.inCachedGuild()) return void (await i.reply(ephemeral('Use this in a server.')));
  const sub = i.options.getSubcommand();
  const key = `${i.commandName} ${sub}`;
  try {
    switch (key) {
      case 'record start':
        return await start(i, ctx);
      case 'record stop':
        return await stop(i, ctx);
      case 'record status':
        return await status(i, ctx);
      case 'record note':
        return await note(i, ctx);
      case 'autorecord on':
      case 'autorecord off':
        return await autorecord(i, ctx, sub === 'on');
      default:
        return void (await i.reply(ephemeral(`Unknown command ${key}.`)));
    }
  } catch (e) {
    const text = e instanceof DvrecError ? e.message : `something went wrong (${String((e as Error)?.message ?? e)})`;
    if (!(e instanceof DvrecError)) ctx.warn(`/${key}: ${text}`);
    const content = `❌ ${ctx.redact(text)}`;
    await (i.deferred || i.replied ? i.editReply(edit(content)) : i.reply(ephemeral(content))).catch(() => {});
  }
}

/** The channel option, else the caller's current voice channel. */
function targetChannel(i: ChatInputCommandInteraction<'cached'>): VoiceBasedChannel | null {
  const given = i.options.getChannel('channel');
  if (given) {
    const ch = i.guild.channels.cache.get(given.id);
    return ch?.isVoiceBased() ? ch : null;
  }
  return i.guild.voiceStates.cache.get(i.user.id)?.channel ?? null;
}

async function start(i: ChatInputCommandInteraction<'cached'>, ctx: CommandContext): Promise<void> {
  if (!mayManage(i, ctx.config.managerRoles)) return void (await i.reply(ephemeral(REFUSAL)));
  const channel = targetChannel(i);
  if (!channel) return void (await i.reply(ephemeral('Join a voice channel first, or name one: /record start channel:#voice')));
  const busy = ctx.sessions.get(i.guildId);
  if (busy || ctx.sessions.busy(i.guildId)) {
    return void (await i.reply(ephemeral(`Already recording ${busy ? channelMention(busy.channel.id) : 'here'} (one recording per server).`)));
  }
  const format = (i.options.getString('format') ?? ctx.defaultFormat) as AudioFormat;
  if (!(FORMAT_CHOICES as readonly string[]).includes(format)) return void (await i.reply(ephemeral(`Unknown format ${format}.`)));
  await i.deferReply({ flags: MessageFlags.Ephemeral });
  const session = await ctx.sessions.start({
    guild: i.guild,
    channel,
    format,
    mix: i.options.getBoolean('mix') ?? false,
    startedBy: { id: i.user.id, name: i.member.displayName },
  });
  await i.editReply(edit(`🔴 Recording ${channelMention(channel.id)} (${format}). Stop with /record stop. Files: ${session.outDir}`));
}

async function stop(i: ChatInputCommandInteraction<'cached'>, ctx: CommandContext): Promise<void> {
  if (!mayManage(i, ctx.config.managerRoles)) return void (await i.reply(ephemeral(REFUSAL)));
  if (!ctx.sessions.get(i.guildId)) return void (await i.reply(ephemeral('Nothing is being recorded here.')));
  await i.deferReply({ flags: MessageFlags.Ephemeral });
  ctx.stoppedByHand(i.guildId);
  const m = await ctx.sessions.stop(i.guildId);
  await i.editReply(edit(m ? `⏹️ Stopped: ${formatLength(m.durationMs)}, ${m.tracks.length} track${m.tracks.length === 1 ? '' : 's'}.` : '⏹️ Stopped (nothing was recorded).'));
}

async function status(i: ChatInputCommandInteraction<'cached'>, ctx: CommandContext): Promise<void> {
  const s = ctx.sessions.get(i.guildId);
  const rule = ctx.config.autorecord(i.guildId);
  const auto = rule ? ` Autorecord: on for ${channelMention(rule.channelId)} (${rule.minMembers}+ people${rule.roleId ? ` with <@&${rule.roleId}>` : ''}).` : '';
  if (!s) return void (await i.reply(ephemeral(`Not recording.${auto}`)));
  const tracks = s.recording.tracks.length;
  await i.reply(ephemeral(`🔴 Recording ${channelMention(s.channel.id)} for ${formatLength(s.recording.now())}, ${tracks} speaker${tracks === 1 ? '' : 's'} so far.${auto}`));
}

async function note(i: ChatInputCommandInteraction<'cached'>, ctx: CommandContext): Promise<void> {
  const s = ctx.sessions.get(i.guildId);
  if (!s) return void (await i.reply(ephemeral('Nothing is being recorded here.')));
  // Placed at once, before any reply travels: the note marks when it was sent, not when Discord was answered.
  const n = s.recording.note(i.options.getString('text', true), { userId: i.user.id, name: i.member.displayName });
  await i.reply(ephemeral(`📝 Noted at ${formatLength(n.atMs)}.`));
}

async function autorecord(i: ChatInputCommandInteraction<'cached'>, ctx: CommandContext, on: boolean): Promise<void> {
  if (!mayManage(i, ctx.config.managerRoles)) return void (await i.reply(ephemeral(REFUSAL)));
  if (!on) {
    ctx.config.setAutorecord(i.guildId, null);
    return void (await i.reply(ephemeral('Autorecord is off. (A recording in progress goes on until /record stop or the channel empties.)')));
  }
  const channel = targetChannel(i);
  if (!channel) return void (await i.reply(ephemeral('Join the voice channel first, or name one: /autorecord on channel:#voice')));
  const minMembers = i.options.getInteger('min-members') ?? 2;
  const role = i.options.getRole('role');
  ctx.config.setAutorecord(i.guildId, { channelId: channel.id, minMembers, ...(role ? { roleId: role.id } : {}) });
  const who = role ? ` with the role ${role.name}` : '';
  await i.reply(ephemeral(`Autorecord is on: ${channelMention(channel.id)} is recorded when ${minMembers} or more people${who} are in it, until it empties.`));
  ctx.autorecordChanged(i.guildId);
}
