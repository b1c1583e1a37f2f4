/**
 * Faults during a real recording (simulator ↔ discord.js ↔ @discordjs/voice ↔ dvrec): voice close 4015 and
 * resume, a voice server move, a main-gateway reconnect, DAVE epoch changes, the bot disconnected (4014), a
 * pool worker killed, and a full disk. For each: the recording goes on (or ends cleanly, with the right stop
 * reason / exit code), the tracks keep one timeline — an outage is silence of the length the simulator did not
 * deliver, and a tone that spans the fault ends exactly where the ground truth says — and nothing captured
 * before the fault is lost.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Fault } from '../src/simulator/scenario.ts';
import { MAX_RESTARTS, RESTART_WINDOW_MS } from '../src/pool/pool.ts';
import type { PoolTracks as WorkerPool } from '../src/pool/recording-tracks.ts';
import { DvrecError } from '../src/errors.ts';
import { ExitCode, exitCodeOf } from '../src/commands/exit-codes.ts';
import { CAPTURE_DIR, MANIFEST_FILE } from '../src/sinks/capture-layout.ts';
import { BLOCK, msToSample, onsetMs, readWavLeft, scenario } from './record-fixtures.ts';
import { checkSpanning, cleanupDirs, longestSilence, member, offsetMs, recordInChild, recordScenario, silentMs, tempDir } from './fault-fixtures.ts';
import { decodeInterleaved } from './decoders.ts';
import { needs } from './strict.ts';
import { smallFilesystem } from './private-mount.ts';

after(cleanupDirs);

const HZ = [400, 650, 1000];
const spanning = (faults: Fault[], dave = true) =>
  scenario([member(1, HZ[0]!, [[200, 2000]]), member(2, HZ[1]!, [[1800, 400]])], { dave, faults });

for (const [label, fault, outcome] of [
  ['4015 close + resume', { atMs: 1000, kind: 'voice-close', code: 4015 }, 'resumed'],
  ['voice server move', { atMs: 1000, kind: 'voice-server-move' }, 'moved'],
  ['main gateway reconnect', { atMs: 1000, kind: 'gateway-reconnect' }, undefined],
] as const) {
  test(`${label} (DAVE): recording continues on one timeline, outage is silence of the right length`, async (t) => {
    const run = await recordScenario(spanning([fault as Fault]), { durationMs: 3000 });
    const f = run.truth.faults.find((x) => x.kind === fault.kind);
    assert.ok(f, 'the fault happened');
    if (outcome) assert.equal(f.outcome, outcome, `fault outcome: ${JSON.stringify(run.truth.faults)}`);
    assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'duration'), `stopped by --duration: ${JSON.stringify(run.phases.filter((p) => p.phase === 'stopping'))}`);
    assert.ok(Math.abs(run.manifest!.durationMs - 3000) <= 30, `duration ${run.manifest!.durationMs}`);
    const r = checkSpanning(run, label, HZ[1]!);
    t.diagnostic(`${label}: silence in spanning spurt ${r.silentMs} ms, expected ${r.expectedMs} ms (undelivered + ${r.undecryptable} undecryptable), error ${r.errorMs} ms; warnings: ${run.warnings.join(' | ')}`);
    if (fault.kind === 'voice-server-move') {
      assert.ok(r.expectedMs >= 60, `the move was an outage (${r.expectedMs} ms)`);
      assert.ok(run.phases.some((p) => p.phase === 'reconnecting'), 'reported reconnecting');
    }
  });
}

test('DAVE epoch changes (a member joins and leaves mid-call): the continuous speaker has no dropouts', async (t) => {
  const members = [
    member(1, HZ[0]!, [[200, 2400]]),
    member(2, HZ[1]!, [[1100, 400]], { joinAtMs: 700, leaveAtMs: 1800 }),
    member(3, HZ[2]!, [[2000, 300]]),
  ];
  // The transitions the recorder executed (op 22, or a welcome/commit with id 0), on the recording clock.
  const transitions: { id: number; atMs: number }[] = [];
  const run = await recordScenario(scenario(members), {
    durationMs: 3000,
    hooks: {
      onSession: (session) => session.connection.on('transitioned', (id) => transitions.push({ id, atMs: session.now() })),
    },
  });
  // The epoch changes really happened: the join (700 ms) and the leave (1800 ms) each made the recorder execute a
  // new transition (the first one, right after t=0, is the recorder's own entry into the group).
  t.diagnostic(`transitions executed by the recorder (id@ms): ${transitions.map((x) => `${x.id}@${x.atMs.toFixed(0)}`).join(' ')}`);
  const join = transitions.filter((x) => x.id !== 0 && x.atMs >= 700 && x.atMs < 1800);
  const leave = transitions.filter((x) => x.id !== 0 && x.atMs >= 1800);
  assert.ok(join.length >= 1, `a transition for the join: ${JSON.stringify(transitions)}`);
  assert.ok(leave.length >= 1, `a transition for the leave: ${JSON.stringify(transitions)}`);
  const m = run.manifest!;
  assert.ok(m, String(run.error));
  assert.equal(m.tracks.length, 3);
  const x1 = run.pcm.get(members[0]!.userId)!;
  const s = run.truth.members[0]!.spurts[0]!;
  const start = s.onsetWallMs - run.startedAtMs;
  const end = s.endWallMs - run.startedAtMs;
  const silent = silentMs(x1, start + 30, end - 30);
  const undecryptable = m.tracks.map((x) => x.packets.undecryptable);
  t.diagnostic(`silence inside the continuous spurt across two epoch changes: ${silent} ms; undecryptable per track ${undecryptable}`);
  assert.ok(silent <= 20, `${silent} ms of silence across the epoch changes`);
  const off = offsetMs(x1, end - 300, end + 300);
  assert.ok(off !== null && Math.abs(off - end) <= 20, `offset ${off} vs ${end}`);
  for (const [i, mem] of members.entries()) {
    if (i === 0) continue;
    const sp = run.truth.members[i]!.spurts[0]!;
    const on = onsetMs(run.pcm.get(mem.userId)!, sp.onsetWallMs - run.startedAtMs - 100, sp.onsetWallMs - run.startedAtMs + 200);
    assert.ok(on !== null && Math.abs(on - (sp.onsetWallMs - run.startedAtMs)) <= 20, `member ${i + 1} onset`);
  }
});

test('4014 under DAVE ends cleanly at the kick, with everything captured before it', async () => {
  const members = [member(1, HZ[0]!, [[200, 5000]])];
  const run = await recordScenario(scenario(members, { faults: [{ atMs: 1500, kind: 'disconnect-bot' }] }), { durationMs: 20_000 });
  assert.ok(run.manifest, String(run.error));
  assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'disconnected'));
  assert.ok(run.warnings.some((w) => /disconnected/.test(w)), run.warnings.join(' | '));
  const kick = run.truth.faults.find((f) => f.kind === 'disconnect-bot')!.wallMs - run.startedAtMs;
  // ≥ kick − 2: the manifest's startedAt (ISO, whole ms) and durationMs (whole ms) are each quantised to 1 ms.
  assert.ok(run.manifest.durationMs >= kick - 2 && run.manifest.durationMs < kick + 1000, `ended at ${run.manifest.durationMs} (kick at ${kick.toFixed(1)})`);
  const x = run.pcm.get(members[0]!.userId)!;
  const start = run.truth.members[0]!.spurts[0]!.onsetWallMs - run.startedAtMs;
  // All audio from the onset up to (nearly) the kick is there: nothing captured was lost.
  const gap = silentMs(x, start + 30, kick - 60);
  assert.ok(gap <= 20, `${gap} ms missing before the kick`);
});

test('the bot dragged to another channel: the recording ends cleanly (it does not follow), audio before kept', async () => {
  const members = [member(1, HZ[0]!, [[200, 5000]])];
  const other = { id: '1180000000000009999', type: 2, name: 'Elsewhere' };
  const run = await recordScenario(
    scenario(members, { extraChannels: [other], faults: [{ atMs: 1500, kind: 'move-bot', channelId: other.id }] }),
    { durationMs: 20_000 },
  );
  assert.ok(run.manifest, String(run.error));
  assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'disconnected'));
  assert.ok(run.warnings.some((w) => /moved to another channel/.test(w)), run.warnings.join(' | '));
  const move = run.truth.faults.find((f) => f.kind === 'move-bot')!.wallMs - run.startedAtMs;
  // ≥ move − 2: startedAt and durationMs are whole milliseconds (see the 4014 test).
  assert.ok(run.manifest.durationMs >= move - 2 && run.manifest.durationMs < move + 1000, `ended at ${run.manifest.durationMs} (moved at ${move.toFixed(1)})`);
  const x = run.pcm.get(members[0]!.userId)!;
  const start = run.truth.members[0]!.spurts[0]!.onsetWallMs - run.startedAtMs;
  const gap = silentMs(x, start + 30, move - 60);
  assert.ok(gap <= 20, `${gap} ms missing before the move`);
});

test('the voice connection not back in time (Discord unreachable): the recording stops, exit 8, files finished', async (t) => {
  // Production waits 60 s (src/receiver/voice-session.ts); the test injects 2 s into the same code path.
  const RECONNECT_MS = 2000;
  const members = [member(1, HZ[0]!, [[200, 8000]]), member(2, HZ[1]!, [[300, 8000]])];
  // In a child process: after this outage @discordjs/ws retries the gateway forever (see test/fault-child.ts).
  const run = await recordInChild({
    scenario: scenario(members),
    options: { durationMs: 30_000, outDir: join(tempDir('dvrec-faults-'), 'out') },
    reconnectTimeoutMs: RECONNECT_MS,
    discordDownAfterMs: 1500,
  });
  assert.ok(run.error, 'the recording reported an error');
  assert.equal(run.error.exitCode, ExitCode.NETWORK, run.error.message);
  assert.match(run.error.message, new RegExp(`^voice connection lost \\(could not reconnect within ${RECONNECT_MS / 1000} s\\): recording stopped at \\d+\\.\\d s; everything captured until then is kept$`));
  assert.ok(run.phases.some((p) => p.phase === 'reconnecting'), 'reported reconnecting');
  assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'error'), JSON.stringify(run.phases));
  assert.ok(run.phases.some((p) => p.phase === 'done'), 'the files were finished');
  assert.ok(!existsSync(join(run.dir, CAPTURE_DIR)), 'captures finished in place');
  const manifest = JSON.parse(readFileSync(join(run.dir, MANIFEST_FILE), 'utf8')) as { durationMs: number; tracks: { userId: string; file: string }[] };
  const down = run.downAtMs! - run.startedAtMs;
  // It gave up RECONNECT_MS after the connection was found lost (which follows the outage within milliseconds).
  assert.ok(manifest.durationMs >= down + RECONNECT_MS && manifest.durationMs <= down + RECONNECT_MS + 1000, `stopped at ${manifest.durationMs} ms (outage at ${down.toFixed(0)} ms)`);
  assert.equal(manifest.tracks.length, 2);
  for (const [i, m] of members.entries()) {
    const tr = manifest.tracks.find((x) => x.userId === m.userId)!;
    const x = readWavLeft(join(run.dir, tr.file));
    assert.ok(Math.abs(x.length - msToSample(manifest.durationMs)) <= BLOCK, `${tr.file}: cut to the recording's length`);
    const start = run.truth.members[i]!.spurts[0]!.onsetWallMs - run.startedAtMs;
    // Everything before the outage is there; after it, silence to the end.
    assert.equal(silentMs(x, start + 30, down - 30), 0, `${tr.file}: audio before the outage intact`);
    const last = offsetMs(x, 0, manifest.durationMs)!;
    assert.ok(Math.abs(last - down) <= 40, `${tr.file}: audio until ${last.toFixed(0)} ms, outage at ${down.toFixed(0)} ms`);
  }
  t.diagnostic(`outage at ${down.toFixed(0)} ms, stopped at ${manifest.durationMs} ms; ${run.error.message}; warnings: ${run.warnings.join(' | ')}`);
});

/**
 * What a dead worker may lose: the audio it held and had not written yet. The writer flushes pending audio once
 * it is flushMs (250) old, the jitter buffer holds playoutDelayMs (60), and one batch (10 ms) is in flight.
 */
const WORKER_LOSS_BOUND_MS = 250 + 60 + 10 + 10;

for (const [how, fault] of [
  ['killed (terminate)', (p: WorkerPool, userId: string) => void p.workerOf(userId)!.terminate()],
  ['that throws (uncaught error inside the worker)', (p: WorkerPool, userId: string) => void p.injectWorkerCrash(userId, 'injected: decoder bug')],
] as const) {
  test(`a pool worker ${how} mid-recording is replaced; its speaker goes on in the same track`, async (t) => {
    const members = [member(1, HZ[0]!, [[200, 2600]]), member(2, HZ[1]!, [[300, 2400]])];
    let pool: WorkerPool | undefined;
    let killedAt = NaN;
    const restarts: { index: number; error?: string; userIds: string[] }[] = [];
    const run = await recordScenario(scenario(members, { dave: false }), {
      durationMs: 3200,
      hooks: {
        workerFaults: true,
        onPool: (p) => {
          pool = p;
          p.on('workerRestarted', (i) => restarts.push(i));
          setTimeout(() => {
            assert.ok(p.workerOf(members[0]!.userId), 'member 1 is pinned to a worker');
            killedAt = performance.timeOrigin + performance.now();
            fault(p, members[0]!.userId);
          }, 1500);
        },
      },
    });
    assert.ok(pool && run.manifest, String(run.error));
    assert.equal(restarts.length, 1, `one restart: ${JSON.stringify(restarts)}`);
    assert.ok(restarts[0]!.userIds.includes(members[0]!.userId), 'the restarted worker held member 1');
    if (how.startsWith('that throws')) assert.match(restarts[0]!.error ?? '', /injected: decoder bug/, 'the worker\'s own error is reported');
    assert.ok(run.warnings.some((w) => /worker \d+ restarted/.test(w)), run.warnings.join(' | '));
    assert.equal(run.manifest.tracks.length, 2, 'same tracks, no new file');
    const x1 = run.pcm.get(members[0]!.userId)!;
    const s = run.truth.members[0]!.spurts[0]!;
    const start = s.onsetWallMs - run.startedAtMs;
    const end = s.endWallMs - run.startedAtMs;
    const gap = longestSilence(x1, start + 30, end - 30);
    const kill = killedAt - run.startedAtMs;
    t.diagnostic(`worker ${how} at ${kill.toFixed(0)} ms: longest silence in the speaker's track ${gap.lengthMs} ms at ${gap.startMs} ms`);
    // At most what was in flight (not yet on disk) is lost, and only there.
    assert.ok(gap.lengthMs <= WORKER_LOSS_BOUND_MS, `${gap.lengthMs} ms lost at ${gap.startMs} ms`);
    assert.ok(Math.abs(gap.startMs + gap.lengthMs / 2 - kill) <= 400, `the loss is at the fault (${kill.toFixed(0)} ms)`);
    assert.ok(silentMs(x1, start + 30, end - 30) <= gap.lengthMs + 20, 'no other dropout in the track');
    const off = offsetMs(x1, end - 300, end + 300);
    assert.ok(off !== null && Math.abs(off - end) <= 20, `after the restart the timeline is unchanged: offset ${off} vs ${end}`);
    // The other speaker's worker was not touched: their track has no dropout at all.
    const x2 = run.pcm.get(members[1]!.userId)!;
    const s2 = run.truth.members[1]!.spurts[0]!;
    if (!restarts[0]!.userIds.includes(members[1]!.userId)) {
      assert.equal(silentMs(x2, s2.onsetWallMs - run.startedAtMs + 30, s2.endWallMs - run.startedAtMs - 30), 0, 'member 2 intact');
    }
  });
}

test(`a pool worker that keeps dying (${MAX_RESTARTS + 1} times within ${RESTART_WINDOW_MS / 1000} s) is given up: clean stop, exit 1, audio kept`, async (t) => {
  const members = [member(1, HZ[0]!, [[200, 8000]]), member(2, HZ[1]!, [[300, 8000]])];
  let pool: WorkerPool | undefined;
  let firstAt = NaN;
  let crashes = 0;
  const restarts: string[] = [];
  let failed: { index: number; deaths: number; userIds: string[] } | undefined;
  const run = await recordScenario(scenario(members, { dave: false }), {
    durationMs: 20_000,
    hooks: {
      workerFaults: true,
      onPool: (p) => {
        pool = p;
        const crash = (): void => {
          crashes++;
          p.injectWorkerCrash(members[0]!.userId, `injected fault ${crashes}`);
        };
        // Every replacement of member 1's worker is crashed again 100 ms after it starts.
        p.on('workerRestarted', (i) => {
          restarts.push(i.error ?? '');
          if (i.userIds.includes(members[0]!.userId)) setTimeout(crash, 100);
        });
        p.on('workerFailed', (i) => (failed = i));
        setTimeout(() => {
          firstAt = performance.timeOrigin + performance.now();
          crash();
        }, 1500);
      },
    },
  });
  assert.ok(pool, 'recording started');
  assert.equal(restarts.length, MAX_RESTARTS, `replaced ${MAX_RESTARTS} times: ${restarts.join(' | ')}`);
  assert.ok(failed, 'then given up');
  assert.equal(failed.deaths, MAX_RESTARTS + 1);
  assert.equal(crashes, MAX_RESTARTS + 1);
  assert.ok(failed.userIds.includes(members[0]!.userId));
  if (pool.pool.size > 1) assert.ok(!failed.userIds.includes(members[1]!.userId), 'member 2 is on another worker');
  // The engine stops cleanly with an internal-error exit code and says why, once.
  assert.ok(run.error instanceof DvrecError, `a DvrecError: ${String(run.error)}`);
  assert.equal(exitCodeOf(run.error), ExitCode.INTERNAL);
  assert.match(run.error.message, new RegExp(`^decoder worker \\d+ kept failing \\(${MAX_RESTARTS + 1} times within ${RESTART_WINDOW_MS / 1000} s: injected fault ${MAX_RESTARTS + 1}\\): recording stopped at \\d+\\.\\d s; everything captured until then is kept$`));
  assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'error'), JSON.stringify(run.phases));
  assert.ok(run.phases.some((p) => p.phase === 'done'), 'the files were finished');
  // Finished: manifest, both tracks cut to the recording's length, no capture left behind.
  assert.ok(!existsSync(join(run.dir, CAPTURE_DIR)), 'captures finished in place');
  const manifest = JSON.parse(readFileSync(join(run.dir, MANIFEST_FILE), 'utf8')) as { durationMs: number; tracks: { userId: string; file: string }[] };
  const first = firstAt - run.startedAtMs;
  assert.ok(manifest.durationMs > first && manifest.durationMs < first + 5000, `stopped at ${manifest.durationMs} ms (first death at ${first.toFixed(0)} ms)`);
  assert.equal(manifest.tracks.length, 2);
  const figures: string[] = [];
  for (const [i, m] of members.entries()) {
    const tr = manifest.tracks.find((x) => x.userId === m.userId)!;
    const x = readWavLeft(join(run.dir, tr.file));
    assert.ok(Math.abs(x.length - msToSample(manifest.durationMs)) <= BLOCK, `${tr.file}: cut to the recording's length`);
    const start = run.truth.members[i]!.spurts[0]!.onsetWallMs - run.startedAtMs;
    // Everything up to the first death (minus what was in flight then) is intact; for a speaker on a healthy
    // worker, everything up to the stop.
    const until = failed.userIds.includes(m.userId) ? first - WORKER_LOSS_BOUND_MS : manifest.durationMs - 100;
    const gap = silentMs(x, start + 30, until);
    figures.push(`${tr.file}: ${gap} ms missing between ${start.toFixed(0)} and ${until.toFixed(0)} ms, audio until ${offsetMs(x, 0, manifest.durationMs)?.toFixed(0)} ms`);
    assert.equal(gap, 0, figures.at(-1));
  }
  t.diagnostic(`first death at ${first.toFixed(0)} ms, given up and stopped at ${manifest.durationMs} ms; ${figures.join('; ')}; ${run.error.message}`);
});

/**
 * How much audio before the stop a full disk may cost: the packets that arrive between the failed write and the
 * engine's stop (the failed track takes no more audio), i.e. the last 20 ms frame plus the time the worker's
 * error takes to reach the engine (milliseconds; under load, up to ~100 ms).
 */
const DISK_FULL_LOSS_BOUND_MS = 20 + 180;

test('disk full stops the recording cleanly: OUTPUT error, everything written so far intact and finished', async (t) => {
  const mnt = join(tempDir('dvrec-full-'), 'mnt');
  mkdirSync(mnt);
  const fs = await smallFilesystem(mnt, 1024);
  if (needs(t, fs !== null, 'cannot mount a 1 MiB tmpfs: needs CAP_SYS_ADMIN (root) or unprivileged user namespaces (unshare -rm)')) return;
  try {
    const members = [member(1, HZ[0]!, [[200, 8000]]), member(2, HZ[1]!, [[300, 8000]])];
    const outDir = join(fs!.path, 'rec');
    const run = await recordScenario(scenario(members, { dave: false }), { durationMs: 9000, outDir });
    assert.ok(run.error instanceof DvrecError, `a DvrecError: ${String(run.error)}`);
    assert.equal(exitCodeOf(run.error), ExitCode.OUTPUT);
    assert.match(run.error.message, /disk full \((ENOSPC|EDQUOT)\).*stopped at \d+\.\d s/);
    assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'error'));
    // Finished anyway (the reserve made room for the journal, headers and manifest).
    assert.ok(existsSync(join(outDir, MANIFEST_FILE)), `manifest written: ${readdirSync(outDir)}`);
    assert.ok(!existsSync(join(outDir, CAPTURE_DIR)), 'captures finished in place');
    const manifest = JSON.parse(readFileSync(join(outDir, MANIFEST_FILE), 'utf8')) as { durationMs: number; tracks: { userId: string; file: string }[] };
    assert.ok(manifest.durationMs > 500 && manifest.durationMs < 5000, `stopped early: ${manifest.durationMs}`);
    let minCovered = Infinity;
    for (const [i, tr] of manifest.tracks.entries()) {
      const x = readWavLeft(join(outDir, tr.file));
      assert.ok(Math.abs(x.length - msToSample(manifest.durationMs)) <= BLOCK, 'track cut to the recording length');
      const start = run.truth.members[i]!.spurts[0]!.onsetWallMs - run.startedAtMs;
      // Intact audio from the onset to the last write that succeeded; silence (never garbage) after it.
      const lastSound = offsetMs(x, 0, manifest.durationMs)!;
      const gap = silentMs(x, start + 30, lastSound - 30);
      assert.equal(gap, 0, `track ${tr.file}: ${gap} ms missing inside what was written`);
      minCovered = Math.min(minCovered, lastSound);
      assert.ok(manifest.durationMs - lastSound <= DISK_FULL_LOSS_BOUND_MS, `${tr.file}: audio until ${lastSound.toFixed(0)} of ${manifest.durationMs} ms`);
    }
    t.diagnostic(`${fs!.how}: disk full after ${manifest.durationMs} ms; every track holds audio until ≥ ${minCovered.toFixed(0)} ms (${(manifest.durationMs - minCovered).toFixed(0)} ms before the stop); ${run.error.message}`);
  } finally {
    fs!.release();
  }
});

// ---- The remaining end-to-end checks of the record issue: stop conditions, MP3 from record, cross-track onsets ----

test('three members starting together: onsets line up within 20 ms across tracks and with the truth', async (t) => {
  const members = [member(1, HZ[0]!, [[600, 500], [1600, 400]]), member(2, HZ[1]!, [[600, 500], [1600, 400]]), member(3, HZ[2]!, [[600, 500], [1600, 400]])];
  const run = await recordScenario(scenario(members), { durationMs: 2400 });
  assert.ok(run.manifest, String(run.error));
  const figures: string[] = [];
  for (let k = 0; k < 2; k++) {
    const onsets = members.map((m, i) => {
      const truth = run.truth.members[i]!.spurts[k]!.onsetWallMs - run.startedAtMs;
      const on = onsetMs(run.pcm.get(m.userId)!, truth - 100, truth + 200);
      assert.ok(on !== null && Math.abs(on - truth) <= 20, `member ${i + 1} spurt ${k}: ${on} vs ${truth}`);
      return on!;
    });
    const spread = Math.max(...onsets) - Math.min(...onsets);
    figures.push(`spurt ${k}: spread ${spread.toFixed(1)} ms`);
    assert.ok(spread <= 20, `onsets across tracks differ by ${spread.toFixed(1)} ms`);
  }
  t.diagnostic(figures.join('; '));
});

test('--stop-when-empty: everyone leaves → the recording ends cleanly after the grace', async () => {
  const members = [member(1, HZ[0]!, [[200, 400]], { leaveAtMs: 800 }), member(2, HZ[1]!, [[300, 300]], { leaveAtMs: 900 })];
  const run = await recordScenario(scenario(members, { dave: false }), { durationMs: 20_000, stopWhenEmptyMs: 1000 });
  assert.ok(run.manifest, String(run.error));
  assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'empty-channel'), JSON.stringify(run.phases));
  assert.ok(run.manifest.durationMs >= 1800 && run.manifest.durationMs <= 4500, `ended at ${run.manifest.durationMs}`);
  assert.equal(run.manifest.tracks.length, 2);
});

test('--max-size: the recording stops once the captures hold that much', async () => {
  const members = [member(1, HZ[0]!, [[100, 8000]])];
  const run = await recordScenario(scenario(members, { dave: false }), { durationMs: 20_000, maxSizeBytes: 300_000 });
  assert.ok(run.manifest, String(run.error));
  assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'max-size'), JSON.stringify(run.phases));
  // 300 kB of stereo 48 kHz s16 is ~1.6 s; the check runs once a second.
  assert.ok(run.manifest.durationMs >= 1500 && run.manifest.durationMs <= 3500, `ended at ${run.manifest.durationMs}`);
});

test('--format mp3 from record: MP3 tracks at the right place', async () => {
  const members = [member(1, HZ[0]!, [[300, 600]]), member(2, HZ[1]!, [[900, 500]])];
  const run = await recordScenario(scenario(members), { durationMs: 2000, format: 'mp3' });
  assert.ok(run.manifest, String(run.error));
  assert.equal(run.manifest.format, 'mp3');
  for (const tr of run.manifest.tracks) assert.ok(tr.file.endsWith('.mp3') && existsSync(join(run.dir, tr.file)), tr.file);
  // record encodes MP3 while recording (src/sinks/mp3-stream.ts): every track must come from that path here.
  for (const tr of run.manifest.tracks) assert.equal(tr.encoder, 'lame-wasm-stream', `${tr.file} encoded by ${tr.encoder}`);
  for (const [i, m] of members.entries()) {
    const tr = run.manifest.tracks.find((x) => x.userId === m.userId)!;
    // Decoded without ffmpeg (mpg123, gapless), mono as ffmpeg -ac 1 would give it.
    const x = await decodeInterleaved(join(run.dir, tr.file), 1);
    const truth = run.truth.members[i]!.spurts[0]!.onsetWallMs - run.startedAtMs;
    const on = onsetMs(x, truth - 100, truth + 200);
    assert.ok(on !== null && Math.abs(on - truth) <= 30, `${tr.file}: onset ${on} vs ${truth}`);
    assert.ok(Math.abs(x.length / 48 - run.manifest.durationMs) <= 60, `${tr.file}: length ${x.length / 48} vs ${run.manifest.durationMs}`);
  }
});
