/**
 * Helpers for the bot tests: scenarios with several guilds, waiting for what the bot does in the simulated
 * Discord, and checking a recording the bot made against the simulator's ground truth (which member, where, and
 * that every track has the same length).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BotAction, GroundTruth, Simulator } from '../src/simulator/index.ts';
import type { Manifest } from '../src/sinks/capture-layout.ts';
import { BLOCK, TONE_PEAK, msToSample, onsetMs, readWavLeft, toneAmplitude } from './record-fixtures.ts';

export const G1 = '100000000000000001';
export const C1 = '100000000000000002';
export const G2 = '100000000000000021';
export const C2 = '100000000000000022';
export const MOD_ROLE = '100000000000000030';
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves with the first bot action (past or future) that matches. */
export function waitForAction<K extends BotAction['kind']>(
  sim: Simulator,
  kind: K,
  pred: (a: Extract<BotAction, { kind: K }>) => boolean = () => true,
  timeoutMs = 20_000,
): Promise<Extract<BotAction, { kind: K }>> {
  const match = (a: BotAction): a is Extract<BotAction, { kind: K }> => a.kind === kind && pred(a as Extract<BotAction, { kind: K }>);
  const past = sim.botActions().find(match);
  if (past) return Promise.resolve(past);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sim.events.off('bot-action', on);
      reject(new Error(`no ${kind} action within ${timeoutMs} ms; actions: ${JSON.stringify(sim.botActions())}`));
    }, timeoutMs);
    const on = (a: BotAction): void => {
      if (!match(a)) return;
      clearTimeout(timer);
      sim.events.off('bot-action', on);
      resolve(a);
    };
    sim.events.on('bot-action', on);
  });
}

/** The one recording directory (with a manifest) under `root`. */
export function recordingDir(root: string, guildId: string): string {
  const dirs = readdirSync(root).filter((d) => d.startsWith(`${guildId}-`));
  assert.equal(dirs.length, 1, `one recording of ${guildId} in ${root}: ${dirs.join(', ')}`);
  return join(root, dirs[0]!);
}

export function readManifest(dir: string): Manifest {
  return JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
}

/**
 * Checks a finished WAV recording against the truth: one track per expected member, each member's tone in its
 * own track and every spurt's onset within 20 ms of when the member began speaking (spurts that began before
 * `untilMs` on the recording clock), the other members' tones absent from it, and all tracks equally long.
 */
export function checkRecording(dir: string, m: Manifest, truth: GroundTruth, expected: { userId: string; hz: number }[], untilMs = Infinity): void {
  const t0 = Date.parse(m.startedAt);
  assert.deepEqual(m.tracks.map((t) => t.userId).sort(), expected.map((e) => e.userId).sort(), 'one track per member who spoke');
  const lengths = new Set<number>();
  for (const e of expected) {
    const tr = m.tracks.find((t) => t.userId === e.userId)!;
    const x = readWavLeft(join(dir, tr.file));
    lengths.add(x.length);
    const mt = truth.members.find((t) => t.userId === e.userId)!;
    let checked = 0;
    for (const [s, spurt] of mt.spurts.entries()) {
      const onset = spurt.onsetWallMs - t0;
      if (onset + 200 > Math.min(untilMs, m.durationMs)) continue;
      // Threshold 200 (the tone peaks near 9800; silence between spurts is exact zeros): the first Opus frame after
      // a pause decodes quietly (~500) while the decoder's state catches up, and it is still where the sound began.
      const on = onsetMs(x, onset - 100, onset + 200, 200);
      assert.ok(on !== null && Math.abs(on - onset) <= 20, `${e.userId} spurt ${s}: onset ${on} vs truth ${onset.toFixed(1)} ms`);
      const mid = Math.min(onset + 200, (spurt.endWallMs - t0 + onset) / 2);
      const own = toneAmplitude(x, msToSample(mid), BLOCK, e.hz);
      assert.ok(own > 0.3 * TONE_PEAK, `${e.userId}: its own tone at ${mid.toFixed(0)} ms`);
      for (const other of expected) {
        if (other.userId === e.userId) continue;
        const leak = toneAmplitude(x, msToSample(mid), BLOCK, other.hz);
        // Opus coding leaves a little energy near any frequency (measured up to ~6 % of the peak); another member's
        // tone would be at its full level (≥ 30 %).
        assert.ok(leak < 0.1 * TONE_PEAK && leak < own / 4, `${e.userId}: no ${other.hz} Hz in its track at ${mid.toFixed(0)} ms (${leak.toFixed(0)})`);
      }
      checked++;
    }
    assert.ok(checked > 0, `${e.userId}: at least one spurt checked`);
  }
  assert.equal(lengths.size, 1, `equal track lengths: ${[...lengths].join(', ')}`);
  const frames = [...lengths][0]!;
  assert.ok(Math.abs((frames / 48) - m.durationMs) <= 20, `tracks ${frames / 48} ms long, manifest ${m.durationMs} ms`);
}
