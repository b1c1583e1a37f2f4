/**
 * One recording's tracks on a pool of their own: what the pool, MP3-stream and soak tests drive (the shared
 * WorkerPool plus a PoolTracks over it, closed together).
 */
import { WorkerPool, type WorkerPoolOptions } from '../src/pool/pool.ts';
import { PoolTracks, type PoolTracksOptions } from '../src/pool/recording-tracks.ts';

export type SoloPool = PoolTracks & { close(): Promise<void> };

export function recordingPool(opts: WorkerPoolOptions & PoolTracksOptions): SoloPool {
  const { dir, keepOpus, t0EpochMs, mp3, ...poolOpts } = opts;
  const pool = new WorkerPool(poolOpts);
  const tracks = new PoolTracks(pool, { dir, keepOpus, ...(t0EpochMs !== undefined ? { t0EpochMs } : {}), ...(mp3 ? { mp3 } : {}) });
  return Object.assign(tracks, {
    close: async () => {
      tracks.detach();
      await pool.close();
    },
  });
}
