/**
 * Where the time per packet goes, in isolation: decoding the same real Opus packets (64 kbps stereo 20 ms,
 * FEC on, as Discord clients send) with the decoder the pool uses (libopus in WebAssembly, SIMD build when
 * the CPU has it) and with native libopus (@discordjs/opus), single thread, no I/O.
 */
import opus from '@discordjs/opus';
import { OpusWasm } from '../src/sinks/opus-decoder.ts';
import { encodeLoop } from './long.ts';

const { OpusEncoder } = opus;

export interface DecodeMicro {
  packets: number;
  wasmSimdUsPerPacket: number | null;
  wasmUsPerPacket: number;
  nativeUsPerPacket: number;
}

/** CPU time of this thread (µs) spent in fn: wall time would count other processes on a busy box. */
function time(fn: () => void): number {
  const a = process.threadCpuUsage();
  fn();
  const b = process.threadCpuUsage(a);
  return b.user + b.system;
}

export function decodeMicro(rounds = 8): DecodeMicro {
  const loop = encodeLoop(300); // 250 packets
  const n = loop.length * rounds;
  const wasmRun = (simd: boolean): number => {
    const w = new OpusWasm({ simd });
    const d = w.newDecoder();
    for (const p of loop) d.decode(p); // warm up (JIT, caches)
    return time(() => {
      for (let r = 0; r < rounds; r++) for (const p of loop) d.decode(p);
    }) / n;
  };
  let simd: number | null = null;
  try {
    simd = wasmRun(true);
  } catch {
    simd = null; // no SIMD build / CPU support
  }
  const plain = wasmRun(false);
  const native = new OpusEncoder(48_000, 2);
  for (const p of loop) native.decode(p);
  const nat = time(() => {
    for (let r = 0; r < rounds; r++) for (const p of loop) native.decode(p);
  }) / n;
  return { packets: n, wasmSimdUsPerPacket: simd, wasmUsPerPacket: plain, nativeUsPerPacket: nat };
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(decodeMicro(Number(process.argv[2] ?? 8)));
