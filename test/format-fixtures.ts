/**
 * Test fixtures for the formats/finisher tests: recording directories written exactly as the capture layout
 * says (src/sinks/capture-layout.ts), from real Opus (tones encoded with libopus, decoded back to PCM) placed
 * at known positions, with holes for silence; plus decoders and signal measurements for the outputs.
 */
import { promises as fsp, openSync, writeSync, closeSync, existsSync, mkdtempSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import opus from '@discordjs/opus';
import {
  CAPTURE_DIR, JOURNAL_FILE, WAV_HEADER_BYTES, capturePath, packetLogPath, writeJsonAtomic,
  type AudioFormat, type Journal,
} from '../src/sinks/capture-layout.ts';

const { OpusEncoder } = opus;
export const RATE = 48_000;

export interface FixtureTrack {
  stem: string;
  userId: string;
  hz: number;
  /** Talk spurts on the recording clock (ms). */
  spurts: { atMs: number; durationMs: number }[];
  /** Leave this user out of the journal (a capture the journal never heard of). */
  orphan?: boolean;
}

export interface FixtureOptions {
  format: AudioFormat;
  mono?: boolean;
  mix?: boolean;
  bitrateKbps?: number;
  tracks: FixtureTrack[];
  /** Clean stop with this length; omitted = crash (no endedAt). */
  durationMs?: number;
  /** Journal heartbeat (ms) for crashed directories. */
  flushedMs?: number;
  /** Crash: cut each capture file at this many bytes past the last whole frame (a torn write). */
  tornBytes?: number;
  amplitude?: number;
}

/** Sample frame where a spurt's first packet lands (arbitrary, not a multiple of 960, on purpose). */
export const msToFrame = (ms: number) => Math.round((ms * RATE) / 1000);

/** Writes a recording directory; returns the exact PCM each capture holds (for comparisons). */
export async function writeRecordingDir(dir: string, o: FixtureOptions): Promise<Map<string, Int16Array>> {
  await fsp.mkdir(join(dir, CAPTURE_DIR), { recursive: true });
  const pcmByStem = new Map<string, Int16Array>();
  for (const t of o.tracks) {
    const enc = new OpusEncoder(RATE, 2);
    const dec = new OpusEncoder(RATE, 2); // one decoder per user, as the pool does
    const endFrame = Math.max(...t.spurts.map((s) => msToFrame(s.atMs) + (Math.ceil(msToFrame(s.durationMs) / 960) + 5) * 960));
    const pcm = new Int16Array(endFrame * 2);
    const wav = openSync(capturePath(dir, t.stem), 'w');
    writeSync(wav, Buffer.alloc(WAV_HEADER_BYTES)); // placeholder header
    const pkt = o.format === 'opus' ? openSync(packetLogPath(dir, t.stem), 'w') : null;
    const amp = (o.amplitude ?? 0.5) * 32767;
    for (const s of t.spurts) {
      const start = msToFrame(s.atMs);
      const frames = Math.ceil(msToFrame(s.durationMs) / 960);
      for (let k = 0; k < frames; k++) {
        const src = Buffer.alloc(960 * 4);
        for (let i = 0; i < 960; i++) {
          const n = k * 960 + i;
          const v = Math.round(amp * Math.sin((2 * Math.PI * t.hz * n) / RATE));
          src.writeInt16LE(v, i * 4);
          src.writeInt16LE(v, i * 4 + 2);
        }
        const packet = enc.encode(src);
        const decoded = dec.decode(packet);
        const pos = start + k * 960;
        writeSync(wav, decoded, 0, decoded.length, WAV_HEADER_BYTES + pos * 4);
        pcm.set(new Int16Array(decoded.buffer, decoded.byteOffset, decoded.length / 2), pos * 2);
        if (pkt !== null) {
          const rec = Buffer.alloc(6);
          rec.writeUInt32LE(pos, 0);
          rec.writeUInt16LE(packet.length, 4);
          writeSync(pkt, Buffer.concat([rec, packet]));
        }
      }
      // Discord's 5 end-of-spurt silence frames
      for (let k = 0; k < 5; k++) {
        const silence = Buffer.from([0xf8, 0xff, 0xfe]);
        const pos = start + (frames + k) * 960;
        const decoded = dec.decode(silence);
        writeSync(wav, decoded, 0, decoded.length, WAV_HEADER_BYTES + pos * 4);
        pcm.set(new Int16Array(decoded.buffer, decoded.byteOffset, decoded.length / 2), pos * 2);
        if (pkt !== null) {
          const rec = Buffer.alloc(6);
          rec.writeUInt32LE(pos, 0);
          rec.writeUInt16LE(3, 4);
          writeSync(pkt, Buffer.concat([rec, silence]));
        }
      }
    }
    closeSync(wav);
    if (pkt !== null) closeSync(pkt);
    if (o.tornBytes) {
      const p = capturePath(dir, t.stem);
      const size = (await fsp.stat(p)).size;
      await fsp.truncate(p, size - 4 + o.tornBytes); // last frame torn
    }
    pcmByStem.set(t.stem, pcm);
  }
  const startedAtMs = Date.UTC(2025, 0, 2, 3, 4, 5, 678);
  const journal: Journal = {
    version: 1,
    guildId: '111111111111111111',
    channelId: '222222222222222222',
    startedAt: new Date(startedAtMs).toISOString(),
    startedAtMs,
    flushedMs: o.flushedMs ?? o.durationMs ?? 0,
    format: o.format,
    mono: o.mono ?? false,
    bitrateKbps: o.bitrateKbps ?? 128,
    mix: o.mix ?? false,
    tracks: o.tracks.filter((t) => !t.orphan).map((t) => ({
      userId: t.userId, username: `user${t.stem}`, displayName: `User ${t.stem}`, stem: t.stem, ssrcs: [1000],
      startOffsetMs: t.spurts[0]!.atMs,
      packets: { received: 10, lost: 0, concealed: 0, late: 0, duplicate: 0, undecryptable: 0 },
    })),
    ...(o.durationMs !== undefined ? { endedAt: new Date(startedAtMs + o.durationMs).toISOString(), durationMs: o.durationMs } : {}),
  };
  writeJsonAtomic(join(dir, JOURNAL_FILE), journal);
  return pcmByStem;
}

/** Whether `ffmpeg` runs from this process's PATH (the "with ffmpeg" tests need it; `needs()` in strict.ts). */
export function hasFfmpeg(): boolean {
  try {
    return spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' }).status === 0;
  } catch {
    return false;
  }
}

/**
 * An environment in which dvrec can find no ffmpeg at all: PATH is one empty directory, FFMPEG_PATH is unset,
 * and the ffmpeg-static package is skipped (DVREC_NO_FFMPEG_STATIC=1; on a machine where its download worked
 * it would be found otherwise). For child processes; {@link withoutFfmpeg} for this one.
 */
export function noFfmpegEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, PATH: mkdtempSync(join(tmpdir(), 'dvrec-noffmpeg-')), DVREC_NO_FFMPEG_STATIC: '1' };
  delete env.FFMPEG_PATH;
  return env;
}

/** Runs `fn` with this process's environment as {@link noFfmpegEnv} makes it, then restores it. */
export async function withoutFfmpeg<T>(fn: () => Promise<T>): Promise<T> {
  const keys = ['PATH', 'FFMPEG_PATH', 'DVREC_NO_FFMPEG_STATIC'] as const;
  const saved = Object.fromEntries(keys.map((k) => [k, process.env[k]]));
  const env = noFfmpegEnv();
  for (const k of keys) {
    if (env[k] === undefined) delete process.env[k];
    else process.env[k] = env[k];
  }
  try {
    return await fn();
  } finally {
    for (const k of keys) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}

/**
 * Decodes any file to s16le with ffmpeg, `channels` channels at `rate` Hz (default stereo 48 kHz): a second,
 * independent decoder beside test/decoders.ts where ffmpeg is installed.
 */
export function ffmpegDecode(path: string, channels = 2, rate = RATE): Int16Array {
  // Opus through libopus (the reference decoder, used by browsers and VLC) when ffmpeg has it: ffmpeg's
  // native decoder renders a member's very first 20 ms frame differently (see EMPTY_FRAMES in opus-packet.ts).
  if (path.endsWith('.opus')) {
    const r = spawnSync('ffmpeg', ['-v', 'error', '-c:a', 'libopus', '-i', path, '-f', 's16le', '-ac', String(channels), '-ar', String(rate), '-'], { maxBuffer: 1 << 30 });
    if (r.status === 0) return new Int16Array(r.stdout.buffer, r.stdout.byteOffset, r.stdout.length / 2);
  }
  const r = spawnSync('ffmpeg', ['-v', 'error', '-i', path, '-f', 's16le', '-ac', String(channels), '-ar', String(rate), '-'], {
    maxBuffer: 1 << 30,
  });
  if (r.status !== 0) throw new Error(`ffmpeg could not decode ${path}: ${r.stderr}`);
  const b = r.stdout;
  return new Int16Array(b.buffer, b.byteOffset, b.length / 2);
}

/** First ffprobe-reported value of a stream field. */
export function ffprobe(path: string, entry: string): string {
  const r = spawnSync('ffprobe', ['-v', 'error', '-show_entries', entry, '-of', 'default=nw=1:nk=1', path], { encoding: 'utf8' });
  return r.stdout.trim().split('\n')[0] ?? '';
}

/** Channel `c` of interleaved PCM as floats. */
export function channel(pcm: Int16Array, channels: number, c = 0): Float32Array {
  const out = new Float32Array(Math.floor(pcm.length / channels));
  for (let i = 0; i < out.length; i++) out[i] = pcm[i * channels + c]! / 32768;
  return out;
}

/** First frame from `from` whose 2.5 ms RMS exceeds `threshold` (onset of a spurt), or -1. */
export function onset(x: Float32Array, from = 0, threshold = 0.05): number {
  const w = 120;
  for (let i = Math.max(0, from); i + w <= x.length; i += 8) {
    let e = 0;
    for (let k = 0; k < w; k++) e += x[i + k]! * x[i + k]!;
    if (Math.sqrt(e / w) > threshold) {
      // refine to the first sample above half the threshold
      for (let k = Math.max(0, i - w); k < i + w; k++) if (Math.abs(x[k]!) > threshold / 2) return k;
      return i;
    }
  }
  return -1;
}

/** Dominant frequency of x[from, from+len) by a Goertzel scan (50..4000 Hz, 5 Hz steps); x sampled at `rate`. */
export function dominantHz(x: Float32Array, from: number, len: number, rate = RATE): number {
  let best = 0;
  let bestHz = 0;
  for (let hz = 50; hz <= Math.min(4000, rate / 2); hz += 5) {
    const w = (2 * Math.PI * hz) / rate;
    const coeff = 2 * Math.cos(w);
    let s1 = 0;
    let s2 = 0;
    for (let i = from; i < from + len && i < x.length; i++) {
      const s = x[i]! + coeff * s1 - s2;
      s2 = s1;
      s1 = s;
    }
    const p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    if (p > best) { best = p; bestHz = hz; }
  }
  return bestHz;
}

/** RMS of x[from, from+len). */
export function rms(x: Float32Array, from: number, len: number): number {
  let e = 0;
  let n = 0;
  for (let i = from; i < from + len && i < x.length; i++, n++) e += x[i]! * x[i]!;
  return n ? Math.sqrt(e / n) : 0;
}

/** Index of the first differing sample, or -1 (fast; deepEqual on large arrays is slow). */
export function firstDifference(a: Int16Array, b: Int16Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

export { existsSync };
