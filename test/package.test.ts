/**
 * dvrec as a package: what `npm install dvrec` gives a bot author. The repository is packed (`npm pack`, the same
 * tarball npm would publish), unpacked where the example bot (examples/record-bot) resolves `dvrec`, type-checked
 * with `moduleResolution: nodenext` and no skipLibCheck (the shipped .d.ts must hold up), and then the example
 * runs as its own process against the local Discord: its manifest must hold each member in their own track with
 * their talk spurts where the simulator played them.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startSimulator } from '../src/simulator/index.ts';
import { opusLoop } from '../src/simulator/opus-cache.ts';
import type { Manifest } from '../src/sinks/capture-layout.ts';
import { CHANNEL, GUILD, TOKEN, scenario } from './record-fixtures.ts';
import { member } from './fault-fixtures.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const EXAMPLE = join(ROOT, 'examples', 'record-bot');
const INSTALLED = join(EXAMPLE, 'node_modules', 'dvrec');
const work = mkdtempSync(join(tmpdir(), 'dvrec-package-'));
after(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(join(EXAMPLE, 'node_modules'), { recursive: true, force: true });
});

test('the packed package type-checks in a consumer project (nodenext) and records the local Discord', async (t) => {
  // 1. Pack what npm would publish (dist/ was built by `npm test`'s tsc, declarations included).
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT });
  const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
  const paths = packed!.files.map((f) => f.path);
  assert.ok(paths.includes('dist/src/index.js') && paths.includes('dist/src/index.d.ts'), 'entry and types are packed');
  assert.ok(!paths.some((p) => p.startsWith('dist/test/') || p.startsWith('dist/bench/')), 'no tests or benchmarks in the package');
  // 2. Unpack it where the example resolves `dvrec` (its other dependencies resolve from the repository's node_modules).
  rmSync(INSTALLED, { recursive: true, force: true });
  mkdirSync(INSTALLED, { recursive: true });
  await run('tar', ['-xzf', join(work, packed!.filename), '-C', INSTALLED, '--strip-components=1']);
  const pkg = JSON.parse(readFileSync(join(INSTALLED, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
  assert.ok(pkg.exports['.'], 'package.json exports');
  // 3. Type-check the example against the packed .d.ts.
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const typecheck = await run(process.execPath, [tsc, '-p', join(EXAMPLE, 'tsconfig.json')], { cwd: EXAMPLE }).then(
    () => '',
    (e: { stdout?: string }) => e.stdout ?? String(e),
  );
  assert.equal(typecheck, '', 'the example type-checks against the package');

  // 4. Run the example bot as its own process against the simulator.
  const members = [member(1, 400, [[300, 900]]), member(2, 1000, [[1500, 800]])];
  for (const m of members) opusLoop(m.signal);
  const sim = await startSimulator(scenario(members));
  const outDir = join(work, 'out');
  try {
    const child = spawn(process.execPath, ['bot.ts'], {
      cwd: EXAMPLE,
      env: {
        ...process.env, DISCORD_TOKEN: TOKEN, GUILD_ID: GUILD, CHANNEL_ID: CHANNEL, DISCORD_API_URL: sim.apiUrl,
        NODE_EXTRA_CA_CERTS: sim.caCertPath, DVREC_SECONDS: '3', OUT_DIR: outDir,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    t.diagnostic(out.trim());
    assert.equal(code, 0, `example exit ${code}: ${err}${out}`);
    assert.ok(existsSync(join(outDir, 'manifest.json')), out);
    const manifest = JSON.parse(readFileSync(join(outDir, 'manifest.json'), 'utf8')) as Manifest;
    const truth = sim.truth();
    const t0 = Date.parse(manifest.startedAt);
    assert.equal(manifest.tracks.length, 2);
    for (const m of members) {
      const track = manifest.tracks.find((x) => x.userId === m.userId);
      assert.ok(track, `a track for ${m.userId}`);
      const spurt = truth.members.find((x) => x.userId === m.userId)!.spurts[0]!;
      const [u] = track.utterances ?? [];
      assert.ok(u, `${m.userId}: an utterance in the manifest`);
      assert.ok(Math.abs(u.startMs - (spurt.onsetWallMs - t0)) <= 20, `${m.userId}: utterance start ${u.startMs} vs truth ${(spurt.onsetWallMs - t0).toFixed(1)}`);
      assert.ok(Math.abs(u.endMs - (spurt.endWallMs - t0)) <= 20, `${m.userId}: utterance end ${u.endMs} vs truth ${(spurt.endWallMs - t0).toFixed(1)}`);
      assert.match(out, new RegExp(`utterance start ${m.userId} `), 'the example saw the utterance live');
      assert.match(out, new RegExp(`track ${track.file} .* [1-9]\\d* ms heard by the sink`), 'the example sink received audio');
    }
  } finally {
    await sim.close();
  }
});
