/**
 * The terminal display (src/ui/tty-reporter.ts) as a person sees it. The reporter writes to fake TTY
 * streams (createReporter takes them), and a small terminal emulator replays what was written: cursor
 * moves, line clears and all. The tests then read the screen: the live status block (elapsed time, who is
 * speaking, per-user activity, lost/concealed, bytes), the per-file conversion progress (bounded), errors
 * shown once, and escape codes only on streams that are terminals. The last test runs the real CLI at a
 * pseudo-terminal (script(1)) with stdout redirected to a file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import type { ConvertProgress, LiveStatus } from '../src/recording-api.ts';
import type { Manifest } from '../src/sinks/capture-layout.ts';
import { createReporter, type Reporter } from '../src/ui/reporter.ts';
import { ANSI, BIN, ROOT } from './cli-helpers.ts';
import { needs } from './strict.ts';

/** A writable that says it is (or is not) a terminal, with the cursor methods ora uses; keeps every byte. */
class FakeStream extends Writable {
  readonly isTTY: boolean;
  columns: number;
  rows: number;
  text = '';
  constructor(isTTY: boolean, columns = 100, rows = 30) {
    super({ decodeStrings: false });
    this.isTTY = isTTY;
    this.columns = columns;
    this.rows = rows;
  }
  override _write(chunk: string | Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
  cursorTo(x: number, y?: unknown, cb?: unknown): boolean {
    this.write(`\u001b[${x + 1}G`);
    for (const f of [y, cb]) if (typeof f === 'function') f();
    return true;
  }
  moveCursor(dx: number, dy: number, cb?: () => void): boolean {
    if (dy < 0) this.write(`\u001b[${-dy}A`);
    if (dy > 0) this.write(`\u001b[${dy}B`);
    if (dx !== 0) throw new Error('horizontal moves are not emulated');
    cb?.();
    return true;
  }
  clearLine(dir: number, cb?: () => void): boolean {
    this.write(dir === 1 ? '\u001b[0K' : '\u001b[2K');
    cb?.();
    return true;
  }
  getColorDepth(): number {
    return 8;
  }
  hasColors(): boolean {
    return true;
  }
}

/** Replays terminal output onto a screen (rows of text): \r, \n, CSI G/A/B/K; colours and modes are dropped. */
function screen(text: string): string[] {
  const lines: string[][] = [[]];
  let row = 0;
  let col = 0;
  // eslint-disable-next-line no-control-regex
  for (const m of text.matchAll(/\u001b\[([?\d;]*)([A-Za-z])|\r|\n|[^\u001b\r\n]/gu)) {
    const t = m[0];
    if (t === '\n') {
      row++;
      col = 0;
    } else if (t === '\r') {
      col = 0;
    } else if (m[2] !== undefined) {
      const n = Number(m[1]) || 1;
      if (m[2] === 'G') col = n - 1;
      else if (m[2] === 'A') row = Math.max(0, row - n);
      else if (m[2] === 'B') row += n;
      else if (m[2] === 'K') lines[row] = m[1] === '2' ? [] : (lines[row] ?? []).slice(0, col);
    } else {
      const line = (lines[row] ??= []);
      while (line.length < col) line.push(' ');
      line[col++] = t;
    }
    lines[row] ??= [];
  }
  return lines.map((l) => l.join('').trimEnd());
}

function ttyReporter(opts: { stdoutTTY?: boolean; columns?: number; rows?: number } = {}): { r: Reporter; out: FakeStream; err: FakeStream } {
  const out = new FakeStream(opts.stdoutTTY ?? false);
  const err = new FakeStream(true, opts.columns, opts.rows);
  const r = createReporter({ json: false, stdout: out as unknown as NodeJS.WriteStream, stderr: err as unknown as NodeJS.WriteStream, env: { TERM: 'xterm-256color' } });
  assert.equal(r.mode, 'tty');
  return { r, out, err };
}

const MiB = 1024 * 1024;
const status = (elapsedMs: number, alice: { speaking: boolean; activeMs: number }): LiveStatus => ({
  elapsedMs,
  bytesWritten: Math.round(12.4 * MiB),
  tracks: [
    { userId: '1', displayName: 'Alice', speaking: alice.speaking, activeMs: alice.activeMs, received: 2000, lost: 3, concealed: 3, bytes: 8 * MiB },
    { userId: '2', displayName: 'Bob', speaking: false, activeMs: 12_000, received: 600, lost: 0, concealed: 0, bytes: 4 * MiB },
  ],
});

const manifest = {
  version: 1,
  format: 'wav',
  durationMs: 83_500,
  recovered: false,
  tracks: [
    { userId: '1', username: 'alice', displayName: 'Alice', file: 'Alice-1.wav', packets: { received: 2000, lost: 3, concealed: 3 } },
    { userId: '2', username: 'bob', displayName: 'Bob', file: 'Bob-2.wav', packets: { received: 600, lost: 0, concealed: 0 } },
  ],
} as unknown as Manifest;

describe('the live status block while recording', () => {
  test('shows elapsed time, who is speaking, per-user activity, lost/concealed and bytes, redrawn in place', () => {
    const { r, err } = ttyReporter();
    try {
      r.phase({ phase: 'connecting' });
      r.phase({ phase: 'joining', guildName: 'Guild', channelName: 'Studio' });
      r.phase({ phase: 'recording', startedAt: new Date().toISOString() });
      r.status(status(83_500, { speaking: true, activeMs: 45_000 }));
      let s = screen(err.text);
      assert.ok(s.some((l) => /^✔ Connected; recording/.test(l)), s.join('\n'));
      const heads = s.filter((l) => l.includes('REC'));
      assert.equal(heads.length, 1, `one status block on screen:\n${s.join('\n')}`);
      const head = heads[0]!;
      assert.match(head, /REC 1:23 {2}12\.4 MiB written {2}1 speaking {2}lost 3 · concealed 3/);
      const block = s.slice(s.indexOf(head));
      assert.match(block[1]!, /^ {2}▶ Alice +45\.0s +54% +lost 3, concealed 3$/, 'Alice speaks: marker, activity, share, losses');
      assert.match(block[2]!, /^ {4}Bob +12\.0s +14%$/, 'Bob is quiet: no marker');

      // A second later, Alice has stopped: the same block, updated, still once on the screen.
      r.status(status(84_500, { speaking: false, activeMs: 45_600 }));
      s = screen(err.text);
      const again = s.filter((l) => l.includes('REC'));
      assert.equal(again.length, 1, `redrawn in place:\n${s.join('\n')}`);
      assert.match(again[0]!, /REC 1:24 .* 0 speaking/);
      assert.match(s[s.indexOf(again[0]!) + 1]!, /^ {4}Alice +45\.6s/);
      assert.ok(!s.some((l) => l.includes('1:23')), 'the old numbers are gone');

      r.phase({ phase: 'stopping', reason: 'duration' });
      s = screen(err.text);
      assert.ok(s.some((l) => l === '✔ Stopped because the --duration was reached'), s.join('\n'));
      assert.ok(!s.some((l) => l.includes('REC')), 'the block is cleared when recording stops');
    } finally {
      r.close();
    }
  });

  test('a call larger than the screen: speakers first, then "… and N more"', () => {
    const { r, err } = ttyReporter({ rows: 10 });
    try {
      r.phase({ phase: 'recording', startedAt: new Date().toISOString() });
      const tracks = Array.from({ length: 30 }, (_, i) => ({
        userId: String(i), displayName: `User${i}`, speaking: i === 25, activeMs: 1000, received: 50, lost: 0, concealed: 0, bytes: 1,
      }));
      r.status({ elapsedMs: 10_000, bytesWritten: 30, tracks });
      const s = screen(err.text);
      const top = s.findIndex((l) => l.includes('REC'));
      const block = s.slice(top).filter((l) => l !== '');
      assert.ok(block.length <= 9, `fits a 10-row screen: ${block.length} lines`);
      assert.match(block[1]!, /▶ User25 /, 'the speaker is listed first');
      assert.match(block.at(-1)!, /… and \d+ more/);
    } finally {
      r.close();
    }
  });
});

describe('escape codes only where there is a terminal', () => {
  test('stdout not a TTY (`dvrec record ... > files.txt`): the file list is plain, while stderr is coloured', () => {
    const { r, out, err } = ttyReporter({ stdoutTTY: false });
    r.phase({ phase: 'connecting' });
    r.phase({ phase: 'recording', startedAt: new Date().toISOString() });
    r.done({ dir: '/rec', manifest });
    r.close();
    assert.match(err.text, /\u001b\[3\dm/, 'colour on the terminal (stderr)');
    assert.doesNotMatch(out.text, ANSI);
    assert.equal(out.text.split('\n')[0], '✔ Recorded 83.5 s, 2 tracks (wav) in /rec');
    assert.match(out.text, /^ {2}Alice-1\.wav {2}Alice \(1\), 3 lost \/ 3 concealed$/m);
  });
  test('stdout a TTY too: the ✔ is coloured there as well', () => {
    const { r, out } = ttyReporter({ stdoutTTY: true });
    r.done({ dir: '/rec', manifest });
    r.close();
    assert.match(out.text, /\u001b\[32m✔\u001b\[39m Recorded/);
  });
});

describe('errors at a terminal', () => {
  test('the spinner is marked failed with what it was doing; the message itself is left to the one `dvrec:` line', () => {
    const { r, err } = ttyReporter();
    r.phase({ phase: 'connecting' });
    const message = 'cannot reach Discord (ECONNREFUSED): connect ECONNREFUSED 127.0.0.1:1';
    r.failed(message, 8);
    r.close();
    const s = screen(err.text);
    assert.ok(s.includes('✖ Connecting to Discord'), s.join('\n'));
    assert.ok(!err.text.includes('ECONNREFUSED'), 'the message is not printed by the reporter (the runner prints it once)');
  });
});

describe('conversion progress per file', () => {
  const progress = (running: number, finished: number, waiting: number): ConvertProgress => ({
    files: [
      ...Array.from({ length: finished }, (_, i) => ({ file: `/rec/Done${i}-118000000000000${i}.wav`, done: 1 })),
      ...Array.from({ length: running }, (_, i) => ({ file: `/rec/Speaker${i}-118000000000001${i}.wav`, done: (i + 1) / (running + 2) })),
      ...Array.from({ length: waiting }, (_, i) => ({ file: `/rec/Later${i}-118000000000002${i}.wav`, done: 0 })),
    ],
    etaMs: 20_000,
  });

  test('one bar per file in progress, at most 8, with the overall line, files done and the time left', () => {
    const { r, err } = ttyReporter();
    try {
      r.phase({ phase: 'converting', tracks: 15 });
      const p = progress(10, 2, 3);
      r.convertProgress(p);
      const s = screen(err.text).filter((l) => l !== '');
      const top = s.findIndex((l) => l.includes('Converting'));
      const overall = Math.round((100 * p.files.reduce((n, f) => n + f.done, 0)) / 15);
      assert.match(s[top]!, new RegExp(`Converting 15 files: ${overall}%, about 20s left \\(2 of 15 done\\)$`));
      const bars = s.slice(top + 1).filter((l) => /[█░]/.test(l));
      assert.equal(bars.length, 8, `bounded to 8 bars:\n${s.join('\n')}`);
      bars.forEach((line, i) => {
        const done = (i + 1) / 12;
        assert.match(line, new RegExp(`^ {4}Speaker${i}-118000000000001${i}\\.wav +[█░]{12} +${Math.floor(done * 100)}%$`));
        assert.equal([...line].filter((c) => c === '█').length, Math.round(done * 12), `bar of ${line}`);
      });
      assert.equal(s.at(-1), '    … 2 more in progress, 3 waiting');
      assert.ok(s.length - top <= 10, 'overall line + 8 bars + summary');

      // Later: fewer in progress, the block shrinks in place.
      r.convertProgress(progress(2, 13, 0));
      const later = screen(err.text).filter((l) => l !== '');
      assert.equal(later.filter((l) => l.includes('Converting')).length, 1, later.join('\n'));
      assert.equal(later.filter((l) => /[█░]/.test(l)).length, 2);
      assert.ok(!later.some((l) => l.includes('…')), 'nothing more to summarise');
    } finally {
      r.close();
    }
  });

  test('a short terminal gets fewer bars, a narrow one shorter names', () => {
    const { r, err } = ttyReporter({ rows: 7, columns: 50 });
    try {
      r.convertProgress(progress(10, 0, 0));
      const s = screen(err.text).filter((l) => l !== '');
      const bars = s.filter((l) => /[█░]/.test(l));
      assert.equal(bars.length, 4, s.join('\n'));
      for (const l of s) assert.ok([...l].length <= 50, `fits 50 columns: '${l}'`);
      assert.match(bars[0]!, /^ {4}Speaker0-118000000000001… {2}[█░]{12} +8%$/, 'the name is cut to what 50 columns leave');
    } finally {
      r.close();
    }
  });

  test('plain mode logs one timestamped overall line with the files done (not a line per file)', () => {
    const out = new FakeStream(false);
    const err = new FakeStream(false);
    const r = createReporter({ json: false, stdout: out as unknown as NodeJS.WriteStream, stderr: err as unknown as NodeJS.WriteStream, env: {} });
    assert.equal(r.mode, 'plain');
    const p = progress(10, 2, 3);
    r.convertProgress(p);
    r.convertProgress(p); // within 10 s of the first: not logged again
    const overall = Math.round((100 * p.files.reduce((n, f) => n + f.done, 0)) / 15);
    assert.deepEqual(
      err.text.split('\n').filter(Boolean).map((l) => l.replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d /, '')),
      [`converting: ${overall}% (2 of 15 files done), about 20s left`],
    );
    assert.doesNotMatch(err.text, ANSI);
  });
});

describe('the real CLI at a terminal', () => {
  const work = mkdtempSync(join(tmpdir(), 'dvrec-tty-'));
  after(() => rmSync(work, { recursive: true, force: true }));
  const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

  /** Runs `sh -c cmd` with a pseudo-terminal of 100×30 as its terminal (script(1) from util-linux). */
  function atTerminal(cmd: string, env: NodeJS.ProcessEnv): { code: number | null; terminal: string } {
    const r = spawnSync('script', ['-qefc', `stty cols 100 rows 30; ${cmd}`, '/dev/null'], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: r.status, terminal: r.stdout + r.stderr };
  }
  const env = (): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, HOME: process.env.HOME, TERM: 'xterm-256color' });
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

  test('`dvrec demo > files.txt`: spinners and colour on the terminal, a plain list in the file', (t) => {
    if (needs(t, hasScript, 'script(1) (util-linux) is not installed')) return;
    const files = join(work, 'files.txt');
    const r = atTerminal(`${q(process.execPath)} ${q(BIN)} demo --seconds 2 --out ${q(join(work, 'demo'))} > ${q(files)}`, env());
    assert.equal(r.code, 0, r.terminal);
    assert.match(r.terminal, /\u001b\[/, 'the terminal got the live display');
    assert.match(screen(r.terminal).join('\n'), /✔ Connected; recording/);
    const list = readFileSync(files, 'utf8');
    assert.doesNotMatch(list, ANSI, `no escape codes in the file:\n${JSON.stringify(list)}`);
    assert.match(list, /^✔ Recorded 2\.\d s, 4 tracks \(wav\) in /);
    assert.equal(list.split('\n').filter((l) => l.endsWith('.wav') || /\.wav /.test(l)).length, 4);
  });

  test('an error is printed once: the failed activity, then one `dvrec:` line', (t) => {
    if (needs(t, hasScript, 'script(1) (util-linux) is not installed')) return;
    const r = atTerminal(`${q(process.execPath)} ${q(BIN)} record --guild 1180000000000000001 --channel 1180000000000000002 --out ${q(join(work, 'err'))}`, {
      ...env(),
      DISCORD_TOKEN: 'MTE4MDAwMDAwMDAwMDAwMDAwMw.Gabcde.tty-test-token-never-printed-123',
      DVREC_API_URL: 'http://127.0.0.1:1/api',
    });
    assert.equal(r.code, 8, r.terminal);
    const s = screen(r.terminal);
    assert.ok(s.includes('✖ Connecting to Discord'), s.join('\n'));
    assert.equal(r.terminal.split('ECONNREFUSED 127.0.0.1:1').length - 1, 1, `the message once:\n${s.join('\n')}`);
    assert.match(s.filter((l) => l !== '').at(-1)!, /^dvrec: cannot reach Discord/, 'no timestamp at a terminal');
    assert.ok(!r.terminal.includes('tty-test-token-never-printed'), 'no token');
  });
});
