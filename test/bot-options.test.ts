/**
 * `dvrec bot`'s flags: every value checked before anything connects (UsageError, exit 2), and what they become.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { UsageError } from '../src/errors.ts';
import { validateBotFlags } from '../src/commands/bot.ts';
import { runCli, baseEnv } from './cli-helpers.ts';

test('defaults, and what each flag becomes', () => {
  const v = validateBotFlags({}, {});
  assert.equal(v.outTemplate, 'recordings/{guild}-{channel}-{datetime}');
  assert.equal(v.format, 'wav');
  assert.equal(v.configFile, resolve('dvrec-bot.json'));
  assert.equal(v.stateDir, resolve('.dvrec-bot'));
  assert.equal(v.emptyGraceMs, 30_000);
  assert.deepEqual(v.managerRoles, []);
  assert.equal(v.shardIds, undefined);
  const w = validateBotFlags(
    { managerRole: ['345678901234567890,456789012345678901', '567890123456789012'], shardIds: '0-2,5', shardCount: '8', emptyGrace: '2m', format: 'mp3', devGuild: '1234567890123456789' },
    { DVREC_API_URL: 'http://127.0.0.1:9/api' },
  );
  assert.deepEqual(w.managerRoles, ['345678901234567890', '456789012345678901', '567890123456789012']);
  assert.deepEqual(w.shardIds, [0, 1, 2, 5]);
  assert.equal(w.shardCount, 8);
  assert.equal(w.emptyGraceMs, 120_000);
  assert.equal(w.format, 'mp3');
  assert.equal(w.devGuildId, '1234567890123456789');
  assert.equal(w.apiUrl, 'http://127.0.0.1:9/api');
  assert.equal(validateBotFlags({ shards: 'auto' }, {}).manage, 'auto');
  assert.equal(validateBotFlags({ shards: '4' }, {}).manage, 4);
  // A shard process started by `--shards` takes its shard from the manager's environment.
  const child = validateBotFlags({}, { SHARDING_MANAGER: 'true', SHARDS: '3', SHARD_COUNT: '4' });
  assert.deepEqual([child.shardIds, child.shardCount, child.managed], [[3], 4, true]);
});

test('bad values are usage errors', () => {
  const bad: [Parameters<typeof validateBotFlags>[0], RegExp][] = [
    [{ out: 'rec/{gild}' }, /unknown placeholder/],
    [{ format: 'ogg' }, /format/],
    [{ devGuild: '12' }, /--dev-guild/],
    [{ managerRole: ['admins'] }, /--manager-role/],
    [{ emptyGrace: '0.5s' }, /--empty-grace/],
    [{ shards: '0' }, /--shards/],
    [{ shards: 'many' }, /--shards/],
    [{ shards: '2', shardIds: '0', shardCount: '2' }, /one or the other/],
    [{ shardIds: '0-1' }, /go together/],
    [{ shardIds: '3', shardCount: '2' }, /below --shard-count/],
    [{ shardIds: '2-1', shardCount: '4' }, /not a range/],
    [{ shardIds: 'a', shardCount: '4' }, /ids like/],
  ];
  for (const [flags, re] of bad) assert.throws(() => validateBotFlags(flags, {}), (e: unknown) => e instanceof UsageError && re.test(e.message), JSON.stringify(flags));
});

test('from the command line: a bad value is one line and exit 2; no token is exit 3; nothing connects', async () => {
  const r = await runCli(['bot', '--shard-ids', '0-1'], { env: baseEnv({ DISCORD_TOKEN: 'x'.repeat(30) }) });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--shard-ids and --shard-count go together/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  const t = await runCli(['bot', '--api-url', 'http://127.0.0.1:9/api'], { env: baseEnv() });
  assert.equal(t.code, 3, t.stderr);
  assert.match(t.stderr, /no bot token/);
});
