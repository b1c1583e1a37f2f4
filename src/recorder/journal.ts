/**
 * capture.json while recording: everything `dvrec convert DIR` needs to finish the recording should the process
 * die (see capture-layout.ts). Rewritten atomically about once a second, and soon (not at once) after a new track:
 * when hundreds of members start speaking together, one synchronous rewrite per new user (each listing every
 * track so far) stalled the main thread for hundreds of milliseconds, long enough for the kernel's socket buffer
 * to overflow and drop audio (BENCHMARKS.md). A capture that a crash leaves unjournalled is still finished by
 * `convert DIR` (as an orphan named by its stem).
 *
 * A write that fails breaks the journal for good (`broken`): the recording stops (its owner decides) and the
 * final journal is attempted once more at the stop.
 */
import { join } from 'node:path';
import { JOURNAL_FILE, writeJsonAtomic, type Journal } from '../sinks/capture-layout.ts';

/** How soon after a new user's first packet the journal lists their track (writes are coalesced). */
const SOON_MS = 100;

export class JournalWriter {
  readonly path: string;
  readonly journal: Journal;
  #broken = false;
  #soon: NodeJS.Timeout | undefined;

  constructor(dir: string, journal: Journal) {
    this.path = join(dir, JOURNAL_FILE);
    this.journal = journal;
  }

  get broken(): boolean {
    return this.#broken;
  }

  /**
   * Applies `update` and rewrites the file. Returns the error of a failed write (the journal is broken from then
   * on and later calls do nothing), or null.
   */
  write(update: Partial<Journal>): NodeJS.ErrnoException | null {
    if (this.#broken) return null;
    Object.assign(this.journal, update);
    try {
      writeJsonAtomic(this.path, this.journal);
      return null;
    } catch (e) {
      this.#broken = true;
      return e as NodeJS.ErrnoException;
    }
  }

  /** Calls `run` (which writes) once, SOON_MS from the first call, however many calls come in between. */
  soon(run: () => void): void {
    this.#soon ??= setTimeout(() => {
      this.#soon = undefined;
      run();
    }, SOON_MS);
  }

  /** The final write at the stop: tried even when broken, and throws on failure (the caller says what to do). */
  writeFinal(update: Partial<Journal>): void {
    clearTimeout(this.#soon);
    Object.assign(this.journal, update);
    writeJsonAtomic(this.path, this.journal);
  }

  /** Cancels a pending write. */
  close(): void {
    clearTimeout(this.#soon);
    this.#soon = undefined;
  }
}
