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
  const stops = installStopSignals({
    onFirst: (sig) => {
      stopping = true;
      reporter.note(`${sig}: stopping every recording and finishing the files (again to quit at once)`);
    },
    onSecond: (sig) => reporter.warn(`second ${sig}: quitting at once; the next start finishes what was recording`),
  });
  try {
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
      log: (level, m) => (level === 'warn' ? reporter.warn(m) : reporter.note(m)),
    });
    reporter.note('ready: serving /record and /autorecord');
    if (!stopping) await new Promise<void>((r) => stops.signal.addEventListener('abort', () => r(), { once: true }));
    await bot.close();
    reporter.note('stopped');
    return ExitCode.OK;
  } finally {
    stops.dispose();
  }
}
