/**
 * Loads dvrec's native addon (build/Release/dvrec_opus.node: native/opus-fec.c and native/writeback.c, built by
 * `npm install` when a C compiler is present). Everything it offers has a fallback: the WebAssembly decoder
 * (opus-native.ts) and no early writeback (writeback.ts). Loaded once per thread.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's exports (see native/opus-fec.c and native/writeback.c). */
export interface OpusAddon {
  create(): object;
  decode(decoder: object, packet: Uint8Array | null, decodeFec: number, out: Int16Array, frameSize: number): number;
  reset(decoder: object): void;
  version(): string;
  /** Starts writing a file range to disk without waiting (sync_file_range); 0 or an errno. */
  startWriteback(fd: number, offset: number, length: number): number;
}

/** Where `npm install` leaves the addon: <package root>/build/Release/dvrec_opus.node (from src/sinks or dist/src/sinks). */
function addonPath(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'build', 'Release', 'dvrec_opus.node');
    if (existsSync(p)) return p;
    if (existsSync(join(dir, 'package.json'))) return null;
    dir = dirname(dir);
  }
  return null;
}

let cached: OpusAddon | null | undefined;
/** Why the addon is not in use (for `dvrec doctor`), once {@link addon} returned null. */
export let nativeAddonUnavailable = '';

/** The addon, or null when it was not built or does not load here. */
export function addon(): OpusAddon | null {
  if (cached !== undefined) return cached;
  cached = null;
  const p = addonPath();
  if (p === null) nativeAddonUnavailable = 'not built (npm install builds it when a C compiler is present)';
  else {
    try {
      cached = createRequire(import.meta.url)(p) as OpusAddon;
    } catch (e) {
      nativeAddonUnavailable = `does not load: ${(e as Error).message.split('\n')[0]}`;
    }
  }
  return cached;
}
