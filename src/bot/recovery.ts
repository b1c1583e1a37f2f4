/**
 * Restart safety: what a bot killed mid-recording left behind (state.ts) is finished when it starts again, as
 * `dvrec convert DIR` would (the capture is crash-safe by design), the sign it had put up is taken down, and the
 * channel is told. Entries of guilds this process does not serve (another shard's) are left alone.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from 'discord.js';
import { JOURNAL_FILE, MANIFEST_FILE, type Manifest } from '../sinks/capture-layout.ts';
import { finishRecording } from '../sinks/finalize.ts';
import { redact } from '../errors.ts';
import { recoveredMessage } from './messages.ts';
import { removeSign } from './sign.ts';
import type { ActiveRecording, BotState } from './state.ts';

export interface Recovered {
  entry: ActiveRecording;
  /** The finished recording; null when nothing had been captured yet (the bot died before t=0) or it failed. */
  manifest: Manifest | null;
  error?: unknown;
}

export async function recoverUnfinished(client: Client<true>, state: BotState, warn: (message: string) => void): Promise<Recovered[]> {
  const out: Recovered[] = [];
  for (const entry of state.active()) {
    const guild = client.guilds.cache.get(entry.guildId);
    if (!guild) continue; // another shard's guild, or the bot left it: not ours to touch
    let manifest: Manifest | null = null;
    let error: unknown;
    try {
      if (existsSync(join(entry.outDir, JOURNAL_FILE)) && !existsSync(join(entry.outDir, MANIFEST_FILE))) {
        manifest = await finishRecording(entry.outDir, { force: false });
      }
    } catch (e) {
      error = e;
      warn(`cannot finish ${entry.outDir}: ${redact(String((e as Error)?.message ?? e))} (run: dvrec convert ${entry.outDir})`);
    }
    await removeSign(client, guild, entry.sign, warn);
    const channel = guild.channels.cache.get(entry.channelId);
    if (manifest && channel?.isSendable()) {
      await channel.send({ content: recoveredMessage(manifest, entry.outDir), allowedMentions: { parse: [] } }).catch((e: unknown) => warn(`cannot post in ${channel.id}: ${String((e as Error)?.message ?? e)}`));
    }
    state.remove(entry.guildId);
    out.push({ entry, manifest, ...(error !== undefined ? { error } : {}) });
  }
  return out;
}
