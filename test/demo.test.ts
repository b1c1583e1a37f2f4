/**
 * `dvrec demo` as a user on a fresh machine runs it: no token, no network, no TTY. It must leave real,
 * aligned tracks with the demo members' distinct tones, say where they are, and work both in-process
 * (tls.setDefaultCACertificates) and through the child-process fallback (NODE_EXTRA_CA_CERTS), and the
 * way the README starts it: `npx dvrec demo` in the clone, which runs the built package bin (dist/).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Manifest } from '../src/sinks/capture-layout.ts';
import { ANSI, ROOT, baseEnv, collect, runCli } from './cli-helpers.ts';

const work = mkdtempSync(join(tmpdir(), 'dvrec-demo-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Dominant frequency of a mono-ised window, by scanning candidate tones with the Goertzel algorithm. */
function loudestOf(samples: Float64Array, candidates: number[]): number {
  let best = candidates[0]!;
  let bestPower = -1;
  for (const hz of candidates) {
    const k = 2 * Math.cos((2 * Math.PI * hz) / 48_000);
    let s1 = 0;
    let s2 = 0;
    for (const x of samples) {
      const s0 = x + k * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
    const power = s1 * s1 + s2 * s2 - k * s1 * s2;
    if (power > bestPower) [best, bestPower] = [hz, power];
  }
  return best;
}

/** The loudest 100 ms window of a 16-bit stereo WAV, as mono samples, and its RMS. */
function loudestWindow(wav: Buffer): { samples: Float64Array; rms: number } {
  const frames = (wav.length - 44) / 4;
  const win = 4800;
  let best = { samples: new Float64Array(0), rms: 0 };
  for (let start = 0; start + win <= frames; start += win) {
    const s = new Float64Array(win);
    let sum = 0;
    for (let i = 0; i < win; i++) {
      const o = 44 + 4 * (start + i);
      s[i] = (wav.readInt16LE(o) + wav.readInt16LE(o + 2)) / 2;
      sum += s[i]! * s[i]!;
    }
    const rms = Math.sqrt(sum / win);
    if (rms > best.rms) best = { samples: s, rms };
  }
  return best;
}

function checkDemo(dir: string, seconds: number): Manifest {
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  assert.equal(m.tracks.length, 4, 'four demo members');
  assert.ok(Math.abs(m.durationMs - seconds * 1000) < 500, `length ${m.durationMs}`);
  const expected: Record<string, number> = { Alice: 220, Bob: 330, Carol: 440 };
  const lengths = new Set<number>();
  for (const t of m.tracks) {
    const wav = readFileSync(join(dir, t.file));
    assert.equal(wav.toString('ascii', 0, 4), 'RIFF');
    lengths.add(wav.length);
    const { samples, rms } = loudestWindow(wav);
    assert.ok(rms > 500, `${t.displayName} is audible (rms ${rms.toFixed(0)})`);
    const hz = expected[t.displayName];
    if (hz !== undefined) assert.equal(loudestOf(samples, [220, 330, 440]), hz, `${t.displayName}'s track holds ${hz} Hz`);
  }
  assert.equal(lengths.size, 1, 'all tracks are equally long');
  return m;
}

describe('dvrec demo', { concurrency: 2 }, () => {
  test('in-process, without a TTY: plain lines, real aligned files, where they are', async () => {
    // The output directory is given as `--dir=plain` on purpose: node-pre-gyp (loading @discordjs/opus in
    // this process, for the simulator) parses process.argv and would look for the codec under `plain/`.
    const out = join(work, '--dir=plain');
    const r = await runCli(['demo', '--seconds', '3', '--out', '--dir=plain'], { env: baseEnv(), cwd: work, timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, ANSI);
    assert.match(r.stdout, new RegExp(`Recorded 3\\.\\d s, 4 tracks \\(wav\\) in ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    for (const line of r.stderr.trim().split('\n')) assert.match(line, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d /, `timestamped: ${line}`);
    checkDemo(out, 3);
  });

  test('through the child-process fallback (NODE_EXTRA_CA_CERTS), with --json', async () => {
    const out = join(work, 'child');
    const r = await runCli(['demo', '--seconds', '3', '--out', out, '--json'], { env: baseEnv({ DVREC_DEMO_SUBPROCESS: '1' }), timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; manifest?: Manifest });
    const done = events.find((e) => e.event === 'done');
    assert.ok(done?.manifest, 'a done event with the manifest');
    assert.equal(done.manifest.tracks.length, 4);
    checkDemo(out, 3);
  });
});

describe('dvrec demo into a directory that holds a recording', { concurrency: 2 }, () => {
  // demo has no --force: the refusal must not tell the user to pass one (in process, and through the child fallback
  // where `dvrec record` itself would otherwise answer).
  for (const [held, subprocess] of [['manifest.json', false], ['capture.json', true]] as const) {
    test(`${held}${subprocess ? ' (child-process fallback)' : ''}: exit 9, without advice to pass --force`, async () => {
      const out = join(work, `held-${held}`);
      mkdirSync(out);
      writeFileSync(join(out, held), '{}');
      const r = await runCli(['demo', '--seconds', '2', '--out', out], { env: baseEnv(subprocess ? { DVREC_DEMO_SUBPROCESS: '1' } : {}), timeoutMs: 60_000 });
      assert.equal(r.code, 9, r.stderr);
      const line = r.stderr.trim().split('\n').at(-1)!;
      assert.match(line, held === 'capture.json' ? /already holds an unfinished recording \(capture\.json\): finish it with dvrec convert .* or choose another --out$/ : /already holds a recording \(manifest\.json\): choose another --out$/);
      assert.doesNotMatch(r.stderr, /--force/);
      assert.deepEqual(readdirSync(out), [held], 'nothing else was written');
    });
  }
});

/** The newest modification time of the .ts files under `dir`. */
function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.ts')) newest = Math.max(newest, statSync(join(e.parentPath, e.name)).mtimeMs);
  }
  return newest;
}

describe('the README\'s first command', () => {
  test('`npx --no-install dvrec demo` from the repository root runs the package bin and leaves the files', async () => {
    // `npm test` builds dist/ before running the tests; `npx dvrec` runs package.json's bin, dist/bin/dvrec.js.
    const dist = join(ROOT, 'dist', 'bin', 'dvrec.js');
    assert.ok(existsSync(dist), `${dist} is missing: build first (npm test does: tsc -p tsconfig.json)`);
    const stale = Math.max(newestSource(join(ROOT, 'src')), newestSource(join(ROOT, 'bin'))) > statSync(dist).mtimeMs;
    assert.ok(!stale, 'dist/ is older than the sources: build first (npm test does: tsc -p tsconfig.json)');
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    assert.equal(pkg.bin.dvrec, 'dist/bin/dvrec.js');

    const out = join(work, 'npx');
    // A fresh clone's shell: no npm_* variables from an enclosing `npm test`, no update check over the network.
    const child = spawn('npx', ['--no-install', 'dvrec', 'demo', '--seconds', '2', '--out', out], {
      cwd: ROOT,
      env: baseEnv({ npm_config_update_notifier: 'false' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const r = await collect(child, 90_000);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Recorded 2\\.\\d s, 4 tracks \\(wav\\) in ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    assert.doesNotMatch(r.stdout + r.stderr, ANSI);
    const m = checkDemo(out, 2);
    assert.deepEqual(readdirSync(out).sort(), [...m.tracks.map((t) => t.file), 'manifest.json'].sort(), 'finished tracks and the manifest, nothing else');
  });
});
