/**
 * Positional writer for one user's capture file (see capture-layout.ts for the contract):
 * sample frame n lives at byte 44 + 4n; holes read back as exact silence.
 *
 * Contiguous frames are coalesced in memory and written with one pwrite; pending audio is flushed when it is
 * older than `flushMs` (so a SIGKILL loses at most about that much plus the jitter buffer), when it stops being
 * contiguous, or when the buffer fills. Files are created 0o600 and opened without truncation, so a replaced
 * worker continues in the same file.
 *
 * Every ~WRITEBACK_BYTES of audio, the kernel is asked to start writing what was written to disk (without waiting:
 * native/writeback.c). The finish at stop syncs each file before renaming it into place, and that sync writes out
 * whatever the page cache still holds of the capture, and the kernel does not reliably write back the older pages
 * of a file still being appended to (BENCHMARKS.md, "Measurements behind the code"). So the stop writes at most the
 * last few MiB per track, whatever the length. Without the native addon this is skipped (the stop is then only slower).
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { BYTES_PER_SAMPLE_FRAME, CHANNELS, SAMPLE_RATE } from './types.ts';
import { PACKET_LOG_EPOCH, WAV_HEADER_BYTES } from './capture-layout.ts';
import { addon } from './native-addon.ts';
import type { TrackOutput } from './track-output.ts';

const PENDING_BYTES = 64 * 1024;
const OPEN_FLAGS = constants.O_RDWR | constants.O_CREAT;
/**
 * Audio bytes after which writeback of what was written is started: on average 1 MiB (~5.5 s of one track), each
 * time drawn between 0.5 and 1.5 MiB. The spread matters: tracks that start together (hundreds of members at once)
 * would otherwise all hand the kernel their range in the same instant, every time — at 500 tracks, 2 GB at once
 * with 4 MiB ranges, which stalled the disk queue long enough for the main thread's journal write to block and
 * the kernel to drop datagrams. Spread out, it is a steady trickle far below what the disk takes.
 */
export const WRITEBACK_BYTES = 1024 * 1024;
/** The most a writer can have written and not yet handed to writeback (the largest drawn range). */
export const WRITEBACK_MAX_BYTES = WRITEBACK_BYTES * 1.5;

function nextWritebackBytes(): number {
  return Math.round(WRITEBACK_BYTES * (0.5 + Math.random()));
}

/** Starts writing a byte range of a file to disk without waiting for it (advisory: errors are ignored). */
export type StartWriteback = (fd: number, offset: number, length: number) => void;

/** The native sync_file_range, or null without the addon. */
function nativeWriteback(): StartWriteback | null {
  const a = addon();
  return a === null ? null : (fd, offset, length) => void a.startWriteback(fd, offset, length);
}

/**
 * A 44-byte PCM WAV header. With `dataBytes` undefined the sizes are the streaming placeholder 0xFFFFFFFF
 * ("read to end of file"), which players and ffmpeg accept, so even a crashed capture is playable.
 */
export function wavHeader(dataBytes?: number): Buffer {
  const h = Buffer.alloc(WAV_HEADER_BYTES);
  const data = dataBytes === undefined ? 0xffffffff : dataBytes;
  const riff = dataBytes === undefined ? 0xffffffff : Math.min(0xffffffff, dataBytes + 36);
  h.write('RIFF', 0, 'ascii');
  h.writeUInt32LE(riff, 4);
  h.write('WAVE', 8, 'ascii');
  h.write('fmt ', 12, 'ascii');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(CHANNELS, 22);
  h.writeUInt32LE(SAMPLE_RATE, 24);
  h.writeUInt32LE(SAMPLE_RATE * BYTES_PER_SAMPLE_FRAME, 28);
  h.writeUInt16LE(BYTES_PER_SAMPLE_FRAME, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'ascii');
  h.writeUInt32LE(Math.min(0xffffffff, data), 40);
  return h;
}

/**
 * pwrite until all of `len` bytes are written. A nearly full filesystem accepts SHORT writes without an error
 * (the next write then fails with ENOSPC): ignoring the count would silently drop the tail of the audio.
 * With `pos` null the fd is in append mode (packet log) and the position is ignored.
 */
function writeFully(fd: number, buf: Uint8Array, len: number, pos: number | null): void {
  let done = 0;
  while (done < len) {
    const n = writeSync(fd, buf, done, len - done, pos === null ? null : pos + done);
    if (n <= 0) throw Object.assign(new Error('short write: no space left'), { code: 'ENOSPC' });
    done += n;
  }
}

export interface CaptureWriterOptions {
  /** Also log the Opus packets to this path (`[u32 LE position][u16 LE len][payload]` records; see capture-layout.ts). */
  packetLogPath?: string;
  /** Append the track's utterance edges to this path (`s <position>` / `e <position>` lines; see capture-layout.ts). */
  utteranceLogPath?: string;
  /** Maximum age of unflushed audio (ms of the caller's clock). Default 250. */
  flushMs?: number;
  /**
   * Continue an existing capture (a replaced worker) instead of starting a new one. Without it an existing
   * file is truncated: a stale capture must not leak into a new recording.
   */
  resume?: boolean;
  /**
   * With `resume`: the first sample frame the previous writer had not written yet (its worker died), in case the
   * file on disk is shorter (audio it had queued but not flushed is gone; nothing may be written behind this).
   */
  resumeFrom?: number;
  /** How writeback is started (tests observe it). Default: the native addon's, or none without it. */
  startWriteback?: StartWriteback | null;
}

/**
 * The track's file sink: it implements {@link TrackOutput} like every other consumer of a track (the capture is
 * the track's audio, the packet log its Opus packets, the utterance log its talk spurts).
 */
export class CaptureWriter implements TrackOutput {
  readonly path: string;
  private fd: number;
  private logFd: number | null = null;
  private uttFd: number | null = null;
  private utt = '';
  /** The caller's clock, as of its last {@link observe} (stamps pending audio for flushMs). */
  private nowMs = -Infinity;
  private readonly flushMs: number;
  private pending: Buffer | null = null;
  private pendingLen = 0;
  /** Sample position of pending[0]. */
  private pendingPos = 0;
  /** Clock time at which the oldest pending byte was queued. */
  private pendingSince = Infinity;
  private log: Buffer | null = null;
  private logLen = 0;
  private logSince = Infinity;
  /** High 32 bits of the positions the log's last epoch record set (a log starts at 0). */
  private logHigh = 0;
  /** One past the last sample frame written (or pending), from this writer or found on disk. */
  writtenEnd: number;
  /** PCM bytes written by this writer instance (plus any carried over by the caller). */
  bytes = 0;
  private readonly startWriteback: StartWriteback | null;
  /** Byte range of the capture written since writeback was last started (lo = Infinity: none). */
  private dirtyLo = Infinity;
  private dirtyHi = 0;
  /** Size of the range at which the next writeback starts (see WRITEBACK_BYTES). */
  private writebackAt = nextWritebackBytes();

  constructor(path: string, opts: CaptureWriterOptions = {}) {
    this.path = path;
    this.flushMs = opts.flushMs ?? 250;
    this.startWriteback = opts.startWriteback === undefined ? nativeWriteback() : opts.startWriteback;
    this.fd = openSync(path, opts.resume === true ? OPEN_FLAGS : OPEN_FLAGS | constants.O_TRUNC, 0o600);
    const size = fstatSync(this.fd).size;
    if (size < WAV_HEADER_BYTES) writeSync(this.fd, wavHeader(), 0, WAV_HEADER_BYTES, 0);
    // A capture continued after a worker restart: never write behind what is already there.
    this.writtenEnd = Math.max(0, Math.floor((size - WAV_HEADER_BYTES) / BYTES_PER_SAMPLE_FRAME), opts.resume === true ? (opts.resumeFrom ?? 0) : 0);
    const trunc = opts.resume === true ? 0 : constants.O_TRUNC;
    if (opts.packetLogPath !== undefined) {
      this.logFd = openSync(opts.packetLogPath, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | trunc, 0o600);
    }
    if (opts.utteranceLogPath !== undefined) {
      this.uttFd = openSync(opts.utteranceLogPath, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | trunc, 0o600);
    }
  }

  /** The caller's clock moved to `nowMs` (recording-clock ms): used to age pending audio. */
  observe(nowMs: number): void {
    if (nowMs > this.nowMs) this.nowMs = nowMs;
  }

  /** {@link TrackOutput.audio}: queues PCM at its position (see {@link write}). */
  audio(position: number, pcm: Uint8Array): void {
    this.write(position, pcm, this.nowMs);
  }

  /** {@link TrackOutput.opus}: appends the packet to the packet log, if this capture keeps one. */
  opus(position: number, packet: Uint8Array): void {
    this.logPacket(position, packet, this.nowMs);
  }

  /** {@link TrackOutput.utterance}: appends the edge to the utterance log, written with the audio it belongs to. */
  utterance(edge: 'start' | 'end', position: number): void {
    if (this.uttFd === null) return;
    this.utt += `${edge === 'start' ? 's' : 'e'} ${position}\n`;
  }

  /**
   * Queues `pcm` (s16le stereo) at sample position `pos`. The bytes are copied, so `pcm` may be a view
   * into decoder memory.
   */
  write(pos: number, pcm: Uint8Array, nowMs: number): void {
    if (pcm.length === 0) return;
    if (this.pending === null) this.pending = Buffer.allocUnsafe(PENDING_BYTES);
    const contiguous = this.pendingLen > 0 && pos === this.pendingPos + this.pendingLen / BYTES_PER_SAMPLE_FRAME;
    if (this.pendingLen > 0 && (!contiguous || this.pendingLen + pcm.length > PENDING_BYTES)) this.flushPcm();
    if (pcm.length > PENDING_BYTES) {
      this.pwrite(pcm, pcm.length, WAV_HEADER_BYTES + pos * BYTES_PER_SAMPLE_FRAME);
    } else {
      if (this.pendingLen === 0) {
        this.pendingPos = pos;
        this.pendingSince = nowMs;
      }
      this.pending.set(pcm, this.pendingLen);
      this.pendingLen += pcm.length;
    }
    this.bytes += pcm.length;
    const end = pos + pcm.length / BYTES_PER_SAMPLE_FRAME;
    if (end > this.writtenEnd) this.writtenEnd = end;
  }

  /**
   * Appends one Opus packet record to the packet log (no-op without one). Positions are sample frames, 2^32 of
   * which is 24.8 hours: beyond that an epoch record carries the high word (capture-layout.ts).
   */
  logPacket(pos: number, opus: Uint8Array, nowMs: number): void {
    if (this.logFd === null || pos < 0 || !Number.isSafeInteger(pos) || opus.length >= PACKET_LOG_EPOCH) return;
    const high = Math.floor(pos / 2 ** 32);
    const need = 6 + opus.length + (high !== this.logHigh ? 6 : 0);
    if (this.log === null) this.log = Buffer.allocUnsafe(PENDING_BYTES);
    if (this.logLen + need > PENDING_BYTES) this.flushLog();
    if (this.logLen === 0) this.logSince = nowMs;
    if (high !== this.logHigh) {
      this.log.writeUInt32LE(high, this.logLen);
      this.log.writeUInt16LE(PACKET_LOG_EPOCH, this.logLen + 4);
      this.logLen += 6;
      this.logHigh = high;
    }
    this.log.writeUInt32LE(pos % 2 ** 32, this.logLen);
    this.log.writeUInt16LE(opus.length, this.logLen + 4);
    this.log.set(opus, this.logLen + 6);
    this.logLen += 6 + opus.length;
  }

  /** Flushes pending data older than flushMs. */
  flushIfDue(nowMs: number): void {
    this.observe(nowMs);
    if (this.pendingLen > 0 && nowMs - this.pendingSince >= this.flushMs) this.flushPcm();
    if (this.logLen > 0 && nowMs - this.logSince >= this.flushMs) this.flushLog();
    // Utterance edges go to disk once the audio before them did (a crash then never lists speech it lost).
    if (this.utt !== '' && this.pendingLen === 0) this.flushUtterances();
  }

  flush(): void {
    this.flushPcm();
    this.flushLog();
    this.flushUtterances();
  }

  private flushUtterances(): void {
    if (this.utt === '' || this.uttFd === null) return;
    const b = Buffer.from(this.utt, 'latin1');
    writeFully(this.uttFd, b, b.length, null);
    this.utt = '';
  }

  /**
   * Writes the pending audio. On failure (disk full) the pending audio is KEPT, so a later flush — after the
   * engine freed its reserve — can still put it on disk; the error goes to the caller.
   */
  private flushPcm(): void {
    if (this.pendingLen === 0 || this.pending === null) return;
    this.pwrite(this.pending, this.pendingLen, WAV_HEADER_BYTES + this.pendingPos * BYTES_PER_SAMPLE_FRAME);
    this.pendingLen = 0;
    this.pendingSince = Infinity;
  }

  /** Writes audio at a byte offset of the capture, and starts writeback once enough has accumulated. */
  private pwrite(buf: Uint8Array, len: number, offset: number): void {
    writeFully(this.fd, buf, len, offset);
    if (this.startWriteback === null) return;
    if (offset < this.dirtyLo) this.dirtyLo = offset;
    if (offset + len > this.dirtyHi) this.dirtyHi = offset + len;
    if (this.dirtyHi - this.dirtyLo >= this.writebackAt) {
      this.startWriteback(this.fd, this.dirtyLo, this.dirtyHi - this.dirtyLo);
      this.dirtyLo = Infinity;
      this.dirtyHi = 0;
      this.writebackAt = nextWritebackBytes();
    }
  }

  private flushLog(): void {
    if (this.logLen === 0 || this.log === null || this.logFd === null) return;
    writeFully(this.logFd, this.log, this.logLen, null);
    this.logLen = 0;
    this.logSince = Infinity;
  }

  /**
   * Flushes, sets the capture to exactly `endSamples` sample frames (cutting audio beyond the end, extending
   * with a hole), writes the real sizes into the header, and closes.
   */
  finish(endSamples: number): void {
    this.flush();
    const dataBytes = endSamples * BYTES_PER_SAMPLE_FRAME;
    ftruncateSync(this.fd, WAV_HEADER_BYTES + dataBytes);
    writeSync(this.fd, wavHeader(dataBytes), 0, WAV_HEADER_BYTES, 0);
    this.close();
  }

  /** Flushes and closes without changing the length (worker shutdown without cleanup). */
  close(): void {
    if (this.fd < 0) return;
    try {
      this.flush();
    } finally {
      closeSync(this.fd);
      this.fd = -1;
      if (this.logFd !== null) closeSync(this.logFd);
      this.logFd = null;
      if (this.uttFd !== null) closeSync(this.uttFd);
      this.uttFd = null;
      this.pending = null;
      this.log = null;
    }
  }
}
