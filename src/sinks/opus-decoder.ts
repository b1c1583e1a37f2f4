/**
 * Stateful Opus decoding with packet-loss concealment (PLC) and in-band FEC.
 *
 * Why not @discordjs/opus: its `decode()` hard-codes `decode_fec = 0` (no FEC at all) and its PLC path
 * always yields 120 ms. We need both, per 20 ms frame. @evan/opus ships libopus compiled to WebAssembly
 * whose raw exports include `opus_decode(st, data, len, pcm, frame_size, decode_fec)`; its JS wrapper does
 * not expose FEC/PLC either, so we instantiate the .wasm ourselves and call the exports directly.
 *
 * One {@link OpusWasm} instance per thread; many {@link OpusStreamDecoder}s live in its linear memory.
 * Not thread-safe by design: a worker owns its instance.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { CHANNELS, FRAME_SAMPLES, MAX_FRAME_SAMPLES, MAX_PACKET_BYTES, SAMPLE_RATE } from './types.ts';
import { loadNativeOpus, nativeOpusUnavailable } from './opus-native.ts';

/** The slice of the WebAssembly JS API we use (tsconfig's lib has no DOM/WebAssembly typings). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
  validate(bytes: Uint8Array): boolean;
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface OpusExports {
  memory: { buffer: ArrayBuffer };
  malloc(size: number): number;
  free(ptr: number): void;
  opus_strerror(code: number): number;
  opus_decoder_get_size(channels: number): number;
  opus_decoder_init(st: number, rate: number, channels: number): number;
  opus_decode(st: number, data: number, len: number, pcm: number, frameSize: number, decodeFec: number): number;
  opus_decoder_ctl_set(st: number, cmd: number, arg: number): number;
  _initialize?: () => void;
}

const OPUS_RESET_STATE = 4028;

/** A detected SIMD-capable engine loads simd.wasm, else the scalar build (same test as @evan/opus). */
function simdSupported(): boolean {
  return WA.validate(
    Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 10, 9, 1, 7, 0, 65, 0, 253, 15, 26, 11),
  );
}

function wasmDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@evan/opus/package.json')), 'wasm');
}

/**
 * One RTP stream's stateful decoder. Every method returns a view of s16le interleaved stereo PCM that is only
 * valid until the next call on ANY decoder of the same {@link OpusDecoders} (copy it before decoding again), or
 * null when libopus rejects the packet.
 */
export interface StreamDecoder {
  /** Normal decode of one packet (any frame size up to 120 ms). */
  decode(packet: Uint8Array): Uint8Array | null;
  /** Recovers the frame lost right before `next` from `next`'s in-band FEC (PLC when it carries none). */
  decodeFec(next: Uint8Array, frameSamples?: number): Uint8Array | null;
  /** Packet-loss concealment: `frameSamples` of plausible continuation. */
  conceal(frameSamples?: number): Uint8Array | null;
  /** Forget history (e.g. after a long pause). */
  reset(): void;
  /** Releases the state; the decoder is unusable afterwards. */
  free(): void;
}

/** A thread's source of decoders: native libopus when built, else libopus in WebAssembly (same output). */
export interface OpusDecoders {
  readonly kind: 'native' | 'wasm';
  newDecoder(): StreamDecoder;
}

/**
 * The decoders a worker uses: native unless DVREC_OPUS=wasm (or the addon is missing); DVREC_OPUS=native makes a
 * missing addon an error instead of a silent fallback (CI and benchmarks use it to be sure what they measure).
 */
export function createOpusDecoders(): OpusDecoders {
  const want = process.env.DVREC_OPUS;
  if (want !== 'wasm') {
    const native = loadNativeOpus();
    if (native !== null) return native;
    if (want === 'native') throw new Error(`DVREC_OPUS=native, but the native Opus decoder is ${nativeOpusUnavailable}`);
  }
  return new OpusWasm();
}

/** One libopus WebAssembly instance with shared scratch buffers for input packets and output PCM. */
export class OpusWasm implements OpusDecoders {
  readonly kind = 'wasm' as const;
  readonly simd: boolean;
  private readonly ex: OpusExports;
  private readonly inPtr: number;
  private readonly outPtr: number;
  private heap: Uint8Array;

  constructor(opts: { simd?: boolean } = {}) {
    this.simd = opts.simd ?? simdSupported();
    const bytes = readFileSync(join(wasmDir(), this.simd ? 'simd.wasm' : 'opus.wasm'));
    const module = new WA.Module(bytes);
    let self: OpusWasm | undefined;
    const noop = (): number => 0;
    const instance = new WA.Instance(module, {
      wasi_snapshot_preview1: { fd_seek: noop, fd_write: noop, fd_close: noop, proc_exit: noop },
      // libopus grows memory when many decoders are allocated: our typed-array views must follow.
      env: { emscripten_notify_memory_growth: () => self?.refreshViews() },
    });
    this.ex = instance.exports as unknown as OpusExports;
    this.ex._initialize?.();
    self = this;
    this.inPtr = this.ex.malloc(MAX_PACKET_BYTES);
    this.outPtr = this.ex.malloc(MAX_FRAME_SAMPLES * CHANNELS * 2);
    this.heap = new Uint8Array(this.ex.memory.buffer);
  }

  private refreshViews(): void {
    this.heap = new Uint8Array(this.ex.memory.buffer);
  }

  /** Bytes of wasm linear memory (for memory accounting). */
  get memoryBytes(): number {
    return this.ex.memory.buffer.byteLength;
  }

  newDecoder(): OpusStreamDecoder {
    return new OpusStreamDecoder(this);
  }

  /** @internal */
  allocDecoder(): number {
    const st = this.ex.malloc(this.ex.opus_decoder_get_size(CHANNELS));
    if (st === 0) throw new Error('opus: out of wasm memory');
    const rc = this.ex.opus_decoder_init(st, SAMPLE_RATE, CHANNELS);
    if (rc < 0) {
      this.ex.free(st);
      throw new Error(`opus: decoder init failed (${rc})`);
    }
    return st;
  }

  /** @internal */
  freeDecoder(st: number): void {
    this.ex.free(st);
  }

  /** @internal */
  reset(st: number): void {
    this.ex.opus_decoder_ctl_set(st, OPUS_RESET_STATE, 0);
  }

  /**
   * @internal Runs opus_decode; returns the number of samples per channel (negative = libopus error).
   * The PCM stays in the shared output buffer until the next call: see {@link pcmView}.
   */
  decode(st: number, data: Uint8Array | null, frameSize: number, fec: boolean): number {
    let len = 0;
    if (data !== null) {
      if (data.length === 0 || data.length > MAX_PACKET_BYTES) return -4; // OPUS_INVALID_PACKET
      this.heap.set(data, this.inPtr);
      len = data.length;
    }
    return this.ex.opus_decode(st, data === null ? 0 : this.inPtr, len, this.outPtr, frameSize, fec ? 1 : 0);
  }

  /** @internal The last decoded PCM (s16le interleaved stereo), valid until the next decode. */
  pcmView(samples: number): Uint8Array {
    return this.heap.subarray(this.outPtr, this.outPtr + samples * CHANNELS * 2);
  }
}

/**
 * One RTP stream's decoder. Opus decoders carry state between frames (prediction, PLC history), so every
 * stream needs its own, fed in order.
 *
 * All methods return a view of s16le interleaved stereo PCM that is only valid until the next call on ANY
 * decoder of the same {@link OpusWasm}; copy it (the capture writer does) before decoding again.
 * They return null if libopus rejects the packet (counted as undecodable by the caller).
 */
export class OpusStreamDecoder implements StreamDecoder {
  private readonly wasm: OpusWasm;
  private st: number;

  constructor(wasm: OpusWasm) {
    this.wasm = wasm;
    this.st = wasm.allocDecoder();
  }

  /** Normal decode of one packet (any frame size up to 120 ms). */
  decode(packet: Uint8Array): Uint8Array | null {
    return this.run(packet, MAX_FRAME_SAMPLES, false);
  }

  /**
   * Recovers the frame that was lost right before `next` from `next`'s in-band FEC (LBRR) data.
   * `frameSamples` must equal the missing duration. Packets without FEC data make libopus fall back to PLC.
   * Decode `next` normally afterwards.
   */
  decodeFec(next: Uint8Array, frameSamples = FRAME_SAMPLES): Uint8Array | null {
    return this.run(next, frameSamples, true);
  }

  /** Packet-loss concealment: synthesises `frameSamples` of plausible continuation. */
  conceal(frameSamples = FRAME_SAMPLES): Uint8Array | null {
    return this.run(null, frameSamples, false);
  }

  /** Forget history (e.g. after a long pause) without reallocating. */
  reset(): void {
    if (this.st !== 0) this.wasm.reset(this.st);
  }

  /** Frees the state in wasm memory; the decoder is unusable afterwards. */
  free(): void {
    if (this.st !== 0) this.wasm.freeDecoder(this.st);
    this.st = 0;
  }

  private run(data: Uint8Array | null, frameSize: number, fec: boolean): Uint8Array | null {
    if (this.st === 0) throw new Error('opus: decoder used after free()');
    const n = this.wasm.decode(this.st, data, frameSize, fec);
    if (n <= 0) return null;
    return this.wasm.pcmView(n);
  }
}
