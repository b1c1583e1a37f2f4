/**
 * Runs encode jobs in parallel: one worker thread per job, at most one per core at a time (encoding is
 * CPU-bound; with ffmpeg the worker mostly feeds a child process, which also runs on its own core).
 * Reports per-file progress and an ETA from the overall rate so far.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { extname, basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorOfKind, type ErrorKind } from '../../errors.ts';
import { jobWeight, type Job, type JobResult } from './jobs.ts';
import type { ConvertProgress } from '../../recording-api.ts';

export interface PoolOptions {
  concurrency?: number;
  onProgress?: (p: ConvertProgress) => void;
  /** Label shown per file (default: the output's base name). */
  label?: (job: Job) => string;
}

const WORKER_URL = new URL('./encode-worker' + extname(fileURLToPath(import.meta.url)), import.meta.url);

function runInWorker(job: Job, onProgress: (d: number) => void): Promise<JobResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER_URL, { workerData: job });
    let settled = false;
    w.on('message', (m: { type: string; done?: number; result?: JobResult; message?: string; kind?: ErrorKind }) => {
      if (m.type === 'progress') onProgress(m.done!);
      else if (m.type === 'done') { settled = true; resolve(m.result!); }
      else if (m.type === 'error') {
        settled = true;
        reject(errorOfKind(m.kind ?? 'internal', `${basename(job.out)}: ${m.message}`));
      }
    });
    w.on('error', (e) => { if (!settled) { settled = true; reject(e); } });
    w.on('exit', (code) => {
      if (!settled) { settled = true; reject(new Error(`encoder worker for ${basename(job.out)} exited with ${code}`)); }
    });
  });
}

/** Runs every job; resolves with results in job order, rejects with the first failure (after all settle). */
export async function runJobs(jobs: Job[], opts: PoolOptions = {}): Promise<JobResult[]> {
  const concurrency = Math.max(1, Math.min(jobs.length, opts.concurrency ?? availableParallelism()));
  const label = opts.label ?? ((j: Job) => basename(j.out));
  const done = jobs.map(() => 0);
  const weights = jobs.map(jobWeight);
  const totalWeight = weights.reduce((a, b) => a + b, 0);
  const started = Date.now();
  let lastEmit = 0;
  const emit = (force: boolean) => {
    if (!opts.onProgress) return;
    const now = Date.now();
    if (!force && now - lastEmit < 100) return;
    lastEmit = now;
    const frac = weights.reduce((a, w, i) => a + w * done[i]!, 0) / totalWeight;
    const elapsed = now - started;
    const etaMs = frac >= 1 ? 0 : frac > 0.02 && elapsed > 250 ? Math.round((elapsed * (1 - frac)) / frac) : undefined;
    opts.onProgress({ files: jobs.map((j, i) => ({ file: label(j), done: done[i]! })), ...(etaMs !== undefined ? { etaMs } : {}) });
  };
  emit(true);
  const results: JobResult[] = new Array(jobs.length);
  const errors: unknown[] = [];
  let next = 0;
  const lane = async () => {
    while (next < jobs.length && errors.length === 0) {
      const i = next++;
      try {
        results[i] = await runInWorker(jobs[i]!, (d) => { done[i] = d; emit(false); });
        done[i] = 1;
        emit(false);
      } catch (e) {
        errors.push(e);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  emit(true);
  if (errors.length) throw errors[0];
  return results;
}
