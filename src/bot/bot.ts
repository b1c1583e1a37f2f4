/**
 * `dvrec bot` as a library-style entry point: log in, finish what a previous run left unfinished, register the
 * slash commands, and serve them and autorecord until close(). One Recorder for every guild of this process.
 * Nothing here prints, exits or installs signal handlers: the command (src/commands/bot.ts) does, from `log`.
 */
import { Client, Events, GatewayIntentBits } from 'discord.js';
import { AuthError, Redactor } from '../errors.ts';
import { toDvrecError } from '../commands/join.ts';
import { Recorder } from '../recorder/recorder.ts';
import type { AudioFormat } from '../sinks/capture-layout.ts';
import { evaluateAutorecord, type AutorecordDeps } from './autorecord.ts';
import { registerCommands } from './commands.ts';
import { BotConfig } from './config.ts';
import { handleCommand } from './interactions.ts';
import { recoverUnfinished, type Recovered } from './recovery.ts';
import { Sessions } from './sessions.ts';
import { BotState } from './state.ts';
import { VoiceStatuses } from './voice-statuses.ts';

export interface BotOptions {
  token: string;
  /** REST base in discord.js form (a test server); undefined = Discord. */
  apiUrl?: string;
  /** Output directory template: {guild} {channel} {date} {time} {datetime}. */
  outTemplate: string;
  /** Register the commands in this guild only (instant) instead of globally. */
  devGuildId?: string;
  /** The configuration file (manager roles, autorecord rules; /autorecord writes it). */
  configFile: string;
  /** Where the crash record lives (active recordings and what they changed). */
  stateDir: string;
  /** More manager role ids (besides the config file's). */
  managerRoles?: string[];
  /** Autorecord: how long the channel must be empty before the recording stops. Default 30 s. */
  emptyGraceMs?: number;
  /** Autorecord's format. Default wav. */
  autorecordFormat?: AudioFormat;
  /** /record start's format when the command does not name one. Default wav. */
  defaultFormat?: AudioFormat;
  /** This process's shards (discord.js `shards` / `shardCount`); default: one session for every guild. */
  shards?: number[];
  shardCount?: number;
  /** Decoder threads of the shared Recorder. */
  workers?: number;
  /** Everything worth a log line (already redacted). */
  log?: (level: 'info' | 'warn', message: string) => void;
}

export interface DvrecBot {
  readonly client: Client<true>;
  readonly sessions: Sessions;
  /** What was finished at start-up (recordings a killed run left). */
  readonly recovered: Recovered[];
  /** Stops every recording (finishing files, undoing signs), then the worker pool, then logs out. */
  close(): Promise<void>;
}

export async function startBot(o: BotOptions): Promise<DvrecBot> {
  const redactor = new Redactor();
  redactor.add(o.token);
  const log = (level: 'info' | 'warn', m: string) => o.log?.(level, redactor.redact(m));
  const warn = (m: string) => log('warn', m);
  const config = new BotConfig(o.configFile, o.managerRoles ?? []);
  const state = new BotState(o.stateDir);

  const client = new Client({
    intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildVoiceStates],
    ...(o.apiUrl ? { rest: { api: o.apiUrl } } : {}),
    ...(o.shards ? { shards: o.shards, ...(o.shardCount !== undefined ? { shardCount: o.shardCount } : {}) } : {}),
  });
  client.on(Events.Error, (e) => warn(`discord.js: ${e.message}`));
  const statuses = new VoiceStatuses(client); // before login: GUILD_CREATE carries the statuses
  try {
    const ready = new Promise<void>((resolve, reject) => {
      client.once(Events.ClientReady, () => resolve());
      client.once(Events.Invalidated, () => reject(new AuthError('Discord invalidated the session (bad token?)')));
    });
    await client.login(o.token);
    await ready;
  } catch (e) {
    await client.destroy().catch(() => {});
    throw toDvrecError(e);
  }
  const c = client as Client<true>;
  log('info', `logged in as ${c.user.tag}, ${c.guilds.cache.size} server${c.guilds.cache.size === 1 ? '' : 's'}`);

  const recovered = await recoverUnfinished(c, state, warn);
  for (const r of recovered) log('info', r.manifest ? `finished the recording a previous run left in ${r.entry.outDir}` : `cleaned up after a recording that had not started (${r.entry.outDir})`);

  const recorder = new Recorder(o.workers !== undefined ? { workers: o.workers } : {});
  const sessions = new Sessions({ client: c, recorder, state, outTemplate: o.outTemplate, secrets: [o.token], statuses });
  sessions.on('warning', warn);
  sessions.on('started', (s) => log('info', `recording ${s.channel.guild.name} / ${s.channel.name} into ${s.outDir}`));
  sessions.on('ended', (s, m, reason) => log('info', `stopped ${s.channel.guild.name} / ${s.channel.name} (${reason}): ${m ? `${Math.round(m.durationMs / 1000)} s, ${m.tracks.length} tracks` : 'nothing recorded'}`));

  const auto: AutorecordDeps = {
    client: c, config, sessions, emptyGraceMs: o.emptyGraceMs ?? 30_000, format: o.autorecordFormat ?? 'wav', warn, heldUntilEmpty: new Set(),
  };
  client.on(Events.VoiceStateUpdate, (_old, now) => evaluateAutorecord(now.guild, auto));
  client.on(Events.InteractionCreate, (i) => {
    if (!i.isChatInputCommand()) return;
    void handleCommand(i, {
      sessions,
      config,
      warn,
      redact: (t) => redactor.redact(t),
      defaultFormat: o.defaultFormat ?? 'wav',
      stoppedByHand: (guildId) => {
        if (config.autorecord(guildId)) auto.heldUntilEmpty.add(guildId);
      },
      autorecordChanged: (guildId) => {
        auto.heldUntilEmpty.delete(guildId); // a rule just set applies at once
        const g = c.guilds.cache.get(guildId);
        if (g) evaluateAutorecord(g, auto);
      },
    });
  });
  await registerCommands(c, o.devGuildId);
  log('info', o.devGuildId ? `commands registered in server ${o.devGuildId}` : 'commands registered globally');
  for (const g of c.guilds.cache.values()) evaluateAutorecord(g, auto);

  let closing: Promise<void> | undefined;
  return {
    client: c,
    sessions,
    recovered,
    close: () =>
      (closing ??= (async () => {
        await sessions.closeAll();
        await recorder.close();
        await client.destroy();
      })()),
  };
}
