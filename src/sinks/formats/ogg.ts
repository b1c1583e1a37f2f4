/**
 * A minimal Ogg page writer (RFC 3533). Hand-written because no maintained npm package muxes Ogg: the
 * registry's Ogg/Opus packages are decoders, browser recorders that re-encode, or abandoned native bindings,
 * and Ogg paging is ~80 lines. Used by ogg-opus.ts for both the packet copy and the re-encoded mix.
 */
import type { FileHandle } from 'node:fs/promises';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let k = 0; k < 8; k++) r = r & 0x8000_0000 ? (r << 1) ^ 0x04c1_1db7 : r << 1;
    t[i] = r >>> 0;
  }
  return t;
})();

/** Ogg's CRC-32: polynomial 0x04C11DB7, MSB first, initial value 0, no final xor. */
export function oggCrc(data: Uint8Array): number {
  let crc = 0;
  for (let i = 0; i < data.length; i++) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ data[i]!) & 0xff]!) >>> 0;
  return crc >>> 0;
}

const FLAG_CONTINUED = 1;
const FLAG_BOS = 2;
const FLAG_EOS = 4;

/**
 * Collects packets into pages and writes them; one logical stream.
 *
 * Granule positions (RFC 3533 section 6): a page carries the granule of the last packet that COMPLETES on it,
 * or -1 when none does (only a page holding the middle of a packet larger than ~64 KiB). The last packet is
 * always on the end-of-stream page, with the final granule: decoders such as ffmpeg apply Opus end trimming
 * (RFC 7845 section 4.4) only to packets of that page, so a separate empty EOS page would leave the padding
 * of the last frame in the decoded track.
 */
export class OggWriter {
  private readonly fh: FileHandle;
  private readonly serial: number;
  private seq = 0;
  private segments: number[] = [];
  private parts: Uint8Array[] = [];
  private bytes = 0;
  /** Granule of the last packet completed on the page being built; null while none has. */
  private pageGranule: bigint | null = null;
  private continued = false;
  private first = true;
  /** The last packet is held back so end() can put it on the EOS page with the final (trimmed) granule. */
  private held: { data: Uint8Array; granule: bigint; flush: boolean } | null = null;

  constructor(fh: FileHandle, serial: number) {
    this.fh = fh;
    this.serial = serial >>> 0;
  }

  /**
   * Adds a packet that ends at `granule` (for Opus: the total samples decoded once it is played).
   * Pages are cut at ~4 KiB or ~50 packets (about one second of 20 ms frames), which keeps seeking fine-grained.
   */
  async packet(data: Uint8Array, granule: bigint, opts: { flush?: boolean } = {}): Promise<void> {
    if (this.held) await this.commit(this.held.data, this.held.granule, this.held.flush, true);
    this.held = { data, granule, flush: opts.flush ?? false };
  }

  private async commit(data: Uint8Array, granule: bigint, flush: boolean, mayEndPage: boolean): Promise<void> {
    let off = 0;
    // Lacing: 255-byte segments, a final segment < 255 (possibly 0) ends the packet.
    for (;;) {
      const n = Math.min(255, data.length - off);
      // A page holds at most 255 segments; the rest of this packet continues on the next page.
      if (this.segments.length === 255) await this.page(false, off > 0);
      this.segments.push(n);
      this.parts.push(data.subarray(off, off + n));
      this.bytes += n;
      off += n;
      if (n < 255) break;
    }
    this.pageGranule = granule;
    if (mayEndPage && (flush || this.bytes >= 4096 || this.segments.length >= 50)) await this.page(false, false);
  }

  /** Writes the last page, holding the last packet, with the end-of-stream flag and the final granule position. */
  async end(finalGranule: bigint): Promise<void> {
    if (this.held) await this.commit(this.held.data, finalGranule, false, false);
    this.held = null;
    await this.page(true, false);
  }

  /** Writes the page built so far; `packetContinues`: it ends inside a packet that the next page continues. */
  private async page(eos: boolean, packetContinues: boolean): Promise<void> {
    const nseg = this.segments.length;
    const h = Buffer.alloc(27 + nseg);
    h.write('OggS', 0, 'ascii');
    h[4] = 0;
    h[5] = (this.continued ? FLAG_CONTINUED : 0) | (this.first ? FLAG_BOS : 0) | (eos ? FLAG_EOS : 0);
    h.writeBigInt64LE(this.pageGranule ?? -1n, 6);
    h.writeUInt32LE(this.serial, 14);
    h.writeUInt32LE(this.seq++, 18);
    h[26] = nseg;
    for (let i = 0; i < nseg; i++) h[27 + i] = this.segments[i]!;
    const page = Buffer.concat([h, ...this.parts]);
    page.writeUInt32LE(oggCrc(page), 22);
    await this.fh.write(page);
    this.first = false;
    this.continued = packetContinues;
    this.segments = [];
    this.parts = [];
    this.bytes = 0;
    this.pageGranule = null;
  }
}
