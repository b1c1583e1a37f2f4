/**
 * One recording's tracks in the shared {@link WorkerPool}: user ids instead of track ids, its directory, its
 * output settings and its t=0. Several recordings can each hold one over the same pool; stopping one
 * (`cleanup`) finishes and forgets only its own tracks.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CAPTURE_DIR, capturePath, packetLogPath, utteranceLogPath } from '../sinks/capture-layout.ts';
import { mp3StreamPath } from '../sinks/mp3-stream.ts';
import type { AudioPacket } from '../sinks/types.ts';
import { NO_TAP, type TapConfig, type TapRecord } from '../sinks/track-tap.ts';
import type { PoolTrackStats, TrackOwner, WorkerPool } from './pool.ts';

export interface PoolTracksOptions {
  /** Recording directory; captures go to DIR/.capture/<stem>.wav. */
  dir: string;
  /** Also keep `.capture/<stem>.opus.pkt` packet logs (format opus). */
  keepOpus: boolean;
  /** Epoch ms (performance.timeOrigin + performance.now()) of the recording's t=0; default: now. */
  t0EpochMs?: number;
  /** Output is MP3: each track is stream-encoded while recording (src/sinks/mp3-stream.ts). */
  mp3?: { bitrateKbps: number; mono: boolean };
}

export interface PoolTracksEvents {
  /** A track's file could not be written (e.g. ENOSPC): that track stops; the recording should stop cleanly. */
  trackError: [info: { userId: string; code: string | undefined; message: string }];
  /** A worker holding some of these tracks died and was replaced; `userIds` continue in their files. */
  workerRestarted: [info: { index: number; exitCode: number; error?: string; userIds: string[] }];
  /** A worker holding some of these tracks kept dying and was given up (see WorkerPool). */
  workerFailed: [info: { index: number; deaths: number; windowMs: number; exitCode: number; error?: string; userIds: string[] }];
  /** Tapped output of one user's track (see track-tap.ts). */
  tap: [userId: string, record: TapRecord];
}

/** Stem for a track registered implicitly by its first packet (the recording normally names tracks itself). */
function fallbackStem(userId: string): string {
  const s = userId.replace(/[^0-9A-Za-z_-]/g, '_').slice(0, 64);
  return `user-${s || 'unknown'}`;
}

export class PoolTracks extends EventEmitter<PoolTracksEvents> {
  readonly pool: WorkerPool;
  readonly #opts: PoolTracksOptions;
  /** Pool-clock instant of this recording's t=0. */
  readonly t0Ms: number;
  readonly #byUser = new Map<string, number>();
  readonly #byTrack = new Map<number, string>();
  readonly #tap: TapConfig = NO_TAP;
  #cleaned = false;
  readonly #onRestarted: (i: { index: number; exitCode: number; error?: string; trackIds: number[] }) => void;
  readonly #onFailed: (i: { index: number; deaths: number; windowMs: number; exitCode: number; error?: string; trackIds: number[] }) => void;

  constructor(pool: WorkerPool, opts: PoolTracksOptions) {
    super();
    this.pool = pool;
    this.#opts = opts;
    this.t0Ms = opts.t0EpochMs === undefined ? pool.now() : pool.fromEpochMs(opts.t0EpochMs);
    mkdirSync(join(opts.dir, CAPTURE_DIR), { recursive: true, mode: 0o700 });
    const mine = (ids: number[]): string[] => ids.flatMap((id) => this.#byTrack.get(id) ?? []);
    this.#onRestarted = (i) => {
      const userIds = mine(i.trackIds);
      if (userIds.length) this.emit('workerRestarted', { index: i.index, exitCode: i.exitCode, ...(i.error !== undefined ? { error: i.error } : {}), userIds });
    };
    this.#onFailed = (i) => {
      const userIds = mine(i.trackIds);
      if (userIds.length) {
        this.emit('workerFailed', {
          index: i.index, deaths: i.deaths, windowMs: i.windowMs, exitCode: i.exitCode, ...(i.error !== undefined ? { error: i.error } : {}), userIds,
        });
      }
    };
    pool.on('workerRestarted', this.#onRestarted);
    pool.on('workerFailed', this.#onFailed);
  }

  /** The user ids with a track. */
  get userIds(): IterableIterator<string> {
    return this.#byUser.keys();
  }

  /**
   * Registers a user's track (the recording calls this before the user's first packet). The capture file
   * `.capture/<stem>.wav` is created now. Calling it again for the same user is a no-op.
   */
  addTrack(userId: string, stem: string, tap: TapConfig = this.#tap): void {
    if (this.#byUser.has(userId) || this.#cleaned) return;
    const dir = this.#opts.dir;
    const mp3 = this.#opts.mp3;
    const owner: TrackOwner = {
      onTap: (r) => this.emit('tap', userId, r),
      onTrackError: (code, message) => this.emit('trackError', { userId, code, message }),
    };
    const trackId = this.pool.addTrack(
      {
        userId,
        stem,
        capturePath: capturePath(dir, stem),
        ...(this.#opts.keepOpus ? { packetLogPath: packetLogPath(dir, stem) } : {}),
        utteranceLogPath: utteranceLogPath(dir, stem),
        ...(mp3 ? { mp3: { outPath: mp3StreamPath(dir, stem), bitrateKbps: mp3.bitrateKbps, mono: mp3.mono } } : {}),
        t0Ms: this.t0Ms,
        tap,
      },
      owner,
    );
    this.#byUser.set(userId, trackId);
    this.#byTrack.set(trackId, userId);
  }

  /** One packet (arrival on this recording's clock). A user without a track gets one (named by id). */
  onAudio(packet: AudioPacket): void {
    if (this.#cleaned) return;
    let id = this.#byUser.get(packet.userId);
    if (id === undefined) {
      this.addTrack(packet.userId, fallbackStem(packet.userId));
      id = this.#byUser.get(packet.userId)!;
    }
    this.pool.onAudio(id, packet);
  }

  /** What one user's track hands back to the main thread (see track-tap.ts). */
  setTap(userId: string, tap: TapConfig): void {
    const id = this.#byUser.get(userId);
    if (id !== undefined) this.pool.setTap(id, tap);
  }

  /** Every track starts its streams afresh (see WorkerPool.restartStreams): the recording resumes after a pause. */
  restartStreams(): void {
    for (const id of this.#byTrack.keys()) this.pool.restartStreams(id);
  }

  /** Latest figures per user (workers report about twice a second). */
  status(): Map<string, PoolTrackStats> {
    const out = new Map<string, PoolTrackStats>();
    for (const [id, s] of this.pool.status(this.#byTrack.keys())) out.set(this.#byTrack.get(id)!, s);
    return out;
  }

  /** Recording-clock ms before which every packet given to {@link onAudio} is on disk (see WorkerPool.flushedMs). */
  get flushedMs(): number {
    return this.pool.flushedMs(this.#byTrack.keys()) - this.t0Ms;
  }

  /**
   * Flushes every track up to `endMs` (recording clock), cuts every capture to exactly that length, closes the
   * files and resolves with each user's final figures. Audio arriving afterwards is ignored.
   */
  async cleanup(endMs: number): Promise<Map<string, PoolTrackStats>> {
    this.#cleaned = true;
    const stats = await this.pool.cleanup(this.#byTrack.keys(), endMs);
    const out = new Map<string, PoolTrackStats>();
    for (const [id, s] of stats) out.set(this.#byTrack.get(id)!, s);
    return out;
  }

  /** Stops listening to the pool (after cleanup). */
  detach(): void {
    this.pool.off('workerRestarted', this.#onRestarted);
    this.pool.off('workerFailed', this.#onFailed);
  }

  /** The pool's track id of a user (diagnostics and fault-injection tests). */
  trackIdOf(userId: string): number | undefined {
    return this.#byUser.get(userId);
  }

  /** The worker holding a user's track (diagnostics and fault-injection tests). */
  workerOf(userId: string): import('node:worker_threads').Worker | undefined {
    const id = this.#byUser.get(userId);
    return id === undefined ? undefined : this.pool.workerOf(id);
  }

  /** Test seam (pools made with faultInjection): the worker holding `userId` throws. Returns its index. */
  injectWorkerCrash(userId: string, message?: string): number {
    const id = this.#byUser.get(userId);
    if (id === undefined) throw new Error(`no track for ${userId}`);
    return this.pool.injectWorkerCrash(id, message);
  }

  /** Test seam (pools made with faultInjection): the worker holding `userId` stalls for `ms`. Returns its index. */
  injectWorkerStall(userId: string, ms: number): number {
    const id = this.#byUser.get(userId);
    if (id === undefined) throw new Error(`no track for ${userId}`);
    return this.pool.injectWorkerStall(id, ms);
  }
}
