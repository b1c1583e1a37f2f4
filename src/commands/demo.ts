/**
 * `dvrec demo`: a whole recording on a machine with no token and no network. It starts the local Discord
 * (src/simulator) in this process with a few members speaking distinct tones, points the real recorder
 * at it with a token of its own, and leaves real files.
 *
 * The simulated voice gateway speaks TLS with a per-run self-signed certificate, and @discordjs/voice
 * opens `wss://` with no TLS options, so the certificate must be trusted process-wide: in-process with
 * tls.setDefaultCACertificates() (Node 22.19+/24.5+), otherwise by running `dvrec record` as a child
 * process with NODE_EXTRA_CA_CERTS (which Node reads only at start-up).
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import tls from 'node:tls';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InternalError, registerSecret } from '../errors.ts';
import { ExitCode } from './exit-codes.ts';
import type { Scenario, SimMember } from '../simulator/scenario.ts';
import { createReporter, type Reporter } from '../ui/reporter.ts';
import { checkOutputDir, expandOutTemplate, parseFormat, parseSeconds } from './options.ts';
import { prepareRecording, runWithSignals, type RecordFlags } from './record.ts';

export interface DemoFlags {
  out?: string;
  seconds?: string;
  format?: string;
  json?: boolean;
  /** `--bot`: the recording bot, commanded by simulated members (demo-bot.ts). */
  bot?: boolean;
}

export const DEMO_DEFAULT_OUT = 'recordings/demo-{datetime}';
export const DEMO_DEFAULT_SECONDS = 8;

// Fixed, realistic snowflakes: the output directory and files are then predictable for the user.
export const DEMO_GUILD_ID = '1180000000000000001';
export const DEMO_CHANNEL_ID = '1180000000000000002';
const DEMO_BOT_ID = '1180000000000000003';

/** A Discord-shaped token (three base64url parts) that exists only for this run. */
function demoToken(): string {
  const part = (n: number) => randomBytes(n).toString('base64url');
  return `${Buffer.from(DEMO_BOT_ID).toString('base64url')}.${part(5)}.${part(28)}`;
}

/**
 * Four members with tones a musician would recognise (A3, E4, A4, a chirp) and talk spurts with
 * pauses and one overlap, scaled to the demo's length: the files show per-user tracks, silence where
 * someone is quiet, and alignment (every track starts at the same t=0).
 */
export function demoScenario(seconds: number, token: string, dave: boolean): Scenario {
  const s = (fraction: number) => Math.round(fraction * seconds * 1000);
  const member = (n: number, username: string, displayName: string, signal: SimMember['signal'], spurts: [number, number][]): SimMember => ({
    userId: `11800000000000001${String(n).padStart(2, '0')}`,
    username,
    displayName,
    signal,
    spurts: spurts.map(([from, to]) => ({ atMs: s(from), durationMs: Math.max(200, s(to) - s(from)) })),
  });
  return {
    seed: randomInt(1, 2 ** 31 - 1),
    guildId: DEMO_GUILD_ID,
    guildName: 'dvrec demo',
    channelId: DEMO_CHANNEL_ID,
    channelName: 'Demo Voice',
    botUserId: DEMO_BOT_ID,
    token,
    dave,
    members: [
      member(1, 'alice', 'Alice', { kind: 'tone', hz: 220 }, [[0.05, 0.3], [0.75, 0.9]]),
      member(2, 'bob', 'Bob', { kind: 'tone', hz: 330 }, [[0.25, 0.45]]),
      member(3, 'carol', 'Carol', { kind: 'tone', hz: 440 }, [[0.5, 0.7]]),
      member(4, 'dave', 'Dave', { kind: 'chirp', fromHz: 300, toHz: 900, periodMs: 500 }, [[0.62, 0.8]]),
    ],
  };
}

/** True when @snazzah/davey (the DAVE implementation) loads on this machine. */
async function daveAvailable(): Promise<boolean> {
  try {
    await import('@snazzah/davey');
    return true;
  } catch {
    return false;
  }
}

export async function demoCommand(flags: DemoFlags, setReporter: (r: Reporter) => void): Promise<number> {
  const reporter = createReporter({ json: flags.json === true });
  setReporter(reporter);
  const seconds = flags.seconds !== undefined ? parseSeconds(flags.seconds, '--seconds', 2, 600) : DEMO_DEFAULT_SECONDS;
  const format = parseFormat(flags.format ?? 'wav');
  // Checked here, not only by `record`: demo has no --force, so a directory that already holds a recording must not
  // be answered with advice to pass one (record's own check, in process or in the child, says so).
  checkOutputDir(expandOutTemplate(flags.out ?? DEMO_DEFAULT_OUT, { guild: DEMO_GUILD_ID, channel: DEMO_CHANNEL_ID, now: new Date() }), false, false);
  const token = demoToken();
  registerSecret(token);

  const dave = await daveAvailable();
  if (!dave) reporter.warn('DAVE (@snazzah/davey) is not available here: the demo runs without end-to-end encryption');
  if (flags.bot) {
    const { demoBot } = await import('./demo-bot.ts');
    return demoBot({ seconds, format, token, dave, ...(flags.out !== undefined ? { out: flags.out } : {}) }, reporter);
  }
  reporter.begin('Starting the local Discord simulator…');
  const { startSimulator, trustSimulatorCertificate } = await import('../simulator/index.ts');
  const sim = await startSimulator(demoScenario(seconds, token, dave));
  try {
    reporter.end(true, `Local Discord running at ${sim.apiUrl} (${dave ? 'DAVE on' : 'DAVE off'})`);
    const recordFlags: RecordFlags = {
      guild: DEMO_GUILD_ID,
      channel: DEMO_CHANNEL_ID,
      out: flags.out ?? DEMO_DEFAULT_OUT,
      format,
      duration: String(seconds),
      apiUrl: sim.apiUrl,
      ...(flags.json ? { json: true } : {}),
    };
    const inProcess = typeof tls.setDefaultCACertificates === 'function' && process.env.DVREC_DEMO_SUBPROCESS !== '1';
    if (!inProcess) return await recordInChild(recordFlags, token, sim.caCertPath);

    trustSimulatorCertificate(sim);
    const env = { ...process.env, DISCORD_TOKEN: token };
    const options = await prepareRecording(recordFlags, env, reporter);
    reporter.note(`output: ${options.outDir}`);
    const code = await runWithSignals(options, reporter);
    reporter.note('Next: record a real channel with `dvrec record --guild ID --channel ID` (see README: Discord bot setup)');
    return code;
  } finally {
    await sim.close();
  }
}

/**
 * The fallback for Node versions without tls.setDefaultCACertificates: run `dvrec record` as a child
 * that trusts the simulator's certificate from start-up. The token travels in the child's environment
 * (never on its command line, where `ps` would show it).
 */
async function recordInChild(flags: RecordFlags, token: string, caCertPath: string): Promise<number> {
  const bin = fileURLToPath(new URL('../../bin/dvrec' + extname(fileURLToPath(import.meta.url)), import.meta.url));
  const args = [bin, 'record', '--guild', flags.guild!, '--channel', flags.channel!, '--out', flags.out!];
  args.push('--format', flags.format!, '--duration', flags.duration!, '--api-url', flags.apiUrl!);
  if (flags.json) args.push('--json');
  const child = spawn(process.execPath, args, {
    stdio: 'inherit',
    env: { ...process.env, DISCORD_TOKEN: token, NODE_EXTRA_CA_CERTS: caCertPath, DVREC_API_URL: '' },
  });
  // The child gets the same terminal signals (same process group); this process just waits for it.
  const ignore = () => {};
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, ignore);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on('error', (e) => reject(new InternalError(`cannot start the recorder: ${e.message}`)));
      child.on('exit', (code, signal) => resolve(code ?? (signal ? ExitCode.INTERRUPTED : ExitCode.INTERNAL)));
    });
  } finally {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, ignore);
  }
}
