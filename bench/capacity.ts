/**
 * Parts 2–4 of the bench: a recorder (the real `dvrec record`, or the baseline) in its own process records a
 * simulator (in another process) whose N members all speak at once, for one step of ~20–30 s. Measured:
 *
 *  - dropouts: the recorder's own packet accounting (dvrec: manifest lost/concealed/late/undecryptable;
 *    baseline: frames written vs. frames sent during its subscription) and the decoded audio of a sample of
 *    tracks, 20 ms block by block, against the ground truth (each member speaks one known tone
 *    continuously: a block whose RMS is under 10 % of the tone's is a dropout; the tone must be the member's);
 *  - lag: how far each track's captured audio trails the recording clock (dvrec: elapsedMs − activeMs from
 *    its --json status; baseline: elapsed − PCM written), and whether that grows over the step;
 *  - CPU seconds per speaker-hour of the recorder's whole process tree (/proc utime+stime, steady window),
 *    peak RSS (VmHWM) and RSS over time; the simulator's CPU over the same window.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { GroundTruth, Scenario, SimMember } from '../src/simulator/scenario.ts';
import type { InteractRequest } from '../src/simulator/app.ts';
import type { FromSim, ToSim } from './sim-process.ts';
import { ProcSampler } from './proc.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const GUILD = '100000000000000001';
const CHANNEL = '100000000000000002';
const BOT = '100000000000000003';
const TOKEN = 'MTAwMDAwMDAwMDAwMDAwMDAz.bench-token.abcdefghijklmnop';
const BLOCK = 960;

export type RecorderKind = 'dvrec' | 'baseline';

export interface StepOptions {
  kind: RecorderKind;
  speakers: number;
  seconds: number;
  dave: boolean;
  workDir: string;
  /** Tracks whose audio is decoded and checked (evenly spread). */
  sampleTracks: number;
  log: (line: string) => void;
  /** Write V8 CPU profiles of the recorder (every thread) here (node --cpu-prof). */
  profileDir?: string;
}

export interface StepResult {
  kind: RecorderKind;
  speakers: number;
  seconds: number;
  ok: boolean;
  /** Why it failed (empty when ok). */
  problems: string[];
  tracks: number;
  /** Recorder's own accounting, summed over tracks. */
  received: number;
  lost: number;
  concealed: number;
  late: number;
  undecryptable: number;
  /** Frames missing against the ground truth (baseline), or blocks missing in the checked audio (both). */
  missingFrames: number;
  sampledTracks: number;
  sampledBlocks: number;
  droppedBlocks: number;
  wrongTone: number;
  /** Median over tracks of (recording clock − captured audio), early and late in the step (ms). */
  lagEarlyMs: number;
  lagLateMs: number;
  recorderCpuS: number;
  windowS: number;
  cpuPerSpeakerHour: number;
  /** Share of one core the recorder used in the window. */
  recorderCores: number;
  simCpuS: number;
  simCores: number;
  peakRssMiB: number;
  rssSamples: { t: number; rssMiB: number }[];
  /** The recorder's cores over the steady window by thread name (WorkerThread = pool workers, summed). */
  threadCores: Record<string, number>;
  /** dvrec: stop → process exit (finishing WAV). */
  exitAfterStopS: number | null;
}

/** The recorder's own packet accounting (a dvrec manifest's per-track `packets`), summed over tracks. */
export interface PacketTotals {
  received: number;
  lost: number;
  concealed: number;
  late: number;
  undecryptable: number;
}

export function emptyPacketTotals(): PacketTotals {
  return { received: 0, lost: 0, concealed: 0, late: 0, undecryptable: 0 };
}

/** Adds the `packets` of a manifest's tracks to `sum`. */
export function addTrackPackets(sum: PacketTotals, tracks: readonly { packets: Record<string, number> }[]): void {
  for (const t of tracks) for (const k of Object.keys(sum) as (keyof PacketTotals)[]) sum[k] += t.packets[k] ?? 0;
}

/** The tone member i speaks in the bench's scenarios (neighbours 7 Hz apart, told apart by checkAudio). */
export function tone(i: number): number {
  return 200 + 7 * (i % 64);
}

/** N members, all in the channel from the start, each speaking one tone continuously for the whole step. */
export function capacityScenario(n: number, seconds: number, dave: boolean): Scenario {
  const members: SimMember[] = Array.from({ length: n }, (_, i) => ({
    userId: String(300000000000000000n + BigInt(i)),
    username: `member${i}`,
    signal: { kind: 'tone', hz: tone(i) },
    spurts: [{ atMs: 500, durationMs: (seconds + 60) * 1000 }],
  }));
  return { seed: 42, guildId: GUILD, channelId: CHANNEL, botUserId: BOT, token: TOKEN, dave, members };
}

export interface SimHandle {
  child: ChildProcess;
  apiUrl: string;
  caCertPath: string;
  sessionStart: Promise<number>;
  truth(): Promise<GroundTruth>;
  /** A member types a slash command; resolves with what the bot answered (the bot bench). */
  interact(req: InteractRequest): Promise<string>;
  close(): Promise<void>;
}

export async function startSimChild(scenario: Scenario, log: (l: string) => void): Promise<SimHandle> {
  const child = fork(join(HERE, 'sim-process.ts'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let onSession: (ms: number) => void = () => {};
  const sessionStart = new Promise<number>((r) => (onSession = r));
  let truthWaiter: ((t: GroundTruth) => void) | null = null;
  const interactions = new Map<number, { resolve: (c: string) => void; reject: (e: Error) => void }>();
  let interactionId = 0;
  const ready = new Promise<{ apiUrl: string; caCertPath: string }>((resolve, reject) => {
    child.on('message', (m: FromSim) => {
      if (m.type === 'ready') resolve(m);
      else if (m.type === 'session-start') onSession(m.wallMs);
      else if (m.type === 'truth') truthWaiter?.(m.truth);
      else if (m.type === 'interacted') {
        const w = interactions.get(m.id);
        interactions.delete(m.id);
        if (m.error !== undefined) w?.reject(new Error(m.error));
        else w?.resolve(m.content ?? '');
      }
      else if (m.type === 'warning') log(`    simulator: ${m.message}`);
      else if (m.type === 'error') reject(new Error(`simulator: ${m.message}`));
    });
    child.once('exit', (code) => reject(new Error(`simulator exited (${code})`)));
  });
  child.send({ type: 'start', scenario } satisfies ToSim);
  const r = await ready;
  return {
    child,
    apiUrl: r.apiUrl,
    caCertPath: r.caCertPath,
    sessionStart,
    truth: () =>
      new Promise<GroundTruth>((resolve) => {
        truthWaiter = resolve;
        child.send({ type: 'truth' } satisfies ToSim);
      }),
    interact: (req) =>
      new Promise<string>((resolve, reject) => {
        const id = ++interactionId;
        interactions.set(id, { resolve, reject });
        child.send({ type: 'interact', id, req } satisfies ToSim);
      }),
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.send({ type: 'close' } satisfies ToSim);
      }),
  };
}

/** Newest mtime of the .ts files under `dir` (recursive). */
function newestTs(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestTs(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * The dvrec entry point: the compiled CLI when `npm run bench` has just built it, else the sources.
 * dist/ counts as fresh only if it is newer than EVERY source file (bin/ and src/): comparing with bin/dvrec.ts
 * alone once benchmarked a stale dist/ that predated a fix in src/receiver (`node bench/run.ts` does not build).
 */
export function dvrecEntry(): string {
  const dist = join(ROOT, 'dist', 'bin', 'dvrec.js');
  const src = join(ROOT, 'bin', 'dvrec.ts');
  if (existsSync(dist) && statSync(dist).mtimeMs >= Math.max(newestTs(join(ROOT, 'bin')), newestTs(join(ROOT, 'src')))) return dist;
  return src;
}

/** Reads the left channel of a 16-bit stereo WAV (44-byte header) or raw s16le stereo PCM. */
export function readLeft(path: string, offset: number): Int16Array {
  const buf = readFileSync(path);
  const frames = Math.floor((buf.length - offset) / 4);
  const out = new Int16Array(frames);
  for (let i = 0; i < frames; i++) out[i] = buf.readInt16LE(offset + i * 4);
  return out;
}

function blockRms(x: Int16Array, from: number): number {
  let s = 0;
  for (let i = from; i < from + BLOCK; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s / BLOCK);
}

function goertzel(x: Int16Array, from: number, n: number, hz: number): number {
  const c = 2 * Math.cos((2 * Math.PI * hz) / 48_000);
  let s1 = 0;
  let s2 = 0;
  for (let i = from; i < from + n && i < x.length; i++) {
    const s0 = x[i]! + c * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return (2 * Math.sqrt(Math.max(0, s1 * s1 + s2 * s2 - c * s1 * s2))) / n;
}

/**
 * Checks one track's audio. The reference level is the track's own loud blocks (90th percentile of 20 ms
 * block RMS: the codec renders steady sines of different pitches at different levels). From the onset
 * (first block at ≥ 50 % of it) to `endSample`, a block under 10 % of it is a dropout. The member's own tone
 * must dominate its neighbours' (±7 Hz, 1 s window: every integer frequency is bin-centred).
 */
export function checkAudio(x: Int16Array, hz: number, endSample: number): { blocks: number; dropped: number; wrongTone: boolean; onset: number } {
  const end = Math.min(endSample, x.length);
  const levels: number[] = [];
  for (let s = 0; s + BLOCK <= end; s += BLOCK) levels.push(blockRms(x, s));
  const sorted = [...levels].sort((a, b) => a - b);
  const ref = sorted[Math.floor(sorted.length * 0.9)] ?? 0;
  if (ref < 100) return { blocks: 0, dropped: 0, wrongTone: true, onset: -1 };
  const first = levels.findIndex((l) => l >= ref * 0.5);
  let blocks = 0;
  let dropped = 0;
  const where: number[] = [];
  for (let b = first + 1; b < levels.length; b++) {
    blocks++;
    if (levels[b]! < ref * 0.1) {
      dropped++;
      if (where.length < 20) where.push(b * 20);
    }
  }
  if (dropped && process.env.DVREC_BENCH_DEBUG) process.stderr.write(`    silent blocks at ms ${where.join(',')} (onset ${first * 20} ms, end ${Math.round(end / 48)} ms)\n`);
  const onset = first * BLOCK;
  const mid = Math.max(0, Math.floor((onset + end) / 2) - 24_000);
  // Whose tone it is: the strongest frequency within ±10 Hz of the member's must be the member's, allowing for
  // dvrec's drift correction, which resamples a track by up to 0.52 % while it moves its anchor
  // (src/sinks/clock.ts; a talk spurt's anchor is taken over 250 ms so that a congested start rarely needs it, but
  // a step may still catch a track mid-correction). The neighbours are 7 Hz (≥ 1.2 %) away, so a ±0.6 % tolerance
  // still tells them apart.
  let own = 0;
  let peakHz = hz;
  for (let f = hz - 10; f <= hz + 10; f += 0.5) {
    const v = goertzel(x, mid, 48_000, f);
    if (v > own) [own, peakHz] = [v, f];
  }
  const other = Math.max(goertzel(x, mid, 48_000, hz - 7), goertzel(x, mid, 48_000, hz + 7));
  const mine = Math.abs(peakHz - hz) <= Math.max(1, hz * 0.006);
  return { blocks, dropped, wrongTone: !(mine && own > 4 * other && own > ref * 0.5), onset };
}

/** CPU seconds of one process's threads, summed by thread name (/proc/<pid>/task/<tid>/comm and stat). */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime, stime: fields 14 and 15 (f[11], f[12]), in USER_HZ (100) ticks.
      out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / 100);
    } catch {
      /* thread ended */
    }
  }
  return out;
}

function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Runs one step: starts a simulator and a recorder, records `seconds`, checks the output. */
export async function runStep(o: StepOptions): Promise<StepResult> {
  const out = join(o.workDir, `${o.kind}-${o.speakers}`);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(dirname(out), { recursive: true });
  const scenario = capacityScenario(o.speakers, o.seconds, o.dave);
  const sim = await startSimChild(scenario, o.log);
  const simSampler = new ProcSampler(sim.child.pid!, 1000);
  const env = {
    ...process.env,
    DISCORD_TOKEN: TOKEN,
    DVREC_API_URL: sim.apiUrl,
    NODE_EXTRA_CA_CERTS: sim.caCertPath,
    NO_COLOR: '1',
    ...(o.profileDir ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${o.profileDir}`.trim() } : {}),
  };
  // No --duration: the recorder is stopped with SIGINT (a clean stop for both) `seconds` after the simulator's
  // members start speaking. Joining a large DAVE group takes the simulator a while, so a fixed duration from
  // the recorder's t=0 would measure mostly setup. The duration given is only a safety net.
  const safety = String(o.seconds + 600);
  const args =
    o.kind === 'dvrec'
      ? [dvrecEntry(), 'record', '--guild', GUILD, '--channel', CHANNEL, '--out', out, '--duration', `${safety}s`, '--json']
      : [join(HERE, 'baseline.ts'), '--guild', GUILD, '--channel', CHANNEL, '--out', out, '--duration', safety];
  const spawnPerf = performance.now();
  const rec = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const sampler = new ProcSampler(rec.pid!, 1000);
  let stderr = '';
  rec.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));

  // Lag points: (recording-clock ms, per-track lag ms).
  const lagPoints: { perf: number; lag: number }[] = [];
  type ManifestLite = { startedAt: string; durationMs: number; tracks: { userId: string; file: string; startOffsetMs: number; packets: Record<string, number> }[] };
  type BaselineDone = { wallMs: number; t0WallMs: number; tracks: { userId: string; packets: number; bytes: number; firstWallMs: number }[] };
  // Filled by the stdout listener (a holder object: tsc does not see assignments made in callbacks).
  const got: { manifest: ManifestLite | null; baselineDone: BaselineDone | null } = { manifest: null, baselineDone: null };
  // Per-thread CPU of the recorder at the start and end of the steady window (where the time goes, by thread).
  // (A holder object: tsc does not see assignments made in callbacks.)
  const threads: { a: { t: number; cpu: Map<string, number> } | null; b: { t: number; cpu: Map<string, number> } | null } = { a: null, b: null };
  // performance.now() of: the members' first packets (simulator session start), and the SIGINT (stop).
  const times: { session: number | null; kill: number | null } = { session: null, kill: null };
  const lines = createInterface({ input: rec.stdout! });
  lines.on('line', (line) => {
    let ev: Record<string, unknown>;
    try {
      ev = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (o.kind === 'dvrec') {
      if (ev.event === 'status') {
        const s = ev as unknown as { elapsedMs: number; tracks: { activeMs: number; received: number }[] };
        const lags = s.tracks.filter((t) => t.received > 0).map((t) => s.elapsedMs - t.activeMs);
        if (lags.length) lagPoints.push({ perf: performance.now(), lag: median(lags) });
      }
      if (ev.event === 'done' && ev.manifest) got.manifest = ev.manifest as ManifestLite;
    } else {
      if (ev.event === 'status') {
        const s = ev as unknown as { elapsedMs: number; tracks: { bytes: number }[] };
        // Continuous speech: PCM written should grow with the clock; what it trails by is the lag
        // (plus the fixed delay before the member's first packet, which cancels in the growth).
        const lags = s.tracks.map((t) => s.elapsedMs - t.bytes / 192);
        if (lags.length) lagPoints.push({ perf: performance.now(), lag: median(lags) });
      }
      if (ev.event === 'done') {
        got.baselineDone = ev as unknown as BaselineDone;
      }
    }
  });
  void sim.sessionStart.then(() => {
    times.session = performance.now();
    o.log(`    ${o.kind} ${o.speakers}: members speaking ${((times.session - spawnPerf) / 1000).toFixed(1)} s after the recorder started`);
    setTimeout(() => (threads.a = { t: performance.now(), cpu: threadCpu(rec.pid!) }), 5000).unref();
    setTimeout(() => (threads.b = { t: performance.now(), cpu: threadCpu(rec.pid!) }), (o.seconds - 0.5) * 1000).unref();
    setTimeout(() => {
      times.kill = performance.now();
      rec.kill('SIGINT');
    }, (o.seconds + 0.5) * 1000).unref();
  });
  const exitCode = await new Promise<number>((resolve) => {
    const guard = setTimeout(() => rec.kill('SIGKILL'), (o.seconds + 600) * 1000);
    // 'close', not 'exit': the last stdout lines (the done event with a manifest of hundreds of tracks, ~0.3 MB)
    // may still be in the pipe when the process has exited.
    rec.once('close', (code) => {
      clearTimeout(guard);
      resolve(code ?? -1);
    });
  });
  const exitPerf = performance.now();
  sampler.stop();
  simSampler.stop();
  const truth = await sim.truth();
  await sim.close();

  const problems: string[] = [];
  if (exitCode !== 0 && exitCode !== 130) problems.push(`recorder exited ${exitCode}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);

  // Steady window: from 5 s after the members started speaking to 1 s before the recorder stopped.
  const startS = (times.session ?? spawnPerf) / 1000 + 5;
  const stopS = (times.kill ?? exitPerf) / 1000 - 1;
  const rc = sampler.cpuBetween(startS, stopS);
  const sc = simSampler.cpuBetween(startS, stopS);
  const speakerHours = (o.speakers * rc.wallS) / 3600;

  const pk = emptyPacketTotals();
  let missingFrames = 0;
  let tracks = 0;
  let sampledBlocks = 0;
  let droppedBlocks = 0;
  let wrongTone = 0;
  let sampled = 0;
  const indexOf = new Map(scenario.members.map((m, i) => [m.userId, i]));
  const pick = (ids: string[]): string[] => {
    if (ids.length <= o.sampleTracks) return ids;
    return Array.from({ length: o.sampleTracks }, (_, k) => ids[Math.floor((k * ids.length) / o.sampleTracks)]!);
  };

  if (o.kind === 'dvrec') {
    const m = got.manifest;
    if (!m) problems.push(`no manifest (exit ${exitCode}${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-2).join(' | ')}` : ''})`);
    else {
      tracks = m.tracks.length;
      addTrackPackets(pk, m.tracks);
      // The last ~0.5 s before stop may still sit in jitter buffers / in flight: not judged.
      const endSample = Math.floor(((m.durationMs - 500) * 48_000) / 1000);
      for (const id of pick(m.tracks.map((t) => t.userId))) {
        const t = m.tracks.find((x) => x.userId === id)!;
        const x = readLeft(join(out, t.file), 44);
        const r = checkAudio(x, tone(indexOf.get(id) ?? 0), endSample);
        sampled++;
        sampledBlocks += r.blocks;
        droppedBlocks += r.dropped;
        if (r.wrongTone) wrongTone++;
      }
    }
  } else {
    const d = got.baselineDone;
    if (!d) problems.push('baseline reported nothing');
    else {
      tracks = d.tracks.length;
      // What each member sent between the baseline's first packet from them and its stop: the member speaks
      // continuously, so every 20 ms is a frame. Its truth says when its spurt began.
      for (const t of d.tracks) {
        pk.received += t.packets;
        const mt = truth.members.find((x) => x.userId === t.userId);
        const spurtStart = mt?.spurts[0]?.startWallMs ?? t.firstWallMs;
        const from = Math.max(spurtStart, t.firstWallMs);
        const expected = Math.floor((d.wallMs - from) / 20);
        const got = t.bytes / (BLOCK * 4);
        // 3 frames of slack: the ones in flight at stop.
        missingFrames += Math.max(0, expected - got - 3);
      }
      const files = readdirSync(out).filter((f) => f.endsWith('.pcm'));
      for (const f of pick(files.map((x) => x.replace(/\.pcm$/, '')))) {
        const x = readLeft(join(out, `${f}.pcm`), 0);
        const r = checkAudio(x, tone(indexOf.get(f) ?? 0), x.length);
        sampled++;
        sampledBlocks += r.blocks;
        droppedBlocks += r.dropped;
        if (r.wrongTone) wrongTone++;
      }
    }
  }
  if (tracks < o.speakers) problems.push(`${o.speakers - tracks} members have no track`);
  if (pk.lost + pk.concealed + pk.undecryptable > 0) problems.push(`lost ${pk.lost}, concealed ${pk.concealed}, undecryptable ${pk.undecryptable}`);
  if (missingFrames > 0) problems.push(`${missingFrames} frames missing vs ground truth`);
  if (droppedBlocks > 0) problems.push(`${droppedBlocks} silent 20 ms blocks in ${sampled} checked tracks`);
  if (wrongTone > 0) problems.push(`${wrongTone} checked tracks without their member's tone`);

  // Lag growth: median lag in the first third of the steady part vs the last third.
  const steady = lagPoints.filter((p) => p.perf / 1000 >= startS && p.perf / 1000 <= stopS + 1);
  const third = Math.max(1, Math.floor(steady.length / 3));
  const lagEarlyMs = median(steady.slice(0, third).map((p) => p.lag));
  const lagLateMs = median(steady.slice(-third).map((p) => p.lag));
  if (lagLateMs - lagEarlyMs > 500) problems.push(`lag grew from ${lagEarlyMs.toFixed(0)} to ${lagLateMs.toFixed(0)} ms`);

  const threadCores: Record<string, number> = {};
  const ta = threads.a;
  const tb = threads.b;
  if (ta && tb) {
    const wall = (tb.t - ta.t) / 1000;
    for (const [name, b] of tb.cpu) threadCores[name] = (b - (ta.cpu.get(name) ?? 0)) / wall;
    const shown = Object.entries(threadCores).filter(([, c]) => c >= 0.005).sort((a, b) => b[1] - a[1]);
    o.log(`    threads (cores): ${shown.map(([n, c]) => `${n} ${c.toFixed(3)}`).join(', ')}`);
  }
  const peakRssMiB = Math.max(0, ...sampler.samples.map((s) => s.hwmMiB));
  const t0 = sampler.samples[0]?.t ?? 0;
  if (!process.env.DVREC_BENCH_KEEP) rmSync(out, { recursive: true, force: true });
  return {
    kind: o.kind,
    speakers: o.speakers,
    seconds: o.seconds,
    ok: problems.length === 0,
    problems,
    tracks,
    ...pk,
    missingFrames,
    sampledTracks: sampled,
    sampledBlocks,
    droppedBlocks,
    wrongTone,
    lagEarlyMs,
    lagLateMs,
    recorderCpuS: rc.cpuS,
    windowS: rc.wallS,
    cpuPerSpeakerHour: rc.cpuS / speakerHours,
    recorderCores: rc.cpuS / rc.wallS,
    simCpuS: sc.cpuS,
    simCores: sc.cpuS / sc.wallS,
    peakRssMiB,
    rssSamples: sampler.samples.map((s) => ({ t: s.t - t0, rssMiB: s.rssMiB })),
    threadCores,
    exitAfterStopS: times.kill !== null ? (exitPerf - times.kill) / 1000 : null,
  };
}
