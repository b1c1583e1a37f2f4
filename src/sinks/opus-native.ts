/**
 * Native libopus (native/opus-fec.c, built by `npm install` when a compiler is present) behind the same
 * interface as the WebAssembly decoder: {@link OpusDecoders.newDecoder} → {@link StreamDecoder}.
 *
 * Same libopus as the wasm build: the same PCM for every decoded and FEC-recovered frame (PLC may differ a little,
 * see test/opus-native.test.ts), for ~1/3 less CPU per packet, which is most of what a recorder spends. Absent
 * addon → `loadNativeOpus()` returns null and the caller uses wasm.
 */
import { CHANNELS, FRAME_SAMPLES, MAX_FRAME_SAMPLES, MAX_PACKET_BYTES } from './types.ts';
import type { OpusDecoders, StreamDecoder } from './opus-decoder.ts';
import { addon, type OpusAddon } from './native-addon.ts';

/** Why the addon is not in use (for `dvrec doctor`), once {@link loadNativeOpus} returned null. */
export { nativeAddonUnavailable as nativeOpusUnavailable } from './native-addon.ts';

/** Native decoders for one thread; null when the addon is unavailable. */
export function loadNativeOpus(): NativeOpus | null {
  const a = addon();
  return a === null ? null : new NativeOpus(a);
}

export class NativeOpus implements OpusDecoders {
  readonly kind = 'native' as const;
  readonly version: string;
  /** Shared output: every decoder of this instance writes here (the same contract as the wasm decoder's view). */
  readonly #out = new Int16Array(MAX_FRAME_SAMPLES * CHANNELS);
  readonly #bytes = new Uint8Array(this.#out.buffer);
  readonly #addon: OpusAddon;

  constructor(a: OpusAddon) {
    this.#addon = a;
    this.version = a.version();
  }

  newDecoder(): StreamDecoder {
    return new NativeStreamDecoder(this.#addon, this.#out, this.#bytes);
  }
}

/** One stream's native decoder state; its PCM lands in the owning {@link NativeOpus}'s shared output buffer. */
class NativeStreamDecoder implements StreamDecoder {
  readonly #addon: OpusAddon;
  readonly #out: Int16Array;
  readonly #bytes: Uint8Array;
  /** The native handle; null after free() (the handle's finalizer releases the state once unreachable). */
  #st: object | null;

  constructor(addon: OpusAddon, out: Int16Array, bytes: Uint8Array) {
    this.#addon = addon;
    this.#out = out;
    this.#bytes = bytes;
    this.#st = addon.create();
  }

  decode(packet: Uint8Array): Uint8Array | null {
    return this.#run(packet, MAX_FRAME_SAMPLES, 0);
  }

  decodeFec(next: Uint8Array, frameSamples = FRAME_SAMPLES): Uint8Array | null {
    return this.#run(next, frameSamples, 1);
  }

  conceal(frameSamples = FRAME_SAMPLES): Uint8Array | null {
    return this.#run(null, frameSamples, 0);
  }

  reset(): void {
    if (this.#st !== null) this.#addon.reset(this.#st);
  }

  free(): void {
    this.#st = null;
  }

  #run(data: Uint8Array | null, frameSize: number, fec: number): Uint8Array | null {
    if (this.#st === null) throw new Error('opus: decoder used after free()');
    if (data !== null && (data.length === 0 || data.length > MAX_PACKET_BYTES)) return null;
    const n = this.#addon.decode(this.#st, data, fec, this.#out, frameSize);
    return n <= 0 ? null : this.#bytes.subarray(0, n * CHANNELS * 2);
  }
}
