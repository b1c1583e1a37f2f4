/**
 * Where the time per packet goes, in isolation: decoding the same real Opus packets (64 kbps stereo 20 ms,
 * FEC on, as Discord clients send) with the decoders the pool can use (dvrec's native libopus addon, and libopus
 * in WebAssembly, SIMD build when the CPU has it, the fallback) and with @discordjs/opus (the baseline's native
 * libopus), single thread, no I/O.
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes } from 'node:crypto';
import opus from '@discordjs/opus';
import { OpusWasm } from '../src/sinks/opus-decoder.ts';
import { loadNativeOpus } from '../src/sinks/opus-native.ts';
import { encodeLoop } from './long.ts';

const { OpusEncoder } = opus;

export interface DecodeMicro {
  packets: number;
  wasmSimdUsPerPacket: number | null;
  wasmUsPerPacket: number;
  /** @discordjs/opus (the baseline's decoder). */
  nativeUsPerPacket: number;
  /** dvrec's own native addon (native/opus-fec.c), the pool's decoder where it is built; null when it is not. */
  dvrecNativeUsPerPacket: number | null;
  /** Transport decryption (aes-256-gcm, one decipher per datagram): key passed as a Buffer vs a KeyObject. */
  gcmBufferKeyUs: number;
  gcmKeyObjectUs: number;
}

/** What the receiver pays per datagram to open aes256-gcm, with the key as a Buffer or a KeyObject. */
function gcmMicro(n: number): { buffer: number; keyObject: number } {
  const key = randomBytes(32);
  const ko = createSecretKey(key);
  const nonce = Buffer.alloc(12);
  const aad = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(randomBytes(160)), c.final()]);
  const tag = c.getAuthTag();
  const run = (k: Buffer | ReturnType<typeof createSecretKey>, count: number) => {
    for (let i = 0; i < count; i++) {
      const d = createDecipheriv('aes-256-gcm', k, nonce);
      d.setAAD(aad);
      d.setAuthTag(tag);
      Buffer.concat([d.update(ct), d.final()]);
    }
  };
  run(key, 1000);
  run(ko, 1000);
  return { buffer: time(() => run(key, n)) / n, keyObject: time(() => run(ko, n)) / n };
}

/** CPU time of this thread (µs) spent in fn: wall time would count other processes on a busy box. */
function time(fn: () => void): number {
  const a = process.threadCpuUsage();
  fn();
  const b = process.threadCpuUsage(a);
  return b.user + b.system;
}

export function decodeMicro(rounds = 16): DecodeMicro {
  const loop = encodeLoop(300); // 250 packets
  const n = loop.length * rounds;
  const wasmRun = (simd: boolean): number => {
    const w = new OpusWasm({ simd });
    const d = w.newDecoder();
    // Warm up long enough (~0.3 s) for V8 to tier the hot wasm functions up from Liftoff (its baseline compiler)
    // to TurboFan in the background, as they are in a recording after its first second.
    for (let r = 0; r < 20; r++) for (const p of loop) d.decode(p);
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
  const dvrecNative = loadNativeOpus();
  let own: number | null = null;
  if (dvrecNative) {
    const d = dvrecNative.newDecoder();
    for (let r = 0; r < 4; r++) for (const p of loop) d.decode(p);
    own = time(() => {
      for (let r = 0; r < rounds; r++) for (const p of loop) d.decode(p);
    }) / n;
  }
  const gcm = gcmMicro(n * 2);
  return {
    packets: n, wasmSimdUsPerPacket: simd, wasmUsPerPacket: plain, nativeUsPerPacket: nat, dvrecNativeUsPerPacket: own,
    gcmBufferKeyUs: gcm.buffer, gcmKeyObjectUs: gcm.keyObject,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(decodeMicro(Number(process.argv[2] ?? 8)));
