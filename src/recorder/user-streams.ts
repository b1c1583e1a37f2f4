/**
 * Per-user audio streams (hata's `listen_to(user)`, done right): `recording.listenTo(userId)` gives an async
 * iterable (and a Node Readable) of one user's timed audio, as it goes into their track, with the edges of each
 * talk spurt. Formats: 48 kHz stereo or mono PCM, 16 kHz mono PCM for speech recognisers, or the raw Opus packets.
 *
 * A slow consumer never stalls the receive path or other users: each stream keeps at most `maxBufferMs` of audio
 * (default 10 s) waiting for its reader; beyond that the oldest audio is dropped, counted (`missedMs`), and
 * reported once per episode (`overflow` event, and a warning from the recording). Utterance edges are never
 * dropped (they are few), so a reader can tell where the audio it missed belonged.
 *
 * Hand-written: the 48 → 16 kHz conversion is an exact integer ratio, one small linear-phase FIR and a stride of
 * three; a resampling library would add a dependency for 40 lines.
 */
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import type { TapConfig, TapRecord } from '../sinks/track-tap.ts';
import { FRAMES_PER_MS } from './sinks.ts';

/** What a stream delivers. */
export type ListenFormat =
  /** 48 kHz, 16-bit little-endian, interleaved stereo: exactly what the track file holds. */
  | 'pcm'
  /** 48 kHz, 16-bit little-endian, mono ((left + right) / 2). */
  | 'pcm-mono'
  /** 16 kHz, 16-bit little-endian, mono: what speech recognisers want. */
  | 'pcm-16k'
  /** The Opus packets as received (decrypted), 20 ms each, with their place on the recording clock. */
  | 'opus';

/** Options of {@link Recording.listenTo}. */
export interface ListenOptions {
  /** Default 'pcm'. */
  format?: ListenFormat;
  /** Audio (ms) a reader may fall behind before the oldest is dropped and counted. Default 10 000. */
  maxBufferMs?: number;
}

/** One item of a user stream. Times are milliseconds on the recording clock (since its t=0). */
export type UserAudioEvent =
  /** A chunk of the user's audio. */
  | {
      /** Discriminant. */
      type: 'audio';
      /** Discord user id. */
      userId: string;
      /** Where the first sample lands on the recording clock. */
      startMs: number;
      /** 48 000 (formats pcm, pcm-mono) or 16 000 (pcm-16k). */
      sampleRate: 48_000 | 16_000;
      /** 2 (pcm) or 1 (pcm-mono, pcm-16k). */
      channels: 1 | 2;
      /** 16-bit little-endian PCM in the stream's format; consecutive chunks with a gap between them had silence there. */
      data: Buffer;
    }
  /** One Opus packet (format opus). */
  | {
      /** Discriminant. */
      type: 'opus';
      /** Discord user id. */
      userId: string;
      /** Where its first sample lands on the recording clock. */
      startMs: number;
      /** The packet, decrypted. */
      packet: Buffer;
    }
  /** A talk spurt began (its first voiced sample) or ended (just past its last). */
  | {
      /** Discriminant. */
      type: 'utterance';
      /** Discord user id. */
      userId: string;
      /** Which edge. */
      edge: 'start' | 'end';
      /** On the recording clock. */
      atMs: number;
    };

/** The events of a {@link UserAudioStream}. */
export interface UserAudioStreamEvents {
  /** The reader fell behind and `missedMs` of audio were dropped in this episode (emitted once per episode). */
  overflow: [missedMs: number];
  /** The stream ended (the recording stopped, or close() was called). */
  close: [];
}

/** The taps a stream of this format needs from the decoder worker. */
export function tapForFormat(format: ListenFormat): TapConfig {
  return format === 'opus' ? { audio: false, opus: true } : { audio: true, opus: false };
}

/**
 * One user's stream. Iterate it once (`for await`), or read it as a Node Readable (object mode) with
 * {@link readable}; not both.
 */
export class UserAudioStream extends EventEmitter<UserAudioStreamEvents> implements AsyncIterable<UserAudioEvent> {
  /** Whose audio this is. */
  readonly userId: string;
  /** What it delivers. */
  readonly format: ListenFormat;
  readonly #maxBufferMs: number;
  readonly #queue: UserAudioEvent[] = [];
  #queuedMs = 0;
  #missedMs = 0;
  #overflowing = false;
  #ended = false;
  #wake: (() => void) | null = null;
  readonly #decimator: Decimator | null;
  readonly #onClose: (s: UserAudioStream) => void;

  /** @internal Made by Recording.listenTo. */
  constructor(userId: string, options: ListenOptions, onClose: (s: UserAudioStream) => void) {
    super();
    this.userId = userId;
    this.format = options.format ?? 'pcm';
    this.#maxBufferMs = options.maxBufferMs ?? 10_000;
    this.#decimator = this.format === 'pcm-16k' ? new Decimator() : null;
    this.#onClose = onClose;
  }

  /** Milliseconds of audio dropped so far because the reader was too slow. */
  get missedMs(): number {
    return this.#missedMs;
  }

  /** True once the stream ended (nothing more will come after what is queued). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Ends the stream now (what is queued can still be read). */
  close(): void {
    this.end();
  }

  /** @internal A record of this user's track, from the decoder worker. */
  push(r: TapRecord): void {
    if (this.#ended) return;
    if (r.kind === 'utterance') {
      this.#enqueue({ type: 'utterance', userId: this.userId, edge: r.edge, atMs: r.position / FRAMES_PER_MS }, 0);
      return;
    }
    if (r.kind === 'opus') {
      if (this.format !== 'opus') return;
      this.#enqueue({ type: 'opus', userId: this.userId, startMs: r.position / FRAMES_PER_MS, packet: Buffer.from(r.data) }, 20);
      return;
    }
    if (this.format === 'opus') return;
    const frames = r.data.length / 4;
    const ms = frames / FRAMES_PER_MS;
    const pcm = new Int16Array(r.data.buffer, r.data.byteOffset, frames * 2);
    if (this.format === 'pcm') {
      this.#enqueue({ type: 'audio', userId: this.userId, startMs: r.position / FRAMES_PER_MS, sampleRate: 48_000, channels: 2, data: Buffer.from(r.data) }, ms);
      return;
    }
    const mono = new Int16Array(frames);
    for (let i = 0, j = 0; i < frames; i++, j += 2) mono[i] = (pcm[j]! + pcm[j + 1]!) >> 1;
    if (this.format === 'pcm-mono') {
      this.#enqueue({ type: 'audio', userId: this.userId, startMs: r.position / FRAMES_PER_MS, sampleRate: 48_000, channels: 1, data: Buffer.from(mono.buffer) }, ms);
      return;
    }
    const out = this.#decimator!.push(r.position, mono);
    if (out.samples.length > 0) {
      this.#enqueue({ type: 'audio', userId: this.userId, startMs: out.startMs, sampleRate: 16_000, channels: 1, data: Buffer.from(out.samples.buffer) }, ms);
    }
  }

  /** @internal The recording stopped (or close()): ends iteration once the queue is read. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#wake?.();
    this.#onClose(this);
    this.emit('close');
  }

  #enqueue(e: UserAudioEvent, ms: number): void {
    this.#queue.push(e);
    this.#queuedMs += ms;
    // Over the bound: drop the oldest audio (never utterance edges), and count it.
    if (this.#queuedMs > this.#maxBufferMs) {
      let dropped = 0;
      for (let i = 0; i < this.#queue.length && this.#queuedMs > this.#maxBufferMs; ) {
        const q = this.#queue[i]!;
        if (q.type === 'utterance') {
          i++;
          continue;
        }
        const qms = q.type === 'opus' ? 20 : q.data.length / (q.channels * 2) / (q.sampleRate / 1000);
        this.#queue.splice(i, 1);
        this.#queuedMs -= qms;
        dropped += qms;
      }
      this.#missedMs += dropped;
      if (!this.#overflowing && dropped > 0) {
        this.#overflowing = true;
        this.emit('overflow', this.#missedMs);
      }
    }
    this.#wake?.();
  }

  #next(): UserAudioEvent | undefined {
    const e = this.#queue.shift();
    if (e === undefined) return undefined;
    if (e.type === 'audio') this.#queuedMs -= e.data.length / (e.channels * 2) / (e.sampleRate / 1000);
    else if (e.type === 'opus') this.#queuedMs -= 20;
    if (this.#queue.length === 0) this.#overflowing = false;
    return e;
  }

  /** Yields the stream's events in order; ends once the stream ended and everything queued was read. */
  async *[Symbol.asyncIterator](): AsyncIterator<UserAudioEvent> {
    for (;;) {
      const e = this.#next();
      if (e !== undefined) {
        yield e;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = null;
    }
  }

  /** The same events as a Node Readable in object mode (pipe it into your own transform). */
  readable(): Readable {
    return Readable.from(this, { objectMode: true });
  }
}

/** The 48 → 16 kHz anti-aliasing filter (see Decimator). */
const TAPS = designLowPass(49, 7000 / 48_000);

/**
 * 48 kHz → 16 kHz mono: a 49-tap windowed-sinc low-pass (cut-off 7 kHz, Blackman window; below −70 dB from
 * 8 kHz, the new Nyquist) evaluated on every third input sample. Causal, so each output sample is reported at the
 * input position minus the filter's group delay (24 samples): positions stay exact. A chunk that does not follow
 * the previous one (a pause) restarts the filter from silence, which is what the track holds in the gap.
 */
class Decimator {
  readonly #hist = new Float64Array(TAPS.length);
  #at = 0;
  /** Input position (48 kHz frames) just past the last sample pushed; −1 before the first. */
  #next = -1;

  push(position: number, mono: Int16Array): { startMs: number; samples: Int16Array } {
    const taps = TAPS;
    const n = taps.length;
    if (position !== this.#next) {
      this.#hist.fill(0);
      this.#at = 0;
    }
    const out: number[] = [];
    let first = -1;
    for (let i = 0; i < mono.length; i++) {
      this.#hist[this.#at] = mono[i]!;
      this.#at = (this.#at + 1) % n;
      const pos = position + i;
      if (pos % 3 !== 0) continue;
      let acc = 0;
      for (let k = 0, j = this.#at; k < n; k++, j = (j + 1) % n) acc += taps[n - 1 - k]! * this.#hist[j]!;
      if (first < 0) first = pos;
      out.push(Math.max(-32768, Math.min(32767, Math.round(acc))));
    }
    this.#next = position + mono.length;
    const delay = (n - 1) / 2;
    return { startMs: first < 0 ? 0 : (first - delay) / FRAMES_PER_MS, samples: Int16Array.from(out) };
  }
}

/** A windowed-sinc low-pass of `n` taps with cut-off `fc` (a fraction of the sample rate), Blackman window, unit gain. */
function designLowPass(n: number, fc: number): Float64Array {
  const h = new Float64Array(n);
  const m = (n - 1) / 2;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const x = i - m;
    const sinc = x === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x);
    const w = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1)) + 0.08 * Math.cos((4 * Math.PI * i) / (n - 1));
    h[i] = sinc * w;
    sum += h[i]!;
  }
  for (let i = 0; i < n; i++) h[i]! /= sum;
  return h;
}
