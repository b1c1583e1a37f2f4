/**
 * On-disk layout of a recording directory: the contract between `record` (which writes it while
 * recording), `convert DIR` (which finishes it after a crash) and the format writers.
 *
 * ```
 * DIR/
 *   capture.json              journal, rewritten atomically (tmp + rename) about once a second
 *   .capture/<stem>.wav       per-user capture: a WAV with a 44-byte header whose sizes are placeholders,
 *                             then s16le stereo 48 kHz PCM. Sample frame n (n = 0 is the recording's t=0)
 *                             lives at byte 44 + 4n. Written positionally (pwrite): a pause or a late
 *                             joiner's lead-in is a hole in the file, which reads back as exact silence,
 *                             so nothing has to be written for silence and a crash leaves a valid prefix.
 *   .capture/<stem>.opus.pkt  (only with --format opus) the received Opus packets: repeated records of
 *                             [u32 LE sample position][u16 LE length][payload]; `position` is where the
 *                             packet's first sample lands on the recording clock. Positions past 2^32
 *                             (24.8 h) are written as a record [u32 LE high word][u16 LE 0xFFFF] without
 *                             payload ({@link PACKET_LOG_EPOCH}), which adds high × 2^32 to the positions
 *                             of the records after it.
 *   .capture/<stem>.utterances  the track's talk spurts on the recording clock, one edge per line: `s <position>`
 *                             (first voiced sample frame) or `e <position>` (just past the last); appended once
 *                             the audio before them is on disk, so after a crash an open `s` ends where the
 *                             capture's audio does.
 *   <stem>.wav|mp3|flac|opus  finished tracks (written at stop, or by `dvrec convert DIR`)
 *   mix.<ext>                 (with --mix) everyone mixed
 *   labels.txt                the recording's notes as an Audacity label track (written when there are notes)
 *   manifest.json             written last, on a clean finish
 * ```
 * The journal is the single source for finishing: a clean stop writes it one last time (with endedAt and
 * durationMs) and calls the same finisher that `convert DIR` uses after a crash.
 *
 * Because every capture is indexed from the same t=0, finishing a track is: extend or cut it to the
 * recording's length, patch the header, rename. That takes milliseconds whatever the length.
 */
import { promises as fsp, writeFileSync, renameSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TrackStats } from './types.ts';

export const CAPTURE_DIR = '.capture';
/** Space held back in .capture/ while recording (see recording.ts RESERVE_BYTES); not a capture. */
export const RESERVE_FILE = '.reserve';
export const JOURNAL_FILE = 'capture.json';
export const MANIFEST_FILE = 'manifest.json';
/** The notes as Audacity labels: one `start<TAB>end<TAB>text` line each, seconds (Audacity: File › Import › Labels). */
export const LABELS_FILE = 'labels.txt';
export const WAV_HEADER_BYTES = 44;
/** Length field of a packet-log record that sets the high 32 bits of the positions that follow (no payload). */
export const PACKET_LOG_EPOCH = 0xffff;
/**
 * Every file dvrec writes is private to its owner: a recording holds other people's voices. Directories are
 * created 0700 and files 0600 (an ffmpeg child's output is chmod-ed before it gets its final name).
 */
export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

/** Output format of the tracks (and mix): WAV, MP3 (LAME), FLAC, or the received Opus packets in Ogg. */
export type AudioFormat = 'wav' | 'mp3' | 'flac' | 'opus';

export interface JournalTrack {
  userId: string;
  username: string;
  displayName: string;
  /** File stem, unique in the directory: see trackStem(). */
  stem: string;
  ssrcs: number[];
  /** Where this user's first audio lands on the recording clock (ms), null until they spoke. */
  startOffsetMs: number | null;
  /**
   * Packet accounting so far (the engine refreshes it with every journal write). `corrupt` and `fec` are absent
   * from journals written before they existed; the finisher reads them as 0.
   */
  packets: Omit<TrackStats, 'corrupt' | 'fec'> & Partial<Pick<TrackStats, 'corrupt' | 'fec'>>;
}

/**
 * Datagrams the receiver did not turn into audio, by kind (hostile input, corruption, replays, RTCP). Written to
 * the journal by the engine and copied into the manifest by the finisher; `datagrams` is everything that arrived
 * on the voice socket. Keys are the kinds of src/receiver/drops.ts (the one table).
 */
import type { ReceiverDrops } from '../receiver/drops.ts';
export type { ReceiverDrops };

/** capture.json: everything `convert DIR` needs to finish a recording whose process died. */
export interface Journal {
  version: 1;
  guildId: string;
  channelId: string;
  /** ISO-8601 wall clock of t=0 (the moment the voice connection became ready). */
  startedAt: string;
  /** Same instant, epoch milliseconds with sub-millisecond precision. */
  startedAtMs: number;
  /** Recording-clock milliseconds known to be flushed to every capture (heartbeat). */
  flushedMs: number;
  format: AudioFormat;
  mono: boolean;
  bitrateKbps: number;
  mix: boolean;
  tracks: JournalTrack[];
  /** Receiver drop counts so far (refreshed with every journal write). */
  dropped?: ReceiverDrops;
  /** Stretches during which the recording was paused (recording-clock ms): silence in every track. */
  pauses?: Pause[];
  /** Markers added while recording (Recording.note()). */
  notes?: Note[];
  /** Set when the recording stopped cleanly (its finished length). */
  endedAt?: string;
  durationMs?: number;
}

/** A stretch of the recording clock during which nothing was recorded on purpose (Recording.pause()). */
export interface Pause {
  /** Recording-clock ms at which pause() took effect. */
  startMs: number;
  /** Recording-clock ms at which resume() (or the stop) took effect. */
  endMs: number;
}

/** A marker added while recording: a moment on the recording clock with a line of text (and who added it). */
export interface Note {
  /** Milliseconds since t=0. */
  atMs: number;
  /** One line of text. */
  text: string;
  /** Discord user id of whoever added it, when known. */
  userId?: string;
  /** Their display name, when known. */
  author?: string;
}

/** One talk spurt of a track on the recording clock: from its first voiced sample to just past its last. */
export interface Utterance {
  /** Recording-clock ms of its first voiced sample. */
  startMs: number;
  /** Recording-clock ms just past its last voiced sample. */
  endMs: number;
}

/** One user's track in the {@link Manifest}. */
export interface ManifestTrack {
  /** Discord user id. */
  userId: string;
  /** Their user name when recorded. */
  username: string;
  /** Their display name in the guild when recorded. */
  displayName: string;
  /** The track's file name in the recording directory. */
  file: string;
  /** Every RTP stream (SSRC) the user had during the recording (a rejoin or reconnect brings a new one). */
  ssrcs: number[];
  /** Where their first audio lands on the recording clock (ms). */
  startOffsetMs: number;
  /** What happened to their packets. */
  packets: TrackStats;
  /** The user's talk spurts, in order (from the track's utterance log; absent for recordings made before it). */
  utterances?: Utterance[];
  /**
   * What produced the file: 'wav-in-place', 'ffmpeg', 'lame-wasm', 'lame-wasm-stream' (MP3 encoded while
   * recording), 'libflac-js', 'libopus', 'opus-copy' (src/sinks/formats/encoders.ts EncoderName).
   */
  encoder?: string;
}

/**
 * manifest.json: what a finished recording holds. Written last, once every file is in place. Every track starts at
 * the same t=0 (`startedAt`) and is `durationMs` long.
 */
export interface Manifest {
  /** The guild (server) id. */
  guildId: string;
  /** The voice channel id. */
  channelId: string;
  /** Wall-clock time of t=0 (ISO 8601). */
  startedAt: string;
  /** Wall-clock time of the stop (ISO 8601). */
  endedAt: string;
  /** The length of every track. */
  durationMs: number;
  /** The tracks' format. */
  format: AudioFormat;
  /** One per user heard. */
  tracks: ManifestTrack[];
  /** The mixed track's file name (with the mix option). */
  mix?: string;
  /** Set by `convert DIR` when the recording was finished after a crash. */
  recovered?: boolean;
  /** What the receiver dropped, by kind (from the journal; absent for captures made before it existed). */
  dropped?: ReceiverDrops;
  /** When the recording was paused (silence in every track); absent when it never was. */
  pauses?: Pause[];
  /** Markers added while recording, in order; also written as Audacity labels to `labels` (absent without notes). */
  notes?: Note[];
  /** The Audacity label file (`labels.txt`) beside the tracks, when there are notes. */
  labels?: string;
}

export function capturePath(dir: string, stem: string): string {
  return join(dir, CAPTURE_DIR, `${stem}.wav`);
}

export function packetLogPath(dir: string, stem: string): string {
  return join(dir, CAPTURE_DIR, `${stem}.opus.pkt`);
}

export function utteranceLogPath(dir: string, stem: string): string {
  return join(dir, CAPTURE_DIR, `${stem}.utterances`);
}

/** Writes JSON atomically: a reader (or a crash) sees the old file or the new one, never half of one. */
export function writeJsonAtomic(path: string, value: unknown, mode = 0o600): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n', { mode });
  renameSync(tmp, path);
}

export function readJournal(dir: string): Journal {
  return JSON.parse(readFileSync(join(dir, JOURNAL_FILE), 'utf8')) as Journal;
}

export async function ensureCaptureDir(dir: string): Promise<void> {
  await fsp.mkdir(join(dir, CAPTURE_DIR), { recursive: true, mode: 0o700 });
}
