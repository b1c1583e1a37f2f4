/**
 * MP3 encoded while recording: each pool worker runs one streaming LAME encoder (wasm-media-encoders, the same
 * build as the after-stop 'lame-wasm' encoder) per track it owns, following the track's capture file behind
 * its final-PCM watermark, so that at stop only a short tail is left to encode.
 *
 * Why follow the capture FILE rather than tee the decoded PCM: the file already is the track on the common
 * clock (pauses are holes that read back as silence, late joiners start with a hole), and a backlog costs
 * disk (page cache), not memory, when the encoder falls behind a busy worker.
 *
 * The track's {@link Watermark} says how far its capture is final (the end of what it had written when it last
 * flushed: the track never writes below its writer's end, it trims), so PCM there will not change; the stream
 * publishes how far it has read. A write below that would break the rule: the watermark records it and the
 * stream is abandoned.
 *
 * Per stream (explicit states):
 *   starting ─ encoder instantiated ─▶ running ─ finish(end) ─▶ done        (the file is complete)
 *       ╰───────────────╰──── encoder/disk error, timeline changed, worker replaced ──▶ failed
 * A failed stream deletes its file; the finisher then encodes that track from its capture after stop, as it
 * did before streaming existed (correctness first). A stream that is not trusted is never used.
 *
 * Output goes to `DIR/<stem>.mp3.streaming.partial` (0600): a crash leaves a name the finisher recognises and
 * deletes (`dvrec convert DIR` always encodes from the captures). Only a stream finished by a clean stop, for
 * exactly the recording's length, is renamed into place by the finisher.
 *
 * Scheduling: the worker calls {@link Mp3Streams.pump} at the end of its ticks, after packets were decoded and
 * captures written, with a CPU budget per tick; a tick that fired late (the worker is busy) encodes nothing.
 * A stream that falls behind catches up when the worker is idle again, or at stop.
 */
import { closeSync, constants, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { BYTES_PER_SAMPLE_FRAME } from './types.ts';
import { PRIVATE_FILE_MODE, WAV_HEADER_BYTES } from './capture-layout.ts';
import { MP3_BITRATES } from './formats/mp3-params.ts';
import { createLame, type LameEncoder } from './formats/lame-wasm.ts';
import { Mp3InfoTag } from './formats/mp3-info-tag.ts';
import { ID3_RESERVED_BYTES, id3v2Tag } from './formats/id3.ts';
import type { Watermark } from './watermark.ts';

/** Suffix of a streamed MP3 that is not (yet) a finished track. */
export const MP3_STREAM_SUFFIX = '.mp3.streaming.partial';

/** Where the worker streams a track's MP3 (beside the output, so the final rename stays on one filesystem). */
export function mp3StreamPath(dir: string, stem: string): string {
  return join(dir, `${stem}${MP3_STREAM_SUFFIX}`);
}

/**
 * Measured RSS of one encoder instance (LAME's wasm heap as touched, after configure + encode): ~1.3 MiB
 * (each instance reserves a 16 MiB wasm memory; only ~1.3 MiB of it is ever touched). Used for the budget.
 */
export const MP3_ENCODER_RSS_MIB = 1.3;

/** What one worker may spend on streaming encoders (WorkerInit.mp3Budget). */
export interface Mp3Budget {
  /** At most this many streamed encoders in this worker; further tracks are encoded after stop. */
  maxStreams: number;
  /** CPU milliseconds of encoding per worker tick, at most (a worker ticks once per batch, every ~20 ms). */
  budgetMsPerTick: number;
}

/** One track's streamed MP3 (TrackSpec.mp3): where it goes and how it is encoded (its recording's settings). */
export interface Mp3TrackConfig {
  /** Where the stream is written ({@link mp3StreamPath}). */
  outPath: string;
  bitrateKbps: number;
  mono: boolean;
}

/** A stream's outcome as reported to the pool (TrackStatusReport.mp3). */
export type Mp3StreamReport =
  | { state: 'streaming'; encodedFrames: number }
  | {
      state: 'done';
      path: string;
      /** The track's exact length in sample frames (= the recording's). */
      frames: number;
      bitrateKbps: number;
      mono: boolean;
      /** Capture frames encoded while recording, and at stop (the tail). */
      streamedFrames: number;
      tailFrames: number;
    }
  | { state: 'fallback'; reason: string };

/** A finished streamed MP3 the finisher may adopt (FinishOptions.streamedMp3). */
export interface StreamedMp3 {
  stem: string;
  path: string;
  frames: number;
  bitrateKbps: number;
  mono: boolean;
}


/** Capture frames per encode call: 8 MP3 frames (192 ms), ~2 ms of CPU: fine-grained enough for the budget. */
const SLICE_FRAMES = 1152 * 8;
/** Don't wake an encoder for less than this (per call overhead); the tail at stop takes whatever is left. */
const MIN_SLICE_FRAMES = 1152 * 4;
/** A tick later than this means the worker is busy with packets: encoding waits. */
const LATE_TICK_MS = 5;
/** Progress messages to the pool at most this often (wall ms). */
const PROGRESS_MS = 200;

// One scratch area per worker thread (streams encode one at a time).
const scratchBytes = Buffer.alloc(SLICE_FRAMES * BYTES_PER_SAMPLE_FRAME);
const scratchPcm = new Int16Array(scratchBytes.buffer, scratchBytes.byteOffset, SLICE_FRAMES * 2);
const scratchL = new Float32Array(SLICE_FRAMES);
const scratchR = new Float32Array(SLICE_FRAMES);

function writeFully(fd: number, buf: Uint8Array): void {
  let done = 0;
  while (done < buf.length) {
    const n = writeSync(fd, buf, done, buf.length - done);
    if (n <= 0) throw Object.assign(new Error('short write: no space left'), { code: 'ENOSPC' });
    done += n;
  }
}

type StreamState = 'starting' | 'running' | 'done' | 'failed';

/** One track's streaming encoder. */
export class Mp3Stream {
  readonly outPath: string;
  private readonly capturePath: string;
  private readonly cfg: Mp3TrackConfig;
  private state: StreamState = 'starting';
  private enc: LameEncoder | null = null;
  private outFd = -1;
  private inFd = -1;
  /** Next capture frame to encode. */
  encPos = 0;
  /** The LAME tag (encoder delay, padding), written over its placeholder at the finish, as the after-stop path does. */
  private readonly info: Mp3InfoTag;
  /** Why the stream failed (state 'failed'). */
  reason = '';
  private result: Mp3StreamReport | null = null;

  constructor(capturePath: string, cfg: Mp3TrackConfig) {
    this.capturePath = capturePath;
    const outPath = cfg.outPath;
    this.outPath = outPath;
    this.cfg = cfg;
    this.info = new Mp3InfoTag(48_000, cfg.mono ? 1 : 2, cfg.bitrateKbps);
    try {
      this.outFd = openSync(outPath, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, PRIVATE_FILE_MODE);
      // Room for the ID3 tag, which the finisher fills in at the stop when the names are final (formats/id3.ts).
      writeFully(this.outFd, id3v2Tag({}));
      writeFully(this.outFd, this.info.placeholder());
    } catch (e) {
      this.fail(`cannot create ${outPath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return;
    }
    createLame({ channels: cfg.mono ? 1 : 2, sampleRate: 48_000, bitrateKbps: cfg.bitrateKbps })
      .then((enc) => {
        if (this.state !== 'starting') return;
        this.enc = enc;
        this.state = 'running';
      })
      .catch((e: unknown) => this.fail(`encoder: ${(e as Error).message}`));
  }

  get running(): boolean {
    return this.state === 'running';
  }

  get failed(): boolean {
    return this.state === 'failed';
  }

  /** Encodes capture frames [encPos, min(end, encPos + maxFrames)); returns how many. Never throws. */
  encodeUpTo(end: number, maxFrames = SLICE_FRAMES): number {
    if (this.state !== 'running') return 0;
    const n = Math.min(end - this.encPos, maxFrames, SLICE_FRAMES);
    if (n <= 0) return 0;
    try {
      this.encodeFrames(n);
      return n;
    } catch (e) {
      this.fail(`encoding: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return 0;
    }
  }

  private encodeFrames(n: number): void {
    if (this.inFd < 0) this.inFd = openSync(this.capturePath, constants.O_RDONLY);
    const bytes = n * BYTES_PER_SAMPLE_FRAME;
    let got = 0;
    while (got < bytes) {
      const r = readSync(this.inFd, scratchBytes, got, bytes - got, WAV_HEADER_BYTES + this.encPos * BYTES_PER_SAMPLE_FRAME + got);
      if (r === 0) break;
      got += r;
    }
    // Past the end of the file is silence (a pause at the end, or the padding to the common end at stop).
    if (got < bytes) scratchBytes.fill(0, got - (got % BYTES_PER_SAMPLE_FRAME), bytes);
    const pcm = scratchPcm;
    const l = scratchL.subarray(0, n);
    let out: Uint8Array;
    // Same arithmetic as the after-stop path (downmix (L+R)>>1, then /32768), so the encoder sees the same floats.
    if (this.cfg.mono) {
      for (let i = 0, j = 0; i < n; i++, j += 2) l[i] = ((pcm[j]! + pcm[j + 1]!) >> 1) / 32768;
      out = this.enc!.encode([l]);
    } else {
      const r = scratchR.subarray(0, n);
      for (let i = 0, j = 0; i < n; i++, j += 2) {
        l[i] = pcm[j]! / 32768;
        r[i] = pcm[j + 1]! / 32768;
      }
      out = this.enc!.encode([l, r]);
    }
    // `out` is a view into wasm memory, valid until the next call: write it now.
    if (out.length) {
      this.info.observe(out);
      writeFully(this.outFd, out);
    }
    this.encPos += n;
  }

  /**
   * End of recording (the capture is already cut to `endFrames`): encodes the rest, silence-padded to the
   * common end, finalises and closes the file.
   */
  finish(endFrames: number): Mp3StreamReport {
    if (this.result) return this.result;
    if (this.state === 'starting') this.fail('encoder not ready at stop');
    if (this.state !== 'running') return this.report();
    if (this.encPos > endFrames) {
      this.fail('encoded past the end of the recording');
      return this.report();
    }
    const streamed = this.encPos;
    while (this.state === 'running' && this.encPos < endFrames) this.encodeUpTo(endFrames);
    if (this.state !== 'running') return this.report();
    try {
      const tail = this.enc!.finalize();
      if (tail.length) {
        this.info.observe(tail);
        writeFully(this.outFd, tail);
      }
      const tag = this.info.frame(endFrames);
      if (writeSync(this.outFd, tag, 0, tag.length, ID3_RESERVED_BYTES) !== tag.length) throw Object.assign(new Error('short write'), { code: 'ENOSPC' });
    } catch (e) {
      this.fail(`finalising: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return this.report();
    }
    this.closeFds();
    this.state = 'done';
    this.result = {
      state: 'done',
      path: this.outPath,
      frames: endFrames,
      bitrateKbps: this.cfg.bitrateKbps,
      mono: this.cfg.mono,
      streamedFrames: streamed,
      tailFrames: endFrames - streamed,
    };
    return this.result;
  }

  report(): Mp3StreamReport {
    if (this.result) return this.result;
    if (this.state === 'failed') return { state: 'fallback', reason: this.reason };
    return { state: 'streaming', encodedFrames: this.encPos };
  }

  /** Gives up: the file is deleted and the track is encoded after stop. Idempotent. */
  fail(reason: string): void {
    if (this.state === 'failed' || this.state === 'done') return;
    this.state = 'failed';
    this.reason = reason;
    this.enc = null; // its wasm memory goes with it
    this.closeFds();
    try {
      unlinkSync(this.outPath);
    } catch {
      /* never created, or already gone */
    }
  }

  private closeFds(): void {
    for (const fd of [this.inFd, this.outFd]) {
      if (fd >= 0) {
        try {
          closeSync(fd);
        } catch {
          /* nothing to save */
        }
      }
    }
    this.inFd = -1;
    this.outFd = -1;
  }
}

/** Progress message to the pool (so a caller can see the backlog even when no audio flows). */
export interface Mp3Progress {
  type: 'mp3Progress';
  tracks: { trackId: number; encodedFrames: number }[];
}

/** A worker's streams: admission (budget), the per-tick pump, and the end. */
export class Mp3Streams {
  private readonly budget: Mp3Budget;
  private readonly post: (m: Mp3Progress) => void;
  private readonly streams = new Map<number, { s: Mp3Stream; track: Watermark }>();
  /** Tracks of this worker that are not streamed, and why (reported at stop as a fallback). */
  private readonly declined = new Map<number, string>();
  private order: number[] = [];
  private next = 0;
  private lastProgress = 0;
  private dirty = false;

  constructor(budget: Mp3Budget, post: (m: Mp3Progress) => void) {
    this.budget = budget;
    this.post = post;
  }

  /**
   * A new track in this worker, whose capture `track` (its watermark) follows. A resumed track (its worker was
   * replaced) is never streamed.
   */
  add(trackId: number, capturePath: string, cfg: Mp3TrackConfig, track: Watermark, resumed: boolean): void {
    if (this.streams.has(trackId) || this.declined.has(trackId)) return;
    let why: string | null = null;
    if (resumed) why = 'worker replaced mid-recording';
    else if (!(MP3_BITRATES as readonly number[]).includes(cfg.bitrateKbps)) why = `${cfg.bitrateKbps} kbps is not a LAME CBR rate`;
    else if (this.live() >= this.budget.maxStreams) why = `over the streaming budget (${this.budget.maxStreams} encoders per worker)`;
    if (why !== null) {
      this.declined.set(trackId, why);
      // A resumed track's old worker may have left its partial file: it is not trusted.
      if (resumed) {
        try {
          unlinkSync(cfg.outPath);
        } catch {
          /* none */
        }
      }
      return;
    }
    this.streams.set(trackId, { s: new Mp3Stream(capturePath, cfg), track });
    this.order.push(trackId);
  }

  /** Forgets a track (its recording finished: its outcome was reported). */
  remove(trackId: number): void {
    this.streams.delete(trackId);
    this.declined.delete(trackId);
    this.order = this.order.filter((id) => id !== trackId);
  }

  private live(): number {
    let n = 0;
    for (const { s } of this.streams.values()) if (!s.failed) n++;
    return n;
  }

  /**
   * Encodes for at most the tick budget, round-robin over streams with enough final PCM waiting.
   * `lateMs`: how late this tick fired; a busy worker (late tick) encodes nothing now.
   */
  pump(lateMs: number): void {
    if (lateMs <= LATE_TICK_MS && this.order.length > 0) {
      const deadline = performance.now() + this.budget.budgetMsPerTick;
      let idle = 0;
      while (idle < this.order.length && performance.now() < deadline) {
        if (this.next >= this.order.length) this.next = 0;
        const id = this.order[this.next++]!;
        const e = this.streams.get(id)!;
        if (!this.check(e)) {
          idle++;
          continue;
        }
        const end = e.track.finalEnd;
        if (end - e.s.encPos < MIN_SLICE_FRAMES || e.s.encodeUpTo(end) === 0) {
          idle++;
          continue;
        }
        e.track.publishRead(e.s.encPos);
        this.dirty = true;
        idle = 0;
      }
    }
    const now = performance.now();
    if (this.dirty && now - this.lastProgress >= PROGRESS_MS) {
      this.lastProgress = now;
      this.dirty = false;
      this.post({ type: 'mp3Progress', tracks: this.order.map((trackId) => ({ trackId, encodedFrames: this.streams.get(trackId)!.s.encPos })) });
    }
  }

  /** False when the stream cannot (or can no longer) be trusted or is not running. */
  private check(e: { s: Mp3Stream; track: Watermark }): boolean {
    if (e.track.violated) e.s.fail('the track wrote behind the encoded watermark');
    return e.s.running;
  }

  /** Live status for a track (undefined when streaming is off in this pool). */
  report(trackId: number): Mp3StreamReport | undefined {
    const e = this.streams.get(trackId);
    if (e) return e.s.report();
    const why = this.declined.get(trackId);
    return why === undefined ? undefined : { state: 'fallback', reason: why };
  }

  /**
   * Stop: the track's capture has been cut to `endFrames`. `trusted` false (the track had a write error)
   * abandons the stream. Runs synchronously: the worker takes no more audio.
   */
  finish(trackId: number, endFrames: number, trusted: boolean): Mp3StreamReport | undefined {
    const e = this.streams.get(trackId);
    if (!e) return this.report(trackId);
    if (!trusted) e.s.fail('the track had a write error');
    this.check(e);
    return e.s.finish(endFrames);
  }

  /** Worker shutdown: anything not finished is abandoned (its file deleted). */
  closeAll(): void {
    for (const { s } of this.streams.values()) if (s.report().state !== 'done') s.fail('worker closed before stop');
  }
}
