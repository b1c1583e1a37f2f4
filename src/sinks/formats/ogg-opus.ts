/**
 * Ogg Opus (RFC 7845) writers.
 *
 * {@link copyPacketLog}: the `opus` format. The packets Discord sent are copied without re-encoding (no
 * generation loss). Alignment: with pre-skip 0, decoded sample n of the file is sample n of the recording
 * clock, so every packet must start exactly at its logged position. Gaps (pauses, a late joiner's lead-in)
 * are filled with CELT silence frames (TOC + FF FE, 3 bytes each, the frame Discord itself sends) rather than
 * by jumping the granule position: RFC 7845 gives a granule jump mid-stream no meaning, and decoders
 * (libopusfile, ffmpeg, browsers) play packets back to back, so a jump would shift everything after it.
 * Before a member's first packet the fill is empty (PLC) frames instead, see EMPTY_FRAMES for why.
 * Silence frames exist for 2.5/5/10/20 ms, so a gap is filled to within ±1.25 ms (60 samples) of the
 * position; positions are absolute, so this error never accumulates. The last page's granule cuts the
 * stream to exactly the recording's length (end trimming).
 *
 * {@link OggOpusPcmEncoder}: encodes PCM (the mix, or a track whose packet log is missing) with libopus.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { randomInt } from 'node:crypto';
import opus from '@discordjs/opus';
import { OggWriter } from './ogg.ts';
import { opusPacketSamples, SILENCE_FRAMES, EMPTY_FRAMES } from './opus-packet.ts';
import { PACKET_LOG_EPOCH, PRIVATE_FILE_MODE } from '../capture-layout.ts';

const { OpusEncoder } = opus;

/** libopus's encoder delay at 48 kHz (application AUDIO): 2.5 ms + 4 ms delay compensation. */
export const LIBOPUS_PRESKIP = 312;
/** Half the smallest silence frame: the largest misplacement a gap fill can leave. */
const GAP_TOLERANCE = 60;
/** A packet that starts this far before the end of what is already written overlaps it: dropped. */
const OVERLAP_LIMIT = 480;

function opusHead(channels: number, preSkip: number, inputRate: number): Uint8Array {
  const b = Buffer.alloc(19);
  b.write('OpusHead', 0, 'ascii');
  b[8] = 1; // version
  b[9] = channels;
  b.writeUInt16LE(preSkip, 10);
  b.writeUInt32LE(inputRate, 12);
  b.writeInt16LE(0, 16); // output gain
  b[18] = 0; // mapping family 0: mono or stereo
  return b;
}

function opusTags(comments: string[]): Uint8Array {
  const vendor = Buffer.from('dvrec', 'utf8');
  const parts: Buffer[] = [Buffer.from('OpusTags', 'ascii')];
  const u32 = (n: number) => { const x = Buffer.alloc(4); x.writeUInt32LE(n); return x; };
  parts.push(u32(vendor.length), vendor, u32(comments.length));
  for (const c of comments) {
    const s = Buffer.from(c, 'utf8');
    parts.push(u32(s.length), s);
  }
  return Buffer.concat(parts);
}

async function writeHeaders(ogg: OggWriter, channels: number, preSkip: number, rate: number, comments: string[]) {
  // Each header packet must be alone on its page (RFC 7845 section 3).
  await ogg.packet(opusHead(channels, preSkip, rate), 0n, { flush: true });
  await ogg.packet(opusTags(['ENCODER=dvrec', ...comments]), 0n, { flush: true });
}

/**
 * Reads `[u32 position][u16 length][payload]` records, with epoch records for positions past 2^32
 * (capture-layout.ts); a torn last record (crash) is ignored.
 */
export async function* readPacketLog(path: string, onBytes?: (read: number, total: number) => void):
  AsyncGenerator<{ position: number; packet: Uint8Array }> {
  const fh = await fsp.open(path, 'r');
  try {
    const total = (await fh.stat()).size;
    const chunk = Buffer.alloc(1 << 20);
    let carry: Buffer = Buffer.alloc(0);
    let offset = 0;
    let high = 0;
    for (;;) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
      const buf = carry.length ? Buffer.concat([carry, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
      let p = 0;
      while (p + 6 <= buf.length) {
        const len = buf.readUInt16LE(p + 4);
        if (len === PACKET_LOG_EPOCH) {
          high = buf.readUInt32LE(p);
          p += 6;
          continue;
        }
        if (p + 6 + len > buf.length) break;
        yield { position: high * 2 ** 32 + buf.readUInt32LE(p), packet: Uint8Array.prototype.slice.call(buf, p + 6, p + 6 + len) };
        p += 6 + len;
      }
      carry = Buffer.from(buf.subarray(p));
      onBytes?.(offset, total);
    }
  } finally {
    await fh.close();
  }
}

export interface CopyResult {
  packets: number;
  silenceFrames: number;
  dropped: number;
}

/**
 * Writes `out` as Ogg Opus holding the logged packets at their positions, exactly `totalSamples` long.
 * `channels` 1 makes players downmix (the packets stay as sent).
 */
export async function copyPacketLog(opts: {
  pktPath: string | null;
  out: string;
  totalSamples: number;
  channels: 1 | 2;
  comments?: string[];
  onProgress?: (done: number) => void;
}): Promise<CopyResult> {
  const fh: FileHandle = await fsp.open(opts.out, 'w', PRIVATE_FILE_MODE);
  const result: CopyResult = { packets: 0, silenceFrames: 0, dropped: 0 };
  try {
    const ogg = new OggWriter(fh, randomInt(0, 2 ** 32 - 1));
    await writeHeaders(ogg, opts.channels, 0, 48_000, opts.comments ?? []);
    const total = opts.totalSamples;
    let cursor = 0; // samples emitted so far = granule after the last emitted packet
    const emit = async (p: Uint8Array, samples: number) => {
      cursor += samples;
      await ogg.packet(p, BigInt(cursor));
    };
    let heardAny = false;
    const fillTo = async (target: number, overshoot: boolean) => {
      // Before the first packet: empty (PLC) frames keep the decoder fresh, as the capture's decoder was.
      const kinds = heardAny ? SILENCE_FRAMES : EMPTY_FRAMES;
      for (;;) {
        const gap = target - cursor;
        if (overshoot ? gap <= 0 : gap < GAP_TOLERANCE) return;
        const f = kinds.find((s) => s.samples <= gap + GAP_TOLERANCE) ?? kinds[kinds.length - 1]!;
        await emit(f.packet, f.samples);
        result.silenceFrames++;
      }
    };
    if (opts.pktPath) {
      const log = readPacketLog(opts.pktPath, (read, size) => opts.onProgress?.(size ? read / size : 1));
      for await (const { position, packet } of log) {
        const n = opusPacketSamples(packet);
        if (n === 0 || position >= total) { result.dropped++; continue; }
        if (position < cursor - OVERLAP_LIMIT) { result.dropped++; continue; }
        await fillTo(position, false);
        await emit(packet, n);
        heardAny = true;
        result.packets++;
      }
    }
    await fillTo(total, true);
    await ogg.end(BigInt(total));
  } finally {
    await fh.close();
  }
  opts.onProgress?.(1);
  return result;
}

/** Opus can encode at these input rates only. */
export const OPUS_RATES = [8000, 12000, 16000, 24000, 48000];

/** PCM → Ogg Opus with libopus (@discordjs/opus), 20 ms frames, exact length via pre-skip and end trimming. */
export class OggOpusPcmEncoder {
  private readonly out: string;
  private readonly rate: number;
  private readonly channels: number;
  private readonly bitrateKbps: number;
  private readonly comments: string[];
  private readonly totalFrames: number;
  private fh: FileHandle | null = null;
  private ogg: OggWriter | null = null;
  private enc: InstanceType<typeof OpusEncoder> | null = null;
  private buf: Int16Array;
  private fill = 0;
  private packets = 0;
  private readonly frameSize: number;

  constructor(out: string, o: { sampleRate: number; channels: number; bitrateKbps: number; totalFrames: number; comments?: string[] }) {
    if (!OPUS_RATES.includes(o.sampleRate)) throw new RangeError(`Opus cannot encode ${o.sampleRate} Hz`);
    this.out = out;
    this.rate = o.sampleRate;
    this.channels = o.channels;
    this.bitrateKbps = o.bitrateKbps;
    this.comments = o.comments ?? [];
    this.totalFrames = o.totalFrames;
    this.frameSize = o.sampleRate / 50;
    this.buf = new Int16Array(this.frameSize * o.channels);
  }

  private async open(): Promise<void> {
    this.fh = await fsp.open(this.out, 'w', PRIVATE_FILE_MODE);
    this.ogg = new OggWriter(this.fh, randomInt(0, 2 ** 32 - 1));
    this.enc = new OpusEncoder(this.rate, this.channels);
    this.enc.setBitrate(this.bitrateKbps * 1000);
    await writeHeaders(this.ogg, this.channels, LIBOPUS_PRESKIP, this.rate, this.comments);
  }

  private async encodeFrame(): Promise<void> {
    const pkt = this.enc!.encode(Buffer.from(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength));
    this.packets++;
    await this.ogg!.packet(pkt, BigInt(this.packets * 960));
    this.fill = 0;
  }

  async write(samples: Int16Array): Promise<void> {
    if (!this.ogg) await this.open();
    let i = 0;
    while (i < samples.length) {
      const n = Math.min(samples.length - i, this.buf.length - this.fill);
      this.buf.set(samples.subarray(i, i + n), this.fill);
      this.fill += n;
      i += n;
      if (this.fill === this.buf.length) await this.encodeFrame();
    }
  }

  async finish(): Promise<void> {
    if (!this.ogg) await this.open();
    // Feed silence until the encoder's delay has flushed the last real sample out.
    const needed = LIBOPUS_PRESKIP + Math.round((this.totalFrames * 48_000) / this.rate);
    while (this.packets * 960 < needed) {
      this.buf.fill(0, this.fill);
      await this.encodeFrame();
    }
    await this.ogg!.end(BigInt(needed));
    await this.fh!.close();
  }
}
