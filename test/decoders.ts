/**
 * Decoders for the tests that need no ffmpeg: every format dvrec writes is read back with code that is not
 * dvrec's own writer — WAV/RF64 from its bytes, MP3 with mpg123 (mpg123-decoder, gapless: it honours the LAME
 * tag), FLAC with libFLAC (@wasm-audio-decoders/flac), Ogg Opus by parsing the pages here (RFC 3533) and
 * decoding the packets with libopus (@discordjs/opus, the reference decoder), applying pre-skip, output gain
 * and end trimming as RFC 7845 says a player must.
 *
 * Samples are floats = s16 / 32768, one array per channel, at the file's own rate.
 */
import { readFileSync } from 'node:fs';
import opus from '@discordjs/opus';
import { oggCrc } from '../src/sinks/formats/ogg.ts';

export interface Decoded {
  sampleRate: number;
  frames: number;
  channels: Float32Array[];
}

/** Any file dvrec writes, by extension. */
export async function decodeAudio(path: string): Promise<Decoded> {
  if (path.endsWith('.wav')) return decodeWav(path);
  if (path.endsWith('.mp3')) return decodeMp3(path);
  if (path.endsWith('.flac')) return decodeFlac(path);
  if (path.endsWith('.opus')) return decodeOggOpus(path).audio;
  throw new Error(`no decoder for ${path}`);
}

/**
 * Interleaved s16 with `channels` channels, like `ffmpeg -f s16le -ac N` (mono is duplicated, stereo averaged),
 * for the tests written against that shape. The file must be at 48 kHz.
 */
export async function decodeInterleaved(path: string, channels = 2): Promise<Int16Array> {
  const d = await decodeAudio(path);
  if (d.sampleRate !== 48_000) throw new Error(`${path}: ${d.sampleRate} Hz, expected 48000`);
  const src = d.channels;
  const out = new Int16Array(d.frames * channels);
  const s16 = (v: number) => Math.max(-32768, Math.min(32767, Math.round(v * 32768)));
  for (let i = 0; i < d.frames; i++) {
    for (let c = 0; c < channels; c++) {
      const v = channels === src.length ? src[c]![i]! : channels === 1 ? src.reduce((a, x) => a + x[i]!, 0) / src.length : src[0]![i]!;
      out[i * channels + c] = s16(v);
    }
  }
  return out;
}

/** WAV or RF64 (16-bit PCM, also WAVE_FORMAT_EXTENSIBLE), read from its chunks. */
export function decodeWav(path: string): Decoded {
  const b = readFileSync(path);
  const riff = b.toString('ascii', 0, 4);
  if ((riff !== 'RIFF' && riff !== 'RF64') || b.toString('ascii', 8, 12) !== 'WAVE') throw new Error(`${path}: not a WAV`);
  let rf64DataSize: number | null = null;
  let fmt: { channels: number; rate: number; bits: number } | null = null;
  for (let at = 12; at + 8 <= b.length; ) {
    const id = b.toString('ascii', at, at + 4);
    let size = b.readUInt32LE(at + 4);
    if (id === 'ds64') rf64DataSize = Number(b.readBigUInt64LE(at + 16));
    if (id === 'fmt ') {
      const tag = b.readUInt16LE(at + 8);
      if (tag !== 1 && tag !== 0xfffe) throw new Error(`${path}: format ${tag} is not PCM`);
      fmt = { channels: b.readUInt16LE(at + 10), rate: b.readUInt32LE(at + 12), bits: b.readUInt16LE(at + 22) };
    }
    if (id === 'data') {
      if (!fmt || fmt.bits !== 16) throw new Error(`${path}: no 16-bit fmt chunk before data`);
      if (riff === 'RF64' && size === 0xffffffff) size = rf64DataSize ?? size;
      const bytes = Math.min(size, b.length - at - 8);
      const frames = Math.floor(bytes / (2 * fmt.channels));
      const channels = Array.from({ length: fmt.channels }, () => new Float32Array(frames));
      for (let i = 0; i < frames; i++) {
        for (let c = 0; c < fmt.channels; c++) channels[c]![i] = b.readInt16LE(at + 8 + (i * fmt.channels + c) * 2) / 32768;
      }
      return { sampleRate: fmt.rate, frames, channels };
    }
    at += 8 + size + (size & 1);
  }
  throw new Error(`${path}: no data chunk`);
}

let mpg123: Promise<import('mpg123-decoder').MPEGDecoder> | null = null;

/** MP3 with mpg123 (gapless: encoder delay and padding from the LAME tag are removed). One decoder, reset per file. */
export async function decodeMp3(path: string): Promise<Decoded> {
  mpg123 ??= (async () => {
    const { MPEGDecoder } = await import('mpg123-decoder');
    const d = new MPEGDecoder();
    await d.ready;
    return d;
  })();
  const d = await mpg123;
  await d.reset();
  const r = d.decode(new Uint8Array(readFileSync(path)));
  if (r.errors.length) throw new Error(`${path}: ${r.errors.length} MP3 decode errors: ${r.errors[0]!.message}`);
  return { sampleRate: r.sampleRate, frames: r.samplesDecoded, channels: r.channelData };
}

/** FLAC with libFLAC (WebAssembly). */
export async function decodeFlac(path: string): Promise<Decoded> {
  const { FLACDecoder } = await import('@wasm-audio-decoders/flac');
  const d = new FLACDecoder();
  await d.ready;
  try {
    const r = await d.decodeFile(new Uint8Array(readFileSync(path)));
    if (r.errors.length) throw new Error(`${path}: ${r.errors.length} FLAC decode errors: ${r.errors[0]!.message}`);
    return { sampleRate: r.sampleRate, frames: r.samplesDecoded, channels: r.channelData };
  } finally {
    d.free();
  }
}

// ---- Ogg (RFC 3533) ----


export interface OggPage {
  flags: number;
  granule: bigint;
  serial: number;
  seq: number;
  /** Lacing values. */
  segments: number[];
  /** Packets that end on this page (their full bytes, joined with any start on earlier pages). */
  completed: number;
}

export interface OggStream {
  pages: OggPage[];
  packets: Uint8Array[];
}

/** Splits an Ogg file into pages and packets, checking capture pattern, version, CRC, sequence and serial. */
export function parseOgg(buf: Buffer): OggStream {
  const pages: OggPage[] = [];
  const packets: Uint8Array[] = [];
  let partial: Buffer[] = [];
  for (let at = 0; at < buf.length; ) {
    if (buf.toString('ascii', at, at + 4) !== 'OggS') throw new Error(`no Ogg page at byte ${at}`);
    if (buf[at + 4] !== 0) throw new Error(`Ogg version ${buf[at + 4]} at byte ${at}`);
    const nseg = buf[at + 26]!;
    const segments = [...buf.subarray(at + 27, at + 27 + nseg)];
    const bodyLen = segments.reduce((a, n) => a + n, 0);
    const end = at + 27 + nseg + bodyLen;
    if (end > buf.length) throw new Error(`truncated Ogg page at byte ${at}`);
    const page = Buffer.from(buf.subarray(at, end));
    const crc = page.readUInt32LE(22);
    page.writeUInt32LE(0, 22);
    // The writer's CRC function: a wrong polynomial would still be caught by ffmpeg's decode (formats tests).
    if (oggCrc(page) !== crc) throw new Error(`bad CRC on Ogg page ${pages.length}`);
    const flags = buf[at + 5]!;
    const p: OggPage = {
      flags, granule: buf.readBigInt64LE(at + 6), serial: buf.readUInt32LE(at + 14), seq: buf.readUInt32LE(at + 18), segments, completed: 0,
    };
    if (pages.length && (p.seq !== pages.at(-1)!.seq + 1 || p.serial !== pages[0]!.serial)) throw new Error(`Ogg page ${pages.length}: sequence or serial breaks`);
    if (((flags & 1) !== 0) !== partial.length > 0) throw new Error(`Ogg page ${pages.length}: continuation flag ${flags & 1} disagrees with the previous page`);
    let off = at + 27 + nseg;
    for (const n of segments) {
      partial.push(buf.subarray(off, off + n));
      off += n;
      if (n < 255) {
        packets.push(new Uint8Array(Buffer.concat(partial)));
        partial = [];
        p.completed++;
      }
    }
    pages.push(p);
    at = end;
  }
  if (partial.length) throw new Error('Ogg stream ends inside a packet');
  return { pages, packets };
}

export interface OpusHead {
  channels: number;
  preSkip: number;
  inputRate: number;
  gainDb: number;
  mapping: number;
}

/** Ogg Opus: the pages, the header, and the audio as a player outputs it (48 kHz, pre-skip and end trimmed). */
export function decodeOggOpus(path: string): { ogg: OggStream; head: OpusHead; tags: string[]; audio: Decoded } {
  const ogg = parseOgg(readFileSync(path));
  const [h, t, ...audioPackets] = ogg.packets;
  if (!h || Buffer.from(h).toString('ascii', 0, 8) !== 'OpusHead') throw new Error(`${path}: first packet is not OpusHead`);
  const hb = Buffer.from(h);
  const head: OpusHead = { channels: hb[9]!, preSkip: hb.readUInt16LE(10), inputRate: hb.readUInt32LE(12), gainDb: hb.readInt16LE(16) / 256, mapping: hb[18]! };
  if (head.mapping !== 0 || head.channels < 1 || head.channels > 2) throw new Error(`${path}: unsupported channel mapping`);
  if (!t || Buffer.from(t).toString('ascii', 0, 8) !== 'OpusTags') throw new Error(`${path}: second packet is not OpusTags`);
  const tb = Buffer.from(t);
  const tags: string[] = [];
  let o = 12 + tb.readUInt32LE(8);
  const count = tb.readUInt32LE(o);
  o += 4;
  for (let i = 0; i < count; i++) {
    const n = tb.readUInt32LE(o);
    tags.push(tb.toString('utf8', o + 4, o + 4 + n));
    o += 4 + n;
  }
  // Headers alone on their pages (RFC 7845 §3), granule 0.
  if (ogg.pages[0]!.completed !== 1 || ogg.pages[0]!.granule !== 0n || !(ogg.pages[0]!.flags & 2)) throw new Error(`${path}: OpusHead page`);
  const dec = new opus.OpusEncoder(48_000, head.channels);
  const parts: Int16Array[] = [];
  let total = 0;
  for (const p of audioPackets) {
    const pcm = dec.decode(Buffer.from(p));
    const s = new Int16Array(pcm.buffer, pcm.byteOffset, pcm.length / 2);
    parts.push(s);
    total += s.length / head.channels;
  }
  const last = ogg.pages.at(-1)!;
  if (!(last.flags & 4)) throw new Error(`${path}: last page has no end-of-stream flag`);
  // End trimming (RFC 7845 §4.4): the last granule says how many samples the stream holds, pre-skip included.
  const end = Number(last.granule);
  if (end > total) throw new Error(`${path}: final granule ${end} beyond the ${total} samples its packets hold`);
  const frames = Math.max(0, end - head.preSkip);
  const gain = Math.pow(10, head.gainDb / 20);
  const channels = Array.from({ length: head.channels }, () => new Float32Array(frames));
  let pos = 0;
  for (const s of parts) {
    const n = s.length / head.channels;
    for (let i = 0; i < n; i++, pos++) {
      const k = pos - head.preSkip;
      if (k < 0 || k >= frames) continue;
      for (let c = 0; c < head.channels; c++) channels[c]![k] = (s[i * head.channels + c]! / 32768) * gain;
    }
  }
  return { ogg, head, tags, audio: { sampleRate: 48_000, frames, channels } };
}
