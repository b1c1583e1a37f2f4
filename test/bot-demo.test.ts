/**
 * `dvrec demo --bot`: the bot on the built-in local Discord, commanded by simulated members. Checked from the
 * outside, as a user runs it: exit 0, the conversation printed, and the files: one track per member with that
 * member's own sound where the scenario has them speak, the note in the manifest and labels.txt.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { demoScenario } from '../src/commands/demo.ts';
import type { Manifest } from '../src/sinks/capture-layout.ts';
import { BLOCK, TONE_PEAK, msToSample, readWavLeft, toneAmplitude } from './record-fixtures.ts';
import { cleanupDirs, tempDir } from './fault-fixtures.ts';
import { runCli } from './cli-helpers.ts';

after(cleanupDirs);

test('dvrec demo --bot: a member starts, another adds a note, the first stops; the files hold each member\'s sound', async () => {
  const root = tempDir('dvrec-demobot-');
  const r = await runCli(['demo', '--bot', '--seconds', '4', '--out', join(root, '{datetime}')], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const out = r.stdout + r.stderr;
  assert.match(out, /Alice types \/record start/);
  assert.match(out, /status: "🔴 Recording"/);
  assert.match(out, /chat: 🔴 Recording <#\d+>, started by Alice/);
  assert.match(out, /Bob types \/record note Bob made a good point/);
  assert.match(out, /status: \(cleared\)/);
  assert.match(out, /chat: ⏹️ Recording of <#\d+> stopped \(stopped by command\): 4s, speakers: Alice, Bob, Carol, Dave, 1 note/);
  const [dir] = readdirSync(root);
  const m = JSON.parse(readFileSync(join(root, dir!, 'manifest.json'), 'utf8')) as Manifest;
  assert.equal(m.tracks.length, 4);
  assert.ok(Math.abs(m.durationMs - 4000) <= 300, `${m.durationMs} ms`);
  assert.deepEqual(m.notes?.map((n) => [n.text, n.author]), [['Bob made a good point', 'Bob']]);
  assert.ok(Math.abs(m.notes![0]!.atMs - 2000) <= 150, `note at ${m.notes![0]!.atMs} ms`);
  assert.match(readFileSync(join(root, dir!, 'labels.txt'), 'utf8'), /^\d+\.\d+\t\d+\.\d+\tBob: Bob made a good point\n$/);
  // The scenario's timeline starts with the bot's voice session, i.e. at the recording's t=0 (give or take the
  // few ms until the first transition): each member's tone in the middle of each of its spurts.
  const sc = demoScenario(4, 'x', true);
  for (const member of sc.members) {
    if (member.signal.kind !== 'tone') continue;
    const tr = m.tracks.find((t) => t.userId === member.userId)!;
    const x = readWavLeft(join(root, dir!, tr.file));
    for (const s of member.spurts) {
      const mid = s.atMs + s.durationMs / 2;
      if (mid + 40 > m.durationMs) continue;
      assert.ok(toneAmplitude(x, msToSample(mid), BLOCK, member.signal.hz) > 0.3 * TONE_PEAK, `${member.displayName}: its tone at ${mid} ms`);
    }
  }
});
