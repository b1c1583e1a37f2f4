/**
 * The bot's configuration file (`dvrec bot --config FILE`): manager roles, and autorecord per guild, which
 * /autorecord changes and which survives restarts. Written back only when /autorecord changes it.
 *
 * ```json
 * { "managerRoles": ["123..."], "autorecord": { "<guild id>": { "channelId": "...", "minMembers": 2, "roleId": "..." } } }
 * ```
 */
import { UsageError } from '../errors.ts';
import { readJsonFile, writeJsonFile } from './json-file.ts';

export interface AutorecordRule {
  channelId: string;
  /** People (not bots) needed in the channel to start. */
  minMembers: number;
  /** Count only members with this role (absent: everyone). */
  roleId?: string;
}

export interface BotConfigDocument {
  managerRoles?: string[];
  autorecord?: Record<string, AutorecordRule>;
}

const SNOWFLAKE = /^\d{15,20}$/;

export class BotConfig {
  readonly path: string;
  readonly #doc: BotConfigDocument;
  /** Role ids whose members may manage recordings (file's plus command line's). */
  readonly managerRoles: ReadonlySet<string>;

  /** Loads (or starts empty when the file does not exist). Throws UsageError for a malformed document. */
  constructor(path: string, extraManagerRoles: readonly string[] = []) {
    this.path = path;
    const doc = readJsonFile<BotConfigDocument>(path, {});
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new UsageError(`${path}: the configuration must be a JSON object`);
    const roles = doc.managerRoles ?? [];
    if (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string' && SNOWFLAKE.test(r))) throw new UsageError(`${path}: managerRoles must be a list of role ids`);
    for (const [g, rule] of Object.entries(doc.autorecord ?? {})) {
      const roleOk = rule?.roleId === undefined || (typeof rule.roleId === 'string' && SNOWFLAKE.test(rule.roleId));
      if (!SNOWFLAKE.test(g) || typeof rule?.channelId !== 'string' || !SNOWFLAKE.test(rule.channelId) || !(Number.isInteger(rule.minMembers) && rule.minMembers >= 1) || !roleOk) {
        throw new UsageError(`${path}: autorecord.${g} must be { "channelId": "<id>", "minMembers": <n ≥ 1>, "roleId"?: "<id>" }`);
      }
    }
    this.#doc = doc;
    this.managerRoles = new Set([...roles, ...extraManagerRoles]);
  }

  autorecord(guildId: string): AutorecordRule | undefined {
    return this.#doc.autorecord?.[guildId];
  }

  /**
   * Sets (or with null removes) a guild's autorecord rule and saves the file. The file is read again first and only
   * this guild's rule changed: with --shards, every shard process has its own copy, and each may only change the
   * guilds it serves (a guild belongs to one shard).
   */
  setAutorecord(guildId: string, rule: AutorecordRule | null): void {
    const onDisk = readJsonFile<BotConfigDocument>(this.path, {});
    const all = { ...(onDisk.autorecord ?? {}) };
    if (rule) all[guildId] = rule;
    else delete all[guildId];
    const doc = { ...onDisk, autorecord: all };
    writeJsonFile(this.path, doc);
    this.#doc.autorecord = { ...(this.#doc.autorecord ?? {}), [guildId]: rule as AutorecordRule };
    if (!rule) delete this.#doc.autorecord[guildId];
  }
}
