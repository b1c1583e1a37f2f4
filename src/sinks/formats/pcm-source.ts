/**
 * Reads s16le PCM from a file as a track of an exact length: bytes past the end of the file (a track that
 * stopped before the recording did, or a missing capture) read as silence, bytes past the wanted length are
 * ignored. This is how every track ends up exactly as long as the recording without copying anything.
 */
import { promises as fsp } from 'node:fs';

/** Where a track's PCM comes from. `path: null` is a track that is silent throughout. */
export interface PcmSource {
  path: string | null;
  /** Byte offset of sample frame 0 (44 for a capture, 0 for raw PCM). */
  dataOffset: number;
  channels: number;
  /** Exact length of the track in sample frames. */
  frames: number;
}

/** Default read size: one second of 48 kHz audio keeps syscalls rare and memory small. */
export const CHUNK_FRAMES = 48_000;

/** Yields interleaved Int16Array chunks (each a fresh buffer) covering exactly `src.frames` frames. */
export async function* readPcm(src: PcmSource, chunkFrames = CHUNK_FRAMES): AsyncGenerator<Int16Array> {
  const frameBytes = src.channels * 2;
  const fh = src.path === null ? null : await fsp.open(src.path, 'r');
  try {
    for (let frame = 0; frame < src.frames; frame += chunkFrames) {
      const n = Math.min(chunkFrames, src.frames - frame);
      const buf = Buffer.alloc(n * frameBytes); // zero-filled: short reads stay silence
      if (fh) {
        let got = 0;
        while (got < buf.length) {
          const { bytesRead } = await fh.read(buf, got, buf.length - got, src.dataOffset + frame * frameBytes + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        // A torn last frame (crash mid-write) is cut to whole sample frames.
        if (got % frameBytes !== 0) buf.fill(0, got - (got % frameBytes));
      }
      yield new Int16Array(buf.buffer, buf.byteOffset, buf.length / 2);
    }
  } finally {
    await fh?.close();
  }
}

/** Averages stereo to mono (L+R)/2: never clips, keeps a one-sided source at -6 dB. */
export function downmix(stereo: Int16Array): Int16Array {
  const out = new Int16Array(stereo.length / 2);
  for (let i = 0, j = 0; i < out.length; i++, j += 2) out[i] = (stereo[j]! + stereo[j + 1]!) >> 1;
  return out;
}

/** Converts interleaved s16 into planar float channels for encoders that want them. */
export function toPlanarFloat(samples: Int16Array, channels: number): Float32Array[] {
  const frames = samples.length / channels;
  const out: Float32Array[] = [];
  for (let c = 0; c < channels; c++) {
    const ch = new Float32Array(frames);
    for (let i = 0; i < frames; i++) ch[i] = samples[i * channels + c]! / 32768;
    out.push(ch);
  }
  return out;
}
