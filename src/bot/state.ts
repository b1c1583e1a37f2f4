/**
 * What the bot must know after a crash (`<state dir>/active.json`): the recordings in progress (where their files
 * are) and what it changed to show them (a voice channel status, or its nickname and what it was before). An entry
 * is written BEFORE the change it describes and removed only once the recording is finished and the change undone,
 * so a bot killed at any moment finds, when it starts again, everything it has to finish and restore.
 */
import { join } from 'node:path';
import { readJsonFile, writeJsonFile } from './json-file.ts';

/** What was changed to show a recording (sign.ts). */
export type SignRecord =
  | { kind: 'none' }
  | { kind: 'status'; channelId: string }
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

export class BotState {
  readonly #path: string;
  #active: Record<string, ActiveRecording>;

  constructor(stateDir: string) {
    this.#path = join(stateDir, 'active.json');
    this.#active = readJsonFile<{ active?: Record<string, ActiveRecording> }>(this.#path, {}).active ?? {};
  }

  /** The recordings that were in progress when the state was last written (at start-up: when the bot died). */
  active(): ActiveRecording[] {
    return Object.values(this.#active);
  }

  get(guildId: string): ActiveRecording | undefined {
    return this.#active[guildId];
  }

  put(entry: ActiveRecording): void {
    this.#active = { ...this.#active, [entry.guildId]: entry };
    this.#save();
  }

  remove(guildId: string): void {
    if (!(guildId in this.#active)) return;
    const { [guildId]: _gone, ...rest } = this.#active;
    this.#active = rest;
    this.#save();
  }

  #save(): void {
    writeJsonFile(this.#path, { active: this.#active });
  }
}
