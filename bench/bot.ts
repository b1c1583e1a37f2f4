/**
 * Bench part `bot`: concurrent recordings in ONE `dvrec bot` process. The simulator (its own process) plays G
 * guilds, each with its own call of S members speaking one known tone continuously; the members' owners type
 * /record start in all guilds at once, the bot records for the step, then /record stop in all guilds. Measured as
 * the capacity part measures `dvrec record`: dropouts (the manifests' packet accounting, and the decoded audio of a
 * sample of tracks, 20 ms block by block: capacity.ts checkAudio), CPU seconds per speaker-hour of the bot's process
 * tree over the steady window, peak RSS, and the simulator's CPU; plus how long starting and stopping every guild
 * took (slash command sent → reply).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Scenario, SimMember, GuildScenario } from '../src/simulator/scenario.ts';
import { addTrackPackets, checkAudio, dvrecEntry, emptyPacketTotals, readLeft, startSimChild, tone } from './capacity.ts';
import { ProcSampler } from './proc.ts';

const BOT = '100000000000000003';
const TOKEN = 'MTAwMDAwMDAwMDAwMDAwMDAz.bench-token.abcdefghijklmnop';

export interface BotBenchOptions {
  guilds: number;
  speakersPerGuild: number;
  /** Length of the steady part (after every guild is recording). */
  seconds: number;
  dave: boolean;
  workDir: string;
  /** Tracks whose audio is decoded and checked, spread over the guilds. */
  sampleTracks: number;
  log: (line: string) => void;
}

export interface BotBenchResult {
  guilds: number;
  speakersPerGuild: number;
  speakers: number;
  seconds: number;
  ok: boolean;
  problems: string[];
  recordings: number;
  tracks: number;
  received: number;
  lost: number;
  concealed: number;
  late: number;
  undecryptable: number;
  sampledTracks: number;
  sampledBlocks: number;
  droppedBlocks: number;
  wrongTone: number;
  /** First /record start sent → last reply (every guild recording). */
  startAllS: number;
  /** First /record stop sent → last reply (every guild's files finished). */
  stopAllS: number;
  windowS: number;
  botCpuS: number;
  cpuPerSpeakerHour: number;
  botCores: number;
  simCores: number;
  peakRssMiB: number;
}

const guildId = (g: number): string => String(500000000000000000n + BigInt(g) * 10_000n);
const channelId = (g: number): string => String(500000000000000001n + BigInt(g) * 10_000n);
const memberId = (g: number, i: number): string => String(500000000000000100n + BigInt(g) * 10_000n + BigInt(i));
/** Within a guild the tones are 7 Hz apart (capacity.ts's neighbours check); guilds reuse them. */

export function botBenchScenario(o: Pick<BotBenchOptions, 'guilds' | 'speakersPerGuild' | 'seconds' | 'dave'>): Scenario {
  const guild = (g: number): GuildScenario => ({
    guildId: guildId(g),
    channelId: channelId(g),
    guildName: `bench guild ${g}`,
    dave: o.dave,
    members: Array.from({ length: o.speakersPerGuild }, (_, i): SimMember => ({
      userId: memberId(g, i),
      username: `g${g}m${i}`,
      signal: { kind: 'tone', hz: tone(i) },
      // Each guild's timeline starts with the bot's session there: speak from 0.5 s on, past the step's end.
      spurts: [{ atMs: 500, durationMs: (o.seconds + 180) * 1000 }],
    })),
  });
  const [first, ...rest] = Array.from({ length: o.guilds }, (_, g) => guild(g));
  return { ...first!, seed: 42, botUserId: BOT, token: TOKEN, guilds: rest };
}

export async function runBotBench(o: BotBenchOptions): Promise<BotBenchResult> {
  const out = join(o.workDir, `bot-${o.guilds}x${o.speakersPerGuild}`);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const speakers = o.guilds * o.speakersPerGuild;
  const sim = await startSimChild(botBenchScenario(o), o.log);
  const problems: string[] = [];
  const bot = spawn(
    process.execPath,
    [dvrecEntry(), 'bot', '--out', join(out, 'rec', '{guild}'), '--config', join(out, 'bot.json'), '--state-dir', join(out, 'state')],
    { env: { ...process.env, DISCORD_TOKEN: TOKEN, DVREC_API_URL: sim.apiUrl, NODE_EXTRA_CA_CERTS: sim.caCertPath, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  bot.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  bot.stdout!.resume();
  const ready = new Promise<void>((resolve, reject) => {
    // The bot's log lines (plain mode, not a TTY) go to stderr.
    createInterface({ input: bot.stderr! }).on('line', (l) => {
      if (/ready: serving/.test(l)) resolve();
    });
    bot.once('exit', (code) => reject(new Error(`dvrec bot exited (${code}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`)));
  });
  const exited = new Promise<number>((resolve) => bot.once('close', (code) => resolve(code ?? -1)));
  const sampler = new ProcSampler(bot.pid!, 1000);
  const simSampler = new ProcSampler(sim.child.pid!, 1000);
  const everyGuild = async (subcommand: 'start' | 'stop', expect: RegExp): Promise<number> => {
    const t = performance.now();
    const replies = await Promise.all(
      Array.from({ length: o.guilds }, (_, g) =>
        sim.interact({ guildId: guildId(g), userId: memberId(g, 0), command: 'record', subcommand }).catch((e: Error) => `error: ${e.message}`),
      ),
    );
    const bad = replies.filter((r) => !expect.test(r));
    if (bad.length) problems.push(`/record ${subcommand}: ${bad.length} guilds answered otherwise, e.g. ${bad[0]}`);
    return (performance.now() - t) / 1000;
  };
  let startAllS = NaN;
  let stopAllS = NaN;
  let window = { cpuS: 0, wallS: 0 };
  let simWindow = { cpuS: 0, wallS: 0 };
  try {
    await ready;
    o.log(`    bot ready; /record start in ${o.guilds} guilds at once`);
    startAllS = await everyGuild('start', /^🔴 Recording/);
    o.log(`    every guild recording after ${startAllS.toFixed(1)} s; steady part ${o.seconds} s`);
    // Steady window: from 5 s after the last guild started (its members speak from 0.5 s on) to the stop.
    const from = performance.now() / 1000 + 5;
    await new Promise((r) => setTimeout(r, o.seconds * 1000));
    const to = performance.now() / 1000 - 0.5;
    window = sampler.cpuBetween(from, to);
    simWindow = simSampler.cpuBetween(from, to);
    stopAllS = await everyGuild('stop', /^⏹️ Stopped: /);
    o.log(`    every guild stopped and finished after ${stopAllS.toFixed(1)} s`);
  } catch (e) {
    problems.push((e as Error).message);
  } finally {
    bot.kill('SIGTERM');
    const code = await exited;
    if (code !== 0) problems.push(`dvrec bot exited ${code}: ${stderr.trim().split('\n').slice(-2).join(' | ')}`);
    sampler.stop();
    simSampler.stop();
    await sim.close();
  }

  let recordings = 0;
  let tracks = 0;
  const pk = emptyPacketTotals();
  let sampledTracks = 0;
  let sampledBlocks = 0;
  let droppedBlocks = 0;
  let wrongTone = 0;
  const recDir = join(out, 'rec');
  const dirs = existsSync(recDir) ? readdirSync(recDir) : [];
  // Which tracks to decode: `sampleTracks` spread over guilds and members.
  const sample = new Set(Array.from({ length: Math.min(o.sampleTracks, speakers) }, (_, k) => Math.floor((k * speakers) / Math.min(o.sampleTracks, speakers))));
  for (let g = 0; g < o.guilds; g++) {
    if (!dirs.includes(guildId(g)) || !existsSync(join(recDir, guildId(g), 'manifest.json'))) continue;
    recordings++;
    type ManifestLite = { durationMs: number; tracks: { userId: string; file: string; packets: Record<string, number> }[] };
    const m = JSON.parse(readFileSync(join(recDir, guildId(g), 'manifest.json'), 'utf8')) as ManifestLite;
    tracks += m.tracks.length;
    addTrackPackets(pk, m.tracks);
    const endSample = Math.floor(((m.durationMs - 500) * 48_000) / 1000);
    for (let i = 0; i < o.speakersPerGuild; i++) {
      if (!sample.has(g * o.speakersPerGuild + i)) continue;
      const t = m.tracks.find((x) => x.userId === memberId(g, i));
      if (!t) continue;
      const r = checkAudio(readLeft(join(recDir, guildId(g), t.file), 44), tone(i), endSample);
      sampledTracks++;
      sampledBlocks += r.blocks;
      droppedBlocks += r.dropped;
      if (r.wrongTone) wrongTone++;
    }
  }
  if (recordings < o.guilds) problems.push(`${o.guilds - recordings} guilds have no finished recording`);
  if (tracks < speakers) problems.push(`${speakers - tracks} members have no track`);
  if (pk.lost + pk.concealed + pk.undecryptable > 0) problems.push(`lost ${pk.lost}, concealed ${pk.concealed}, undecryptable ${pk.undecryptable}`);
  if (droppedBlocks > 0) problems.push(`${droppedBlocks} silent 20 ms blocks in ${sampledTracks} checked tracks`);
  if (wrongTone > 0) problems.push(`${wrongTone} checked tracks without their member's tone`);
  if (sampledTracks < Math.min(o.sampleTracks, speakers)) problems.push(`only ${sampledTracks} tracks could be checked`);
  if (!process.env.DVREC_BENCH_KEEP) rmSync(out, { recursive: true, force: true });
  const speakerHours = (speakers * window.wallS) / 3600;
  return {
    guilds: o.guilds,
    speakersPerGuild: o.speakersPerGuild,
    speakers,
    seconds: o.seconds,
    ok: problems.length === 0,
    problems,
    recordings,
    tracks,
    ...pk,
    sampledTracks,
    sampledBlocks,
    droppedBlocks,
    wrongTone,
    startAllS,
    stopAllS,
    windowS: window.wallS,
    botCpuS: window.cpuS,
    cpuPerSpeakerHour: speakerHours > 0 ? window.cpuS / speakerHours : NaN,
    botCores: window.wallS > 0 ? window.cpuS / window.wallS : NaN,
    simCores: simWindow.wallS > 0 ? simWindow.cpuS / simWindow.wallS : NaN,
    peakRssMiB: Math.max(0, ...sampler.samples.map((s) => s.hwmMiB)),
  };
}
