/**
 * What the bot must know after a crash: the recordings in progress (where their files are) and what it changed to
 * show them (a voice channel status and what it was before, or its nickname and what it was before). An entry is
 * written BEFORE the change it describes and removed only once the recording is finished and the change undone, so
 * a bot killed at any moment finds, when it starts again, everything it has to finish and restore.
 *
 * One file per guild (`<state dir>/active/<guild id>.json`): a guild belongs to exactly one shard, so processes
 * serving different shards (--shards, or several machines sharing the directory) never write the same file, and
 * whichever process serves a guild after a restart (even with another shard layout) finds its entry.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { OutputError } from '../errors.ts';
import { readJsonFile, writeJsonFile } from './json-file.ts';

/** What was changed to show a recording (sign.ts). */
export type SignRecord =
  | { kind: 'none' }
  | { kind: 'status'; channelId: string; previous: string | null }
  | { kind: 'nick'; previousNick: string | null };

export interface ActiveRecording {
  guildId: string;
  channelId: string;
  /** Absolute path of the recording directory. */
  outDir: string;
  /** Who started it: a user id, or 'autorecord'. */
  startedBy: string;
  startedAt: string;
  sign: SignRecord;
}

const SNOWFLAKE_FILE = /^\d{15,20}\.json$/;

export class BotState {
  readonly #dir: string;

  constructor(stateDir: string) {
    this.#dir = join(stateDir, 'active');
  }

  /** The recordings whose entries are on disk (at start-up: those in progress when the bot died). */
  active(): ActiveRecording[] {
    let names: string[];
    try {
      names = readdirSync(this.#dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new OutputError(`cannot read ${this.#dir} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    return names.filter((n) => SNOWFLAKE_FILE.test(n)).map((n) => readJsonFile<ActiveRecording>(join(this.#dir, n), null as never)).filter((e) => e !== null);
  }

  get(guildId: string): ActiveRecording | undefined {
    return readJsonFile<ActiveRecording | undefined>(this.#file(guildId), undefined);
  }

  put(entry: ActiveRecording): void {
    writeJsonFile(this.#file(entry.guildId), entry);
  }

  remove(guildId: string): void {
    rmSync(this.#file(guildId), { force: true });
  }

  #file(guildId: string): string {
    if (!/^\d{15,20}$/.test(guildId)) throw new OutputError(`not a guild id: ${guildId}`);
    return join(this.#dir, `${guildId}.json`);
  }
}
