/**
 * Validation of every command-line value, done before anything connects: a typo must cost the user one
 * line of output and exit code 2 (USAGE), not a half-joined voice channel. Each parser takes the raw
 * string commander collected and either returns a typed value or throws a {@link DvrecError} whose
 * message names the option, echoes the bad value and shows what a good one looks like.
 *
 * Token and output-directory problems are not usage errors: they get AUTH (3) and OUTPUT (9).
 */
import { accessSync, constants, readFileSync, statSync, existsSync, readdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DvrecError, UsageError, AuthError, OutputError, registerSecret } from '../errors.ts';
import type { AudioFormat } from '../sinks/capture-layout.ts';
import { JOURNAL_FILE, MANIFEST_FILE } from '../sinks/capture-layout.ts';
import { DEFAULT_MP3_BITRATE_KBPS, MP3_SAMPLE_RATES, defaultMp3BitrateAt, formatBitrates, mp3BitratesAt } from '../sinks/formats/mp3-params.ts';

function usage(message: string): DvrecError {
  return new UsageError(message);
}

/** Discord ids are unsigned 64-bit integers written in decimal: 17–20 digits for any id Discord issues. */
const SNOWFLAKE = /^\d{17,20}$/;
const U64_MAX = (1n << 64n) - 1n;

/** Parses a Discord id (guild, channel or user). Accepts `<#id>` / `<@id>` mentions pasted from a client. */
export function parseSnowflake(value: string, flag: string): string {
  const raw = value.trim().replace(/^<[#@]!?(\d+)>$/, '$1');
  if (!SNOWFLAKE.test(raw) || BigInt(raw) > U64_MAX) {
    throw usage(`${flag}: '${value}' is not a Discord id (17 to 20 digits; turn on Developer Mode and use "Copy ID")`);
  }
  return raw;
}

/** `--users 1,2 --users 3` → a set of ids; empty entries (trailing commas) are ignored. */
export function parseUserList(values: readonly string[]): Set<string> {
  const ids = new Set<string>();
  for (const part of values.flatMap((v) => v.split(','))) {
    if (part.trim() === '') continue;
    ids.add(parseSnowflake(part, '--users'));
  }
  if (ids.size === 0) throw usage('--users: give at least one user id (e.g. --users 123456789012345678,234567890123456789)');
  return ids;
}

const DURATION_UNITS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };
const DURATION = /^(?:(\d+(?:\.\d+)?)(h|ms|m|s))+$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(h|ms|m|s)/g;

/**
 * Parses a duration into milliseconds: a bare number is seconds (`20`), otherwise one or more
 * number+unit parts in any order of h, m, s, ms (`90s`, `45m`, `1h30m`, `1.5h`).
 */
export function parseDuration(value: string, flag: string): number {
  const v = value.trim().toLowerCase();
  let ms: number;
  if (/^\d+(?:\.\d+)?$/.test(v)) {
    ms = Number(v) * 1000;
  } else if (DURATION.test(v)) {
    ms = 0;
    for (const m of v.matchAll(DURATION_PART)) ms += Number(m[1]) * DURATION_UNITS[m[2]!]!;
  } else {
    throw usage(`${flag}: '${value}' is not a duration (examples: 20, 90s, 45m, 1h30m)`);
  }
  ms = Math.round(ms);
  if (!Number.isFinite(ms) || ms <= 0) throw usage(`${flag}: '${value}' must be longer than zero`);
  // setTimeout cannot wait longer than 2^31-1 ms (24.8 days); nobody records longer in one run.
  if (ms > 2_147_483_647) throw usage(`${flag}: '${value}' is too long (at most 24 days)`);
  return ms;
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
const SIZE = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/;

/** Parses a size into bytes: `500M`, `2G`, `1.5GiB`, `700000` (units are powers of 1024). */
export function parseSize(value: string, flag: string): number {
  const m = SIZE.exec(value.trim().toLowerCase());
  if (!m) throw usage(`${flag}: '${value}' is not a size (examples: 500M, 2G, 1.5G)`);
  const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[m[2]!]!);
  if (bytes <= 0) throw usage(`${flag}: '${value}' must be larger than zero`);
  // One second of one user's capture is 192 kB; a limit below 1 MiB stops before anything useful is kept.
  if (bytes < 1024 * 1024) throw usage(`${flag}: '${value}' is too small (at least 1M)`);
  return bytes;
}

export const FORMATS: readonly AudioFormat[] = ['wav', 'mp3', 'flac', 'opus'];

export function parseFormat(value: string): AudioFormat {
  const v = value.trim().toLowerCase();
  if (!(FORMATS as readonly string[]).includes(v)) {
    throw usage(`--format: '${value}' is not a format (choose ${FORMATS.join(', ')})`);
  }
  return v as AudioFormat;
}

/** MP3 bitrate used when --bitrate is not given (also recorded in the journal for a later convert). */
export const DEFAULT_BITRATE_KBPS = DEFAULT_MP3_BITRATE_KBPS;

/**
 * Parses `--bitrate` (kbps, `128` or `128k`). Only MP3 is encoded with a bitrate: WAV and FLAC are
 * lossless and Opus output keeps the packets Discord sent, untouched, so a bitrate there is a mistake.
 * The allowed values depend on the sample rate (`rate`: 48000 for a recording, `--rate` for raw input) and
 * come from the one table both MP3 encoders honour (sinks/formats/mp3-params.ts).
 */
export function parseBitrate(value: string | undefined, format: AudioFormat, rate = 48_000): number {
  if (format === 'mp3' && !MP3_SAMPLE_RATES.includes(rate)) {
    throw usage(`--format mp3 needs --rate ${MP3_SAMPLE_RATES.join(', ')} (got ${rate}; use wav or flac, or resample first)`);
  }
  if (value === undefined) return format === 'mp3' ? defaultMp3BitrateAt(rate) : DEFAULT_BITRATE_KBPS;
  const m = /^(\d+)\s*(?:k|kbps|kbit\/s)?$/i.exec(value.trim());
  if (!m) throw usage(`--bitrate: '${value}' is not a bitrate in kbps (e.g. 128 or 192k)`);
  const kbps = Number(m[1]);
  if (format !== 'mp3') {
    const why = format === 'opus' ? 'keeps the Opus packets Discord sent, without re-encoding' : 'is lossless';
    throw usage(`--bitrate applies to --format mp3 only (${format} ${why})`);
  }
  const allowed = mp3BitratesAt(rate);
  if (!allowed.includes(kbps)) {
    const at = rate === 48_000 ? '' : ` at ${rate} Hz`;
    throw usage(`--bitrate: ${kbps} kbps is not an MP3 bitrate${at} (choose ${formatBitrates(allowed)})`);
  }
  return kbps;
}

/** Parses `--rate` for raw input (Hz, 1000 to 384000 like the converter). */
export function parseRate(value: string): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!(n >= 1000 && n <= 384_000)) throw usage(`--rate: '${value}' is not a sample rate in Hz (e.g. 48000)`);
  return n;
}

/** Parses `--channels` for raw input: interleaved channels, 1 to 8. */
export function parseChannels(value: string): number {
  const n = /^\d$/.test(value.trim()) ? Number(value) : NaN;
  if (!(n >= 1 && n <= 8)) throw usage(`--channels: '${value}' must be a channel count from 1 to 8`);
  return n;
}

/** Parses `--api-url`/DVREC_API_URL: an http(s) URL in discord.js' `rest.api` form (`http://host:port/api`). */
export function parseApiUrl(value: string, source: string): string {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw usage(`${source}: '${value}' is not a URL (e.g. http://127.0.0.1:8080/api)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw usage(`${source}: '${value}' must be an http:// or https:// URL`);
  }
  return url.href.replace(/\/$/, '');
}

/** Positive integer option (e.g. `demo --seconds`). */
export function parseSeconds(value: string, flag: string, min: number, max: number): number {
  const n = /^\d+(?:\.\d+)?$/.test(value.trim()) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw usage(`${flag}: '${value}' must be a number of seconds from ${min} to ${max}`);
  return n;
}

// ---------------------------------------------------------------------------------------------------------
// --out templates

export interface TemplateValues {
  guild: string;
  channel: string;
  /** The instant the recording was started (local time is used, as people read it). */
  now: Date;
}

export const TEMPLATE_KEYS = ['guild', 'channel', 'date', 'time', 'datetime'] as const;

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/**
 * Expands `{guild} {channel} {date} {time} {datetime}` in an --out template. Times use `-` instead of
 * `:` so the path is valid on every filesystem (and in a Windows share). Unknown placeholders are usage
 * errors: a silent literal `{gild}` directory is worse than a clear message.
 */
export function expandOutTemplate(template: string, values: TemplateValues): string {
  if (template.trim() === '') throw usage('--out: the output directory must not be empty');
  const d = values.now;
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}-${pad(d.getMinutes())}-${pad(d.getSeconds())}`;
  const map: Record<(typeof TEMPLATE_KEYS)[number], string> = {
    guild: values.guild,
    channel: values.channel,
    date,
    time,
    datetime: `${date}T${time}`,
  };
  return template.replace(/\{([^{}]*)\}/g, (whole, key: string) => {
    if (!(TEMPLATE_KEYS as readonly string[]).includes(key)) {
      throw usage(`--out: unknown placeholder '${whole}' (use ${TEMPLATE_KEYS.map((k) => `{${k}}`).join(' ')})`);
    }
    return map[key as (typeof TEMPLATE_KEYS)[number]];
  });
}

/**
 * Checks, before connecting, that the recording directory can be created and written, and that it does
 * not already hold a recording (which the new one would overwrite) unless `force` is set. `forceOption`: whether
 * the command has --force to suggest (`demo` has not).
 * Throws OutputError. Returns the absolute path.
 */
export function checkOutputDir(dir: string, force: boolean, forceOption = true): string {
  const abs = resolve(dir);
  if (existsSync(abs)) {
    const st = statSync(abs);
    if (!st.isDirectory()) throw new OutputError(`output ${abs} exists and is not a directory`);
    try {
      accessSync(abs, constants.W_OK | constants.X_OK);
    } catch {
      throw new OutputError(`output directory ${abs} is not writable`);
    }
    const holds = readdirSync(abs).filter((f) => f === MANIFEST_FILE || f === JOURNAL_FILE);
    if (holds.length > 0 && !force) {
      // An unfinished one (a killed run's capture) is finished by convert; --force moves it aside (leftover-capture.ts).
      const ways = holds.includes(JOURNAL_FILE)
        ? [`finish it with dvrec convert ${abs}`, 'choose another --out', ...(forceOption ? ['pass --force to move it aside'] : [])]
        : ['choose another --out', ...(forceOption ? ['pass --force'] : [])];
      const what = holds.includes(JOURNAL_FILE) ? `an unfinished recording (${JOURNAL_FILE})` : `a recording (${holds.join(', ')})`;
      const choice = ways.length > 1 ? `${ways.slice(0, -1).join(', ')} or ${ways.at(-1)}` : ways[0];
      throw new OutputError(`output directory ${abs} already holds ${what}: ${choice}`);
    }
    return abs;
  }
  // Walk up to the nearest existing ancestor: that is where mkdir -p will have to create the first level.
  let parent = dirname(abs);
  while (!existsSync(parent)) {
    const up = dirname(parent);
    if (up === parent) break;
    parent = up;
  }
  let ok = false;
  try {
    ok = statSync(parent).isDirectory();
    accessSync(parent, constants.W_OK | constants.X_OK);
  } catch {
    ok = false;
  }
  if (!ok) throw new OutputError(`cannot create output directory ${abs}: ${parent} is not a writable directory`);
  return abs;
}

// ---------------------------------------------------------------------------------------------------------
// Token

/**
 * Finds the bot token: `--token-file` wins over DISCORD_TOKEN (a file given explicitly is the stronger
 * intent). The token is registered as a secret at once, so no later message can print it. A leading
 * `Bot ` (copied from an Authorization header) is removed. Throws DvrecError(AUTH).
 */
export function resolveToken(env: NodeJS.ProcessEnv, tokenFile?: string): { token: string; warning?: string } {
  let raw: string;
  let source: string;
  let warning: string | undefined;
  if (tokenFile !== undefined) {
    source = `token file ${tokenFile}`;
    try {
      raw = readFileSync(tokenFile, 'utf8');
      // A token readable by other local users is a leaked token; say so, but do not refuse.
      if (process.platform !== 'win32' && (statSync(tokenFile).mode & 0o077) !== 0) {
        warning = `token file ${tokenFile} is readable by other users; run: chmod 600 ${tokenFile}`;
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      throw new AuthError(`cannot read token file ${tokenFile} (${code})`);
    }
  } else if (env.DISCORD_TOKEN !== undefined) {
    source = 'DISCORD_TOKEN';
    raw = env.DISCORD_TOKEN;
  } else {
    throw new AuthError('no bot token: set DISCORD_TOKEN or pass --token-file FILE');
  }
  const token = raw.trim().replace(/^Bot\s+/i, '');
  registerSecret(token);
  registerSecret(raw.trim());
  if (token === '') throw new AuthError(`${source} is empty: it must hold the bot token`);
  if (/\s/.test(token)) throw new AuthError(`${source} does not look like a bot token (it contains spaces)`);
  return warning === undefined ? { token } : { token, warning };
}
