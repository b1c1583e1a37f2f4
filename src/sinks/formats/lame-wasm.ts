/**
 * The embedded LAME (wasm-media-encoders), compiled once per thread: every encoder instance of the thread shares
 * the compiled code, so opening one costs an instantiation (~1 ms) instead of decoding and compiling the
 * 750 kB module again (~25 ms). Used by the after-stop encoder (encoders.ts) and the streaming one
 * (../mp3-stream.ts), which therefore run the very same build with the same settings.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { WasmMediaEncoder } from 'wasm-media-encoders';
import type { Mp3Bitrate } from './mp3-params.ts';

/** A compiled WebAssembly.Module, as createEncoder takes it (tsconfig's lib has no WebAssembly typings). */
type WasmModule = Parameters<typeof import('wasm-media-encoders').createEncoder>[1];
const WA = (globalThis as unknown as { WebAssembly: { compile(bytes: Uint8Array): Promise<WasmModule> } }).WebAssembly;

let modulePromise: Promise<WasmModule> | null = null;
function mp3Module(): Promise<WasmModule> {
  modulePromise ??= (async () => {
    const path = createRequire(import.meta.url).resolve('wasm-media-encoders/wasm/mp3');
    return WA.compile(readFileSync(path));
  })();
  return modulePromise;
}

export type LameEncoder = WasmMediaEncoder<'audio/mpeg'>;

/**
 * A CBR encoder at exactly `sampleRate` (LAME would otherwise resample low bitrates to a lower rate, e.g.
 * 64 kbps stereo at 48 kHz to 24 kHz, which ffmpeg never does). Callers validate the rate and bitrate against
 * mp3-params.ts.
 */
export async function createLame(o: { channels: 1 | 2; sampleRate: number; bitrateKbps: number }): Promise<LameEncoder> {
  const { createEncoder } = await import('wasm-media-encoders');
  const enc = await createEncoder('audio/mpeg', await mp3Module());
  enc.configure({
    channels: o.channels,
    sampleRate: o.sampleRate,
    bitrate: o.bitrateKbps as Mp3Bitrate,
    outputSampleRate: o.sampleRate as 48_000,
  });
  return enc;
}
