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
 *   <stem>.wav|mp3|flac|opus  finished tracks (written at stop, or by `dvrec convert DIR`)
 *   mix.<ext>                 (with --mix) everyone mixed
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

export const CAPTURE_DIR = '.capture';
/** Space held back in .capture/ while recording (see recording.ts RESERVE_BYTES); not a capture. */
export const RESERVE_FILE = '.reserve';
export const JOURNAL_FILE = 'capture.json';
export const MANIFEST_FILE = 'manifest.json';
export const WAV_HEADER_BYTES = 44;
/** Length field of a packet-log record that sets the high 32 bits of the positions that follow (no payload). */
export const PACKET_LOG_EPOCH = 0xffff;
/**
 * Every file dvrec writes is private to its owner: a recording holds other people's voices. Directories are
 * created 0700 and files 0600 (an ffmpeg child's output is chmod-ed before it gets its final name).
 */
export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

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
  /** Packet accounting so far (the engine refreshes it with every journal write). */
  packets: ManifestTrack['packets'];
}

/**
 * Datagrams the receiver did not turn into audio, by kind (hostile input, corruption, replays, RTCP). Written to
 * the journal by the engine and copied into the manifest by the finisher; `datagrams` is everything that arrived
 * on the voice socket. Keys are the receiver's kinds (see src/receiver/receiver.ts dropCounts()).
 */
export interface ReceiverDrops {
  datagrams: number;
  /** Delivered as audio (so that `datagrams` = audio + every other field). */
  audio: number;
  /** RTCP reports received (not audio, not an error). */
  rtcp: number;
  /** Keepalive echoes and IP discovery replies. */
  control: number;
  /** Too short, not RTP version 2, CSRC list or header extension overrunning the datagram. */
  malformed: number;
  /** RTP with a payload type other than Opus, and not video. */
  notAudio: number;
  /**
   * RTP of members' cameras and screen shares (and their RTX), never decoded; recordings made before it was counted
   * lack it (it was in notAudio).
   */
  video: number;
  /** Arrived while no transport key was valid (before op 4, during a reconnect). */
  noKey: number;
  /** Transport authentication failed: forged, corrupted, wrong key. */
  badAuth: number;
  /** Authenticated but its padding count overran the payload. */
  badPadding: number;
  /** Authenticated but already seen (replay or network duplicate). */
  replayed: number;
  /** Authenticated but no op 5 ever named its SSRC's user in time. */
  unknownSsrc: number;
  /** DAVE (end-to-end) decryption failed. */
  daveUndecryptable: number;
  /** From users excluded by --users. */
  filtered: number;
  /** RTCP that neither authenticated nor parsed as plaintext RTCP. */
  rtcpBadAuth: number;
}

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
  /** Set when the recording stopped cleanly (its finished length). */
  endedAt?: string;
  durationMs?: number;
}

export interface ManifestTrack {
  userId: string;
  username: string;
  displayName: string;
  file: string;
  ssrcs: number[];
  startOffsetMs: number;
  /**
   * Per-user packet counts (see TrackStats in src/sinks/types.ts). `corrupt` and `fec` are absent from
   * recordings made before they existed.
   */
  packets: { received: number; lost: number; concealed: number; late: number; duplicate: number; undecryptable: number; corrupt?: number; fec?: number };
  /**
   * What produced the file: 'wav-in-place', 'ffmpeg', 'lame-wasm', 'lame-wasm-stream' (MP3 encoded while
   * recording), 'libflac-js', 'libopus', 'opus-copy' (src/sinks/formats/encoders.ts EncoderName).
   */
  encoder?: string;
}

export interface Manifest {
  guildId: string;
  channelId: string;
  startedAt: string;
  endedAt: string;
  durationMs: number;
  format: AudioFormat;
  tracks: ManifestTrack[];
  mix?: string;
  /** Set by `convert DIR` when the recording was finished after a crash. */
  recovered?: boolean;
  /** What the receiver dropped, by kind (from the journal; absent for captures made before it existed). */
  dropped?: ReceiverDrops;
}

export function capturePath(dir: string, stem: string): string {
  return join(dir, CAPTURE_DIR, `${stem}.wav`);
}

export function packetLogPath(dir: string, stem: string): string {
  return join(dir, CAPTURE_DIR, `${stem}.opus.pkt`);
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
