/**
 * WAV headers. A capture is already a WAV whose 44-byte header has placeholder sizes, so finishing a
 * stereo track is a header patch; everything else (mono, RF64) streams through {@link WavWriter}.
 *
 * The 4 GiB rule: a RIFF chunk size is a u32, so a plain WAV holds at most 0xFFFFFFFF - 36 bytes of PCM
 * (about 6 h 12 min of 48 kHz stereo, 12 h 25 min mono). Beyond that dvrec writes RF64 (EBU Tech 3306:
 * `RF64` + a `ds64` chunk carrying 64-bit sizes, with the 32-bit fields set to 0xFFFFFFFF), which ffmpeg,
 * sox, Audacity, Reaper and most editors read. RF64 needs a 36-byte ds64 chunk before `fmt `, so a
 * capture that big is copied once behind an 80-byte header instead of patched in place.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { PRIVATE_FILE_MODE } from '../capture-layout.ts';

/** Largest PCM payload a RIFF/WAVE file can describe. */
export const RIFF_MAX_DATA_BYTES = 0xffff_ffff - 36;

export interface WavFormat {
  sampleRate: number;
  channels: number;
}

function fmtChunk(f: WavFormat): Buffer {
  const b = Buffer.alloc(24);
  b.write('fmt ', 0, 'ascii');
  b.writeUInt32LE(16, 4);
  b.writeUInt16LE(1, 8); // PCM
  b.writeUInt16LE(f.channels, 10);
  b.writeUInt32LE(f.sampleRate, 12);
  b.writeUInt32LE(f.sampleRate * f.channels * 2, 16);
  b.writeUInt16LE(f.channels * 2, 20);
  b.writeUInt16LE(16, 22);
  return b;
}

/** The canonical 44-byte header for `dataBytes` of s16le PCM (dataBytes must be <= RIFF_MAX_DATA_BYTES). */
export function wavHeader(f: WavFormat, dataBytes: number): Buffer {
  if (dataBytes > RIFF_MAX_DATA_BYTES) throw new RangeError('PCM too large for RIFF; use rf64Header');
  const h = Buffer.alloc(12);
  h.write('RIFF', 0, 'ascii');
  h.writeUInt32LE(36 + dataBytes, 4);
  h.write('WAVE', 8, 'ascii');
  const d = Buffer.alloc(8);
  d.write('data', 0, 'ascii');
  d.writeUInt32LE(dataBytes, 4);
  return Buffer.concat([h, fmtChunk(f), d]);
}

/** An 80-byte RF64 header (RF64, ds64, fmt, data) for any PCM size. */
export function rf64Header(f: WavFormat, dataBytes: number): Buffer {
  const h = Buffer.alloc(12);
  h.write('RF64', 0, 'ascii');
  h.writeUInt32LE(0xffff_ffff, 4);
  h.write('WAVE', 8, 'ascii');
  const ds = Buffer.alloc(36);
  ds.write('ds64', 0, 'ascii');
  ds.writeUInt32LE(28, 4);
  ds.writeBigUInt64LE(BigInt(dataBytes + 72), 8); // RIFF size: file length - 8
  ds.writeBigUInt64LE(BigInt(dataBytes), 16); // data size
  ds.writeBigUInt64LE(BigInt(dataBytes / (f.channels * 2)), 24); // sample count
  ds.writeUInt32LE(0, 32); // no table entries
  const d = Buffer.alloc(8);
  d.write('data', 0, 'ascii');
  d.writeUInt32LE(0xffff_ffff, 4);
  return Buffer.concat([h, ds, fmtChunk(f), d]);
}

/** The header a `dataBytes` payload needs: plain WAV when it fits, RF64 beyond `limit`. */
export function headerFor(f: WavFormat, dataBytes: number, limit = RIFF_MAX_DATA_BYTES): Buffer {
  return dataBytes > limit ? rf64Header(f, dataBytes) : wavHeader(f, dataBytes);
}

/**
 * Streams s16le PCM into a WAV file whose final size is known up front (every dvrec track's length is
 * decided before encoding starts), so the header is right from the first byte.
 */
export class WavWriter {
  private fh: FileHandle | null = null;
  private readonly path: string;
  private readonly header: Buffer;

  constructor(path: string, f: WavFormat, totalFrames: number, rf64Limit = RIFF_MAX_DATA_BYTES) {
    this.path = path;
    this.header = headerFor(f, totalFrames * f.channels * 2, rf64Limit);
  }

  async write(samples: Int16Array): Promise<void> {
    if (!this.fh) {
      this.fh = await fsp.open(this.path, 'w', PRIVATE_FILE_MODE);
      await this.fh.write(this.header);
    }
    await this.fh.write(new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength));
  }

  async finish(): Promise<void> {
    if (!this.fh) {
      this.fh = await fsp.open(this.path, 'w', PRIVATE_FILE_MODE);
      await this.fh.write(this.header);
    }
    await this.fh.close();
    this.fh = null;
  }
}
