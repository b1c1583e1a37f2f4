/**
 * Summarises V8 .cpuprofile files (from `node --cpu-prof`): self time per function, top N, so BENCHMARKS.md
 * can say where the time per packet goes. Usage: node bench/profile-summary.ts FILE... [--top N]
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileRow {
  fn: string;
  selfMs: number;
  share: number;
}

/** Self time per function (name + file), sorted. */
export function summarise(path: string, top = 15): { totalMs: number; idleMs: number; rows: ProfileRow[] } {
  const p = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  let idle = 0;
  p.samples.forEach((id, i) => {
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    const n = byId.get(id)!;
    const name = n.callFrame.functionName || '(anonymous)';
    if (name === '(idle)') {
      idle += dt;
      return;
    }
    total += dt;
    const key = `${name} ${n.callFrame.url ? basename(n.callFrame.url) : ''}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  const rows = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([fn, ms]) => ({ fn, selfMs: ms, share: ms / Math.max(1e-9, total) }));
  return { totalMs: total, idleMs: idle, rows };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const ti = args.indexOf('--top');
  const top = ti >= 0 ? Number(args[ti + 1]) : 15;
  const files = args.filter((a, i) => a !== '--top' && args[i - 1] !== '--top');
  for (const f of files) {
    const s = summarise(f, top);
    console.log(`${basename(f)}: busy ${(s.totalMs / 1000).toFixed(2)} s, idle ${(s.idleMs / 1000).toFixed(2)} s`);
    for (const r of s.rows) console.log(`  ${(r.share * 100).toFixed(1).padStart(5)} %  ${r.selfMs.toFixed(0).padStart(7)} ms  ${r.fn}`);
  }
}
