/**
 * The finisher: turns a recording directory's captures (see capture-layout.ts) into finished tracks and a
 * manifest. The same code runs after a clean stop (`record`) and after a crash (`dvrec convert DIR`).
 *
 * Order of operations, chosen so that a crash at any point loses nothing:
 *   1. decide the recording's length (journal on a clean stop; otherwise the best of the journal heartbeat
 *      and what the capture files actually hold, i.e. up to the last whole sample frame written);
 *   2. refuse to overwrite finished files unless `force`;
 *   3. stereo WAV tracks: cut/extend + header patch + rename (milliseconds, no copy);
 *      everything else: encode in parallel worker threads into `<file>.partial`, renamed when complete;
 *   4. write manifest.json (atomically) — only now is the recording "finished";
 *   5. delete the captures and the journal.
 * If the process dies between 3 and 5, running the finisher again completes the job: a track whose capture is
 * gone but whose output exists was already renamed into place and is taken as it is.
 */
import { promises as fsp, existsSync, writeFileSync } from 'node:fs';
import { join, basename } from 'node:path';
import {
  CAPTURE_DIR, PRIVATE_FILE_MODE, JOURNAL_FILE, LABELS_FILE, MANIFEST_FILE, WAV_HEADER_BYTES,
  capturePath, packetLogPath, utteranceLogPath, writeJsonAtomic,
  type AudioFormat, type Journal, type JournalTrack, type Manifest, type ManifestTrack, type Note, type Utterance,
} from './capture-layout.ts';
import { SAMPLE_RATE, BYTES_PER_SAMPLE_FRAME, CHANNELS, copyStats, emptyStats } from './types.ts';
import { DvrecError, OutputError, InputError } from '../errors.ts';
import type { ConvertProgress } from '../recording-api.ts';
import { findFfmpeg } from './formats/ffmpeg.ts';
import { wavHeader, RIFF_MAX_DATA_BYTES } from './formats/wav.ts';
import { readPacketLog } from './formats/ogg-opus.ts';
import { opusPacketSamples } from './formats/opus-packet.ts';
import { runJobs } from './formats/pool.ts';
import type { Job } from './formats/jobs.ts';
import type { EncoderName } from './formats/encoders.ts';
import { DEFAULT_MP3_BITRATE_KBPS, nearestMp3Bitrate } from './formats/mp3-params.ts';
import { MP3_STREAM_SUFFIX, type StreamedMp3 } from './mp3-stream.ts';
import { ID3_RESERVED_BYTES, id3v2Tag } from './formats/id3.ts';

export interface FinishOptions {
  /** --ffmpeg PATH; `false` uses embedded encoders only (no discovery). */
  ffmpegPath?: string | false;
  /** Overwrite finished files (tracks, mix, manifest) that already exist. */
  force: boolean;
  /** The recording's exact length, when the caller knows it better than the journal. */
  durationMs?: number;
  onProgress?: (p: ConvertProgress) => void;
  /** Parallel encoders (default: one per core). */
  concurrency?: number;
  /** Test hook: PCM bytes above which WAV becomes RF64 (default: the RIFF limit, ~4 GiB). */
  rf64Limit?: number;
  /**
   * MP3 tracks the pool workers encoded while recording and finished at stop (see mp3-stream.ts). Adopted
   * (renamed into place) when they match the recording exactly; anything else, and every streamed file when
   * this is absent (`convert DIR` after a crash), is deleted and encoded from the captures.
   */
  streamedMp3?: StreamedMp3[];
}

/** What the finisher did, per track: the CLI prints it after `convert DIR`. */
export interface FinishReport {
  dir: string;
  /** True when the journal had no endedAt (the process died). */
  recovered: boolean;
  durationMs: number;
  /** Where the length came from. */
  lengthFrom: 'option' | 'journal' | 'captures' | 'heartbeat';
  /** The journal's heartbeat at the crash (ms known flushed). */
  flushedMs: number;
  tracks: {
    stem: string;
    userId: string;
    displayName: string;
    file: string;
    /** Milliseconds of this user's capture found on disk (its last written sample). */
    capturedMs: number;
    /** Found in .capture/ but missing from the journal (joined after its last write). */
    orphan: boolean;
    encoder: EncoderName | 'wav-in-place' | 'already-finished';
  }[];
  mix?: { file: string; encoder: EncoderName };
}

const EXT: Record<AudioFormat, string> = { wav: 'wav', mp3: 'mp3', flac: 'flac', opus: 'opus' };

/** Finishes the recording in `dir` and returns its manifest. */
export async function finishRecording(dir: string, opts: FinishOptions): Promise<Manifest> {
  return (await finishRecordingWithReport(dir, opts)).manifest;
}

async function readJournalChecked(dir: string): Promise<Journal> {
  let st;
  try {
    st = await fsp.stat(dir);
  } catch {
    throw new InputError(`${dir}: no such directory`);
  }
  if (!st.isDirectory()) throw new InputError(`${dir}: not a directory`);
  let text: string | null = null;
  for (const name of [JOURNAL_FILE, `${JOURNAL_FILE}.tmp`]) {
    try {
      text = await fsp.readFile(join(dir, name), 'utf8');
      const j = JSON.parse(text) as Journal;
      if (j && j.version === 1 && Array.isArray(j.tracks) && typeof j.startedAtMs === 'number') return j;
    } catch {
      // try the next candidate: a crash between writing the .tmp and renaming it leaves only the .tmp
    }
  }
  if (text === null && existsSync(join(dir, MANIFEST_FILE))) {
    throw new InputError(`${dir}: already finished (manifest.json present, no capture left to convert)`);
  }
  if (text === null) throw new InputError(`${dir}: no ${JOURNAL_FILE}: not a dvrec recording directory`);
  throw new InputError(`${dir}/${JOURNAL_FILE} is unreadable or not a dvrec journal`);
}

async function sizeOf(path: string): Promise<number | null> {
  try {
    return (await fsp.stat(path)).size;
  } catch {
    return null;
  }
}

/** The last sample position the packet log reaches (for the length after a crash). */
async function packetLogEnd(path: string): Promise<number> {
  let end = 0;
  for await (const { position, packet } of readPacketLog(path)) end = Math.max(end, position + opusPacketSamples(packet));
  return end;
}

/** First non-silent sample frame of a capture (for a track whose journal entry predates its first audio). */
async function firstSoundMs(path: string, frames: number): Promise<number | null> {
  const fh = await fsp.open(path, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let pos = WAV_HEADER_BYTES; pos < WAV_HEADER_BYTES + frames * BYTES_PER_SAMPLE_FRAME; ) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      for (let i = 0; i + 1 < bytesRead; i += 2) {
        if (buf.readInt16LE(i) !== 0) return Math.floor(((pos - WAV_HEADER_BYTES + i) / BYTES_PER_SAMPLE_FRAME / SAMPLE_RATE) * 1000);
      }
      pos += bytesRead;
    }
    return null;
  } finally {
    await fh.close();
  }
}

/**
 * A track's utterances from its log (`s <position>` / `e <position>` lines, sample frames), cut at the recording's
 * end. An utterance left open (the process died, or the log ended first) ends at `openEnd`: where the capture's
 * audio ends, since the log is written only once the audio before it is on disk. Null when there is no log.
 */
async function readUtterances(path: string, totalFrames: number, openEnd: number): Promise<Utterance[] | null> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'latin1');
  } catch {
    return null;
  }
  const out: Utterance[] = [];
  let open: number | null = null;
  const ms = (frames: number): number => Math.round((Math.min(frames, totalFrames) / SAMPLE_RATE) * 1000 * 10) / 10;
  const close = (end: number): void => {
    if (open !== null && end > open && open < totalFrames) out.push({ startMs: ms(open), endMs: ms(end) });
    open = null;
  };
  for (const line of text.split('\n')) {
    const m = /^([se]) (\d+)$/.exec(line);
    if (!m) continue;
    const pos = Number(m[2]);
    if (m[1] === 's') {
      if (open !== null) close(pos);
      open = pos;
    } else close(pos);
  }
  if (open !== null) close(Math.max(open, openEnd));
  return out;
}

/**
 * The notes as an Audacity label track: `start<TAB>end<TAB>text` per line, in seconds with microsecond precision
 * (point labels: start = end). Text is one line (tabs and line breaks become spaces).
 */
export function audacityLabels(notes: readonly Note[]): string {
  return notes
    .map((n) => {
      const at = (Math.max(0, n.atMs) / 1000).toFixed(6);
      const text = (n.author ? `${n.author}: ${n.text}` : n.text).replace(/[\t\r\n]+/g, ' ');
      return `${at}\t${at}\t${text}\n`;
    })
    .join('');
}

/** A stem of an orphan capture (no journal entry): a snowflake in it is taken as the user id. */
function orphanTrack(stem: string): JournalTrack {
  const id = /(\d{15,21})/.exec(stem)?.[1] ?? '';
  return { userId: id, username: stem, displayName: stem, stem, ssrcs: [], startOffsetMs: null, packets: emptyStats() };
}

/** What is in a recording directory, checked (readable journal, nothing overwritten without force) before anything is written. */
export interface FinishPlan {
  dir: string;
  journal: Journal;
  recovered: boolean;
  tracks: { t: JournalTrack; orphan: boolean }[];
  disk: { wav: string | null; pkt: string | null; frames: number }[];
  totalFrames: number;
  lengthFrom: FinishReport['lengthFrom'];
  mixName: string;
  alreadyFinished: boolean[];
}

/**
 * Steps 1 and 2 of the finisher: reads the journal and the captures, decides the length, and refuses to overwrite
 * finished files without `force`. Writes nothing, so `convert` can check every input before finishing any.
 */
export async function planFinish(dir: string, opts: Pick<FinishOptions, 'force' | 'durationMs'>): Promise<FinishPlan> {
  const journal = await readJournalChecked(dir);
  const format = journal.format;
  if (!(format in EXT)) throw new InputError(`${JOURNAL_FILE}: unknown format ${String(format)}`);
  const recovered = !journal.endedAt;

  // Tracks: the journal's, plus captures the journal never heard of (a user whose audio started after the
  // last journal write before a crash).
  const known = new Set(journal.tracks.map((t) => t.stem));
  const tracks: { t: JournalTrack; orphan: boolean }[] = journal.tracks.map((t) => ({ t, orphan: false }));
  try {
    for (const name of (await fsp.readdir(join(dir, CAPTURE_DIR))).sort()) {
      const m = /^(.+)\.(wav|opus\.pkt)$/.exec(name);
      if (m && !known.has(m[1]!) && !name.endsWith('.partial')) {
        known.add(m[1]!);
        tracks.push({ t: orphanTrack(m[1]!), orphan: true });
      }
    }
  } catch {
    // no capture dir: every track is either finished already or silent
  }

  // What is on disk, per track.
  const disk = await Promise.all(
    tracks.map(async ({ t }) => {
      const wav = capturePath(dir, t.stem);
      const pkt = packetLogPath(dir, t.stem);
      const wavSize = await sizeOf(wav);
      const pktSize = await sizeOf(pkt);
      const frames = wavSize === null ? 0 : Math.max(0, Math.floor((wavSize - WAV_HEADER_BYTES) / BYTES_PER_SAMPLE_FRAME));
      return { wav: wavSize === null ? null : wav, pkt: pktSize === null ? null : pkt, frames };
    }),
  );

  // The recording's length.
  let totalFrames: number;
  let lengthFrom: FinishReport['lengthFrom'];
  if (opts.durationMs !== undefined) {
    totalFrames = Math.round((opts.durationMs * SAMPLE_RATE) / 1000);
    lengthFrom = 'option';
  } else if (!recovered && typeof journal.durationMs === 'number') {
    totalFrames = Math.round((journal.durationMs * SAMPLE_RATE) / 1000);
    lengthFrom = 'journal';
  } else {
    const heartbeat = Math.round(((journal.flushedMs ?? 0) * SAMPLE_RATE) / 1000);
    let onDisk = 0;
    for (const d of disk) {
      onDisk = Math.max(onDisk, d.frames);
      if (d.pkt) onDisk = Math.max(onDisk, await packetLogEnd(d.pkt));
    }
    totalFrames = Math.max(heartbeat, onDisk);
    lengthFrom = onDisk > heartbeat ? 'captures' : 'heartbeat';
  }

  // Output names, and the never-overwrite rule.
  const ext = EXT[format];
  const fileOf = (stem: string) => `${stem}.${ext}`;
  const mixName = known.has('mix') ? `_mix.${ext}` : `mix.${ext}`;
  const exists = (f: string) => existsSync(join(dir, f));
  const alreadyFinished = tracks.map(({ t }, i) => disk[i]!.wav === null && disk[i]!.pkt === null && exists(fileOf(t.stem)));
  if (!opts.force) {
    const clash = [
      ...tracks.filter((_, i) => !alreadyFinished[i]).map(({ t }) => fileOf(t.stem)),
      ...(journal.mix ? [mixName] : []),
      MANIFEST_FILE,
    ].find(exists);
    if (clash) throw new OutputError(`${join(dir, clash)} already exists (use --force to overwrite)`);
  }
  return { dir, journal, recovered, tracks, disk, totalFrames, lengthFrom, mixName, alreadyFinished };
}

/** Like {@link finishRecording}, and also says what was found and done (for `convert DIR`). `plan`: from {@link planFinish}. */
export async function finishRecordingWithReport(
  dir: string,
  opts: FinishOptions,
  plan?: FinishPlan,
): Promise<{ manifest: Manifest; report: FinishReport }> {
  const { journal, recovered, tracks, disk, totalFrames, lengthFrom, mixName, alreadyFinished } = plan ?? (await planFinish(dir, opts));
  const format = journal.format;
  const durationMs = Math.round((totalFrames / SAMPLE_RATE) * 1000);
  const fileOf = (stem: string) => `${stem}.${EXT[format]}`;

  const needsFfmpeg = format === 'mp3' || format === 'flac';
  const ffmpeg = needsFfmpeg ? await findFfmpeg(opts.ffmpegPath) : null;
  // A journal of an older dvrec may hold a bitrate the encoders do not both support (56): finished at the next one up.
  const bitrateKbps = format === 'mp3' ? nearestMp3Bitrate(journal.bitrateKbps || DEFAULT_MP3_BITRATE_KBPS, SAMPLE_RATE) : (journal.bitrateKbps || DEFAULT_MP3_BITRATE_KBPS);
  const rf64Limit = opts.rf64Limit ?? RIFF_MAX_DATA_BYTES;
  const dataBytes = totalFrames * BYTES_PER_SAMPLE_FRAME;

  // startOffsetMs for tracks whose journal entry never saw audio: look at the capture itself.
  const startOffsets = await Promise.all(
    tracks.map(async ({ t }, i) => {
      if (t.startOffsetMs !== null) return t.startOffsetMs;
      const d = disk[i]!;
      return d.wav ? ((await firstSoundMs(d.wav, Math.min(d.frames, totalFrames))) ?? 0) : 0;
    }),
  );

  const encoders: FinishReport['tracks'][number]['encoder'][] = tracks.map(() => 'already-finished');
  const tagsOf = (t: JournalTrack): Record<string, string> =>
    format === 'opus'
      ? { TITLE: t.displayName, ARTIST: t.username, DISCORD_USER_ID: t.userId }
      : { title: t.displayName, artist: t.username, comment: `Discord user ${t.userId}` };
  const jobs: Job[] = [];
  const jobTrack: number[] = [];
  const finishedInPlace: string[] = [];

  try {
    // 3a. Stereo WAV: the capture already is the file. Cut or extend it, patch the header, rename.
    for (let i = 0; i < tracks.length; i++) {
      const { t } = tracks[i]!;
      const d = disk[i]!;
      if (alreadyFinished[i] || format !== 'wav' || journal.mono || dataBytes > rf64Limit) continue;
      const out = join(dir, fileOf(t.stem));
      const src = d.wav ?? `${out}.partial`;
      const fh = await fsp.open(src, d.wav ? 'r+' : 'w', PRIVATE_FILE_MODE);
      try {
        await fh.truncate(WAV_HEADER_BYTES + dataBytes); // extending leaves a hole: reads back as silence
        await fh.write(wavHeader({ sampleRate: SAMPLE_RATE, channels: CHANNELS }, dataBytes), 0, WAV_HEADER_BYTES, 0);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.chmod(src, PRIVATE_FILE_MODE);
      await fsp.rename(src, out);
      encoders[i] = 'wav-in-place';
      finishedInPlace.push(fileOf(t.stem));
      d.wav = null; // the capture is now the output
    }

    // 3b. MP3 encoded while recording: only a stream finished at a clean stop, for exactly this length and
    // these settings, is trusted. Every other streamed file (a crash, a replaced worker) is deleted.
    const streamed = new Map((opts.streamedMp3 ?? []).map((s) => [s.stem, s]));
    for (let i = 0; i < tracks.length; i++) {
      const { t } = tracks[i]!;
      const s = streamed.get(t.stem);
      if (!s || alreadyFinished[i] || format !== 'mp3' || encoders[i] !== 'already-finished') continue;
      if (s.frames !== totalFrames || s.bitrateKbps !== bitrateKbps || s.mono !== journal.mono) continue;
      if (!((await sizeOf(s.path)) ?? 0)) continue;
      // The stream reserved the tag's room at its start; the names are final now.
      const fh = await fsp.open(s.path, 'r+');
      try {
        await fh.write(id3v2Tag(tagsOf(t)), 0, ID3_RESERVED_BYTES, 0);
      } finally {
        await fh.close();
      }
      await fsp.chmod(s.path, PRIVATE_FILE_MODE);
      await fsp.rename(s.path, join(dir, fileOf(t.stem)));
      encoders[i] = 'lame-wasm-stream';
      finishedInPlace.push(fileOf(t.stem));
    }
    for (const name of await fsp.readdir(dir)) {
      if (name.endsWith(MP3_STREAM_SUFFIX)) await fsp.rm(join(dir, name), { force: true });
    }

    // 3c. Everything else is a job.
    const pcmSource = (i: number) => {
      const d = disk[i]!;
      const finished = join(dir, fileOf(tracks[i]!.t.stem));
      // A track finished in place (or before a crash of an earlier finish) is read back from its output.
      const path = d.wav ?? (format === 'wav' && existsSync(finished) ? finished : null);
      return { path, dataOffset: WAV_HEADER_BYTES, channels: CHANNELS, frames: totalFrames };
    };
    for (let i = 0; i < tracks.length; i++) {
      const { t } = tracks[i]!;
      if (alreadyFinished[i] || encoders[i] === 'wav-in-place' || encoders[i] === 'lame-wasm-stream') continue;
      const d = disk[i]!;
      const out = join(dir, fileOf(t.stem));
      if (format === 'opus' && (d.pkt || !d.wav)) {
        jobs.push({ kind: 'opus-copy', out, pktPath: d.pkt, totalSamples: totalFrames, mono: journal.mono, tags: tagsOf(t) });
      } else {
        jobs.push({
          kind: 'pcm', out, format, sources: [pcmSource(i)], mix: false, sampleRate: SAMPLE_RATE,
          mono: journal.mono, bitrateKbps, ffmpeg: ffmpeg?.path ?? null, tags: tagsOf(t), rf64Limit,
        });
      }
      jobTrack.push(i);
    }
    if (journal.mix) {
      jobs.push({
        kind: 'pcm', out: join(dir, mixName), format, sources: tracks.map((_, i) => pcmSource(i)), mix: true,
        sampleRate: SAMPLE_RATE, mono: journal.mono, bitrateKbps, ffmpeg: ffmpeg?.path ?? null,
        tags: format === 'opus' ? { TITLE: 'mix' } : { title: 'mix' }, rf64Limit,
      });
    }

    const onProgress = opts.onProgress;
    const results = jobs.length
      ? await runJobs(jobs, {
          concurrency: opts.concurrency,
          onProgress: onProgress
            ? (p) => onProgress({ ...p, files: [...finishedInPlace.map((file) => ({ file, done: 1 })), ...p.files] })
            : undefined,
        })
      : [];
    if (!jobs.length) onProgress?.({ files: finishedInPlace.map((file) => ({ file, done: 1 })), etaMs: 0 });
    results.forEach((r, k) => {
      if (k < jobTrack.length) encoders[jobTrack[k]!] = r.encoder;
    });

    // 4. The manifest, last of the outputs.
    const utterances = await Promise.all(
      tracks.map(({ t }, i) => readUtterances(utteranceLogPath(dir, t.stem), totalFrames, disk[i]!.frames)),
    );
    const manifestTracks: ManifestTrack[] = tracks.map(({ t }, i) => ({
      userId: t.userId,
      username: t.username,
      displayName: t.displayName,
      file: fileOf(t.stem),
      ssrcs: t.ssrcs,
      startOffsetMs: startOffsets[i]!,
      packets: copyStats(t.packets ?? emptyStats()),
      ...(utterances[i] ? { utterances: utterances[i] } : {}),
      ...(encoders[i] !== 'already-finished' ? { encoder: encoders[i] } : {}),
    }));
    const manifest: Manifest = {
      guildId: journal.guildId,
      channelId: journal.channelId,
      startedAt: journal.startedAt,
      endedAt: journal.endedAt ?? new Date(journal.startedAtMs + durationMs).toISOString(),
      durationMs,
      format,
      tracks: manifestTracks,
      ...(journal.mix ? { mix: mixName } : {}),
      ...(recovered ? { recovered: true } : {}),
      ...(journal.dropped ? { dropped: journal.dropped } : {}),
      ...(journal.pauses?.length ? { pauses: journal.pauses } : {}),
      ...(journal.notes?.length ? { notes: journal.notes, labels: LABELS_FILE } : {}),
    };
    if (journal.notes?.length) writeFileSync(join(dir, LABELS_FILE), audacityLabels(journal.notes), { mode: PRIVATE_FILE_MODE });
    writeJsonAtomic(join(dir, MANIFEST_FILE), manifest, PRIVATE_FILE_MODE);

    // 5. Only now may the captures go.
    await fsp.rm(join(dir, CAPTURE_DIR), { recursive: true, force: true });
    await fsp.rm(join(dir, JOURNAL_FILE), { force: true });
    await fsp.rm(join(dir, `${JOURNAL_FILE}.tmp`), { force: true });

    const report: FinishReport = {
      dir,
      recovered,
      durationMs,
      lengthFrom,
      flushedMs: journal.flushedMs ?? 0,
      tracks: tracks.map(({ t, orphan }, i) => ({
        stem: t.stem,
        userId: t.userId,
        displayName: t.displayName,
        file: fileOf(t.stem),
        capturedMs: Math.round((disk[i]!.frames / SAMPLE_RATE) * 1000),
        orphan,
        encoder: encoders[i]!,
      })),
      ...(journal.mix ? { mix: { file: mixName, encoder: results[results.length - 1]!.encoder } } : {}),
    };
    return { manifest, report };
  } catch (e) {
    throw asOutputError(e, dir);
  }
}

/** Filesystem failures while writing outputs are OUTPUT errors (disk full, read-only, permissions). */
export function asOutputError(e: unknown, where: string): unknown {
  if (e instanceof DvrecError) return e;
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code && ['EACCES', 'EPERM', 'ENOSPC', 'EROFS', 'EDQUOT', 'EISDIR', 'ENOTDIR', 'ENOENT', 'EEXIST'].includes(code)) {
    return new OutputError(`cannot write in ${where}: ${code} (${basename((e as NodeJS.ErrnoException).path ?? '')})`, { cause: e });
  }
  return e;
}
