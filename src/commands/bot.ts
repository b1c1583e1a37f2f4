/**
 * `dvrec bot`: the recording bot people command from Discord (src/bot). This file only turns flags into
 * BotOptions (every value checked before connecting, like `record`), wires stop signals, and prints the bot's log
 * lines through the reporter. The first SIGINT/SIGTERM/SIGHUP stops every recording (files finished, signs undone)
 * and logs out (exit 0); a second one exits at once (130): the next start finishes what was left.
 */
import { resolve } from 'node:path';
import { UsageError, registerSecret } from '../errors.ts';
import { ExitCode } from './exit-codes.ts';
import { createReporter, type Reporter } from '../ui/reporter.ts';
import { expandOutTemplate, parseApiUrl, parseDuration, parseFormat, parseSnowflake, resolveToken } from './options.ts';
import { installStopSignals } from './signals.ts';
import { DEFAULT_OUT } from './record.ts';
import type { AudioFormat } from '../sinks/capture-layout.ts';

export interface BotFlags {
  out?: string;
  format?: string;
  devGuild?: string;
  config?: string;
  stateDir?: string;
  managerRole?: string[];
  emptyGrace?: string;
  tokenFile?: string;
  apiUrl?: string;
  json?: boolean;
  shards?: string;
  shardIds?: string;
  shardCount?: string;
}

export const DEFAULT_CONFIG = 'dvrec-bot.json';
export const DEFAULT_STATE_DIR = '.dvrec-bot';
export const DEFAULT_EMPTY_GRACE = '30s';

export interface ValidatedBotFlags {
  outTemplate: string;
  format: AudioFormat;
  devGuildId?: string;
  configFile: string;
  stateDir: string;
  managerRoles: string[];
  emptyGraceMs: number;
  apiUrl?: string;
  /** --shards: run one process per shard with discord.js's ShardingManager. */
  manage?: 'auto' | number;
  /** --shard-ids with --shard-count (or, in a process the manager started, its shard). */
  shardIds?: number[];
  shardCount?: number;
  /** This process is a shard `dvrec bot --shards` started: it stops when the manager says so (IPC). */
  managed?: boolean;
}

const MAX_SHARDS = 4096;

function parseCount(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n < 1 || n > MAX_SHARDS) throw new UsageError(`${flag}: a whole number from 1 to ${MAX_SHARDS}, got '${value}'`);
  return n;
}

/** `3`, `0-3`, `0,2,5` → shard ids. */
function parseShardIds(value: string): number[] {
  const ids = new Set<number>();
  for (const part of value.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) throw new UsageError(`--shard-ids: ids like 0-3 or 0,2,5, got '${value}'`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b - a >= MAX_SHARDS) throw new UsageError(`--shard-ids: '${part.trim()}' is not a range`);
    for (let i = a; i <= b; i++) ids.add(i);
  }
  return [...ids].sort((x, y) => x - y);
}

export function validateBotFlags(flags: BotFlags, env: NodeJS.ProcessEnv): ValidatedBotFlags {
  const outTemplate = flags.out ?? DEFAULT_OUT;
  // The template must expand (unknown placeholders are mistakes); try it with sample values now.
  expandOutTemplate(outTemplate, { guild: '0', channel: '0', now: new Date() });
  const v: ValidatedBotFlags = {
    outTemplate,
    format: parseFormat(flags.format ?? 'wav'),
    configFile: resolve(flags.config ?? DEFAULT_CONFIG),
    stateDir: resolve(flags.stateDir ?? DEFAULT_STATE_DIR),
    managerRoles: (flags.managerRole ?? []).flatMap((r) => r.split(',')).map((r) => parseSnowflake(r.trim(), '--manager-role')),
    emptyGraceMs: parseDuration(flags.emptyGrace ?? DEFAULT_EMPTY_GRACE, '--empty-grace'),
  };
  if (flags.devGuild !== undefined) v.devGuildId = parseSnowflake(flags.devGuild, '--dev-guild');
  const api = flags.apiUrl ?? env.DVREC_API_URL;
  if (api !== undefined && api !== '') v.apiUrl = parseApiUrl(api, flags.apiUrl !== undefined ? '--api-url' : 'DVREC_API_URL');
  if (v.emptyGraceMs < 1000) throw new UsageError('--empty-grace: at least 1s');
  if (flags.shards !== undefined) {
    if (flags.shardIds !== undefined || flags.shardCount !== undefined) throw new UsageError('--shards runs every shard here; --shard-ids/--shard-count are for splitting shards between machines: use one or the other');
    v.manage = flags.shards.trim() === 'auto' ? 'auto' : parseCount(flags.shards, '--shards');
  } else if (flags.shardIds !== undefined || flags.shardCount !== undefined) {
    if (flags.shardIds === undefined || flags.shardCount === undefined) throw new UsageError('--shard-ids and --shard-count go together');
    v.shardCount = parseCount(flags.shardCount, '--shard-count');
    v.shardIds = parseShardIds(flags.shardIds);
    if (v.shardIds.some((id) => id >= v.shardCount!)) throw new UsageError(`--shard-ids: every id must be below --shard-count ${v.shardCount}`);
  } else if (env.SHARDING_MANAGER && env.SHARDS !== undefined && env.SHARD_COUNT !== undefined) {
    // A shard process `dvrec bot --shards` started (discord.js's ShardingManager sets these).
    const id = Number(env.SHARDS);
    v.shardCount = parseCount(env.SHARD_COUNT, 'SHARD_COUNT');
    if (!(Number.isInteger(id) && id >= 0 && id < v.shardCount)) throw new UsageError(`SHARDS=${env.SHARDS}: not a shard of ${v.shardCount}`);
    v.shardIds = [id];
    v.managed = true;
  }
  return v;
}

export async function botCommand(flags: BotFlags, setReporter: (r: Reporter) => void): Promise<number> {
  const reporter = createReporter({ json: flags.json === true });
  setReporter(reporter);
  const env = { ...process.env };
  // No child process (ffmpeg) may inherit the token.
  delete process.env.DISCORD_TOKEN;
  const v = validateBotFlags(flags, env);
  const { token, warning } = resolveToken(env, flags.tokenFile);
  registerSecret(token);
  if (warning) reporter.warn(warning);

  let stopping = false;
  const stop = new AbortController();
  const stops = installStopSignals({
    onFirst: (sig) => {
      stopping = true;
      reporter.note(`${sig}: stopping every recording and finishing the files (again to quit at once)`);
    },
    onSecond: (sig) => reporter.warn(`second ${sig}: quitting at once; the next start finishes what was recording`),
  });
  stops.signal.addEventListener('abort', () => stop.abort(), { once: true });
  if (v.managed) {
    // The manager asks its shards to stop over IPC, never with a signal: a terminal's Ctrl-C (or systemd's SIGTERM
    // to the whole unit) already reached every shard, and a second signal would mean "quit at once".
    process.on('message', (m: { dvrec?: string } | null) => {
      if (m?.dvrec !== 'stop' || stop.signal.aborted) return;
      stopping = true;
      stop.abort();
    });
    // The manager died (killed): finish the recordings and go, rather than record on unmanaged.
    process.on('disconnect', () => {
      if (stop.signal.aborted) return;
      reporter.warn('the shard manager went away: stopping');
      stopping = true;
      stop.abort();
    });
  }
  try {
    if (v.manage !== undefined) return await manageShards(v, flags, token, reporter, stop.signal, () => stopping);
    const tag = v.shardIds ? `shard ${v.shardIds.join(',')}/${v.shardCount}: ` : '';
    // Loaded only now: discord.js and the engine are not needed to validate the flags.
    const { startBot } = await import('../bot/bot.ts');
    const bot = await startBot({
      token,
      ...(v.apiUrl ? { apiUrl: v.apiUrl } : {}),
      outTemplate: v.outTemplate,
      ...(v.devGuildId ? { devGuildId: v.devGuildId } : {}),
      configFile: v.configFile,
      stateDir: v.stateDir,
      managerRoles: v.managerRoles,
      emptyGraceMs: v.emptyGraceMs,
      autorecordFormat: v.format,
      defaultFormat: v.format,
      ...(v.shardIds ? { shards: v.shardIds, shardCount: v.shardCount! } : {}),
      log: (level, m) => (level === 'warn' ? reporter.warn(tag + m) : reporter.note(tag + m)),
    });
    reporter.note(`${tag}ready: serving /record and /autorecord`);
    if (!stop.signal.aborted) await new Promise<void>((r) => stop.signal.addEventListener('abort', () => r(), { once: true }));
    await bot.close();
    reporter.note('stopped');
    return ExitCode.OK;
  } finally {
    stops.dispose();
  }
}

/** --shards: the shard processes run `dvrec bot` with the same settings (not --shards; the token from the manager). */
async function manageShards(v: ValidatedBotFlags, flags: BotFlags, token: string, reporter: Reporter, signal: AbortSignal, stopping: () => boolean): Promise<number> {
  // Rebuilt from the validated values (bin/dvrec.ts clears process.argv once parsed); paths are absolute already.
  const childArgs = ['bot', '--out', v.outTemplate, '--format', v.format, '--config', v.configFile, '--state-dir', v.stateDir, '--empty-grace', `${v.emptyGraceMs / 1000}s`];
  for (const r of v.managerRoles) childArgs.push('--manager-role', r);
  if (v.devGuildId) childArgs.push('--dev-guild', v.devGuildId);
  if (v.apiUrl) childArgs.push('--api-url', v.apiUrl);
  if (flags.json) childArgs.push('--json');
  const { runShards } = await import('../bot/sharding.ts');
  const shards = await runShards({ token, ...(v.apiUrl ? { apiUrl: v.apiUrl } : {}), count: v.manage!, childArgs, log: (m) => reporter.note(m) });
  reporter.note(`all ${shards.count} shards started`);
  if (!signal.aborted && !stopping()) await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
  await shards.close();
  reporter.note('stopped');
  return ExitCode.OK;
}
