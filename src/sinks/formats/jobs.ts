/**
 * One output file = one job: plain data (so it can be posted to a worker thread) plus {@link runJob}, which
 * reads the source, encodes, and reports progress. Output is written to `<out>.partial` and renamed when
 * complete, so a file with its final name is always whole (a crash mid-encode leaves only a .partial).
 */
import { promises as fsp } from 'node:fs';
import type { AudioFormat } from '../capture-layout.ts';
import { PRIVATE_FILE_MODE } from '../capture-layout.ts';
import { readPcm, downmix, type PcmSource } from './pcm-source.ts';
import { openEncoder, type EncoderName } from './encoders.ts';
import { copyPacketLog } from './ogg-opus.ts';
import { Limiter, sumChunks } from './mix.ts';

export type Job =
  | {
      kind: 'pcm';
      out: string;
      format: AudioFormat;
      /** One source: a track. Several: the mix (summed, then limited). */
      sources: PcmSource[];
      mix: boolean;
      sampleRate: number;
      /** Downmix stereo sources to one channel. */
      mono: boolean;
      bitrateKbps: number;
      ffmpeg: string | null;
      tags?: Record<string, string>;
      rf64Limit?: number;
    }
  | {
      kind: 'opus-copy';
      out: string;
      pktPath: string | null;
      totalSamples: number;
      mono: boolean;
      tags?: Record<string, string>;
    };

export interface JobResult {
  out: string;
  encoder: EncoderName;
}

/** Work units for progress/ETA weighting: sample frames to produce. */
export function jobWeight(job: Job): number {
  return job.kind === 'pcm' ? Math.max(1, (job.sources[0]?.frames ?? 0) * (job.mix ? job.sources.length : 1)) : Math.max(1, job.totalSamples / 20);
}

export async function runJob(job: Job, onProgress: (done: number) => void): Promise<JobResult> {
  const partial = `${job.out}.partial`;
  try {
    let encoder: EncoderName;
    if (job.kind === 'opus-copy') {
      await copyPacketLog({
        pktPath: job.pktPath,
        out: partial,
        totalSamples: job.totalSamples,
        channels: job.mono ? 1 : 2,
        comments: Object.entries(job.tags ?? {}).map(([k, v]) => `${k}=${v}`),
        onProgress,
      });
      encoder = 'opus-copy';
    } else {
      encoder = await runPcmJob(job, partial, onProgress);
    }
    // ffmpeg creates its output with the umask's mode: make it private before it gets its final name.
    await fsp.chmod(partial, PRIVATE_FILE_MODE);
    await fsp.rename(partial, job.out);
    onProgress(1);
    return { out: job.out, encoder };
  } catch (e) {
    await fsp.rm(partial, { force: true });
    throw e;
  }
}

async function runPcmJob(job: Extract<Job, { kind: 'pcm' }>, partial: string, onProgress: (d: number) => void): Promise<EncoderName> {
  const first = job.sources[0]!;
  const inCh = first.channels;
  const outCh = job.mono && inCh === 2 ? 1 : inCh;
  const frames = first.frames;
  const { encoder, name } = openEncoder(partial, {
    format: job.format,
    sampleRate: job.sampleRate,
    channels: outCh,
    totalFrames: frames,
    bitrateKbps: job.bitrateKbps,
    ffmpeg: job.ffmpeg,
    tags: job.tags,
    rf64Limit: job.rf64Limit,
  });
  const emit = async (s: Int16Array) => encoder.write(outCh !== inCh ? downmix(s) : s);
  let done = 0;
  let lastReport = 0;
  const report = () => {
    const now = Date.now();
    if (now - lastReport >= 100) { lastReport = now; onProgress(Math.min(0.999, done / Math.max(1, frames))); }
  };
  try {
    if (!job.mix) {
      for await (const chunk of readPcm(first)) {
        await emit(chunk);
        done += chunk.length / inCh;
        report();
      }
    } else {
      const limiter = new Limiter(inCh, job.sampleRate);
      const readers = job.sources.map((s) => readPcm(s)[Symbol.asyncIterator]());
      for (;;) {
        const parts = await Promise.all(readers.map((r) => r.next()));
        if (parts[0]!.done) break;
        const chunks = parts.map((p) => p.value as Int16Array);
        const len = chunks[0]!.length;
        const limited = limiter.process(sumChunks(chunks, len));
        if (limited.length) await emit(limited);
        done += len / inCh;
        report();
      }
      const tail = limiter.flush();
      if (tail.length) await emit(tail);
    }
    await encoder.finish();
  } catch (e) {
    await encoder.finish().catch(() => {});
    throw e;
  }
  return name;
}
