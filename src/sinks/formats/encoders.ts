/**
 * PCM encoders behind one interface, so a job does not care where bytes go. Each format picks ffmpeg when
 * one was found and an embedded encoder otherwise:
 *   wav  → dvrec itself (streaming, RF64 beyond 4 GiB)
 *   mp3  → ffmpeg libmp3lame, else LAME in WebAssembly (wasm-media-encoders): MP3 always works
 *   flac → ffmpeg, else libFLAC compiled to JS (libflacjs): FLAC always works too
 *   opus → libopus (@discordjs/opus) + dvrec's Ogg writer; only used when there is no packet log to copy
 */
import { createRequire } from 'node:module';
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { UsageError, EncoderError } from '../../errors.ts';
import { WavWriter, RIFF_MAX_DATA_BYTES } from './wav.ts';
import { ffmpegPcmEncoder, FFMPEG_HINT } from './ffmpeg.ts';
import { toPlanarFloat } from './pcm-source.ts';
import { OggOpusPcmEncoder, OPUS_RATES } from './ogg-opus.ts';
import type { AudioFormat } from '../capture-layout.ts';
import { PRIVATE_FILE_MODE } from '../capture-layout.ts';
import { MP3_SAMPLE_RATES, formatBitrates, mp3BitratesAt } from './mp3-params.ts';
import { createLame, type LameEncoder } from './lame-wasm.ts';
import { Mp3InfoTag } from './mp3-info-tag.ts';
import { id3v2Tag } from './id3.ts';

export { MP3_BITRATES, DEFAULT_MP3_BITRATE_KBPS } from './mp3-params.ts';

export interface PcmEncoder {
  write(samples: Int16Array): Promise<void>;
  finish(): Promise<void>;
}

/**
 * Who produced a file. 'lame-wasm-stream' is the same LAME build as 'lame-wasm', run by the pool workers while
 * recording (../mp3-stream.ts): only the tail was encoded after stop.
 */
export type EncoderName = 'dvrec-wav' | 'ffmpeg' | 'lame-wasm' | 'lame-wasm-stream' | 'libflac-js' | 'libopus' | 'opus-copy';

export interface EncoderOptions {
  format: AudioFormat;
  sampleRate: number;
  channels: number;
  totalFrames: number;
  bitrateKbps: number;
  /** ffmpeg binary to use, or null for embedded encoders only. */
  ffmpeg: string | null;
  /** Metadata (TITLE=..., ARTIST=...) where the format carries it. */
  tags?: Record<string, string>;
  /** Test hook: force the RF64 path for small files. */
  rf64Limit?: number;
}

export function openEncoder(out: string, o: EncoderOptions): { encoder: PcmEncoder; name: EncoderName } {
  const tagArgs = Object.entries(o.tags ?? {}).flatMap(([k, v]) => ['-metadata', `${k}=${v}`]);
  switch (o.format) {
    case 'wav':
      return { encoder: new WavWriter(out, o, o.totalFrames, o.rf64Limit ?? RIFF_MAX_DATA_BYTES), name: 'dvrec-wav' };
    case 'mp3':
      if (o.ffmpeg) {
        return {
          encoder: ffmpegPcmEncoder(o.ffmpeg, o, ['-c:a', 'libmp3lame', '-b:a', `${o.bitrateKbps}k`, ...tagArgs, '-f', 'mp3', '-y', out]),
          name: 'ffmpeg',
        };
      }
      return { encoder: new LameWasmEncoder(out, o), name: 'lame-wasm' };
    case 'flac':
      if (o.ffmpeg) {
        return {
          encoder: ffmpegPcmEncoder(o.ffmpeg, o, ['-c:a', 'flac', '-compression_level', '5', ...tagArgs, '-f', 'flac', '-y', out]),
          name: 'ffmpeg',
        };
      }
      return { encoder: new LibFlacEncoder(out, o), name: 'libflac-js' };
    case 'opus':
      if (!OPUS_RATES.includes(o.sampleRate)) {
        throw new UsageError(`Opus needs ${OPUS_RATES.join('/')} Hz input, got ${o.sampleRate} Hz`);
      }
      return {
        encoder: new OggOpusPcmEncoder(out, {
          ...o,
          comments: Object.entries(o.tags ?? {}).map(([k, v]) => `${k}=${v}`),
        }),
        name: 'libopus',
      };
  }
}


/**
 * LAME compiled to WebAssembly: MP3 without any binary on the machine. Every input sample is encoded; the LAME
 * tag in front of the audio (mp3-info-tag.ts) tells decoders to cut the encoder delay and the end padding, so
 * the decoded track starts at t=0 and is exactly as long as the input, as ffmpeg's MP3s are.
 */
class LameWasmEncoder implements PcmEncoder {
  private readonly out: string;
  private readonly o: EncoderOptions;
  private readonly info: Mp3InfoTag;
  private infoAt = 0;
  private frames = 0;
  private fh: FileHandle | null = null;
  private enc: LameEncoder | null = null;

  constructor(out: string, o: EncoderOptions) {
    if (o.channels !== 1 && o.channels !== 2) throw new UsageError('MP3 holds 1 or 2 channels');
    const allowed = mp3BitratesAt(o.sampleRate);
    if (!allowed.length) throw new UsageError(`MP3 cannot hold ${o.sampleRate} Hz (only ${MP3_SAMPLE_RATES.join(', ')})`);
    if (!allowed.includes(o.bitrateKbps)) {
      throw new UsageError(`MP3 bitrate at ${o.sampleRate} Hz must be one of ${formatBitrates(allowed)} kbps`);
    }
    this.out = out;
    this.o = o;
    this.info = new Mp3InfoTag(o.sampleRate, o.channels, o.bitrateKbps);
  }

  private async open() {
    this.enc = await createLame({ channels: this.o.channels as 1 | 2, sampleRate: this.o.sampleRate, bitrateKbps: this.o.bitrateKbps });
    this.fh = await fsp.open(this.out, 'w', PRIVATE_FILE_MODE);
    // Tagged like the ffmpeg path, in the same reserved-size layout as a streamed MP3 (formats/id3.ts).
    if (this.o.tags && Object.keys(this.o.tags).length) {
      const id3 = id3v2Tag(this.o.tags);
      await this.fh.write(id3);
      this.infoAt = id3.length;
    }
    await this.fh.write(this.info.placeholder());
  }

  private async emit(bytes: Uint8Array): Promise<void> {
    if (!bytes.length) return;
    this.info.observe(bytes);
    await this.fh!.write(Buffer.from(bytes));
  }

  async write(samples: Int16Array): Promise<void> {
    if (!this.enc) await this.open();
    this.frames += samples.length / this.o.channels;
    // encode() returns a view into WebAssembly memory, valid until the next call: written out now.
    await this.emit(this.enc!.encode(toPlanarFloat(samples, this.o.channels)));
  }

  async finish(): Promise<void> {
    if (!this.enc) await this.open();
    await this.emit(this.enc!.finalize());
    const tag = this.info.frame(this.frames);
    await this.fh!.write(tag, 0, tag.length, this.infoAt);
    await this.fh!.close();
  }
}

interface LibFlac {
  isReady(): boolean;
  on(ev: 'ready', cb: () => void): void;
  create_libflac_encoder(rate: number, ch: number, bps: number, level: number, total: number, verify: boolean, block: number): number;
  init_encoder_stream(enc: number, write: (d: Uint8Array) => void, meta: (m: FlacMeta) => void): number;
  FLAC__stream_encoder_process_interleaved(enc: number, buf: Int32Array, frames: number): boolean;
  FLAC__stream_encoder_finish(enc: number): boolean;
  FLAC__stream_encoder_delete(enc: number): void;
}
interface FlacMeta { min_framesize: number; max_framesize: number; md5sum: string }

let flacLib: Promise<LibFlac> | null = null;
function loadLibFlac(): Promise<LibFlac> {
  // The asm.js build: the .wasm build resolves its binary with fetch() under Node >= 18 and fails on file paths.
  flacLib ??= new Promise<LibFlac>((resolve, reject) => {
    try {
      const lib = createRequire(import.meta.url)('libflacjs/dist/libflac.js') as LibFlac;
      if (lib.isReady()) resolve(lib);
      else lib.on('ready', () => resolve(lib));
    } catch (e) {
      reject(new EncoderError(`FLAC needs ffmpeg or the libflacjs package: ${FFMPEG_HINT}`, { cause: e }));
    }
  });
  return flacLib;
}

/**
 * libFLAC (compiled to JS) at compression level 5, the reference encoder's default. libFLAC writes STREAMINFO
 * before it has seen the audio; the total length is known up front, and the MD5 and frame sizes it learns
 * at the end are patched into the header afterwards so `flac -t` can verify the file.
 */
class LibFlacEncoder implements PcmEncoder {
  private readonly out: string;
  private readonly o: EncoderOptions;
  private lib: LibFlac | null = null;
  private enc = 0;
  private fh: FileHandle | null = null;
  private pending: Uint8Array[] = [];
  private meta: FlacMeta | null = null;

  constructor(out: string, o: EncoderOptions) {
    if (o.channels < 1 || o.channels > 8) throw new UsageError('FLAC holds 1 to 8 channels');
    this.out = out;
    this.o = o;
  }

  private async open() {
    this.lib = await loadLibFlac();
    this.enc = this.lib.create_libflac_encoder(this.o.sampleRate, this.o.channels, 16, 5, this.o.totalFrames, false, 0);
    if (!this.enc) throw new EncoderError('libFLAC could not create an encoder');
    const status = this.lib.init_encoder_stream(
      this.enc,
      (d) => this.pending.push(d.slice()),
      (m) => { this.meta = m; },
    );
    if (status !== 0) throw new EncoderError(`libFLAC init failed (status ${status})`);
    this.fh = await fsp.open(this.out, 'w', PRIVATE_FILE_MODE);
  }

  private async drain() {
    if (!this.pending.length) return;
    const chunks = this.pending;
    this.pending = [];
    await this.fh!.write(Buffer.concat(chunks));
  }

  async write(samples: Int16Array): Promise<void> {
    if (!this.lib) await this.open();
    const frames = samples.length / this.o.channels;
    if (!this.lib!.FLAC__stream_encoder_process_interleaved(this.enc, Int32Array.from(samples), frames)) {
      throw new EncoderError('libFLAC failed to encode');
    }
    await this.drain();
  }

  async finish(): Promise<void> {
    if (!this.lib) await this.open();
    this.lib!.FLAC__stream_encoder_finish(this.enc);
    this.lib!.FLAC__stream_encoder_delete(this.enc);
    await this.drain();
    const m = this.meta;
    if (m) {
      // STREAMINFO starts at byte 8 ("fLaC" + block header): min/max frame size at 12 and 15 (u24 BE),
      // MD5 of the PCM at 26..41.
      const fs = Buffer.alloc(6);
      fs.writeUIntBE(m.min_framesize, 0, 3);
      fs.writeUIntBE(m.max_framesize, 3, 3);
      await this.fh!.write(fs, 0, 6, 12);
      if (/^[0-9a-f]{32}$/.test(m.md5sum)) await this.fh!.write(Buffer.from(m.md5sum, 'hex'), 0, 16, 26);
    }
    await this.fh!.close();
  }
}
