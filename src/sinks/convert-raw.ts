/**
 * `dvrec convert`: raw s16le PCM to any format ({@link convertRaw}), and finishing a recording directory whose
 * process died ({@link convertDir}).
 */
import { promises as fsp, constants } from 'node:fs';
import { dirname, extname, resolve, basename } from 'node:path';
import { DvrecError, UsageError, OutputError, InputError } from '../errors.ts';
import type { AudioFormat, Manifest } from './capture-layout.ts';
import type { ConvertProgress } from '../recording-api.ts';
import { findFfmpeg } from './formats/ffmpeg.ts';
import { runJobs } from './formats/pool.ts';
import type { EncoderName } from './formats/encoders.ts';
import { MP3_SAMPLE_RATES, defaultMp3BitrateAt, formatBitrates, mp3BitratesAt } from './formats/mp3-params.ts';
import { OPUS_RATES } from './formats/ogg-opus.ts';
import { finishRecordingWithReport, planFinish, asOutputError, type FinishOptions, type FinishPlan, type FinishReport } from './finalize.ts';

export const FORMATS: readonly AudioFormat[] = ['wav', 'mp3', 'flac', 'opus'];

export interface ConvertRawOptions {
  format: string;
  /** Sample rate of the raw input (default 48000). */
  rate?: number;
  /** Interleaved channels in the raw input (default 2). */
  channels?: number;
  /** Output file; default: the input's name with the format's extension. */
  out?: string;
  force: boolean;
  bitrateKbps?: number;
  /** --ffmpeg PATH; `false` uses embedded encoders only. */
  ffmpegPath?: string | false;
  /** Downmix to one channel. */
  mono?: boolean;
  onProgress?: (p: ConvertProgress) => void;
}

export interface ConvertRawResult {
  out: string;
  format: AudioFormat;
  encoder: EncoderName;
  frames: number;
  durationMs: number;
}

/** Checks a format name from the command line. */
export function parseFormat(format: string): AudioFormat {
  if (!(FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`unknown format "${format}" (choose ${FORMATS.join(', ')})`);
  }
  return format as AudioFormat;
}

/** A raw conversion whose every input and output was checked: {@link runRawPlan} only encodes. */
export interface RawPlan {
  input: string;
  out: string;
  format: AudioFormat;
  rate: number;
  channels: number;
  frames: number;
  bitrateKbps: number;
  opts: ConvertRawOptions;
}

/** Converts a raw s16le PCM file. */
export async function convertRaw(input: string, opts: ConvertRawOptions): Promise<ConvertRawResult> {
  return runRawPlan(await planRaw(input, opts));
}

/**
 * Checks everything a raw conversion needs (values, the input's size, the output's directory and name) without
 * writing anything, so several inputs can all be checked before the first is converted.
 */
export async function planRaw(input: string, opts: ConvertRawOptions): Promise<RawPlan> {
  const format = parseFormat(opts.format);
  const rate = opts.rate ?? 48_000;
  const channels = opts.channels ?? 2;
  const bitrateKbps = opts.bitrateKbps ?? defaultMp3BitrateAt(rate);
  if (!Number.isInteger(rate) || rate < 1000 || rate > 384_000) throw new UsageError(`--rate ${rate}: expected 1000..384000 Hz`);
  if (!Number.isInteger(channels) || channels < 1 || channels > 8) throw new UsageError(`--channels ${channels}: expected 1..8`);
  const outChannels = opts.mono ? 1 : channels;
  if ((format === 'mp3' || format === 'opus') && outChannels > 2) {
    throw new UsageError(`${format} holds 1 or 2 channels; use --mono or wav/flac for ${channels}`);
  }
  if (opts.mono && channels !== 2 && channels !== 1) throw new UsageError('--mono downmixes stereo input only');
  if (format === 'mp3' && !MP3_SAMPLE_RATES.includes(rate)) {
    throw new UsageError(`mp3 needs --rate ${MP3_SAMPLE_RATES.join('/')}, got ${rate} (use wav or flac, or resample first)`);
  }
  if (format === 'mp3' && !mp3BitratesAt(rate).includes(bitrateKbps)) {
    throw new UsageError(`--bitrate ${bitrateKbps}: MP3 bitrates at ${rate} Hz are ${formatBitrates(mp3BitratesAt(rate))} kbps`);
  }
  if (format === 'opus' && !OPUS_RATES.includes(rate)) {
    throw new UsageError(`opus needs --rate ${OPUS_RATES.join('/')}, got ${rate}`);
  }

  let size: number;
  try {
    const st = await fsp.stat(input);
    if (st.isDirectory()) throw new InputError(`${input} is a directory: use \`dvrec convert DIR\``);
    size = st.size;
    await fsp.access(input, constants.R_OK);
  } catch (e) {
    if (e instanceof DvrecError) throw e;
    throw new InputError(`${input}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'cannot read it'}`);
  }
  const frameBytes = channels * 2;
  if (size === 0) throw new InputError(`${input} is empty`);
  if (size % frameBytes !== 0) {
    throw new InputError(
      `${input}: ${size} bytes is not a whole number of s16le sample frames (${channels} channel(s) × 2 bytes = ${frameBytes}); check --channels or the file`,
    );
  }
  const frames = size / frameBytes;

  const out = resolve(opts.out ?? (extname(input) ? input.slice(0, -extname(input).length) : input) + `.${format}`);
  if (out === resolve(input)) throw new OutputError(`output ${out} would overwrite the input; pass --out`);
  try {
    await fsp.access(dirname(out), constants.W_OK);
  } catch {
    throw new OutputError(`cannot write to ${dirname(out)} (missing or not writable)`);
  }
  try {
    const st = await fsp.stat(out);
    if (st.isDirectory()) throw new OutputError(`${out} is a directory`);
    if (!opts.force) throw new OutputError(`${out} already exists (use --force to overwrite)`);
  } catch (e) {
    if (e instanceof DvrecError) throw e; // ENOENT: fine
  }
  return { input: resolve(input), out, format, rate, channels, frames, bitrateKbps, opts };
}

/** Encodes a checked conversion. */
export async function runRawPlan(plan: RawPlan): Promise<ConvertRawResult> {
  const { input, out, format, rate, channels, frames, bitrateKbps, opts } = plan;
  const ffmpeg = format === 'mp3' || format === 'flac' ? await findFfmpeg(opts.ffmpegPath) : null;
  try {
    const [r] = await runJobs(
      [{
        kind: 'pcm', out, format, sources: [{ path: input, dataOffset: 0, channels, frames }], mix: false,
        sampleRate: rate, mono: !!opts.mono && channels === 2, bitrateKbps, ffmpeg: ffmpeg?.path ?? null,
      }],
      { onProgress: opts.onProgress, concurrency: 1, label: () => basename(out) },
    );
    return { out, format, encoder: r!.encoder, frames, durationMs: Math.round((frames / rate) * 1000) };
  } catch (e) {
    throw asOutputError(e, dirname(out));
  }
}

export interface ConvertDirResult {
  manifest: Manifest;
  report: FinishReport;
}

/** Checks a recording directory as {@link convertDir} will finish it, writing nothing (see finalize.ts planFinish). */
export async function planDir(dir: string, opts: FinishOptions): Promise<FinishPlan> {
  return planFinish(dir, opts);
}

/**
 * Finishes a recording directory left by a killed or crashed `record`: every track from what is on disk
 * (to the last whole sample frame written), the manifest (with `recovered: true`), then the captures removed.
 * Also finishes a cleanly stopped directory whose finishing was interrupted. `plan`: from {@link planDir}.
 */
export async function convertDir(dir: string, opts: FinishOptions, plan?: FinishPlan): Promise<ConvertDirResult> {
  return finishRecordingWithReport(dir, opts, plan);
}
