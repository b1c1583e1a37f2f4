/**
 * `dvrec demo --bot`: the recording bot on the built-in local Discord, no token and no network. The bot (src/bot)
 * logs in to the simulator; a simulated member types /record start in the voice channel, the members speak,
 * another adds a /record note, and /record stop finishes the files. Everything the bot shows in Discord (replies,
 * channel messages, the channel status) is printed as it happens.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { InternalError, registerSecret } from '../errors.ts';
import { ExitCode } from './exit-codes.ts';
import type { Reporter } from '../ui/reporter.ts';
import type { AudioFormat, Manifest } from '../sinks/capture-layout.ts';
import { DEMO_GUILD_ID, demoScenario } from './demo.ts';

export const DEMO_BOT_DEFAULT_OUT = 'recordings/demo-bot-{datetime}';

export interface DemoBotOptions {
  seconds: number;
  format: AudioFormat;
  out?: string;
  token: string;
  dave: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function demoBot(o: DemoBotOptions, reporter: Reporter): Promise<number> {
  // The bot runs in this process, so this process must trust the simulator's voice certificate.
  if (typeof tls.setDefaultCACertificates !== 'function') {
    throw new InternalError(`dvrec demo --bot needs Node.js 22.19 or 24.5 or newer (this is ${process.versions.node}); dvrec demo works here`);
  }
  registerSecret(o.token);
  reporter.begin('Starting the local Discord simulator…');
  const { startSimulator, trustSimulatorCertificate } = await import('../simulator/index.ts');
  const sc = demoScenario(o.seconds, o.token, o.dave);
  const sim = await startSimulator(sc);
  const scratch = mkdtempSync(join(tmpdir(), 'dvrec-demo-bot-'));
  let bot: Awaited<ReturnType<typeof import('../bot/bot.ts').startBot>> | undefined;
  try {
    trustSimulatorCertificate(sim);
    reporter.end(true, `Local Discord running at ${sim.apiUrl} (${o.dave ? 'DAVE on' : 'DAVE off'})`);
    const name = (id: string) => sc.members.find((m) => m.userId === id)?.displayName ?? id;
    sim.events.on('bot-action', (a) => {
      if (a.kind === 'message') reporter.note(`#${sc.channelName} chat: ${a.content}`);
      else if (a.kind === 'voice-status') reporter.note(`#${sc.channelName} status: ${a.status ? `"${a.status}"` : '(cleared)'}`);
      else if (a.kind === 'nick') reporter.note(`bot nickname: ${a.nick ?? '(reset)'}`);
    });
    const { startBot } = await import('../bot/bot.ts');
    let manifest: Manifest | null = null;
    bot = await startBot({
      token: o.token,
      apiUrl: sim.apiUrl,
      outTemplate: o.out ?? DEMO_BOT_DEFAULT_OUT,
      devGuildId: DEMO_GUILD_ID,
      configFile: join(scratch, 'dvrec-bot.json'),
      stateDir: join(scratch, 'state'),
      defaultFormat: o.format,
      log: (level, m) => (level === 'warn' ? reporter.warn(m) : reporter.note(`bot: ${m}`)),
    });
    bot.sessions.on('ended', (_s, m) => (manifest = m));
    const type = async (userId: string, subcommand: string, options?: Record<string, string>): Promise<void> => {
      reporter.note(`${name(userId)} types /record ${subcommand}${options?.text ? ` ${options.text}` : ''}`);
      const r = await sim.interact({ guildId: DEMO_GUILD_ID, userId, command: 'record', subcommand, ...(options ? { options } : {}) }).content;
      reporter.note(`bot → ${name(userId)}${r.ephemeral ? ' (only they see it)' : ''}: ${r.content}`);
    };
    const [alice, bob] = [sc.members[0]!.userId, sc.members[1]!.userId];
    await type(alice, 'start');
    const session = bot.sessions.get(DEMO_GUILD_ID);
    if (!session) throw new InternalError('the demo recording did not start');
    await sleep(o.seconds * 500 - session.recording.now());
    await type(bob, 'note', { text: 'Bob made a good point' });
    await sleep(o.seconds * 1000 - session.recording.now());
    await type(alice, 'stop');
    await bot.close();
    bot = undefined;
    if (!manifest) throw new InternalError('the demo recording left no manifest');
    reporter.done({ dir: session.outDir, manifest });
    reporter.note('Next: run it for real with `dvrec bot` (see README: dvrec bot) and type /record start in a voice channel');
    return ExitCode.OK;
  } finally {
    await bot?.close().catch(() => {});
    await sim.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}
