/**
 * The worker pool: the decoding threads every recording of the process shares.
 *
 * The main thread only routes: each track is pinned to one worker for its life (Opus decoders are stateful, and
 * one writer per capture file keeps writes ordered), chosen as the least-loaded worker at first sight. Packets are
 * appended to one ArrayBuffer per worker and transferred every ~20 ms or when the buffer fills: no per-packet
 * postMessage.
 *
 * Wake-ups are the fixed cost of a thread on a virtual machine (BENCHMARKS.md), so while audio flows the batches
 * are sent from the packet path itself (the first packet that finds the batch ≥ batchMs old sends every worker its
 * batch) and the workers tick when a batch lands: no timer fires on either side. A fallback timer sends what is
 * pending when the traffic stops.
 *
 * A worker that dies (throws, is killed, runs out of memory) is replaced; its tracks continue in the same capture
 * files, because writes are positional and the writer never writes behind what is on disk. Only the packets in
 * flight to the dead worker (≤ one batch, plus its jitter buffers and ≤ flushMs of pending audio) are lost. The
 * pool emits `workerRestarted`. A worker that keeps dying (more than MAX_RESTARTS times within RESTART_WINDOW_MS)
 * is not replaced again: a crash that a fresh worker reproduces at once is a bug or an exhausted machine, and
 * restarting it forever would burn the CPU the other tracks need while its own tracks keep losing audio. The pool
 * emits `workerFailed`; what that worker's tracks put on disk stays there and is finished from the captures.
 *
 * Clock: the pool clock is milliseconds since the pool was made (the same monotonic clock in every thread). A
 * track's recording started at `spec.t0Ms` on it, and its packets carry arrival times on the recording's own
 * clock. With `clock: 'packets'` the workers ignore real time and advance only with packet arrival times (for
 * simulations fed faster than real time, e.g. benchmarks).
 *
 * One recording's view of the pool (user ids, its directory, its t=0) is {@link PoolTracks} (recording-tracks.ts).
 */
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { AudioPacket, TrackStats } from '../sinks/types.ts';
import { PRIMING_MS, copyStats, emptyStats } from '../sinks/types.ts';
import type { TrackResume } from '../sinks/track.ts';
import type { Mp3StreamReport } from '../sinks/mp3-stream.ts';
import { readTap, type TapConfig, type TapRecord } from '../sinks/track-tap.ts';
import { RECORD_HEADER_BYTES, type FromWorker, type ToWorker, type TrackSpec, type TrackStatusReport, type WorkerInit } from './protocol.ts';

export type { TrackSpec } from './protocol.ts';

export interface WorkerPoolOptions {
  /** Number of workers; default os.availableParallelism(). */
  workers?: number;
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
   * MP3 encoded while recording (tracks whose spec has `mp3`): `maxStreams` (pool-wide, default 48 ≈ 62 MiB of
   * encoder RSS) caps the encoders; `budgetMsPerTick` (default: half of each tick, i.e. 10 of every 20 ms) caps
   * their CPU. Tracks beyond are encoded after stop.
   */
  mp3?: { maxStreams?: number; budgetMsPerTick?: number };
  /**
   * Test seam: the workers obey {@link WorkerPool.injectWorkerCrash} (an uncaught throw inside the worker) and
   * {@link WorkerPool.injectWorkerStall}. Off in production: nothing else can make a worker throw or stall on purpose.
   */
  faultInjection?: boolean;
}

/** A worker that dies more than this many times within {@link RESTART_WINDOW_MS} is given up (see above). */
export const MAX_RESTARTS = 5;
export const RESTART_WINDOW_MS = 10_000;

/** A track's figures: what {@link WorkerPool.cleanup} returns at the end, and {@link WorkerPool.status} live. */
export type PoolTrackStats = TrackStats & {
  /** Where the first audio landed on the recording clock (ms), null if nothing was written. */
  startOffsetMs: number | null;
  /** Milliseconds of audio written (decoded + concealed). */
  activeMs: number;
  bytes: number;
  ssrcs: number[];
  /** Heard within the last 300 ms (live status). */
  speaking: boolean;
  /** The streamed MP3's state (tracks with `mp3` only), as of the last status; at cleanup, its outcome. */
  mp3?: Mp3StreamReport;
  /** Sample frames already stream-encoded to MP3 (tracks with `mp3` only; updated more often than `mp3`). */
  mp3EncodedFrames?: number;
};

/** Where one track's output and trouble go: the recording that owns it. */
export interface TrackOwner {
  /** Tapped output (see track-tap.ts): audio/Opus when its TapConfig asks, utterance edges always. */
  onTap(record: TapRecord): void;
  /** The track's file could not be written (e.g. ENOSPC): it takes no more audio. */
  onTrackError(code: string | undefined, message: string): void;
}

export interface WorkerPoolEvents {
  /** A worker died and was replaced; `trackIds` continue in their files. */
  workerRestarted: [info: { index: number; exitCode: number; error?: string; trackIds: number[] }];
  /**
   * A worker died for the (MAX_RESTARTS + 1)th time within RESTART_WINDOW_MS and was NOT replaced: `trackIds` take
   * no more audio (their captures keep what was written). Their recordings should stop cleanly.
   */
  workerFailed: [info: { index: number; deaths: number; windowMs: number; exitCode: number; error?: string; trackIds: number[] }];
}

interface TrackEntry {
  trackId: number;
  spec: TrackSpec;
  owner: TrackOwner | null;
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
  /** Pool-clock instant up to which this worker has flushed everything it released (last status). */
  flushedMs = -Infinity;
  /** Cleanups waiting for this worker's answer, by request id. */
  readonly pendingCleanups = new Map<number, { trackIds: number[]; endMs: number; resolve: (r: TrackStatusReport[]) => void }>();
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

export class WorkerPool extends EventEmitter<WorkerPoolEvents> {
  private readonly opts: Required<Omit<WorkerPoolOptions, 'workers' | 'mp3' | 'faultInjection'>>;
  private readonly init: WorkerInit;
  private readonly slots: WorkerSlot[] = [];
  private readonly byId = new Map<number, TrackEntry>();
  private nextTrackId = 1;
  private nextRequestId = 1;
  /** performance.now() at the pool clock's 0. */
  private readonly t0Perf: number;
  /** Fallback flush when packets stop (wall clock), or the periodic flush (packets clock). */
  private timer: NodeJS.Timeout;
  /** Pool-clock arrival of the oldest packet not yet sent to its worker (wall clock mode); +∞ when none. */
  private batchStartMs = Infinity;
  private closing = false;
  /** Latest pool-clock arrival seen (the workers' clock in 'packets' mode). */
  private maxArrivalMs = -Infinity;

  constructor(options: WorkerPoolOptions = {}) {
    super();
    this.opts = {
      clock: options.clock ?? 'wall',
      playoutDelayMs: options.playoutDelayMs ?? 60,
      batchMs: options.batchMs ?? 20,
      flushMs: options.flushMs ?? 250,
    };
    this.t0Perf = performance.now();
    const n = Math.max(1, options.workers ?? availableParallelism());
    this.init = {
      clock: this.opts.clock,
      hrT0: process.hrtime.bigint().toString(),
      playoutDelayMs: this.opts.playoutDelayMs,
      // Workers tick on every batch; their own timer only runs when batches stop.
      tickMs: this.opts.batchMs,
      statusMs: 500,
      flushMs: this.opts.flushMs,
      mp3Budget: {
        maxStreams: Math.ceil((options.mp3?.maxStreams ?? 48) / n),
        // Half of each tick, at most, for encoding.
        budgetMsPerTick: options.mp3?.budgetMsPerTick ?? this.opts.batchMs / 2,
      },
      ...(options.faultInjection === true ? { faultInjection: true } : {}),
    };
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

  /** The pool clock: milliseconds since the pool was made (wall mode), or the latest arrival seen (packets mode). */
  now(): number {
    return this.opts.clock === 'packets' ? Math.max(0, this.maxArrivalMs) : performance.now() - this.t0Perf;
  }

  /** Pool-clock instant of an epoch time (`performance.timeOrigin + performance.now()` form), for a recording's t=0. */
  fromEpochMs(epochMs: number): number {
    return epochMs - performance.timeOrigin - this.t0Perf;
  }

  /** The longest a packet waits in a jitter buffer before it is written (a talk spurt's priming window). */
  get holdMs(): number {
    return Math.max(this.opts.playoutDelayMs, PRIMING_MS);
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
   * Test seam: makes the worker holding a track throw an uncaught error, as a bug in the decoder or the writer
   * would. Only for pools made with `faultInjection`. Returns the worker's index.
   */
  injectWorkerCrash(trackId: number, message = 'injected fault'): number {
    const e = this.faultTarget(trackId);
    this.send(this.slots[e.worker]!, { type: 'crash', message });
    return e.worker;
  }

  /** Test seam: blocks the worker holding a track for `ms` (a thread the OS did not run). Returns its index. */
  injectWorkerStall(trackId: number, ms: number): number {
    const e = this.faultTarget(trackId);
    this.send(this.slots[e.worker]!, { type: 'stall', ms });
    return e.worker;
  }

  private faultTarget(trackId: number): TrackEntry {
    if (this.init.faultInjection !== true) throw new Error('fault injection needs a pool made with faultInjection');
    const e = this.byId.get(trackId);
    if (e === undefined) throw new Error(`no track ${trackId}`);
    return e;
  }

  /** The worker currently holding a track (diagnostics and fault-injection tests). */
  workerOf(trackId: number): Worker | undefined {
    const e = this.byId.get(trackId);
    return e === undefined ? undefined : this.slots[e.worker]!.worker;
  }

  /**
   * Pool-clock milliseconds before which every packet handed to {@link onAudio} for these tracks is on disk, as
   * confirmed by the workers' last status reports (each worker flushes before it reports): the slowest of their
   * workers' flush instants minus the jitter buffer's longest hold. −Infinity until each has reported once.
   */
  flushedMs(trackIds: Iterable<number>): number {
    const workers = new Set<number>();
    for (const id of trackIds) {
      const e = this.byId.get(id);
      if (e !== undefined) workers.add(e.worker);
    }
    let min = Infinity;
    for (const w of workers) min = Math.min(min, this.slots[w]!.flushedMs);
    return (workers.size === 0 ? this.now() : min) - this.holdMs;
  }

  /** Number of workers. */
  get size(): number {
    return this.slots.length;
  }

  /** Tracks currently registered (for a recorder deciding whether the pool is idle). */
  get trackCount(): number {
    return this.byId.size;
  }

  /**
   * Registers a track (its recording calls this before the user's first packet) and returns its id. The capture
   * file is created by the worker now. `owner` receives the track's tapped output and write errors.
   */
  addTrack(spec: TrackSpec, owner: TrackOwner | null = null): number {
    if (this.closing) throw new Error('the worker pool is closed');
    // Least loaded among the workers still alive (a given-up slot only if nothing else is left).
    let best = 0;
    const rank = (i: number): number => (this.slots[i]!.failed ? Infinity : this.slots[i]!.tracks);
    for (let i = 1; i < this.slots.length; i++) if (rank(i) < rank(best)) best = i;
    const entry: TrackEntry = { trackId: this.nextTrackId++, spec, owner, worker: best, last: null };
    this.byId.set(entry.trackId, entry);
    const slot = this.slots[best]!;
    slot.tracks++;
    // Keep order: any batch already queued for this worker goes first.
    this.flushSlot(slot);
    this.send(slot, { type: 'add', trackId: entry.trackId, spec });
    return entry.trackId;
  }

  /** Changes what a track hands back to the main thread (user streams or sinks added or removed). */
  setTap(trackId: number, tap: TapConfig): void {
    const e = this.byId.get(trackId);
    if (e === undefined) return;
    e.spec = { ...e.spec, tap };
    this.send(this.slots[e.worker]!, { type: 'tap', trackId, tap });
  }

  /**
   * Makes a track start its streams afresh after a discontinuity nothing may bridge (a recording resumed after a
   * pause): ordered after every packet already handed to {@link onAudio}, before every later one.
   */
  restartStreams(trackId: number): void {
    const e = this.byId.get(trackId);
    if (e === undefined) return;
    const slot = this.slots[e.worker]!;
    this.flushSlot(slot);
    this.send(slot, { type: 'restart', trackId });
  }

  /** One packet for a track (arrival on the track's recording clock). */
  onAudio(trackId: number, packet: Omit<AudioPacket, 'userId'>): void {
    const e = this.byId.get(trackId);
    if (e === undefined) return;
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
    v.setUint32(o, trackId, true);
    v.setUint32(o + 4, packet.ssrc >>> 0, true);
    v.setUint16(o + 8, packet.sequence & 0xffff, true);
    v.setUint16(o + 10, n, true);
    v.setUint32(o + 12, packet.timestamp >>> 0, true);
    v.setFloat64(o + 16, packet.arrivalMs, true);
    slot.bytes.set(opus, o + RECORD_HEADER_BYTES);
    slot.len += need;
    const arrival = packet.arrivalMs + e.spec.t0Ms;
    if (arrival > this.maxArrivalMs) this.maxArrivalMs = arrival;
    if (this.opts.clock === 'wall') {
      if (this.batchStartMs === Infinity) {
        // The first packet of a batch arms the fallback; steady traffic re-arms it before it can fire.
        this.batchStartMs = arrival;
        this.timer.refresh();
      } else if (arrival - this.batchStartMs >= this.opts.batchMs) this.flushBatches();
    }
  }

  /** Traffic stopped with packets pending: send them. Not re-armed until the next packet (idle = no wake-ups). */
  private onFallbackTimer(): void {
    if (!this.closing) this.flushBatches();
  }

  /** Latest figures of these tracks (workers report about twice a second). */
  status(trackIds: Iterable<number>): Map<number, PoolTrackStats> {
    const out = new Map<number, PoolTrackStats>();
    for (const id of trackIds) {
      const e = this.byId.get(id);
      if (e === undefined) continue;
      out.set(id, figures(e.last, e.mp3Frames));
    }
    return out;
  }

  /**
   * Flushes these tracks' workers up to `endMs` (their recording clock), cuts each capture to exactly that
   * length, closes the files, forgets the tracks and resolves with their final figures. Audio arriving for them
   * afterwards is ignored.
   */
  async cleanup(trackIds: Iterable<number>, endMs: number): Promise<Map<number, PoolTrackStats>> {
    const byWorker = new Map<number, number[]>();
    const entries: TrackEntry[] = [];
    for (const id of trackIds) {
      const e = this.byId.get(id);
      if (e === undefined) continue;
      entries.push(e);
      const list = byWorker.get(e.worker) ?? [];
      list.push(id);
      byWorker.set(e.worker, list);
    }
    const results = await Promise.all(
      [...byWorker].map(([w, ids]) => {
        const slot = this.slots[w]!;
        // A given-up worker's tracks keep their last reported figures; their captures are finished from disk.
        if (slot.failed) return Promise.resolve([] as TrackStatusReport[]);
        // The batch in flight goes first, and carries the end as its clock (packets mode).
        this.flushSlot(slot, Math.max(slot.lastNowMs, this.maxArrivalMs));
        const requestId = this.nextRequestId++;
        return new Promise<TrackStatusReport[]>((resolve) => {
          slot.pendingCleanups.set(requestId, { trackIds: ids, endMs, resolve });
          this.send(slot, { type: 'cleanup', requestId, trackIds: ids, endMs });
        });
      }),
    );
    for (const reports of results) for (const r of reports) this.record(r);
    const out = new Map<number, PoolTrackStats>();
    for (const e of entries) {
      out.set(e.trackId, figures(e.last, e.mp3Frames));
      this.byId.delete(e.trackId);
      this.slots[e.worker]!.tracks--;
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
      case 'cleaned': {
        const p = slot?.pendingCleanups.get(m.requestId);
        if (p) {
          slot!.pendingCleanups.delete(m.requestId);
          p.resolve(m.tracks);
        }
        break;
      }
      case 'closed':
        slot?.pendingClose?.();
        break;
      case 'mp3Progress':
        for (const p of m.tracks) {
          const e = this.byId.get(p.trackId);
          if (e !== undefined && e.worker === index) e.mp3Frames = p.encodedFrames;
        }
        break;
      case 'trackError':
        this.byId.get(m.trackId)?.owner?.onTrackError(m.code, m.message);
        break;
      case 'tap':
        for (const r of readTap(m.buf, m.len)) this.byId.get(r.trackId)?.owner?.onTap(r);
        break;
    }
  }

  private onExit(index: number, w: Worker, code: number, error: string | undefined): void {
    const slot = this.slots[index];
    if (slot === undefined || slot.worker !== w || this.closing) return;
    const entries = [...this.byId.values()].filter((e) => e.worker === index);
    const trackIds = entries.map((e) => e.trackId);
    const now = performance.now();
    slot.deaths = slot.deaths.filter((t) => now - t < RESTART_WINDOW_MS);
    slot.deaths.push(now);
    if (slot.deaths.length > MAX_RESTARTS) {
      slot.failed = true;
      slot.len = 0;
      // Nothing will answer for this slot any more: a cleanup or close waiting on it must not hang.
      for (const p of slot.pendingCleanups.values()) p.resolve([]);
      slot.pendingCleanups.clear();
      slot.pendingClose?.();
      slot.pendingClose = null;
      this.emit('workerFailed', { index, deaths: slot.deaths.length, windowMs: RESTART_WINDOW_MS, exitCode: code, error, trackIds });
      return;
    }
    slot.worker = this.spawn(index);
    slot.newBuffer(MIN_BATCH);
    for (const e of entries) {
      const l = e.last;
      const resume: TrackResume | undefined =
        l === null
          ? undefined
          : { stats: copyStats(l), startOffsetMs: l.startOffsetMs, activeMs: l.activeMs, bytes: l.bytes, ssrcs: l.ssrcs, writtenEnd: l.writtenEnd };
      this.send(slot, { type: 'add', trackId: e.trackId, spec: e.spec, resume });
    }
    for (const [requestId, p] of slot.pendingCleanups) this.send(slot, { type: 'cleanup', requestId, trackIds: p.trackIds, endMs: p.endMs });
    this.emit('workerRestarted', { index, exitCode: code, error, trackIds });
  }
}

/** A track's figures from its last report (zeros before the first). */
function figures(l: TrackStatusReport | null, mp3Frames: number | undefined): PoolTrackStats {
  const base = l ?? { ...emptyStats(), startOffsetMs: null, activeMs: 0, bytes: 0, ssrcs: [], speaking: false };
  return {
    ...copyStats(base),
    startOffsetMs: base.startOffsetMs,
    activeMs: base.activeMs,
    bytes: base.bytes,
    ssrcs: [...base.ssrcs],
    speaking: base.speaking,
    ...(l?.mp3 !== undefined ? { mp3: l.mp3 } : {}),
    ...(mp3Frames !== undefined ? { mp3EncodedFrames: mp3Frames } : {}),
  };
}
