/**
 * The worker pool: the production {@link AudioSink}.
 *
 * The main thread only routes: each user is pinned to one worker for the life of the track (Opus decoders
 * are stateful, and one writer per capture file keeps writes ordered), chosen as the least-loaded worker at
 * first sight. Packets are appended to one ArrayBuffer per worker and transferred every ~20 ms or when the
 * buffer fills: no per-packet postMessage.
 *
 * Wake-ups are the fixed cost of a thread on a virtual machine (~0.1 ms of CPU each, measured), so while audio
 * flows the batches are sent from the packet path itself (the first packet that finds the batch ≥ batchMs old
 * sends every worker its batch) and the workers tick when a batch lands: no timer fires on either side. A
 * fallback timer sends what is pending when the traffic stops.
 *
 * A worker that dies (throws, is killed, runs out of memory) is replaced; its users' tracks continue in the
 * same capture files, because writes are positional and the writer never writes behind what is on disk.
 * Only the packets in flight to the dead worker (≤ one batch, plus its jitter buffers and ≤ flushMs of
 * pending audio) are lost. The pool emits `workerRestarted` so the engine can log it. A worker that keeps
 * dying (more than MAX_RESTARTS times within RESTART_WINDOW_MS) is not replaced again: a crash that a fresh
 * worker reproduces at once is a bug or an exhausted machine, and restarting it forever would burn the CPU the
 * other tracks need while its own tracks keep losing audio. The pool emits `workerFailed`; what that worker's
 * tracks put on disk stays there and is finished from the captures, as after a crash.
 *
 * Clock: `arrivalMs` of every packet is "ms since t=0". By default t=0 is the pool's construction; pass
 * `t0EpochMs` (`performance.timeOrigin + performance.now()` taken at t=0) to use the engine's t=0. With
 * `clock: 'packets'` the workers ignore real time and advance only with packet arrival times (for
 * simulations fed faster than real time, e.g. benchmarks).
 */
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CAPTURE_DIR } from '../sinks/capture-layout.ts';
import type { AudioPacket, AudioSink, RtcpPacket, TrackStats } from '../sinks/types.ts';
import { PRIMING_MS, copyStats, emptyStats } from '../sinks/types.ts';
import type { TrackResume } from '../sinks/track.ts';
import type { Mp3StreamReport } from '../sinks/mp3-stream.ts';
import { RECORD_HEADER_BYTES, type FromWorker, type ToWorker, type TrackStatusReport, type WorkerInit } from './protocol.ts';

export interface WorkerPoolOptions {
  /** Recording directory; captures go to DIR/.capture/<stem>.wav. */
  dir: string;
  /** Number of workers; default os.availableParallelism(). */
  workers?: number;
  /** Also keep `.capture/<stem>.opus.pkt` packet logs. */
  keepOpus: boolean;
  /** Epoch ms (performance.timeOrigin + performance.now()) of t=0; default: now. */
  t0EpochMs?: number;
  /** 'wall' (default): real time; 'packets': time advances only with packet arrivals. */
  clock?: 'wall' | 'packets';
  /** Jitter-buffer hold for reordered packets (ms). Default 60. */
  playoutDelayMs?: number;
  /**
   * Batch interval (ms). Default 20: each batch wakes a worker, and a cross-thread wake-up is the largest cost
   * the main thread has per batch on a virtual machine; 20 ms is still far inside the 60 ms playout hold.
   */
  batchMs?: number;
  /** Maximum age of unflushed audio in a worker (ms). Default 250. */
  flushMs?: number;
  /**
   * Output is MP3: each worker stream-encodes its tracks while recording (src/sinks/mp3-stream.ts), so at stop
   * only the tail is left. `maxStreams` (pool-wide, default 48 ≈ 62 MiB of encoder RSS) caps the encoders;
   * `budgetMsPerTick` (default: half of each tick, i.e. 10 of every 20 ms) caps their CPU. Tracks beyond are encoded after stop.
   */
  mp3?: { bitrateKbps: number; mono: boolean; maxStreams?: number; budgetMsPerTick?: number };
  /**
   * Test seam: the workers obey {@link WorkerPool.injectWorkerCrash} (an uncaught throw inside the worker) and
   * {@link WorkerPool.injectWorkerStall}. Off in production: nothing else can make a worker throw or stall on purpose.
   */
  faultInjection?: boolean;
}

/** A worker that dies more than this many times within {@link RESTART_WINDOW_MS} is given up (see above). */
export const MAX_RESTARTS = 5;
export const RESTART_WINDOW_MS = 10_000;

/** Final per-user figures from {@link WorkerPool.cleanup}. */
export type PoolTrackStats = TrackStats & {
  startOffsetMs: number | null;
  activeMs: number;
  bytes: number;
  ssrcs: number[];
  /** The streamed MP3's outcome (pools with `mp3` only). */
  mp3?: Mp3StreamReport;
};

/** Live per-user figures from {@link WorkerPool.status}. */
export interface PoolTrackStatus {
  speaking: boolean;
  activeMs: number;
  bytes: number;
  received: number;
  lost: number;
  concealed: number;
  duplicate: number;
  /** Sample frames of this user's track already stream-encoded to MP3 (pools with `mp3` only). */
  mp3EncodedFrames?: number;
}

export interface WorkerPoolEvents {
  /** A worker died and was replaced; `userIds` continue in their files. */
  workerRestarted: [info: { index: number; exitCode: number; error?: string; userIds: string[] }];
  /**
   * A worker died for the (MAX_RESTARTS + 1)th time within RESTART_WINDOW_MS and was NOT replaced: `userIds` take
   * no more audio (their captures keep what was written). The engine should stop cleanly.
   */
  workerFailed: [info: { index: number; deaths: number; windowMs: number; exitCode: number; error?: string; userIds: string[] }];
  /** A track's file could not be written (e.g. ENOSPC): that track stops; the engine should stop cleanly. */
  trackError: [info: { userId: string; code: string | undefined; message: string }];
}

interface TrackEntry {
  trackId: number;
  userId: string;
  stem: string;
  worker: number;
  last: TrackStatusReport | null;
  /** Latest streamed-MP3 progress (frames encoded). */
  mp3Frames?: number;
}

const MIN_BATCH = 16 * 1024;
const EMPTY = new Uint8Array(0);
const MAX_BATCH = 1024 * 1024;

class WorkerSlot {
  worker: Worker;
  buf: ArrayBuffer;
  view: DataView;
  bytes: Uint8Array;
  len = 0;
  /** Latest clock value posted (packets mode). */
  lastNowMs = -Infinity;
  tracks = 0;
  /** performance.now() of this slot's recent worker deaths (those within RESTART_WINDOW_MS). */
  deaths: number[] = [];
  /** Given up after too many deaths: no worker, its tracks take no more audio. */
  failed = false;
  /** Worker-clock instant up to which this worker has flushed everything it released (last status). */
  flushedMs = -Infinity;
  pendingCleanup: { endMs: number; resolve: (r: TrackStatusReport[]) => void } | null = null;
  pendingClose: (() => void) | null = null;

  constructor(worker: Worker) {
    this.worker = worker;
    this.buf = new ArrayBuffer(MIN_BATCH);
    this.view = new DataView(this.buf);
    this.bytes = new Uint8Array(this.buf);
  }

  newBuffer(size: number): void {
    this.buf = new ArrayBuffer(size);
    this.view = new DataView(this.buf);
    this.bytes = new Uint8Array(this.buf);
    this.len = 0;
  }
}

function safeStem(userId: string): string {
  const s = userId.replace(/[^0-9A-Za-z_-]/g, '_').slice(0, 64);
  return `user-${s || 'unknown'}`;
}

export class WorkerPool extends EventEmitter<WorkerPoolEvents> implements AudioSink {
  private readonly opts: Required<Omit<WorkerPoolOptions, 't0EpochMs' | 'workers' | 'mp3' | 'faultInjection'>>;
  private readonly init: WorkerInit;
  private readonly slots: WorkerSlot[] = [];
  private readonly byUser = new Map<string, TrackEntry>();
  private readonly byId = new Map<number, TrackEntry>();
  private nextTrackId = 1;
  /** Fallback flush when packets stop (wall clock), or the periodic flush (packets clock). */
  private timer: NodeJS.Timeout;
  /** Recording-clock arrival of the oldest packet not yet sent to its worker (wall clock mode); +∞ when none. */
  private batchStartMs = Infinity;
  private closing = false;
  private cleaned = false;
  private maxArrivalMs = -Infinity;
  /** RTCP packets seen (Discord forwards a sender report per active sender about once a second; the clock does not need them). */
  rtcpPackets = 0;

  constructor(options: WorkerPoolOptions) {
    super();
    this.opts = {
      dir: options.dir,
      keepOpus: options.keepOpus,
      clock: options.clock ?? 'wall',
      playoutDelayMs: options.playoutDelayMs ?? 60,
      batchMs: options.batchMs ?? 20,
      flushMs: options.flushMs ?? 250,
    };
    mkdirSync(join(options.dir, CAPTURE_DIR), { recursive: true, mode: 0o700 });
    // Translate the engine's epoch-ms t=0 into the process-wide monotonic clock the workers share.
    const epochNow = performance.timeOrigin + performance.now();
    const hrNow = process.hrtime.bigint();
    const t0 = options.t0EpochMs ?? epochNow;
    const hrT0 = hrNow - BigInt(Math.round((epochNow - t0) * 1e6));
    this.init = {
      dir: options.dir,
      keepOpus: options.keepOpus,
      clock: this.opts.clock,
      hrT0: hrT0.toString(),
      playoutDelayMs: this.opts.playoutDelayMs,
      // Workers tick on every batch; their own timer only runs when batches stop.
      tickMs: this.opts.batchMs,
      statusMs: 500,
      flushMs: this.opts.flushMs,
      ...(options.faultInjection === true ? { faultInjection: true } : {}),
    };
    const n = Math.max(1, options.workers ?? availableParallelism());
    if (options.mp3) {
      this.init.mp3 = {
        bitrateKbps: options.mp3.bitrateKbps,
        mono: options.mp3.mono,
        maxStreams: Math.ceil((options.mp3.maxStreams ?? 48) / n),
        // Half of each tick, at most, for encoding.
        budgetMsPerTick: options.mp3.budgetMsPerTick ?? this.opts.batchMs / 2,
      };
    }
    for (let i = 0; i < n; i++) this.slots.push(new WorkerSlot(this.spawn(i)));
    if (this.opts.clock === 'wall') {
      // Fires only when packets stop: 1.5 × batchMs after a batch's first packet, so steady traffic always wins.
      this.timer = setTimeout(() => this.onFallbackTimer(), Math.ceil(this.opts.batchMs * 1.5));
    } else {
      // Packets clock (fed faster than real time): batch by real time, or every packet would be its own batch.
      this.timer = setInterval(() => this.flushBatches(), this.opts.batchMs);
    }
    this.timer.unref();
  }

  private spawn(index: number): Worker {
    const url = new URL('./worker' + extname(fileURLToPath(import.meta.url)), import.meta.url);
    const w = new Worker(url, { workerData: this.init });
    let error: string | undefined;
    w.on('message', (m: FromWorker) => this.onMessage(index, m));
    w.on('error', (err) => {
      error = err instanceof Error ? err.message : String(err);
    });
    w.on('exit', (code) => this.onExit(index, w, code, error));
    return w;
  }

  /**
   * Test seam: makes the worker holding `userId`'s track throw an uncaught error, as a bug in the decoder or the
   * writer would. Only for pools made with `faultInjection` (the worker ignores the message otherwise).
   * Returns the worker's index.
   */
  injectWorkerCrash(userId: string, message = 'injected fault'): number {
    if (this.init.faultInjection !== true) throw new Error('injectWorkerCrash needs a pool made with faultInjection');
    const e = this.byUser.get(userId);
    if (e === undefined) throw new Error(`no track for ${userId}`);
    this.send(this.slots[e.worker]!, { type: 'crash', message });
    return e.worker;
  }

  /**
   * Test seam: blocks the worker holding `userId`'s track for `ms` (a thread the OS did not run), while batches keep
   * coming. Only for pools made with `faultInjection`. Returns the worker's index.
   */
  injectWorkerStall(userId: string, ms: number): number {
    if (this.init.faultInjection !== true) throw new Error('injectWorkerStall needs a pool made with faultInjection');
    const e = this.byUser.get(userId);
    if (e === undefined) throw new Error(`no track for ${userId}`);
    this.send(this.slots[e.worker]!, { type: 'stall', ms });
    return e.worker;
  }

  /** The worker currently holding a user's track (diagnostics and fault-injection tests). */
  workerOf(userId: string): Worker | undefined {
    const e = this.byUser.get(userId);
    return e === undefined ? undefined : this.slots[e.worker]!.worker;
  }

  /**
   * Recording-clock milliseconds before which every packet handed to {@link onAudio} is on disk, as confirmed
   * by the workers' last status reports (each worker flushes before it reports): the slowest worker's flush
   * instant minus the jitter buffer's longest hold (a talk spurt's priming window). −Infinity until every
   * worker has reported once.
   */
  get flushedMs(): number {
    let min = Infinity;
    for (const s of this.slots) min = Math.min(min, s.flushedMs);
    return min - Math.max(this.opts.playoutDelayMs, PRIMING_MS);
  }

  /** Number of workers. */
  get size(): number {
    return this.slots.length;
  }

  /**
   * Registers a user's track (the engine calls this before the user's first packet). The capture file
   * `.capture/<stem>.wav` is created now. Calling it again for the same user is a no-op.
   */
  addTrack(userId: string, stem: string): void {
    if (this.byUser.has(userId) || this.cleaned) return;
    // Least loaded among the workers still alive (a given-up slot only if nothing else is left).
    let best = 0;
    const rank = (i: number): number => (this.slots[i]!.failed ? Infinity : this.slots[i]!.tracks);
    for (let i = 1; i < this.slots.length; i++) if (rank(i) < rank(best)) best = i;
    const entry: TrackEntry = { trackId: this.nextTrackId++, userId, stem, worker: best, last: null };
    this.byUser.set(userId, entry);
    this.byId.set(entry.trackId, entry);
    const slot = this.slots[best]!;
    slot.tracks++;
    // Keep order: any batch already queued for this worker goes first.
    this.flushSlot(slot);
    this.send(slot, { type: 'add', trackId: entry.trackId, userId, stem });
  }

  onAudio(packet: AudioPacket): void {
    if (this.cleaned) return;
    let e = this.byUser.get(packet.userId);
    if (e === undefined) {
      this.addTrack(packet.userId, safeStem(packet.userId));
      e = this.byUser.get(packet.userId)!;
    }
    const slot = this.slots[e.worker]!;
    if (slot.failed) return;
    // The record's length field is 16 bits. No Opus packet comes near that (libopus refuses > 8 KiB), so a larger
    // payload goes on as an empty one: the track counts it as corrupt and conceals it, in its place in the
    // sequence, instead of it vanishing uncounted (and being taken for a lost packet).
    const opus = packet.opus.length > 0xffff ? EMPTY : packet.opus;
    const n = opus.length;
    const need = RECORD_HEADER_BYTES + n;
    if (slot.len + need > slot.buf.byteLength) {
      this.flushSlot(slot);
      if (need > slot.buf.byteLength) slot.newBuffer(Math.max(need, MIN_BATCH));
    }
    const v = slot.view;
    const o = slot.len;
    v.setUint32(o, e.trackId, true);
    v.setUint32(o + 4, packet.ssrc >>> 0, true);
    v.setUint16(o + 8, packet.sequence & 0xffff, true);
    v.setUint16(o + 10, n, true);
    v.setUint32(o + 12, packet.timestamp >>> 0, true);
    v.setFloat64(o + 16, packet.arrivalMs, true);
    slot.bytes.set(opus, o + RECORD_HEADER_BYTES);
    slot.len += need;
    if (packet.arrivalMs > this.maxArrivalMs) this.maxArrivalMs = packet.arrivalMs;
    if (this.opts.clock === 'wall') {
      if (this.batchStartMs === Infinity) {
        // The first packet of a batch arms the fallback; steady traffic re-arms it before it can fire.
        this.batchStartMs = packet.arrivalMs;
        this.timer.refresh();
      } else if (packet.arrivalMs - this.batchStartMs >= this.opts.batchMs) this.flushBatches();
    }
  }

  /** Traffic stopped with packets pending: send them. Not re-armed until the next packet (idle = no wake-ups). */
  private onFallbackTimer(): void {
    if (!this.closing) this.flushBatches();
  }

  /**
   * RTCP is counted and dropped: the track clock anchors on arrival times (and measures drift from them), which
   * the sender reports' NTP/RTP pairs would not improve.
   */
  onRtcp(_packet: RtcpPacket): void {
    this.rtcpPackets++;
  }

  /** Latest per-user figures (workers report about twice a second). */
  status(): Map<string, PoolTrackStatus> {
    const out = new Map<string, PoolTrackStatus>();
    for (const e of this.byUser.values()) {
      const l = e.last;
      out.set(e.userId, {
        speaking: l?.speaking ?? false,
        activeMs: l?.activeMs ?? 0,
        bytes: l?.bytes ?? 0,
        received: l?.received ?? 0,
        lost: l?.lost ?? 0,
        concealed: l?.concealed ?? 0,
        duplicate: l?.duplicate ?? 0,
        ...(e.mp3Frames !== undefined ? { mp3EncodedFrames: e.mp3Frames } : {}),
      });
    }
    return out;
  }

  /**
   * Flushes every worker up to `endMs` (recording clock), cuts every capture to exactly that length, closes
   * the files and resolves with each user's final figures. Audio arriving afterwards is ignored.
   */
  async cleanup(endMs: number): Promise<Map<string, PoolTrackStats>> {
    this.cleaned = true;
    const results = await Promise.all(
      this.slots.map((slot) => {
        // A given-up worker's tracks keep their last reported figures; their captures are finished from disk.
        if (slot.failed) return Promise.resolve([]);
        this.flushSlot(slot, endMs);
        return new Promise<TrackStatusReport[]>((resolve) => {
          slot.pendingCleanup = { endMs, resolve };
          this.send(slot, { type: 'cleanup', endMs });
        });
      }),
    );
    for (const reports of results) for (const r of reports) this.record(r);
    const out = new Map<string, PoolTrackStats>();
    for (const e of this.byUser.values()) {
      const l = e.last;
      const base = l ?? { ...emptyStats(), startOffsetMs: null, activeMs: 0, bytes: 0, ssrcs: [] };
      out.set(e.userId, {
        ...copyStats(base),
        startOffsetMs: base.startOffsetMs,
        activeMs: base.activeMs,
        bytes: base.bytes,
        ssrcs: [...base.ssrcs],
        ...(l?.mp3 !== undefined ? { mp3: l.mp3 } : {}),
      });
    }
    return out;
  }

  /** Stops the workers (after closing their files). Safe to call more than once. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearTimeout(this.timer);
    await Promise.all(
      this.slots.filter((slot) => !slot.failed).map(
        (slot) =>
          new Promise<void>((resolve) => {
            slot.pendingClose = resolve;
            slot.worker.once('exit', () => resolve());
            this.send(slot, { type: 'close' });
          }),
      ),
    );
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private send(slot: WorkerSlot, m: ToWorker, transfer?: ArrayBuffer[]): void {
    try {
      slot.worker.postMessage(m, transfer);
    } catch {
      /* worker already gone: its replacement will be re-sent what it needs */
    }
  }

  private flushBatches(): void {
    this.batchStartMs = Infinity;
    for (const slot of this.slots) if (!slot.failed) this.flushSlot(slot);
  }

  private flushSlot(slot: WorkerSlot, nowOverride?: number): void {
    // In 'packets' mode an empty batch still carries the latest arrival time, which is the workers' clock.
    const nowMs = nowOverride ?? this.maxArrivalMs;
    if (slot.len === 0 && nowOverride === undefined && (this.opts.clock === 'wall' || nowMs <= slot.lastNowMs)) return;
    if (nowMs > slot.lastNowMs) slot.lastNowMs = nowMs;
    const used = slot.len;
    const buf = slot.buf;
    // Size the next buffer to recent traffic so a busy worker is not posted many tiny batches.
    slot.newBuffer(Math.min(MAX_BATCH, Math.max(MIN_BATCH, used * 2)));
    this.send(slot, { type: 'batch', buf, len: used, nowMs }, [buf]);
  }

  private record(r: TrackStatusReport): void {
    const e = this.byId.get(r.trackId);
    if (e !== undefined) e.last = r;
  }

  private onMessage(index: number, m: FromWorker): void {
    const slot = this.slots[index];
    switch (m.type) {
      case 'status':
        for (const r of m.tracks) this.record(r);
        if (slot !== undefined && m.flushedMs > slot.flushedMs) slot.flushedMs = m.flushedMs;
        break;
      case 'cleaned':
        if (slot?.pendingCleanup) {
          const p = slot.pendingCleanup;
          slot.pendingCleanup = null;
          p.resolve(m.tracks);
        }
        break;
      case 'closed':
        slot?.pendingClose?.();
        break;
      case 'mp3Progress':
        for (const p of m.tracks) {
          const e = this.byId.get(p.trackId);
          if (e !== undefined && e.worker === index) e.mp3Frames = p.encodedFrames;
        }
        break;
      case 'trackError': {
        const e = this.byId.get(m.trackId);
        this.emit('trackError', { userId: e?.userId ?? '?', code: m.code, message: m.message });
        break;
      }
    }
  }

  private onExit(index: number, w: Worker, code: number, error: string | undefined): void {
    const slot = this.slots[index];
    if (slot === undefined || slot.worker !== w || this.closing) return;
    const users = [...this.byId.values()].filter((e) => e.worker === index);
    const now = performance.now();
    slot.deaths = slot.deaths.filter((t) => now - t < RESTART_WINDOW_MS);
    slot.deaths.push(now);
    if (slot.deaths.length > MAX_RESTARTS) {
      slot.failed = true;
      slot.len = 0;
      // Nothing will answer for this slot any more: a cleanup or close waiting on it must not hang.
      slot.pendingCleanup?.resolve([]);
      slot.pendingCleanup = null;
      slot.pendingClose?.();
      slot.pendingClose = null;
      this.emit('workerFailed', {
        index, deaths: slot.deaths.length, windowMs: RESTART_WINDOW_MS, exitCode: code, error, userIds: users.map((u) => u.userId),
      });
      return;
    }
    slot.worker = this.spawn(index);
    slot.newBuffer(MIN_BATCH);
    for (const e of users) {
      const l = e.last;
      const resume: TrackResume | undefined =
        l === null
          ? undefined
          : {
              stats: copyStats(l),
              startOffsetMs: l.startOffsetMs,
              activeMs: l.activeMs,
              bytes: l.bytes,
              ssrcs: l.ssrcs,
              writtenEnd: l.writtenEnd,
            };
      this.send(slot, { type: 'add', trackId: e.trackId, userId: e.userId, stem: e.stem, resume });
    }
    if (slot.pendingCleanup) this.send(slot, { type: 'cleanup', endMs: slot.pendingCleanup.endMs });
    this.emit('workerRestarted', { index, exitCode: code, error, userIds: users.map((u) => u.userId) });
  }
}
