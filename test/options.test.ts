/**
 * Option validation (src/commands/options.ts, record/convert flag checks): every good form parses to
 * the right value, every bad one throws a DvrecError with the right exit code and a one-line message
 * that names the option.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConnectionError, DvrecError, redact, registerSecret } from '../src/errors.ts';
import { ExitCode, exitCodeOf } from '../src/commands/exit-codes.ts';
import {
  checkOutputDir,
  expandOutTemplate,
  parseApiUrl,
  parseBitrate,
  parseChannels,
  parseDuration,
  parseFormat,
  parseRate,
  parseSize,
  parseSnowflake,
  parseUserList,
  resolveToken,
} from '../src/commands/options.ts';
import { validateRecordFlags } from '../src/commands/record.ts';
import { detectOutputMode } from '../src/ui/mode.ts';
import { formatBytes, formatClock, formatDuration } from '../src/ui/format.ts';
import { readOnlyView } from './private-mount.ts';
import { needs } from './strict.ts';

const G = '1180000000000000001';
const C = '1180000000000000002';

function throwsWith(fn: () => unknown, exitCode: number, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DvrecError, `expected DvrecError, got ${String(e)}`);
    assert.equal(exitCodeOf(e), exitCode, e.message);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'), 'message is one line');
    return true;
  });
}

describe('snowflakes', () => {
  test('accepts 17-20 digit ids and pasted mentions', () => {
    assert.equal(parseSnowflake('80351110224678912', '--guild'), '80351110224678912');
    assert.equal(parseSnowflake(' 1180000000000000001 ', '--guild'), '1180000000000000001');
    assert.equal(parseSnowflake('<#1180000000000000002>', '--channel'), '1180000000000000002');
    assert.equal(parseSnowflake('18446744073709551615', '--guild'), '18446744073709551615');
  });
  test('rejects everything else, naming the option', () => {
    for (const bad of ['', '12', 'abc', '1180000000000000001x', '-1180000000000000001', '18446744073709551616', '1.5e18', '123456789012345678901']) {
      throwsWith(() => parseSnowflake(bad, '--channel'), ExitCode.USAGE, /^--channel: /);
    }
  });
  test('user lists: commas, repeats, duplicates', () => {
    assert.deepEqual([...parseUserList([`${G},${C}`, G, ''])], [G, C]);
    throwsWith(() => parseUserList([`${G},nope`]), ExitCode.USAGE, /--users: 'nope'/);
    throwsWith(() => parseUserList([',']), ExitCode.USAGE, /at least one/);
  });
});

describe('durations', () => {
  const cases: [string, number][] = [
    ['20', 20_000],
    ['90s', 90_000],
    ['45m', 2_700_000],
    ['1h30m', 5_400_000],
    ['1h30m15s', 5_415_000],
    ['1.5h', 5_400_000],
    ['500ms', 500],
    ['2H', 7_200_000],
    ['0.25', 250],
  ];
  for (const [text, ms] of cases) test(`${text} = ${ms} ms`, () => assert.equal(parseDuration(text, '--duration'), ms));
  test('rejects malformed, zero and absurd values', () => {
    for (const bad of ['', 'abc', '10x', '1h 30m', 'h', '-5s', '0', '0s', '1d', '30m1', '99999h']) {
      throwsWith(() => parseDuration(bad, '--duration'), ExitCode.USAGE, /^--duration: /);
    }
  });
});

describe('sizes', () => {
  test('binary units, optional B/iB', () => {
    assert.equal(parseSize('500M', '--max-size'), 500 * 1024 ** 2);
    assert.equal(parseSize('2G', '--max-size'), 2 * 1024 ** 3);
    assert.equal(parseSize('1.5GiB', '--max-size'), 1.5 * 1024 ** 3);
    assert.equal(parseSize('2048k', '--max-size'), 2 * 1024 ** 2);
    assert.equal(parseSize('10485760', '--max-size'), 10_485_760);
  });
  test('rejects malformed and tiny sizes', () => {
    for (const bad of ['', 'M', '5X', '-1G', '0', '100K', '1.2.3G']) throwsWith(() => parseSize(bad, '--max-size'), ExitCode.USAGE, /^--max-size: /);
  });
});

describe('format, bitrate, raw parameters, api url', () => {
  test('formats', () => {
    for (const f of ['wav', 'mp3', 'flac', 'opus', 'MP3']) assert.equal(parseFormat(f), f.toLowerCase());
    throwsWith(() => parseFormat('ogg'), ExitCode.USAGE, /--format: 'ogg'.*wav, mp3, flac, opus/);
  });
  test('bitrate applies to mp3 only and must be a LAME bitrate', () => {
    assert.equal(parseBitrate(undefined, 'wav'), 128);
    assert.equal(parseBitrate('192', 'mp3'), 192);
    assert.equal(parseBitrate('96k', 'mp3'), 96);
    throwsWith(() => parseBitrate('100', 'mp3'), ExitCode.USAGE, /not an MP3 bitrate/);
    throwsWith(() => parseBitrate('fast', 'mp3'), ExitCode.USAGE, /^--bitrate: 'fast'/);
    throwsWith(() => parseBitrate('128', 'wav'), ExitCode.USAGE, /mp3 only.*lossless/);
    throwsWith(() => parseBitrate('128', 'opus'), ExitCode.USAGE, /mp3 only/);
  });
  test('rate and channels', () => {
    assert.equal(parseRate('44100'), 44_100);
    assert.equal(parseChannels('1'), 1);
    throwsWith(() => parseRate('48k'), ExitCode.USAGE, /--rate/);
    throwsWith(() => parseRate('999'), ExitCode.USAGE, /--rate/);
    throwsWith(() => parseChannels('9'), ExitCode.USAGE, /--channels/);
    throwsWith(() => parseChannels('0'), ExitCode.USAGE, /--channels/);
  });
  test('api url', () => {
    assert.equal(parseApiUrl('http://127.0.0.1:8080/api/', '--api-url'), 'http://127.0.0.1:8080/api');
    throwsWith(() => parseApiUrl('127.0.0.1:8080', '--api-url'), ExitCode.USAGE, /--api-url/);
    throwsWith(() => parseApiUrl('ftp://x/api', 'DVREC_API_URL'), ExitCode.USAGE, /^DVREC_API_URL: .*http/);
  });
});

describe('--out templates', () => {
  const now = new Date(2026, 10, 3, 7, 5, 9); // local time: 2026-11-03 07:05:09
  test('expands every placeholder, filesystem-safe', () => {
    assert.equal(
      expandOutTemplate('recordings/{guild}-{channel}-{date}', { guild: G, channel: C, now }),
      `recordings/${G}-${C}-2026-11-03`,
    );
    assert.equal(expandOutTemplate('{time}/{datetime}', { guild: G, channel: C, now }), '07-05-09/2026-11-03T07-05-09');
    assert.equal(expandOutTemplate('plain/dir', { guild: G, channel: C, now }), 'plain/dir');
  });
  test('unknown placeholders and empty templates are usage errors', () => {
    throwsWith(() => expandOutTemplate('rec/{gild}', { guild: G, channel: C, now }), ExitCode.USAGE, /unknown placeholder '\{gild\}'/);
    throwsWith(() => expandOutTemplate('  ', { guild: G, channel: C, now }), ExitCode.USAGE, /--out/);
  });
});

describe('output directory', () => {
  const root = mkdtempSync(join(tmpdir(), 'dvrec-opt-'));
  after(() => {
    chmodSync(join(root, 'locked'), 0o700);
    rmSync(root, { recursive: true, force: true });
  });
  test('a new nested directory under a writable parent is fine', () => {
    assert.equal(checkOutputDir(join(root, 'a', 'b', 'c'), false), join(root, 'a', 'b', 'c'));
  });
  test('an existing file, an unwritable parent, and an existing recording are OUTPUT errors', async (t) => {
    writeFileSync(join(root, 'file'), 'x');
    throwsWith(() => checkOutputDir(join(root, 'file'), false), ExitCode.OUTPUT, /not a directory/);
    throwsWith(() => checkOutputDir(join(root, 'file', 'sub'), false), ExitCode.OUTPUT, /not a writable directory/);
    mkdirSync(join(root, 'locked'));
    chmodSync(join(root, 'locked'), 0o500);
    // Permission bits stop everyone but root (CAP_DAC_OVERRIDE writes anywhere); what stops root too is a read-only
    // filesystem: as root the same directory is checked through a read-only mount of itself.
    const ro = process.getuid?.() === 0 ? await readOnlyView(join(root, 'locked')) : null;
    if (process.getuid?.() === 0 && needs(t, ro !== null, 'running as root and cannot mount read-only: needs CAP_SYS_ADMIN or unprivileged user namespaces (unshare -rm)')) return;
    try {
      const locked = ro?.path ?? join(root, 'locked');
      throwsWith(() => checkOutputDir(join(locked, 'rec'), false), ExitCode.OUTPUT, /not a writable directory/);
      throwsWith(() => checkOutputDir(locked, false), ExitCode.OUTPUT, /not writable/);
      t.diagnostic(ro ? `as root, through a read-only mount (${ro.how})` : 'through permission bits (0500)');
    } finally {
      ro?.release();
    }
    mkdirSync(join(root, 'old'));
    writeFileSync(join(root, 'old', 'manifest.json'), '{}');
    throwsWith(() => checkOutputDir(join(root, 'old'), false), ExitCode.OUTPUT, /already holds a recording.*--force/);
    assert.equal(checkOutputDir(join(root, 'old'), true), join(root, 'old'));
  });
});

describe('token', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dvrec-tok-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  test('DISCORD_TOKEN, trimmed, "Bot " removed, and registered as a secret', () => {
    const secret = 'MTE4MDAwMDAwMDAwMDAwMDAwMw.abcdef.env-token-value-1234567890';
    const { token } = resolveToken({ DISCORD_TOKEN: `  Bot ${secret}\n` });
    assert.equal(token, secret);
    assert.equal(redact(`oops ${secret} leaked`), 'oops [REDACTED] leaked');
  });
  test('--token-file wins over the environment and warns when others can read it', () => {
    const file = join(dir, 'token');
    writeFileSync(file, 'file-token-abcdefghijklmnop\n', { mode: 0o644 });
    chmodSync(file, 0o644);
    const r = resolveToken({ DISCORD_TOKEN: 'env-token-abcdefghijkl' }, file);
    assert.equal(r.token, 'file-token-abcdefghijklmnop');
    assert.match(r.warning ?? '', /chmod 600/);
    chmodSync(file, 0o600);
    assert.equal(resolveToken({}, file).warning, undefined);
  });
  test('missing, unreadable or empty tokens are AUTH errors', () => {
    throwsWith(() => resolveToken({}), ExitCode.AUTH, /no bot token.*DISCORD_TOKEN.*--token-file/);
    throwsWith(() => resolveToken({}, join(dir, 'nope')), ExitCode.AUTH, /cannot read token file .*ENOENT/);
    throwsWith(() => resolveToken({ DISCORD_TOKEN: '   ' }), ExitCode.AUTH, /DISCORD_TOKEN is empty/);
  });
});

describe('record flags', () => {
  test('a full valid set becomes engine options', () => {
    const v = validateRecordFlags(
      {
        guild: G,
        channel: C,
        format: 'mp3',
        bitrate: '192',
        mono: true,
        mix: true,
        duration: '1h30m',
        maxSize: '2G',
        stopWhenEmpty: true,
        users: [`${G},${C}`],
        apiUrl: 'http://127.0.0.1:9/api',
      },
      {},
    );
    assert.equal(v.format, 'mp3');
    assert.equal(v.bitrateKbps, 192);
    assert.equal(v.durationMs, 5_400_000);
    assert.equal(v.maxSizeBytes, 2 * 1024 ** 3);
    assert.equal(v.stopWhenEmptyMs, 30_000);
    assert.deepEqual([...v.users!], [G, C]);
    assert.equal(v.apiUrl, 'http://127.0.0.1:9/api');
    assert.equal(v.mono && v.mix, true);
  });
  test('DVREC_API_URL is used when --api-url is absent; --stop-when-empty takes a value', () => {
    const v = validateRecordFlags({ guild: G, channel: C, stopWhenEmpty: '5m' }, { DVREC_API_URL: 'http://127.0.0.1:1/api' });
    assert.equal(v.apiUrl, 'http://127.0.0.1:1/api');
    assert.equal(v.stopWhenEmptyMs, 300_000);
  });
  test('missing ids and contradictions', () => {
    throwsWith(() => validateRecordFlags({ channel: C }, {}), ExitCode.USAGE, /--guild is required/);
    throwsWith(() => validateRecordFlags({ guild: G }, {}), ExitCode.USAGE, /--channel is required/);
    throwsWith(() => validateRecordFlags({ guild: G, channel: C, format: 'opus', mono: true }, {}), ExitCode.USAGE, /--mono/);
    throwsWith(() => validateRecordFlags({ guild: G, channel: C, stopWhenEmpty: 'soon' }, {}), ExitCode.USAGE, /^--stop-when-empty/);
  });
});

describe('output mode and formatting', () => {
  test('a TTY gets the interactive UI unless CI, NO_COLOR or TERM=dumb', () => {
    const tty = { isTTY: true, columns: 120 };
    assert.equal(detectOutputMode({ json: false, stream: tty, env: { TERM: 'xterm' } }), 'tty');
    assert.equal(detectOutputMode({ json: false, stream: {}, env: {} }), 'plain');
    assert.equal(detectOutputMode({ json: false, stream: tty, env: { CI: 'true' } }), 'plain');
    assert.equal(detectOutputMode({ json: false, stream: tty, env: { CI: 'false' } }), 'tty');
    assert.equal(detectOutputMode({ json: false, stream: tty, env: { NO_COLOR: '1' } }), 'plain');
    assert.equal(detectOutputMode({ json: false, stream: tty, env: { TERM: 'dumb' } }), 'plain');
    assert.equal(detectOutputMode({ json: true, stream: tty, env: {} }), 'json');
    assert.equal(detectOutputMode({ json: false, stream: { isTTY: true, columns: 0 }, env: {} }), 'plain');
  });
  test('clock, bytes, durations', () => {
    assert.equal(formatClock(83_500), '1:23');
    assert.equal(formatClock(3_723_000), '1:02:03');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(12), '12 B');
    assert.equal(formatDuration(90_000), '1m30s');
    assert.equal(formatDuration(3_600_000), '1h');
  });
});

describe('failure reporting', () => {
  test('DvrecError keeps its code; anything else is exit 1, one line, stack only with DVREC_DEBUG=1', async () => {
    const { describeFailure } = await import('../src/commands/run.ts');
    const secret = 'failure-test-secret-token-0123456789';
    resolveToken({ DISCORD_TOKEN: secret });
    const d = describeFailure(new ConnectionError(`bad ${secret}\nsecond line`), {});
    assert.deepEqual(d, { exitCode: ExitCode.NETWORK, message: 'bad [REDACTED] second line' });
    const u = describeFailure(new TypeError('boom\nat somewhere'), {});
    assert.equal(u.exitCode, ExitCode.INTERNAL);
    assert.match(u.message, /^internal error: boom at somewhere \(run with DVREC_DEBUG=1/);
    assert.equal(u.stack, undefined);
    const dbg = describeFailure(new Error(`leak ${secret}`), { DVREC_DEBUG: '1' });
    assert.match(dbg.stack ?? '', /options\.test\.ts/);
    assert.ok(!dbg.stack!.includes(secret) && !dbg.message.includes(secret));
  });
});

describe('the error line', () => {
  test('timestamped in a log (plain mode), bare at a terminal and with --json; one line, redacted', async () => {
    const { errorLine } = await import('../src/ui/error-line.ts');
    const now = new Date(2026, 10, 3, 14, 5, 9);
    const secret = 'error-line-test-secret-token-0123456789';
    registerSecret(secret);
    const tty = { isTTY: true, columns: 80 };
    assert.equal(errorLine('disk full\nin /rec', { json: false, stream: {}, env: {}, now }), '2026-11-03 14:05:09 dvrec: disk full in /rec\n');
    assert.equal(errorLine('x', { json: false, stream: tty, env: { NO_COLOR: '1' }, now }), '2026-11-03 14:05:09 dvrec: x\n');
    assert.equal(errorLine('x', { json: false, stream: tty, env: { TERM: 'xterm' }, now }), 'dvrec: x\n');
    assert.equal(errorLine('x', { json: true, stream: {}, env: {}, now }), 'dvrec: x\n');
    assert.equal(errorLine(`bad ${secret}`, { json: true, stream: {}, env: {}, now }), 'dvrec: bad [REDACTED]\n');
  });
});
