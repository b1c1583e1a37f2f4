/**
 * Measuring processes and threads through /proc (Linux): CPU time of a process tree, per-thread CPU of this
 * process, peak and current RSS, and a sampler that records RSS over time.
 *
 * Why /proc and not process.cpuUsage(): the bench measures OTHER processes (the `dvrec record` child and
 * everything it spawns, the simulator, the baseline), and splits this process's CPU by thread (pool workers
 * vs. the main thread that feeds them).
 */
import { readFileSync, readdirSync } from 'node:fs';

/** Clock ticks per second for /proc stat times (USER_HZ; 100 on every Linux this runs on). */
const HZ = 100;

interface StatLine {
  pid: number;
  ppid: number;
  utime: number;
  stime: number;
  cutime: number;
  cstime: number;
}

/** Parses /proc/<pid>/stat (the command name may contain spaces and parentheses: split after the last ')'). */
function readStat(path: string): StatLine | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const close = text.lastIndexOf(')');
  const pid = Number(text.slice(0, text.indexOf(' ')));
  const f = text.slice(close + 2).split(' ');
  // f[0] = state (field 3); utime is field 14 → f[11]; stime f[12]; cutime f[13]; cstime f[14]; ppid field 4 → f[1].
  return { pid, ppid: Number(f[1]), utime: Number(f[11]), stime: Number(f[12]), cutime: Number(f[13]), cstime: Number(f[14]) };
}

/** All live descendants of `pid` (children, grandchildren...), from /proc/<pid>/task/<tid>/children. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      let kids = '';
      try {
        kids = readFileSync(`/proc/${p}/task/${t}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const k of kids.trim().split(/\s+/)) {
        if (!k) continue;
        const n = Number(k);
        out.push(n);
        stack.push(n);
      }
    }
  }
  return out;
}

/**
 * CPU seconds (user + system) of a process and all its threads, plus its reaped children (cutime/cstime:
 * e.g. ffmpeg after it exited), plus its live descendants. Call while the process is alive.
 */
export function treeCpuSeconds(pid: number): number {
  const own = readStat(`/proc/${pid}/stat`);
  if (own === null) return NaN;
  let ticks = own.utime + own.stime + own.cutime + own.cstime;
  for (const d of descendants(pid)) {
    const s = readStat(`/proc/${d}/stat`);
    if (s) ticks += s.utime + s.stime;
  }
  return ticks / HZ;
}

/** Per-thread CPU seconds of this process, grouped by thread name (/proc/self/task/<tid>/comm). */
export function threadCpuByName(): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of readdirSync('/proc/self/task')) {
    let name = '?';
    try {
      name = readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    const s = readStat(`/proc/self/task/${t}/stat`);
    if (!s) continue;
    out.set(name, (out.get(name) ?? 0) + (s.utime + s.stime) / HZ);
  }
  return out;
}

/** VmRSS and VmHWM (peak RSS) of a process, in MiB. */
export function memoryMiB(pid: number): { rss: number; hwm: number } {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  } catch {
    return { rss: NaN, hwm: NaN };
  }
}

/** RSS of a process tree (sum over the process and its live descendants), MiB. */
export function treeRssMiB(pid: number): number {
  let sum = memoryMiB(pid).rss;
  for (const d of descendants(pid)) {
    const m = memoryMiB(d).rss;
    if (Number.isFinite(m)) sum += m;
  }
  return sum;
}

export interface Sample {
  /** performance.now() / 1000 at the sample (seconds on this process's monotonic clock). */
  t: number;
  cpuS: number;
  rssMiB: number;
  hwmMiB: number;
}

/**
 * Samples a process (tree) every `everyMs`: CPU seconds so far, RSS, peak RSS. The last good sample is kept
 * even after the process exits (its /proc entry disappears with it), so read figures before it is reaped
 * or rely on `last`.
 */
export class ProcSampler {
  readonly pid: number;
  readonly samples: Sample[] = [];
  private readonly timer: NodeJS.Timeout;
  private peakHwm = 0;

  constructor(pid: number, everyMs = 1000) {
    this.pid = pid;
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  sample(): Sample | null {
    const cpuS = treeCpuSeconds(this.pid);
    const m = memoryMiB(this.pid);
    if (!Number.isFinite(cpuS) || !Number.isFinite(m.rss)) return null;
    if (m.hwm > this.peakHwm) this.peakHwm = m.hwm;
    const s: Sample = { t: performance.now() / 1000, cpuS, rssMiB: m.rss, hwmMiB: m.hwm };
    this.samples.push(s);
    return s;
  }

  get last(): Sample | undefined {
    return this.samples[this.samples.length - 1];
  }

  get peakHwmMiB(): number {
    return this.peakHwm;
  }

  /** CPU seconds between the first sample at or after `fromS` and the last at or before `toS` (performance.now()/1000). */
  cpuBetween(fromS: number, toS: number): { cpuS: number; wallS: number } {
    const a = this.samples.find((s) => s.t >= fromS);
    const b = [...this.samples].reverse().find((s) => s.t <= toS);
    if (!a || !b || b.t <= a.t) return { cpuS: NaN, wallS: NaN };
    return { cpuS: b.cpuS - a.cpuS, wallS: b.t - a.t };
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
