/**
 * `dvrec record`: validate everything, then hand over to the recording engine.
 *
 * Order matters and is the point of this file: (1) every option value, (2) the token, (3) the output
 * directory, (4) the encoder the format needs — all before the engine is even imported, so a mistake
 * costs one line and a documented exit code, never a half-joined channel. Then signals are wired to the
 * engine's AbortSignal and the reporter renders what the engine reports.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DvrecError, UsageError, CancelledError, registerSecret } from '../errors.ts';
import { ExitCode } from './exit-codes.ts';
import type { RecordingObserver, RecordOptions } from '../recording-api.ts';
import { JOURNAL_FILE, type AudioFormat, type Manifest } from '../sinks/capture-layout.ts';
import { FFMPEG_HINT, findFfmpeg } from '../sinks/formats/ffmpeg.ts';
import { errorLine } from '../ui/error-line.ts';
import { createReporter, type Reporter } from '../ui/reporter.ts';
import {
  checkOutputDir,
  expandOutTemplate,
  parseApiUrl,
  parseBitrate,
  parseDuration,
  parseFormat,
  parseSize,
  parseSnowflake,
  parseUserList,
  resolveToken,
} from './options.ts';
import { installStopSignals } from './signals.ts';

/** The default --out: one directory per recording, sorted by guild, channel and start time. */
export const DEFAULT_OUT = 'recordings/{guild}-{channel}-{datetime}';
/** --stop-when-empty without a value: a short grace so a member who drops and rejoins does not end it. */
export const DEFAULT_EMPTY_GRACE = '30s';

/** The flags exactly as commander collected them (strings; validated here). */
export interface RecordFlags {
  guild?: string;
  channel?: string;
  out?: string;
  format?: string;
  mono?: boolean;
  bitrate?: string;
  mix?: boolean;
  duration?: string;
  maxSize?: string;
  /** `true` when given without a value. */
  stopWhenEmpty?: string | boolean;
  users?: string[];
  ffmpeg?: string;
  force?: boolean;
  json?: boolean;
  tokenFile?: string;
  apiUrl?: string;
}

/** Everything in RecordOptions that comes from flags alone (no token, no filesystem). */
export type ValidatedFlags = Omit<RecordOptions, 'token' | 'outDir'> & { outTemplate: string };

/** Step 1: pure validation of the flag values. Throws DvrecError(USAGE). */
export function validateRecordFlags(flags: RecordFlags, env: NodeJS.ProcessEnv): ValidatedFlags {
  if (flags.guild === undefined) throw new UsageError('--guild is required (the server id)');
  if (flags.channel === undefined) throw new UsageError('--channel is required (the voice channel id)');
  const guildId = parseSnowflake(flags.guild, '--guild');
  const channelId = parseSnowflake(flags.channel, '--channel');
  const format: AudioFormat = parseFormat(flags.format ?? 'wav');
  const v: ValidatedFlags = {
    guildId,
    channelId,
    outTemplate: flags.out ?? DEFAULT_OUT,
    format,
    mono: flags.mono === true,
    bitrateKbps: parseBitrate(flags.bitrate, format),
    mix: flags.mix === true,
    force: flags.force === true,
  };
  if (flags.mono && format === 'opus') {
    throw new UsageError('--mono cannot be used with --format opus (Opus output keeps the packets as sent)');
  }
  const api = flags.apiUrl ?? env.DVREC_API_URL;
  if (api !== undefined && api !== '') v.apiUrl = parseApiUrl(api, flags.apiUrl !== undefined ? '--api-url' : 'DVREC_API_URL');
  if (flags.duration !== undefined) v.durationMs = parseDuration(flags.duration, '--duration');
  if (flags.maxSize !== undefined) v.maxSizeBytes = parseSize(flags.maxSize, '--max-size');
  if (flags.stopWhenEmpty !== undefined && flags.stopWhenEmpty !== false) {
    const after = flags.stopWhenEmpty === true ? DEFAULT_EMPTY_GRACE : flags.stopWhenEmpty;
    v.stopWhenEmptyMs = parseDuration(after, '--stop-when-empty');
  }
  if (flags.users !== undefined) v.users = parseUserList(flags.users);
  if (flags.ffmpeg !== undefined) {
    if (flags.ffmpeg.trim() === '') throw new UsageError('--ffmpeg: give the path of an ffmpeg executable');
    v.ffmpegPath = flags.ffmpeg;
  }
  return v;
}

/**
 * Steps 1–4: everything that can be checked without Discord. Returns the engine's options.
 * Exported for `demo`, which goes through the same gate.
 */
export async function prepareRecording(
  flags: RecordFlags,
  env: NodeJS.ProcessEnv,
  reporter: Reporter,
  now = new Date(),
): Promise<RecordOptions> {
  const v = validateRecordFlags(flags, env);
  const { token, warning } = resolveToken(env, flags.tokenFile);
  registerSecret(token);
  if (warning) reporter.warn(warning);
  const outDir = checkOutputDir(expandOutTemplate(v.outTemplate, { guild: v.guildId, channel: v.channelId, now }), v.force);
  // Every format has an embedded encoder (LAME and libFLAC in WebAssembly/JS, Ogg Opus by copy), so ffmpeg
  // is never required. An explicit --ffmpeg is checked now, whatever the format: the user asked for that
  // binary, and finding out at the end of a recording is too late (findFfmpeg throws ENCODER if it won't run).
  if (v.ffmpegPath !== undefined) await findFfmpeg(v.ffmpegPath, env);
  const { outTemplate: _t, ...rest } = v;
  return { ...rest, token, outDir };
}

/** Entry point for `dvrec record`. Returns the exit code. */
export async function recordCommand(flags: RecordFlags, setReporter: (r: Reporter) => void): Promise<number> {
  const reporter = createReporter({ json: flags.json === true });
  setReporter(reporter);
  // Take the token out of the environment before anything can start a child: the --ffmpeg check already runs
  // `ffmpeg -version`, and no child (ffmpeg, now or at the stop) may inherit the token. The copy is only read.
  const env = { ...process.env };
  delete process.env.DISCORD_TOKEN;
  const options = await prepareRecording(flags, env, reporter);
  reporter.note(`output: ${options.outDir}`);
  return runWithSignals(options, reporter);
}

/**
 * Runs the engine with stop signals wired to its AbortSignal; shared with `demo`.
 *
 * A first signal once recording has begun stops and finishes the files (exit 0). Before that (logging in,
 * joining) there is nothing to finish: the signal cancels, the engine removes the output directory it
 * created, and the exit status is INTERRUPTED (130), as for any command a user interrupts.
 *
 * When the recording stops because something broke (disk full, connection lost for good), the engine
 * still finishes the files and then throws: the summary (or the `done` event with the manifest) is shown
 * first, and the runner then prints the error and exits with its code.
 */
export async function runWithSignals(options: RecordOptions, reporter: Reporter): Promise<number> {
  let started = false;
  let finished: Manifest | undefined;
  let cancelledBy: string | undefined;
  const observer: RecordingObserver = {
    phase: (p) => {
      if (p.phase === 'recording') started = true;
      if (p.phase === 'done') finished = p.manifest;
      reporter.phase(p);
    },
    status: (s) => reporter.status(s),
    convertProgress: (p) => reporter.convertProgress(p),
    warn: (m) => reporter.warn(m),
  };
  const stops = installStopSignals({
    onFirst: (sig) => {
      if (started) reporter.stopping(sig, options.outDir);
      else cancelledBy = sig; // the engine gives up connecting at once; the runner reports it
    },
    onSecond: (sig) => {
      reporter.close();
      // Before t=0 there is no journal yet, and nothing to finish: do not send the user to convert.
      const left = existsSync(join(options.outDir, JOURNAL_FILE))
        ? `the capture is kept: run \`dvrec convert ${options.outDir}\` to finish it`
        : 'nothing had been recorded yet';
      process.stderr.write(errorLine(`second stop signal (${sig}): stopped at once; ${left}`, { json: reporter.mode === 'json' }));
    },
  });
  try {
    // Imported only now: nothing of discord.js, the codecs or the network is loaded before validation passed.
    const { runRecording } = await import('./run-recording.ts');
    const manifest = await runRecording(options, observer, stops.signal);
    reporter.done({ dir: options.outDir, manifest });
    return ExitCode.OK;
  } catch (e) {
    if (cancelledBy !== undefined && !started && e instanceof DvrecError && e.kind === 'cancelled') {
      const during = e.message.replace(/^interrupted /, '');
      throw new CancelledError(`cancelled by ${cancelledBy} ${during}; nothing was recorded`, { cause: e });
    }
    if (finished) reporter.done({ dir: options.outDir, manifest: finished });
    throw e;
  } finally {
    stops.dispose();
  }
}
