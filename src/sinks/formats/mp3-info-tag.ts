/**
 * The LAME "Info" tag for the MP3s the embedded LAME writes (encoders.ts after stop, ../mp3-stream.ts while
 * recording): one silent MPEG frame at the start of the audio that says how many frames follow, the encoder
 * delay and the end padding, so gapless decoders (ffmpeg, mpg123, browsers, most players) output exactly the
 * samples that went in — the first one at t=0 — and nothing after the last.
 *
 * Why: every MP3 encoder delays its output (LAME: 576 samples, plus the decoder's 529) and pads the last frame.
 * The wasm-media-encoders build writes no tag (LAME's lame_get_lametag_frame() is not exported), so without one
 * a decoder plays the track ~23 ms late. dvrec used to drop that many input samples instead, which loses real
 * audio at the start of a `convert raw.pcm` and is exact at one sample rate only. ffmpeg's MP3s carry this
 * same tag, so both encoders now give files that decode identically aligned.
 *
 * Layout (the "Xing/Info" header, then the LAME extension, as LAME 3.100 and ffmpeg write it), after the frame
 * header and an all-zero side info (a decoder that ignores the tag decodes the frame as silence):
 *   "Info" ‖ flags u32 (frames|bytes|TOC|quality) ‖ frames u32 ‖ bytes u32 ‖ TOC[100] ‖ quality u32 ‖
 *   "LAME3.100" ‖ rev/method u8 ‖ lowpass u8 ‖ peak u32 ‖ gains u16 u16 ‖ flags/ATH u8 ‖ bitrate u8 ‖
 *   delay u12 ‖ padding u12 ‖ misc u8 ‖ mp3gain u8 ‖ preset/surround u16 ‖ music length u32 ‖ music CRC u16 ‖
 *   tag CRC u16 (CRC-16/ARC of every byte of the frame before it)
 * ffmpeg only reads delay and padding when the version string starts with "LAME" (or "Lavf"/"Lavc"); the
 * encoder is LAME 3.100 (it writes that string into its own frames too).
 */
import { LAME_ENCODER_DELAY } from './mp3-params.ts';

const CRC16_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    t[i] = c;
  }
  return t;
})();

/** CRC-16/ARC (polynomial 0x8005 reflected, initial 0): the LAME tag's checksums. */
export function crc16(data: Uint8Array, crc = 0): number {
  for (let i = 0; i < data.length; i++) crc = (crc >>> 8) ^ CRC16_TABLE[(crc ^ data[i]!) & 0xff]!;
  return crc;
}

/** MPEG version bits (header bits 19–20), sample-rate index and Layer III bitrate table per sample rate. */
const VERSIONS = [
  { bits: 3, rates: [44_100, 48_000, 32_000], bitrates: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320], coef: 144, spf: 1152 },
  { bits: 2, rates: [22_050, 24_000, 16_000], bitrates: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160], coef: 72, spf: 576 },
  { bits: 0, rates: [11_025, 12_000, 8_000], bitrates: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160], coef: 72, spf: 576 },
] as const;

/** Bytes of the Info + LAME tag, from "Info" to the tag CRC. */
const TAG_BYTES = 156;

/** Length in bytes and samples of the MPEG Layer III frame whose header is `h`, or null if it is not one. */
export function mp3FrameAt(h: number): { bytes: number; samples: number } | null {
  if ((h >>> 21) !== 0x7ff || ((h >>> 17) & 3) !== 1) return null; // sync, Layer III
  const v = VERSIONS.find((x) => x.bits === ((h >>> 19) & 3));
  const bri = (h >>> 12) & 15;
  const sri = (h >>> 10) & 3;
  if (!v || bri === 0 || bri === 15 || sri === 3) return null;
  const bytes = Math.floor((v.coef * v.bitrates[bri]! * 1000) / v.rates[sri]!) + ((h >>> 9) & 1);
  return { bytes, samples: v.spf };
}

/**
 * One stream's tag: {@link placeholder} is written where the tag goes, {@link observe} sees every audio byte
 * written after it, and {@link frame} gives the finished tag to write over the placeholder.
 */
export class Mp3InfoTag {
  /** Size of the tag frame (= the placeholder's). */
  readonly size: number;
  private readonly header: number;
  private readonly xingAt: number;
  private readonly spf: number;
  private readonly bitrateKbps: number;
  private frames = 0;
  private audioBytes = 0;
  private musicCrc = 0;
  /** Bytes left of the frame being read, and a header split between two writes. */
  private left = 0;
  private partial: number[] = [];

  constructor(sampleRate: number, channels: 1 | 2, bitrateKbps: number) {
    const v = VERSIONS.find((x) => (x.rates as readonly number[]).includes(sampleRate));
    if (!v) throw new RangeError(`an MP3 cannot hold ${sampleRate} Hz`);
    const sideInfo = v.bits === 3 ? (channels === 1 ? 17 : 32) : channels === 1 ? 9 : 17;
    this.xingAt = 4 + sideInfo;
    this.spf = v.spf;
    this.bitrateKbps = bitrateKbps;
    // The smallest bitrate whose frame holds the tag (ffmpeg does the same): the tag frame's bitrate need not be
    // the stream's, and at low bitrates the stream's frame is too small.
    const need = this.xingAt + TAG_BYTES;
    const sri = (v.rates as readonly number[]).indexOf(sampleRate);
    const bri = v.bitrates.findIndex((b, i) => i > 0 && Math.floor((v.coef * b * 1000) / sampleRate) >= need);
    this.header = ((0x7ff << 21) | (v.bits << 19) | (1 << 17) | (1 << 16) | (bri << 12) | (sri << 10) | ((channels === 1 ? 3 : 1) << 6)) >>> 0;
    this.size = mp3FrameAt(this.header)!.bytes;
  }

  /** A silent frame of the tag's size: what the file holds until {@link frame} is written over it. */
  placeholder(): Buffer {
    const b = Buffer.alloc(this.size);
    b.writeUInt32BE(this.header, 0);
    return b;
  }

  /** Counts the frames of the audio written after the tag (any chunking) and checksums it. */
  observe(bytes: Uint8Array): void {
    this.audioBytes += bytes.length;
    this.musicCrc = crc16(bytes, this.musicCrc);
    let i = 0;
    while (i < bytes.length) {
      if (this.left > 0) {
        const n = Math.min(this.left, bytes.length - i);
        this.left -= n;
        i += n;
        continue;
      }
      this.partial.push(bytes[i++]!);
      if (this.partial.length < 4) continue;
      const h = ((this.partial[0]! << 24) | (this.partial[1]! << 16) | (this.partial[2]! << 8) | this.partial[3]!) >>> 0;
      this.partial = [];
      const f = mp3FrameAt(h);
      if (!f) throw new Error(`MP3 stream out of sync after ${this.frames} frames`);
      this.frames++;
      this.left = f.bytes - 4;
    }
  }

  /** The finished tag for a stream made from `inputSamples` samples per channel. */
  frame(inputSamples: number): Buffer {
    if (this.left > 0 || this.partial.length > 0) throw new Error('MP3 stream ends inside a frame');
    const padding = this.frames * this.spf - LAME_ENCODER_DELAY - inputSamples;
    if (padding < 0 || padding > 0xfff) throw new Error(`MP3 end padding ${padding} out of range (${this.frames} frames for ${inputSamples} samples)`);
    const b = this.placeholder();
    let o = this.xingAt;
    b.write('Info', o, 'latin1');
    b.writeUInt32BE(0x0f, o + 4); // frames, bytes, TOC, quality present
    b.writeUInt32BE(this.frames, o + 8);
    const total = this.size + this.audioBytes;
    b.writeUInt32BE(total >>> 0, o + 12);
    // TOC: CBR, so byte position grows linearly with time.
    for (let i = 0; i < 100; i++) b[o + 16 + i] = Math.floor((i * 256) / 100);
    b.writeUInt32BE(0, o + 116); // quality: not stated
    o += 120;
    b.write('LAME3.100', o, 'latin1');
    b[o + 9] = 0x01; // tag revision 0, method 1 = CBR
    // lowpass, peak, radio/audiophile gain, encoding flags + ATH: 0 = unknown
    b[o + 20] = Math.min(255, this.bitrateKbps); // CBR: the bitrate
    b.writeUIntBE((LAME_ENCODER_DELAY << 12) | padding, o + 21, 3);
    // misc, MP3 gain, preset/surround: 0
    b.writeUInt32BE(total >>> 0, o + 28);
    b.writeUInt16BE(this.musicCrc, o + 32);
    b.writeUInt16BE(crc16(b.subarray(0, o + 34)), o + 34);
    return b;
  }
}
