/**
 * `dvrec bot --shards auto|N`: Discord's own gateway sharding with discord.js's ShardingManager, one process per
 * shard on this machine, each running `dvrec bot` for its shard (the manager passes SHARDS / SHARD_COUNT and the
 * token in the environment; discord.js's Client reads them). Guilds are Discord's to route: guild g goes to shard
 * (g >> 22) % count. `auto` asks GET /gateway/bot for the recommended count here, because discord.js's own
 * `auto` always asks discord.com and would ignore --api-url.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ShardingManager } from 'discord.js';
import { ConnectionError } from '../errors.ts';
import { toDvrecError } from '../commands/join.ts';

/** bin/dvrec.ts beside the sources, or dist/bin/dvrec.js beside the build (same relative place, same extension). */
const BIN = fileURLToPath(new URL('../../bin/dvrec' + extname(fileURLToPath(import.meta.url)), import.meta.url));
/** Discord: one identify per 5 s per max_concurrency bucket. discord.js's default spacing. */
const SPAWN_DELAY_MS = 5500;

export interface ShardManagerOptions {
  token: string;
  apiUrl?: string;
  count: 'auto' | number;
  /** The `dvrec bot ...` arguments every shard process runs with. */
  childArgs: string[];
  log: (message: string) => void;
}

export interface RunningShards {
  count: number;
  /** Asks every shard to stop (each finishes its recordings) and resolves once all have exited. */
  close(): Promise<void>;
}

/** The shard count Discord recommends (GET /gateway/bot). */
export async function recommendedShards(token: string, apiUrl = 'https://discord.com/api'): Promise<number> {
  let res: Response;
  try {
    res = await fetch(`${apiUrl}/v10/gateway/bot`, { headers: { authorization: `Bot ${token}` } });
  } catch (e) {
    throw toDvrecError(e);
  }
  if (!res.ok) throw toDvrecError({ status: res.status, message: `GET /gateway/bot: ${res.status}` });
  const body = (await res.json()) as { shards?: unknown };
  if (!(Number.isInteger(body.shards) && (body.shards as number) >= 1)) throw new ConnectionError('GET /gateway/bot gave no shard count');
  return body.shards as number;
}

export async function runShards(o: ShardManagerOptions): Promise<RunningShards> {
  const count = o.count === 'auto' ? await recommendedShards(o.token, o.apiUrl) : o.count;
  const manager = new ShardingManager(BIN, {
    totalShards: count,
    token: o.token,
    shardArgs: o.childArgs,
    execArgv: process.execArgv,
    mode: 'process',
    respawn: true, // a shard process that dies is started again (and finishes what it was recording)
  });
  manager.on('shardCreate', (shard) => {
    o.log(`shard ${shard.id}/${count}: starting`);
    shard.on('death', () => {
      if (manager.respawn) o.log(`shard ${shard.id}/${count}: exited; starting it again`);
    });
  });
  o.log(`running ${count} shard${count === 1 ? '' : 's'}`);
  await manager.spawn({ amount: count, delay: SPAWN_DELAY_MS, timeout: 120_000 });
  return {
    count,
    close: async () => {
      manager.respawn = false;
      // Asked over IPC, not with a signal (see commands/bot.ts): each shard finishes its recordings, then exits.
      await Promise.all(
        [...manager.shards.values()].map(
          (shard) =>
            new Promise<void>((resolve) => {
              const child = shard.process;
              if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('exit', () => resolve());
              shard.send({ dvrec: 'stop' }).catch(() => child.kill('SIGTERM'));
            }),
        ),
      );
    },
  };
}
