/**
 * The recordings in progress, one per guild (Discord allows a bot one voice connection per guild), all on ONE
 * Recorder: its worker pool serves every guild, and stopping one recording disturbs no other.
 *
 * A session's life: reserve the guild (so two /record start at once cannot both join), write the crash record
 * (state.ts), join, record, wait for t=0, show the sign and say so in the channel's chat; at the end (however it
 * stops) finish the files, undo the sign, say what was recorded, and only then drop the crash record.
 */
import { EventEmitter } from 'node:events';
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { joinVoiceChannel, type VoiceConnection } from '@discordjs/voice';
import { PermissionFlagsBits, type Client, type Guild, type VoiceBasedChannel } from 'discord.js';
import { ChannelFullError, PermissionError, Redactor, UsageError } from '../errors.ts';
import type { Recorder } from '../recorder/recorder.ts';
import type { Recording } from '../recorder/recording.ts';
import { JOURNAL_FILE, MANIFEST_FILE, type AudioFormat, type Manifest } from '../sinks/capture-layout.ts';
import { checkOutputDir, expandOutTemplate } from '../commands/options.ts';
import { startedMessage, stoppedMessage, stopReasonText } from './messages.ts';
import { removeSign, showSign } from './sign.ts';
import type { BotState, SignRecord } from './state.ts';
import type { VoiceStatuses } from './voice-statuses.ts';

export interface StartRequest {
  guild: Guild;
  channel: VoiceBasedChannel;
  format: AudioFormat;
  mix: boolean;
  /** A user (id and display name), or autorecord. */
  startedBy: { id: string; name: string } | 'autorecord';
  /** Stop once nobody has been in the channel this long (autorecord). */
  stopWhenEmptyMs?: number;
}

export interface Session {
  readonly guildId: string;
  readonly channel: VoiceBasedChannel;
  readonly outDir: string;
  readonly startedBy: StartRequest['startedBy'];
  readonly recording: Recording;
  /** Resolves once the session is entirely over (files finished, sign undone, message sent). */
  readonly ended: Promise<Manifest | null>;
}

export interface SessionDeps {
  client: Client<true>;
  recorder: Recorder;
  state: BotState;
  /** `--out` template: {guild} {channel} {date} {time} {datetime}. */
  outTemplate: string;
  /** Strings never to appear in anything written or said (the token). */
  secrets: string[];
  readyTimeoutMs?: number;
  /** The voice channel statuses people set (put back after the recording). */
  statuses: VoiceStatuses;
}

export interface SessionEvents {
  started: [session: Session];
  ended: [session: Session, manifest: Manifest | null, reason: string, error?: unknown];
  warning: [message: string];
}

export class Sessions extends EventEmitter<SessionEvents> {
  readonly #deps: SessionDeps;
  /** Guilds being started or recorded (a reservation is taken before the first await). */
  readonly #byGuild = new Map<string, Session | 'starting'>();
  #closing = false;

  readonly #redactor = new Redactor();

  constructor(deps: SessionDeps) {
    super();
    this.#deps = deps;
    for (const secret of deps.secrets) this.#redactor.add(secret);
  }

  /** The guild's recording, when one is running (not while it is still being started). */
  get(guildId: string): Session | undefined {
    const s = this.#byGuild.get(guildId);
    return s === 'starting' ? undefined : s;
  }

  /** A recording is being started or running in this guild. */
  busy(guildId: string): boolean {
    return this.#byGuild.has(guildId);
  }

  all(): Session[] {
    return [...this.#byGuild.values()].filter((s): s is Session => s !== 'starting');
  }

  /**
   * Starts recording and resolves at t=0 with the session. Throws UsageError when the guild is busy, OutputError
   * when the directory cannot be written, and the recording's typed error when it cannot start (nothing is left
   * running then, and nothing shown).
   */
  async start(req: StartRequest): Promise<Session> {
    const guildId = req.guild.id;
    if (this.#closing) throw new UsageError('the recorder is shutting down');
    if (this.#byGuild.has(guildId)) throw new UsageError('this server is already being recorded (one recording per server)');
    this.#byGuild.set(guildId, 'starting');
    const d = this.#deps;
    let connection: VoiceConnection | undefined;
    let outDir: string | undefined;
    try {
      checkCanJoin(req.channel, d.client.user.id);
      outDir = freshOutputDir(expandOutTemplate(d.outTemplate, { guild: guildId, channel: req.channel.id, now: new Date() }));
      const entry = {
        guildId,
        channelId: req.channel.id,
        outDir,
        startedBy: req.startedBy === 'autorecord' ? 'autorecord' : req.startedBy.id,
        startedAt: new Date().toISOString(),
        sign: { kind: 'none' } as SignRecord,
      };
      // Before anything exists on disk or in Discord: a crash from here on is found at the next start.
      d.state.put(entry);
      connection = joinVoiceChannel({
        guildId,
        channelId: req.channel.id,
        adapterCreator: req.guild.voiceAdapterCreator,
        selfDeaf: false, // a deafened bot receives nothing
        selfMute: true,
        daveEncryption: true,
      });
      const conn = connection;
      const recording = d.recorder.record(conn, {
        outDir,
        format: req.format,
        mix: req.mix,
        channel: req.channel,
        libraryReceiver: 'detach', // the bot never reads the library's own receiver
        secrets: d.secrets,
        ...(req.stopWhenEmptyMs !== undefined ? { stopWhenEmptyMs: req.stopWhenEmptyMs } : {}),
        ...(d.readyTimeoutMs !== undefined ? { readyTimeoutMs: d.readyTimeoutMs } : {}),
      });
      recording.finished.catch(() => {}); // observed below (ended); before t=0 `ready` carries the error
      // Leave the channel as soon as the recording stops: finishing the files needs no connection.
      recording.once('stopping', () => destroy(conn));
      recording.on('warning', (m) => this.emit('warning', `${req.guild.name}: ${m}`));
      let stopReason = 'error';
      recording.once('stopped', (r) => (stopReason = r.reason));
      await recording.ready;

      // From t=0 on the recording runs whatever happens to the crash record: a write that fails is a warning.
      const remember = (s: SignRecord): void => {
        try {
          d.state.put({ ...entry, sign: s });
        } catch (e) {
          this.emit('warning', `${(e as Error).message}: a crash now would leave the sign up`);
        }
      };
      const sign = await showSign(d.client, req.guild, req.channel.id, d.statuses.get(req.channel.id), remember, (m) => this.emit('warning', m));
      const by = req.startedBy === 'autorecord' ? 'autorecord' : req.startedBy.name;
      await this.#say(req.channel, startedMessage(req.channel.id, by));
      const dir = outDir;
      const ended = recording.finished.then(
        (m) => this.#end(session, sign, m, stopReason, undefined, dir),
        (e: unknown) => this.#end(session, sign, null, stopReason, e, dir),
      );
      const session: Session = { guildId, channel: req.channel, outDir, startedBy: req.startedBy, recording, ended };
      this.#byGuild.set(guildId, session);
      this.emit('started', session);
      return session;
    } catch (e) {
      if (connection) destroy(connection);
      this.#byGuild.delete(guildId);
      try {
        d.state.remove(guildId);
      } catch {
        /* the original error is the one to report */
      }
      throw e;
    }
  }

  /** Stops the guild's recording and resolves once it is over (files finished). Null when nothing records there. */
  async stop(guildId: string): Promise<Manifest | null> {
    const s = this.get(guildId);
    if (!s) return null;
    await s.recording.stop().catch(() => null);
    return s.ended;
  }

  /** Stops every recording (files finished, signs undone) and refuses new ones. */
  async closeAll(): Promise<void> {
    this.#closing = true;
    await Promise.all(this.all().map((s) => this.stop(s.guildId)));
  }

  async #end(session: Session, sign: SignRecord, manifest: Manifest | null, reason: string, error: unknown, dir: string): Promise<Manifest | null> {
    const d = this.#deps;
    const guild = session.channel.guild;
    await removeSign(d.client, guild, sign, (m) => this.emit('warning', m));
    const why = this.#closing && reason === 'requested' ? stopReasonText('shutdown') : stopReasonText(reason);
    if (manifest) {
      // The mix in the chat when it fits the server's upload limit (a short call, or mp3/opus): people get the
      // recording from Discord itself, with no file server. The tracks stay where the message says.
      const mix = manifest.mix ? join(dir, manifest.mix) : null;
      const fits = mix !== null && existsSync(mix) && statSync(mix).size <= uploadLimitBytes(guild);
      await this.#say(session.channel, stoppedMessage(manifest, dir, why) + (fits ? ' The mix is attached.' : ''), fits ? mix : null);
    }
    else await this.#say(session.channel, `⚠️ The recording of ${session.channel.name} failed: ${this.#redactor.redact(String((error as Error)?.message ?? error))}`);
    try {
      d.state.remove(session.guildId);
    } catch (e) {
      this.emit('warning', (e as Error).message);
    }
    this.#byGuild.delete(session.guildId);
    this.emit('ended', session, manifest, reason, error);
    return manifest;
  }

  /** A message in the voice channel's chat; a refusal is a warning, never a failure of the recording. */
  async #say(channel: VoiceBasedChannel, text: string, file: string | null = null): Promise<void> {
    try {
      await channel.send({ content: text, allowedMentions: { parse: [] }, ...(file ? { files: [{ attachment: file, name: basename(file) }] } : {}) });
    } catch (e) {
      this.emit('warning', `cannot post in ${channel.name}${file ? ' with the mix attached' : ''}: ${String((e as Error)?.message ?? e)}`);
      // Without the attachment, the message itself still matters (where the files are).
      if (file) await this.#say(channel, text.replace(' The mix is attached.', ''));
    }
  }
}

/**
 * The template's directory, or, when that already holds a recording (two recordings of a channel within the same
 * second, or a template without {datetime}), the first free `<dir>-2`, `<dir>-3`...: a bot never overwrites.
 */
function freshOutputDir(dir: string): string {
  for (let n = 1; ; n++) {
    const candidate = n === 1 ? dir : `${dir}-${n}`;
    const holds = [MANIFEST_FILE, JOURNAL_FILE].some((f) => existsSync(join(candidate, f)));
    if (!holds) return checkOutputDir(candidate, false);
  }
}

/** What Discord would refuse silently (a join that never completes), refused at once with the reason. */
function checkCanJoin(channel: VoiceBasedChannel, botId: string): void {
  const perms = channel.permissionsFor(botId);
  if (perms && !perms.has(PermissionFlagsBits.ViewChannel)) throw new PermissionError(`the bot may not view ${channel.name} (needs View Channel)`);
  if (perms && !perms.has(PermissionFlagsBits.Connect)) throw new PermissionError(`the bot may not connect to ${channel.name} (needs Connect)`);
  if (channel.full && !perms?.has(PermissionFlagsBits.MoveMembers)) throw new ChannelFullError(`${channel.name} is full (${channel.userLimit} people)`);
}

/** The largest file a message may carry in this server: 10 MiB, 50 / 100 MiB with boost tier 2 / 3. */
export function uploadLimitBytes(guild: Guild): number {
  const tier = guild.premiumTier as number;
  return (tier >= 3 ? 100 : tier === 2 ? 50 : 10) * 1024 * 1024;
}

function destroy(connection: VoiceConnection): void {
  try {
    connection.destroy();
  } catch {
    /* already destroyed */
  }
}
