/**
 * What a bot author passes to `record()`, the same choices as the command line, checked once: a mistake is a
 * {@link UsageError} before anything is created or joined.
 */
import type { VoiceBasedChannel } from 'discord.js';
import { UsageError, Redactor } from '../errors.ts';
import type { AudioFormat } from '../sinks/capture-layout.ts';
import { DEFAULT_MP3_BITRATE_KBPS, MP3_BITRATES } from '../sinks/formats/mp3-params.ts';
import type { Sink } from './sinks.ts';

export const FORMATS: readonly AudioFormat[] = ['wav', 'mp3', 'flac', 'opus'];

/** Options of `record()` / `Recorder.record()`. Only `outDir` is required. */
export interface RecordingOptions {
  /** Directory for the tracks, mix and manifest; created (0700) if missing. */
  outDir: string;
  /** Default 'wav'. */
  format?: AudioFormat;
  /** Mono tracks (not with 'opus'). Default false. */
  mono?: boolean;
  /** MP3 bitrate in kbps (MP3 only). Default 128. */
  bitrateKbps?: number;
  /** Also write `mix.<ext>`: everyone mixed. Default false. */
  mix?: boolean;
  /** ffmpeg to use when finishing (FLAC, MP3 not encoded while recording); `false`: embedded encoders only. */
  ffmpegPath?: string | false;
  /** Record only these users (ids); everyone else is ignored entirely. */
  users?: Iterable<string>;
  /** Stop after this long (ms, from t=0). */
  durationMs?: number;
  /** Stop once the captures hold this many bytes. */
  maxSizeBytes?: number;
  /** Stop once no human other than the bot has been in the channel for this long (ms). Needs `channel`. */
  stopWhenEmptyMs?: number;
  /**
   * The discord.js voice channel being recorded: names for the tracks (display name, user name), and who is in it
   * (for `stopWhenEmptyMs`, and to tell bots from people). Without it, tracks are named by user id.
   */
  channel?: VoiceBasedChannel;
  /** Overwrite finished files (tracks, mix, manifest) already in `outDir`. Default false. */
  force?: boolean;
  /** Custom sinks: each receives every recorded user's audio as it goes into their track (see Sink). */
  sinks?: readonly Sink[];
  /** Stops the recording (like stop()) when aborted; before t=0 it cancels (nothing recorded, CancelledError). */
  signal?: AbortSignal;
  /** How long the connection may take to become ready (t=0) before the recording fails. Default 30 s. */
  readyTimeoutMs?: number;
  /** How long a lost voice connection may take to come back before the recording stops. Default 60 s. */
  reconnectTimeoutMs?: number;
  /**
   * @discordjs/voice's own receive handler: 'guard' (default) keeps it working for the host bot's
   * `receiver.subscribe()` and speaking events, contained so hostile datagrams cannot crash the process;
   * 'detach' takes it off the socket (for a process that never uses the library's receiver: less work per packet).
   */
  libraryReceiver?: 'guard' | 'detach';
  /** Secrets (e.g. the bot token) that must never appear in anything the recording writes or reports. */
  secrets?: readonly string[];
}

/** Options with defaults applied and values checked. */
export interface ResolvedOptions {
  outDir: string;
  format: AudioFormat;
  mono: boolean;
  bitrateKbps: number;
  mix: boolean;
  ffmpegPath: string | false | undefined;
  users: ReadonlySet<string> | undefined;
  durationMs: number | undefined;
  maxSizeBytes: number | undefined;
  stopWhenEmptyMs: number | undefined;
  channel: VoiceBasedChannel | undefined;
  force: boolean;
  sinks: readonly Sink[];
  signal: AbortSignal | undefined;
  readyTimeoutMs: number;
  reconnectTimeoutMs: number;
  libraryReceiver: 'guard' | 'detach';
  redactor: Redactor;
}

const SNOWFLAKE = /^\d{17,20}$/;

/** Applies defaults and checks every value; throws UsageError with a one-line message. */
export function resolveOptions(o: RecordingOptions): ResolvedOptions {
  if (typeof o?.outDir !== 'string' || o.outDir.trim() === '') throw new UsageError('outDir: give the directory to record into');
  const format = o.format ?? 'wav';
  if (!FORMATS.includes(format)) throw new UsageError(`format: '${String(format)}' is not one of ${FORMATS.join(', ')}`);
  const mono = o.mono === true;
  if (mono && format === 'opus') throw new UsageError('mono cannot be used with format opus (Opus output keeps the packets as sent)');
  const bitrateKbps = o.bitrateKbps ?? DEFAULT_MP3_BITRATE_KBPS;
  if (o.bitrateKbps !== undefined && format !== 'mp3') throw new UsageError('bitrateKbps is for format mp3 only');
  if (!MP3_BITRATES.includes(bitrateKbps)) throw new UsageError(`bitrateKbps: ${bitrateKbps} is not an MP3 bitrate (${MP3_BITRATES.join(', ')})`);
  const positive = (name: string, v: number | undefined, min = 1): number | undefined => {
    if (v === undefined) return undefined;
    if (!Number.isFinite(v) || v < min) throw new UsageError(`${name}: ${v} must be a number ≥ ${min}`);
    return v;
  };
  let users: Set<string> | undefined;
  if (o.users !== undefined) {
    users = new Set<string>();
    for (const u of o.users) {
      if (typeof u !== 'string' || !SNOWFLAKE.test(u)) throw new UsageError(`users: '${String(u)}' is not a Discord user id`);
      users.add(u);
    }
    if (users.size === 0) throw new UsageError('users: give at least one user id (or leave it out to record everyone)');
  }
  if (o.stopWhenEmptyMs !== undefined && o.channel === undefined) {
    throw new UsageError('stopWhenEmptyMs needs `channel` (the discord.js voice channel), to know who is in it');
  }
  const redactor = new Redactor();
  for (const s of o.secrets ?? []) redactor.add(s);
  return {
    outDir: o.outDir,
    format,
    mono,
    bitrateKbps,
    mix: o.mix === true,
    ffmpegPath: o.ffmpegPath,
    users,
    durationMs: positive('durationMs', o.durationMs),
    maxSizeBytes: positive('maxSizeBytes', o.maxSizeBytes),
    stopWhenEmptyMs: positive('stopWhenEmptyMs', o.stopWhenEmptyMs, 0),
    channel: o.channel,
    force: o.force === true,
    sinks: [...(o.sinks ?? [])],
    signal: o.signal,
    readyTimeoutMs: positive('readyTimeoutMs', o.readyTimeoutMs) ?? 30_000,
    reconnectTimeoutMs: positive('reconnectTimeoutMs', o.reconnectTimeoutMs) ?? 60_000,
    libraryReceiver: o.libraryReceiver ?? 'guard',
    redactor,
  };
}
