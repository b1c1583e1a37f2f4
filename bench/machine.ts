/** The machine a benchmark ran on: what BENCHMARKS.md needs to make its figures reproducible. */
import { cpus, totalmem, release } from 'node:os';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createOpusDecoders } from '../src/sinks/opus-decoder.ts';
import { loadNativeOpus } from '../src/sinks/opus-native.ts';

export interface Machine {
  cpuModel: string;
  cores: number;
  ramGiB: number;
  node: string;
  kernel: string;
  ffmpeg: string | null;
  /** The Opus decoder the pool uses here (DVREC_OPUS and whether the native addon was built decide). */
  opusDecoder: string;
}

export function machine(): Machine {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    // os.cpus() can say just "AMD EPYC" on a VM; /proc/cpuinfo has the same, plus the family/model numbers.
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const fam = /^cpu family\s*:\s*(\d+)/m.exec(info)?.[1];
    const mod = /^model\s*:\s*(\d+)/m.exec(info)?.[1];
    const mhz = /^cpu MHz\s*:\s*([\d.]+)/m.exec(info)?.[1];
    if (fam && mod) model += ` (family ${fam} model ${mod}${mhz ? `, ${Math.round(Number(mhz))} MHz` : ''})`;
  } catch {
    /* not Linux */
  }
  let ffmpeg: string | null = null;
  try {
    const r = spawnSync('ffmpeg', ['-hide_banner', '-version'], { encoding: 'utf8', timeout: 10_000 });
    if (r.status === 0) ffmpeg = r.stdout.split('\n')[0]!.replace(/ Copyright.*/, '');
  } catch {
    /* absent */
  }
  return {
    cpuModel: model,
    cores: cpus().length,
    ramGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kernel: `Linux ${release()}`,
    ffmpeg,
    opusDecoder: createOpusDecoders().kind === 'native' ? `native addon (${loadNativeOpus()?.version ?? 'libopus'})` : 'libopus WebAssembly',
  };
}
