/**
 * What a killed `record` leaves in its directory (capture.json, .capture/, perhaps tracks it had finished before the
 * kill), moved aside before a new recording starts there with --force.
 *
 * Why: the finisher takes every capture in .capture/ as a track of the recording it finishes (a capture the journal
 * never listed is a speaker whose audio began after the last journal write). Recording into a directory that still
 * held another run's captures therefore finished the old run's speakers into the new manifest, with the old audio.
 * Moved whole into DIR/unfinished-<its start>/, the old run stays a recording directory of its own, which
 * `dvrec convert DIR/unfinished-…` finishes; the new one starts clean. A subdirectory, so that every move is a
 * rename on the same filesystem: nothing is copied, nothing can be half-moved by a full disk.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CAPTURE_DIR, JOURNAL_FILE, MANIFEST_FILE, PRIVATE_DIR_MODE, RESERVE_FILE, type AudioFormat, type Journal } from './capture-layout.ts';
import { MP3_STREAM_SUFFIX } from './mp3-stream.ts';

const EXTENSIONS: Record<AudioFormat, string> = { wav: 'wav', mp3: 'mp3', flac: 'flac', opus: 'opus' };

/** Whether `dir` holds an unfinished recording: a journal, or captures in .capture/. */
export function hasUnfinishedRecording(dir: string): boolean {
  if (existsSync(join(dir, JOURNAL_FILE)) || existsSync(join(dir, `${JOURNAL_FILE}.tmp`))) return true;
  return captureNames(dir).length > 0;
}

function captureNames(dir: string): string[] {
  try {
    return readdirSync(join(dir, CAPTURE_DIR)).filter((n) => n !== RESERVE_FILE);
  } catch {
    return [];
  }
}

function readJournal(dir: string): Journal | null {
  for (const name of [JOURNAL_FILE, `${JOURNAL_FILE}.tmp`]) {
    try {
      const j = JSON.parse(readFileSync(join(dir, name), 'utf8')) as Journal;
      if (j && j.version === 1 && Array.isArray(j.tracks)) return j;
    } catch {
      // the next candidate (a crash between writing the .tmp and renaming it leaves only the .tmp)
    }
  }
  return null;
}

/**
 * Moves the unfinished recording in `dir` into a new subdirectory `unfinished-<start>` and returns its path. Moves the
 * journal, the captures, and every file the old run may already have finished or begun (its tracks, its mix, their
 * `.partial` and streamed-MP3 files, a manifest written just before the kill): all named after the old run's stems.
 */
export function setAsideUnfinished(dir: string): string {
  const journal = readJournal(dir);
  const stamp = journal?.startedAt ?? new Date(statSync(dir).mtimeMs).toISOString();
  const base = `unfinished-${stamp.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-')}`;
  let name = base;
  for (let n = 2; existsSync(join(dir, name)); n++) name = `${base}-${n}`;
  const aside = join(dir, name);
  mkdirSync(aside, { mode: PRIVATE_DIR_MODE });

  const stems = new Set(journal?.tracks.map((t) => t.stem) ?? []);
  for (const c of captureNames(dir)) {
    const m = /^(.+)\.(wav|opus\.pkt)$/.exec(c);
    if (m) stems.add(m[1]!);
  }
  const exts = journal && journal.format in EXTENSIONS ? [EXTENSIONS[journal.format]] : Object.values(EXTENSIONS);
  const names = new Set([JOURNAL_FILE, `${JOURNAL_FILE}.tmp`, MANIFEST_FILE]);
  for (const ext of exts) {
    for (const stem of [...stems, 'mix', '_mix']) {
      names.add(`${stem}.${ext}`);
      names.add(`${stem}.${ext}.partial`);
    }
  }
  for (const stem of stems) names.add(`${stem}${MP3_STREAM_SUFFIX}`);
  for (const n of names) if (existsSync(join(dir, n))) renameSync(join(dir, n), join(aside, n));
  // The captures: everything but the reserve (a new run makes its own).
  const captures = captureNames(dir);
  if (captures.length > 0) {
    mkdirSync(join(aside, CAPTURE_DIR), { mode: PRIVATE_DIR_MODE });
    for (const c of captures) renameSync(join(dir, CAPTURE_DIR, c), join(aside, CAPTURE_DIR, c));
  }
  // What is left of the old .capture/ is its reserve: gone, so the new run's .capture/ is entirely its own.
  rmSync(join(dir, CAPTURE_DIR, RESERVE_FILE), { force: true });
  try {
    rmdirSync(join(dir, CAPTURE_DIR));
  } catch {
    // absent, or holds something that is not ours: left alone
  }
  return aside;
}
