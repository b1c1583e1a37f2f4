/**
 * The tap: a {@link TrackOutput} that hands what a track writes back to the main thread, for custom sinks and
 * per-user streams (the files are written in the worker; user code runs on the main thread).
 *
 * A worker appends every tapped track's output to one buffer and transfers it once per tick (the same cadence as
 * the packet batches coming in), so the cost is one postMessage per worker per ~20 ms, and nothing at all for
 * tracks nobody listens to: audio and Opus are copied only when the track's {@link TapConfig} asks for them.
 * Utterance edges are always sent (a few per talk spurt): the recording reports them as events.
 *
 * Record layout (little-endian), repeated:
 *   u32 trackId | u8 kind (1 audio, 2 opus, 3 utterance start, 4 utterance end) | 3 bytes 0 | f64 position | u32 length | payload
 */
import type { TrackOutput } from './track-output.ts';

/** Which of a track's outputs the main thread wants. */
export interface TapConfig {
  /** Decoded/concealed PCM, as written to the capture. */
  audio: boolean;
  /** The received Opus packets, with their positions. */
  opus: boolean;
}

export const NO_TAP: TapConfig = { audio: false, opus: false };

const HEADER = 20;
const KIND_AUDIO = 1;
const KIND_OPUS = 2;
const KIND_START = 3;
const KIND_END = 4;
const MIN_BUFFER = 64 * 1024;

/** One record read back on the main thread. `data` is a view into the transferred buffer. */
export type TapRecord =
  | { trackId: number; kind: 'audio'; position: number; data: Uint8Array }
  | { trackId: number; kind: 'opus'; position: number; data: Uint8Array }
  | { trackId: number; kind: 'utterance'; edge: 'start' | 'end'; position: number };

/** Worker side: collects the tapped output of every track of one worker until the next {@link take}. */
export class TapWriter {
  #buf = new ArrayBuffer(MIN_BUFFER);
  #view = new DataView(this.#buf);
  #bytes = new Uint8Array(this.#buf);
  #len = 0;

  /** The output for one track, honouring its config (read at each call, so it can change). */
  output(trackId: number, config: () => TapConfig): TrackOutput {
    return {
      audio: (position, pcm) => {
        if (config().audio) this.#append(trackId, KIND_AUDIO, position, pcm);
      },
      opus: (position, packet) => {
        if (config().opus) this.#append(trackId, KIND_OPUS, position, packet);
      },
      utterance: (edge, position) => this.#append(trackId, edge === 'start' ? KIND_START : KIND_END, position, null),
    };
  }

  /** What was collected since the last call (ownership passes to the caller, for transfer), or null. */
  take(): { buf: ArrayBuffer; len: number } | null {
    if (this.#len === 0) return null;
    const out = { buf: this.#buf, len: this.#len };
    this.#reset(Math.max(MIN_BUFFER, Math.min(this.#len * 2, 8 * 1024 * 1024)));
    return out;
  }

  #append(trackId: number, kind: number, position: number, data: Uint8Array | null): void {
    const n = data?.length ?? 0;
    const need = HEADER + n;
    if (this.#len + need > this.#buf.byteLength) this.#grow(this.#len + need);
    const v = this.#view;
    const o = this.#len;
    v.setUint32(o, trackId, true);
    v.setUint32(o + 4, kind, true);
    v.setFloat64(o + 8, position, true);
    v.setUint32(o + 16, n, true);
    if (data) this.#bytes.set(data, o + HEADER);
    this.#len += need;
  }

  #grow(min: number): void {
    const old = this.#bytes.subarray(0, this.#len);
    const len = this.#len;
    this.#reset(Math.max(min, this.#buf.byteLength * 2));
    this.#bytes.set(old);
    this.#len = len;
  }

  #reset(size: number): void {
    this.#buf = new ArrayBuffer(size);
    this.#view = new DataView(this.#buf);
    this.#bytes = new Uint8Array(this.#buf);
    this.#len = 0;
  }
}

/** Main side: reads a transferred tap buffer, record by record. */
export function* readTap(buf: ArrayBuffer, len: number): IterableIterator<TapRecord> {
  const v = new DataView(buf, 0, len);
  let o = 0;
  while (o + HEADER <= len) {
    const trackId = v.getUint32(o, true);
    const kind = v.getUint8(o + 4);
    const position = v.getFloat64(o + 8, true);
    const n = v.getUint32(o + 16, true);
    const data = new Uint8Array(buf, o + HEADER, n);
    o += HEADER + n;
    if (kind === KIND_AUDIO) yield { trackId, kind: 'audio', position, data };
    else if (kind === KIND_OPUS) yield { trackId, kind: 'opus', position, data };
    else if (kind === KIND_START || kind === KIND_END) yield { trackId, kind: 'utterance', edge: kind === KIND_START ? 'start' : 'end', position };
  }
}
