/**
 * `dvrec convert INPUT...`: turns raw PCM files into audio files, or finishes a recording directory whose
 * process was killed (its journal and captures are crash-safe; see sinks/capture-layout.ts).
 *
 * Every flag and every input (exists, kind, byte count, output name and directory, journal, never-overwrite) is
 * checked before any conversion starts, so a problem with the third argument does not leave the first two
 * converted and the rest not.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { DvrecError, UsageError, InputError } from '../errors.ts';
import { ExitCode } from './exit-codes.ts';
import { JOURNAL_FILE, MANIFEST_FILE, type AudioFormat } from '../sinks/capture-layout.ts';
import { FFMPEG_HINT, findFfmpeg } from '../sinks/formats/ffmpeg.ts';
import type { ConvertProgress } from '../recording-api.ts';
import { createReporter, type Reporter } from '../ui/reporter.ts';
import { parseBitrate, parseChannels, parseFormat, parseRate } from './options.ts';

export interface ConvertFlags {
  format?: string;
  rate?: string;
  channels?: string;
  mono?: boolean;
  bitrate?: string;
  out?: string;
  force?: boolean;
  ffmpeg?: string;
  json?: boolean;
}

type Input = { kind: 'dir'; path: string } | { kind: 'raw'; path: string };

/** Classifies each input. Throws DvrecError(INPUT) for a missing path or a directory that is not a recording. */
export function classifyInputs(inputs: readonly string[]): Input[] {
  if (inputs.length === 0) throw new UsageError('convert: give a recording directory or a raw .pcm file');
  return inputs.map((p) => {
    const abs = resolve(p);
    if (!existsSync(abs)) throw new InputError(`${p}: no such file or directory`);
    const st = statSync(abs);
    if (st.isDirectory()) {
      if (!existsSync(resolve(abs, JOURNAL_FILE)) && !existsSync(resolve(abs, MANIFEST_FILE))) {
        throw new InputError(`${p} is not a dvrec recording directory (it has no ${JOURNAL_FILE})`);
      }
      return { kind: 'dir', path: abs };
    }
    if (!st.isFile()) throw new InputError(`${p} is not a regular file`);
    if (st.size === 0) throw new InputError(`${p} is empty`);
    return { kind: 'raw', path: abs };
  });
}

export async function convertCommand(inputs: string[], flags: ConvertFlags, setReporter: (r: Reporter) => void): Promise<number> {
  const reporter = createReporter({ json: flags.json === true });
  setReporter(reporter);

  // Validate everything first.
  const format: AudioFormat = parseFormat(flags.format ?? 'wav');
  const rate = flags.rate !== undefined ? parseRate(flags.rate) : 48_000;
  const channels = flags.channels !== undefined ? parseChannels(flags.channels) : 2;
  const bitrateKbps = parseBitrate(flags.bitrate, format, rate);
  const items = classifyInputs(inputs);
  const dirs = items.filter((i) => i.kind === 'dir');
  const raws = items.filter((i) => i.kind === 'raw');
  if (flags.out !== undefined && items.length > 1) throw new UsageError('--out can only be used with a single input');
  if (dirs.length > 0) {
    // A recording directory is finished exactly as it was recorded (format, mono, mix are in its journal).
    const rawOnly = (['format', 'rate', 'channels', 'mono', 'bitrate', 'out'] as const).filter((k) => flags[k] !== undefined);
    if (rawOnly.length > 0) {
      throw new UsageError(
        `--${rawOnly[0]} applies to raw input; a recording directory is finished as it was recorded (see its capture.json)`,
      );
    }
  }
  if (raws.length > 0 && (flags.rate === undefined || flags.channels === undefined)) {
    // Raw PCM carries no header: say what is assumed rather than guess silently.
    reporter.note(`raw input read as s16le, ${rate} Hz, ${channels} channel${channels === 1 ? '' : 's'} (see --rate, --channels)`);
  }
  // No format needs ffmpeg (embedded encoders); an explicit --ffmpeg must run (findFfmpeg throws ENCODER).
  if (flags.ffmpeg !== undefined) await findFfmpeg(flags.ffmpeg, process.env);

  const { planRaw, runRawPlan, planDir, convertDir } = await import('../sinks/convert-raw.ts');
  const onProgress = (p: ConvertProgress) => reporter.convertProgress(p);
  const dirOptions = {
    force: flags.force === true,
    ...(flags.ffmpeg !== undefined ? { ffmpegPath: flags.ffmpeg } : {}),
    onProgress,
  };
  // Check every input (sizes, outputs, journals, never-overwrite) before converting any: a bad third input
  // must not leave the first two converted and the rest not.
  const plans = [];
  const outputs = new Map<string, string>();
  for (const item of items) {
    if (item.kind === 'dir') {
      plans.push({ kind: 'dir' as const, path: item.path, plan: await planDir(item.path, dirOptions) });
      continue;
    }
    const plan = await planRaw(item.path, {
      format,
      rate,
      channels,
      mono: flags.mono === true,
      ...(flags.out !== undefined ? { out: flags.out } : {}),
      force: flags.force === true,
      bitrateKbps,
      ...(flags.ffmpeg !== undefined ? { ffmpegPath: flags.ffmpeg } : {}),
      onProgress,
    });
    const other = outputs.get(plan.out);
    if (other !== undefined) {
      throw new UsageError(`${other} and ${item.path} would both be written to ${plan.out}; convert them one at a time with --out`);
    }
    outputs.set(plan.out, item.path);
    plans.push({ kind: 'raw' as const, path: item.path, plan });
  }

  for (const p of plans) {
    if (p.kind === 'dir') {
      reporter.begin(`Finishing ${p.path}`);
      const { manifest, report } = await convertDir(p.path, dirOptions, p.plan);
      const how = report.recovered
        ? `recovered ${(report.durationMs / 1000).toFixed(1)} s (length from ${report.lengthFrom})`
        : `finished ${(report.durationMs / 1000).toFixed(1)} s`;
      reporter.end(true, `${basename(p.path)}: ${how}`);
      for (const t of report.tracks.filter((t) => t.orphan)) {
        reporter.warn(`${t.file}: found on disk but not in the journal (joined after its last write); kept`);
      }
      reporter.done({ dir: p.path, manifest });
    } else {
      reporter.begin(`Converting ${basename(p.path)}`);
      const r = await runRawPlan(p.plan);
      reporter.end(true, `Converted ${basename(p.path)}: ${(r.durationMs / 1000).toFixed(1)} s of ${r.format} (${r.encoder})`);
      reporter.done({ dir: dirname(r.out), files: [r.out] });
    }
  }
  return ExitCode.OK;
}
