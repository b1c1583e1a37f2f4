/**
 * The bot's slash commands, as registered with Discord (plain API JSON: no builder dependency), and their
 * registration: per guild with `devGuildId` (instant, for testing), else global (what every guild sees).
 *
 * No `default_member_permissions` on purpose: who may start and stop is decided by the bot (Manage Server or a
 * configured role, see permissions.ts), and a member without it must get a clear refusal rather than a command
 * Discord hides; /record status and /record note are for everyone.
 */
import {
  ApplicationCommandOptionType, ChannelType, type APIApplicationCommandChannelOption, type Client, type RESTPostAPIChatInputApplicationCommandsJSONBody,
} from 'discord.js';

/** Output formats offered by /record start (the recorder's formats). */
export const FORMAT_CHOICES = ['wav', 'mp3', 'flac', 'opus'] as const;

const voiceChannel = (description: string): APIApplicationCommandChannelOption => ({
  type: ApplicationCommandOptionType.Channel,
  name: 'channel',
  description,
  channel_types: [ChannelType.GuildVoice, ChannelType.GuildStageVoice],
});

export const COMMANDS: RESTPostAPIChatInputApplicationCommandsJSONBody[] = [
  {
    name: 'record',
    description: 'Record a voice channel: one track per speaker',
    dm_permission: false,
    options: [
      {
        type: ApplicationCommandOptionType.Subcommand,
        name: 'start',
        description: 'Start recording (default: the voice channel you are in)',
        options: [
          voiceChannel('The voice channel to record'),
          {
            type: ApplicationCommandOptionType.String,
            name: 'format',
            description: 'File format (default wav)',
            choices: FORMAT_CHOICES.map((f) => ({ name: f, value: f })),
          },
          { type: ApplicationCommandOptionType.Boolean, name: 'mix', description: 'Also write one track with everyone mixed' },
        ],
      },
      { type: ApplicationCommandOptionType.Subcommand, name: 'stop', description: 'Stop recording and finish the files' },
      { type: ApplicationCommandOptionType.Subcommand, name: 'status', description: 'Is this server being recorded?' },
      {
        type: ApplicationCommandOptionType.Subcommand,
        name: 'note',
        description: 'Mark this moment in the recording',
        options: [{ type: ApplicationCommandOptionType.String, name: 'text', description: 'What happened', required: true, max_length: 500 }],
      },
    ],
  },
  {
    name: 'autorecord',
    description: 'Record a voice channel automatically when people are in it',
    dm_permission: false,
    options: [
      {
        type: ApplicationCommandOptionType.Subcommand,
        name: 'on',
        description: 'Start recording when enough people are in the channel; stop when it empties',
        options: [
          voiceChannel('The voice channel (default: the one you are in)'),
          { type: ApplicationCommandOptionType.Integer, name: 'min-members', description: 'People needed to start (default 2)', min_value: 1, max_value: 99 },
          { type: ApplicationCommandOptionType.Role, name: 'role', description: 'Count only people with this role' },
        ],
      },
      { type: ApplicationCommandOptionType.Subcommand, name: 'off', description: 'Stop recording automatically' },
    ],
  },
];

/** Registers the commands: in one guild (instant) or globally. */
export async function registerCommands(client: Client<true>, devGuildId?: string): Promise<void> {
  if (devGuildId) await client.application.commands.set(COMMANDS, devGuildId);
  else await client.application.commands.set(COMMANDS);
}
