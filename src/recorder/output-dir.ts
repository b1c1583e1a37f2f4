/**
 * The output directory of one recording: claimed before anything connects, with room held back for a clean stop
 * on a full disk, and given back untouched when the run captured nothing.
 */
import { accessSync, constants as fsConstants, existsSync, mkdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { OutputError } from '../errors.ts';
import { CAPTURE_DIR, JOURNAL_FILE, RESERVE_FILE } from '../sinks/capture-layout.ts';
import { hasUnfinishedRecording, setAsideUnfinished } from '../sinks/leftover-capture.ts';

/**
 * Space held back in the output directory while recording (`.capture/.reserve`), released when a write fails
 * for lack of space: it lets the final journal, the WAV header patches and the manifest still be written on a
 * full disk, so a disk-full stop finishes cleanly instead of leaving a capture only `convert` can finish.
 */
const RESERVE_BYTES = 256 * 1024;
/** Write errors that mean "the disk (or the file-size limit) is full": stop cleanly, keep what was written. */
export const FULL_CODES: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

/** What {@link claimOutputDir} made, so that a run which captured nothing can take exactly that away again. */
export class OutputDir {
  readonly dir: string;
  /** The topmost directory this run created (`mkdir -p` may create several levels), if any. */
  readonly #createdTop: string | undefined;
  /** Whether this run created `.capture/`. */
  readonly #createdCaptureDir: boolean;
  /** Where an unfinished recording found in the directory was moved (`force`), if one was. */
  setAside: string | undefined;

  constructor(dir: string, createdTop: string | undefined, createdCaptureDir: boolean) {
    this.dir = dir;
    this.#createdTop = createdTop;
    this.#createdCaptureDir = createdCaptureDir;
  }

  /** Frees the reserved space (a write failed for lack of room, or the recording is over). Idempotent. */
  releaseReserve(): void {
    rmSync(join(this.dir, CAPTURE_DIR, RESERVE_FILE), { force: true });
  }

  /**
   * Removes what the claim created, for a run that captured nothing: `.capture/` and the directories `mkdir -p`
   * made, innermost first, each only while it is empty (rmdir, never a recursive delete). A directory that existed
   * before, or holds anything this run did not put there, is left alone.
   */
  release(): void {
    this.releaseReserve();
    if (this.#createdCaptureDir) {
      try {
        rmdirSync(join(this.dir, CAPTURE_DIR));
      } catch {
        return; // not empty: something else is in there; keep everything
      }
    }
    if (this.#createdTop === undefined) return;
    for (let d = this.dir; ; d = dirname(d)) {
      try {
        rmdirSync(d);
      } catch {
        return;
      }
      if (d === this.#createdTop || dirname(d) === d) return;
    }
  }
}

/**
 * Creates the output directory (private) and refuses to clobber an unfinished recording; with `force`, moves that
 * one aside first (leftover-capture.ts), so a new recording never finishes another one's captures as its own.
 * Synchronous (a few file operations): a recording claims its directory before it takes anything from the connection.
 */
export function claimOutputDir(dir: string, force: boolean): OutputDir {
  let createdTop: string | undefined;
  try {
    createdTop = mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, fsConstants.W_OK);
  } catch (e) {
    throw new OutputError(`cannot write to ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let setAside: string | undefined;
  if (hasUnfinishedRecording(dir)) {
    if (!force) throw new OutputError(`${dir} holds an unfinished recording (${JOURNAL_FILE}); run dvrec convert ${dir}, or use --force to move it aside`);
    try {
      setAside = setAsideUnfinished(dir);
    } catch (e) {
      throw new OutputError(`cannot move the unfinished recording in ${dir} aside: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; run dvrec convert ${dir} first`);
    }
  }
  const claim = new OutputDir(dir, createdTop, !existsSync(join(dir, CAPTURE_DIR)));
  claim.setAside = setAside;
  try {
    mkdirSync(join(dir, CAPTURE_DIR), { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, CAPTURE_DIR, RESERVE_FILE), Buffer.alloc(RESERVE_BYTES), { mode: 0o600 });
  } catch (e) {
    claim.release();
    throw new OutputError(`cannot write to ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (is the disk full?)`);
  }
  return claim;
}
