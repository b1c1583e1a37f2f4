/**
 * Helpers for the fault, crash and soak suites: run a real recording (runRecording: discord.js,
 * @discordjs/voice, receiver, worker pool, finisher) against the simulator and measure where sound and
 * silence are in the decoded tracks, compared with the simulator's ground truth.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSimulator, trustSimulatorCertificate, type Simulator } from '../src/simulator/index.ts';
import type { GroundTruth, Scenario, SimMember } from '../src/simulator/scenario.ts';
import { opusLoop } from '../src/simulator/opus-cache.ts';
import { runRecording, type RunHooks as RecordingHooks } from '../src/commands/run-recording.ts';
import type { RecordingPhase, RecordOptions } from '../src/recording-api.ts';
import type { Manifest } from '../src/sinks/capture-layout.ts';
import assert from 'node:assert/strict';
import { BLOCK, CHANNEL, GUILD, TOKEN, TONE_PEAK, msToSample, onsetMs, readWavLeft, toneAmplitude } from './record-fixtures.ts';

export interface Run {
  /** Undefined when runRecording threw (see `error`). */
  manifest?: Manifest;
  error?: unknown;
  truth: GroundTruth;
  dir: string;
  phases: RecordingPhase[];
  warnings: string[];
  /** Decoded left channel per user id (finished WAV tracks). */
  pcm: Map<string, Int16Array>;
  startedAtMs: number;
}

const dirs: string[] = [];
/** Removes every directory made by {@link tempDir}; call from `after()`. */
export function cleanupDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export interface RecordRunOptions extends Partial<RecordOptions> {
  /** Abort (like SIGINT) this long after the recording phase began. */
  stopAtMs?: number;
  hooks?: RecordingHooks;
  /** Called with the simulator once it listens (to inject faults at chosen moments). */
  onSimulator?: (sim: Simulator) => void;
}

/** Records a scenario with the real engine; never throws for a recording error (returned in `error`). */
export async function recordScenario(sc: Scenario, opts: RecordRunOptions = {}): Promise<Run> {
  // Encode the signals' Opus loops before the session starts, so the simulator's send schedule never stalls.
  for (const m of sc.members) opusLoop(m.signal);
  const sim: Simulator = await startSimulator(sc);
  trustSimulatorCertificate(sim);
  opts.onSimulator?.(sim);
  const outDir = opts.outDir ?? join(tempDir('dvrec-faults-'), 'out');
  const phases: RecordingPhase[] = [];
  const warnings: string[] = [];
  const stop = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const { stopAtMs, hooks, onSimulator: _o, ...recordOpts } = opts;
  try {
    let manifest: Manifest | undefined;
    let error: unknown;
    try {
      manifest = await runRecording(
        {
          token: TOKEN, apiUrl: sim.apiUrl, guildId: GUILD, channelId: CHANNEL, outDir, format: 'wav', mono: false,
          bitrateKbps: 128, mix: false, force: false, ...recordOpts,
        },
        {
          phase: (p) => {
            phases.push(p);
            if (p.phase === 'recording' && stopAtMs !== undefined && !timer) timer = setTimeout(() => stop.abort(), stopAtMs);
          },
          status: () => {},
          convertProgress: () => {},
          warn: (w) => warnings.push(w),
        },
        stop.signal,
        hooks,
      );
    } catch (e) {
      error = e;
    }
    const truth = sim.truth();
    const pcm = new Map<string, Int16Array>();
    if (manifest && (recordOpts.format ?? 'wav') === 'wav') for (const t of manifest.tracks) pcm.set(t.userId, readWavLeft(join(outDir, t.file)));
    const started = phases.find((p) => p.phase === 'recording');
    const startedAtMs = manifest ? Date.parse(manifest.startedAt) : started?.phase === 'recording' ? Date.parse(started.startedAt) : NaN;
    return { ...(manifest ? { manifest } : {}), ...(error !== undefined ? { error } : {}), truth, dir: outDir, phases, warnings, pcm, startedAtMs };
  } finally {
    clearTimeout(timer);
    await sim.close();
  }
}

/** What test/fault-child.ts runs: a scenario, plain recording options, and the faults it can inject. */
export interface ChildSpec {
  scenario: Scenario;
  options: Partial<Omit<RecordOptions, 'users'>> & { durationMs?: number; outDir: string };
  /** RecordingHooks.reconnectTimeoutMs. */
  reconnectTimeoutMs?: number;
  /** Close the whole simulator this long after its session start. */
  discordDownAfterMs?: number;
}

/** A {@link Run} as JSON from the child (no PCM: read the files in `dir`). */
export interface ChildRun extends Omit<Run, 'pcm' | 'error'> {
  error?: { message: string; exitCode?: number };
  /** Wall clock (epoch ms) at which the simulator was closed. */
  downAtMs?: number;
}

/** Records in a child process (see test/fault-child.ts for why) and returns its outcome. */
export async function recordInChild(spec: ChildSpec, timeoutMs = 120_000): Promise<ChildRun> {
  const script = fileURLToPath(new URL('./fault-child.ts', import.meta.url));
  const child = spawn(process.execPath, [script, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`fault-child did not exit within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.on('close', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  const line = stdout.trim().split('\n').at(-1) ?? '';
  if (code !== 0 || !line.startsWith('{')) throw new Error(`fault-child failed (exit ${code}): ${stderr}${stdout}`);
  return JSON.parse(line) as ChildRun;
}

export const member = (n: number, hz: number, spurts: [number, number][], extra: Partial<SimMember> = {}): SimMember => ({
  userId: `20000000000000000${n}`,
  username: `member${n}`,
  displayName: `Member ${n}`,
  signal: { kind: 'tone', hz },
  spurts: spurts.map(([atMs, durationMs]) => ({ atMs, durationMs })),
  ...extra,
});

const SR = 48;

/** Peak magnitude of each 1 ms block of `x` between two times (ms). */
function msPeaks(x: Int16Array, fromMs: number, toMs: number): number[] {
  const out: number[] = [];
  for (let ms = Math.max(0, Math.floor(fromMs)); ms < toMs && (ms + 1) * SR <= x.length; ms++) {
    let peak = 0;
    for (let i = ms * SR; i < (ms + 1) * SR; i++) peak = Math.max(peak, Math.abs(x[i]!));
    out.push(peak);
  }
  return out;
}

/**
 * Milliseconds of silence (1 ms blocks whose peak is below `threshold`) between two times. A tone at the
 * simulator's level (±9830) never has a 1 ms block below 5000, so every silent block is missing audio.
 */
export function silentMs(x: Int16Array, fromMs: number, toMs: number, threshold = 300): number {
  return msPeaks(x, fromMs, toMs).filter((p) => p < threshold).length;
}

/** The longest run of silent 1 ms blocks between two times, with where it starts. */
export function longestSilence(x: Int16Array, fromMs: number, toMs: number, threshold = 300): { startMs: number; lengthMs: number } {
  const peaks = msPeaks(x, fromMs, toMs);
  let best = { startMs: fromMs, lengthMs: 0 };
  let run = 0;
  for (let i = 0; i < peaks.length; i++) {
    run = peaks[i]! < threshold ? run + 1 : 0;
    if (run > best.lengthMs) best = { startMs: Math.floor(fromMs) + i - run + 1, lengthMs: run };
  }
  return best;
}

/** Every run of silent 1 ms blocks between two times: where it starts and how long it is. */
export function silentRuns(x: Int16Array, fromMs: number, toMs: number, threshold = 300): { startMs: number; lengthMs: number }[] {
  const peaks = msPeaks(x, fromMs, toMs);
  const runs: { startMs: number; lengthMs: number }[] = [];
  let run = 0;
  for (let i = 0; i <= peaks.length; i++) {
    if (i < peaks.length && peaks[i]! < threshold) run++;
    else if (run > 0) {
      runs.push({ startMs: Math.floor(fromMs) + i - run, lengthMs: run });
      run = 0;
    }
  }
  return runs;
}

/** Time (ms) just past the last sample louder than `threshold` in [fromMs, toMs); null if none. */
export function offsetMs(x: Int16Array, fromMs: number, toMs: number, threshold = 1000): number | null {
  const a = Math.max(0, Math.floor(fromMs * SR));
  const b = Math.min(x.length, Math.ceil(toMs * SR));
  for (let i = b - 1; i >= a; i--) if (Math.abs(x[i]!) > threshold) return (i + 1) / SR;
  return null;
}

/** The longest gap a track fills with FEC/PLC (Track's maxConcealMs default). */
const MAX_CONCEAL_MS = 100;

/**
 * Member 1 speaks across the fault; member 2 (tone `member2Hz`) speaks once after it. Returns the outage figures:
 * the silence measured inside member 1's spurt and the silence the simulator caused (undelivered packets).
 */
export function checkSpanning(run: Run, label: string, member2Hz: number): { silentMs: number; expectedMs: number; errorMs: number; undecryptable: number } {
  const m = run.manifest!;
  assert.ok(m, `${label}: recording finished (${String(run.error)})`);
  const [t1, t2] = [run.truth.members[0]!, run.truth.members[1]!];
  assert.equal(m.tracks.length, 2, `${label}: one track per user`);
  const x1 = run.pcm.get(t1.userId)!;
  const x2 = run.pcm.get(t2.userId)!;
  assert.ok(Math.abs(x1.length - x2.length) <= BLOCK, `${label}: equal lengths`);
  const s = t1.spurts[0]!;
  const start = s.onsetWallMs - run.startedAtMs;
  const end = s.endWallMs - run.startedAtMs;
  const on = onsetMs(x1, start - 100, start + 200);
  assert.ok(on !== null && Math.abs(on - start) <= 20, `${label}: member 1 onset ${on?.toFixed(1)} vs truth ${start.toFixed(1)}`);
  // The tone that spans the fault must END where the truth says: the timeline after the fault is not shifted.
  const off = offsetMs(x1, end - 300, end + 300);
  assert.ok(off !== null && Math.abs(off - end) <= 20, `${label}: member 1 offset ${off?.toFixed(1)} ms vs truth ${end.toFixed(1)} ms`);
  // Outage: the gap in the spurt is the packets the simulator could not deliver plus those delivered but
  // undecryptable (DAVE failures while the new session's group forms, right after the outage), 20 ms each. A gap
  // longer than the track conceals (100 ms, src/sinks/track.ts) is silence of exactly that length, within one
  // frame at its edges; a shorter one is filled, wholly or partly (Opus PLC fades), so at most its length is silent.
  // The frame right before the first decodable packet after the outage may come back from that packet's in-band
  // FEC (counted as `fec`; nothing else is lost in these scenarios): one frame less of silence.
  const packets = m.tracks.find((x) => x.userId === t1.userId)!.packets;
  const undecryptable = packets.undecryptable;
  const recovered = packets.fec ?? 0;
  const silent = silentMs(x1, start + 30, end - 30);
  const expected = (s.packetsLost + undecryptable - recovered) * 20;
  const errorMs = silent - expected;
  const what = `${silent} ms of silence inside the spurt; the simulator dropped ${s.packetsLost} packets, ${undecryptable} were undecryptable and ${recovered} recovered by FEC (${expected} ms)`;
  if (expected > MAX_CONCEAL_MS) assert.ok(Math.abs(errorMs) <= 20, `${label}: ${what}`);
  else assert.ok(silent <= expected + 20, `${label}: ${what}`);
  // Member 2 (after the fault) lands at its true time, and only there.
  const s2 = t2.spurts[0]!;
  const start2 = s2.onsetWallMs - run.startedAtMs;
  const on2 = onsetMs(x2, start2 - 100, start2 + 200);
  assert.ok(on2 !== null && Math.abs(on2 - start2) <= 20, `${label}: member 2 onset ${on2?.toFixed(1)} vs truth ${start2.toFixed(1)}`);
  assert.ok(toneAmplitude(x2, msToSample(start2 + 100), BLOCK, member2Hz) > 0.5 * TONE_PEAK, `${label}: member 2 tone present`);
  assert.ok(silentMs(x2, 0, start2 - 150) >= start2 - 160, `${label}: member 2 silent before speaking`);
  return { silentMs: silent, expectedMs: expected, errorMs, undecryptable };
}
