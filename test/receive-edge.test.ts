/**
 * Edges of the receive path that only a real call produces, recorded end to end (runRecording: real discord.js,
 * @discordjs/voice, dvrec's receiver, pool and sinks) against the simulator, with DAVE on:
 *  - a member whose op 5 Speaking arrives 300 ms AFTER its first packets (the simulator's op5DelayMs): dvrec must
 *    hold the packets until op 5 names their user, then place them where they belong: nothing lost, onset on time;
 *  - a hostile member of the MLS group sending malformed and wrongly keyed DAVE frames inside genuine datagrams:
 *    the other members' tracks stay intact, every bad frame is counted, and the recorder's MLS session is not
 *    re-initialised (it sends no second key package, no op 31).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Simulator, SimMember } from '../src/simulator/index.ts';
import { HOSTILE_DAVE_KINDS } from '../src/simulator/hostile-dave.ts';
import { BLOCK, TONE_PEAK, msToSample, onsetMs, scenario, toneAmplitude } from './record-fixtures.ts';
import { cleanupDirs, member, recordScenario, type Run } from './fault-fixtures.ts';

after(cleanupDirs);

const HZ = [400, 650, 1000];

/** 20 ms blocks inside a spurt (40 ms in from each edge) where the member's tone is below 30 % of its level. */
function weakBlocks(run: Run, userId: string, hz: number, spurtIndex = 0): string[] {
  const s = run.truth.members.find((m) => m.userId === userId)!.spurts[spurtIndex]!;
  const x = run.pcm.get(userId)!;
  const start = s.onsetWallMs - run.startedAtMs;
  const end = s.endWallMs - run.startedAtMs;
  const weak: string[] = [];
  for (let ms = start + 40; ms + 20 <= end - 40; ms += 20) {
    const level = toneAmplitude(x, msToSample(ms), BLOCK, hz);
    if (level < 0.3 * TONE_PEAK) weak.push(`${ms.toFixed(0)} ms: ${level.toFixed(0)}`);
  }
  return weak;
}

function assertOnset(run: Run, userId: string): void {
  const s = run.truth.members.find((m) => m.userId === userId)!.spurts[0]!;
  const start = s.onsetWallMs - run.startedAtMs;
  const on = onsetMs(run.pcm.get(userId)!, start - 100, start + 200);
  assert.ok(on !== null && Math.abs(on - start) <= 20, `${userId}: onset ${on?.toFixed(1)} ms vs truth ${start.toFixed(1)} ms`);
}

test('op 5 arriving 300 ms after a member\'s first packets: the held packets are kept and land on time', async () => {
  const late = member(1, HZ[0]!, [[400, 1200]], { op5DelayMs: 300 });
  const other = member(2, HZ[1]!, [[300, 1400]]);
  let sim: Simulator | undefined;
  const speakingAt = new Map<string, number>();
  const run = await recordScenario(scenario([late, other], { seed: 31 }), {
    durationMs: 2200,
    onSimulator: (s) => {
      sim = s;
      s.events.on('speaking', (e) => speakingAt.set(e.userId, performance.timeOrigin + performance.now()));
    },
  });
  const m = run.manifest!;
  assert.ok(m, String(run.error));
  const truth = run.truth.members[0]!;
  const firstPacket = truth.spurts[0]!.startWallMs;
  const lag = speakingAt.get(late.userId)! - firstPacket;
  // At least 300 ms late (within the recorder's 1 s hold; the upper bound only says op 5 did not wander off).
  assert.ok(lag >= 299 && lag < 600, `op 5 went out ${lag.toFixed(0)} ms after the first packet`);
  assert.equal(truth.packetsLost, 0);

  const track = m.tracks.find((t) => t.userId === late.userId)!;
  assert.ok(track, 'a track for the member whose op 5 was late');
  assert.equal(track.packets.received, truth.packetsSent, `every packet kept: ${JSON.stringify(track.packets)}`);
  assert.equal(track.packets.lost, 0);
  assert.equal(m.dropped?.unknownSsrc, 0, 'nothing dropped for want of an op 5');
  assertOnset(run, late.userId);
  assert.deepEqual(weakBlocks(run, late.userId, HZ[0]!), [], 'the tone is in every 20 ms block, the first 300 ms included');
  assertOnset(run, other.userId);
  assert.deepEqual(weakBlocks(run, other.userId, HZ[1]!), []);
  assert.deepEqual(sim!.daveStatus()!.recorderKeyPackages, 1);
});

/**
 * Records a call with a hostile DAVE member and checks: the other members' tracks are intact, every bad frame is
 * counted as daveUndecryptable (and attributed to the hostile member), and the recorder's MLS session was never
 * re-initialised (one key package, no op 31, no new epoch until the recorder left at the end).
 */
async function checkHostileDave(hostile: SimMember, others: SimMember[], hz: number[], allKinds: boolean): Promise<void> {
  let sim: Simulator | undefined;
  let started = false;
  /** Group transitions after the session started: [epoch, recorder in the group]. */
  const transitions: [bigint, boolean][] = [];
  const run = await recordScenario(scenario([hostile, ...others], { seed: 32 }), {
    durationMs: 2600,
    onSimulator: (s) => {
      sim = s;
      s.events.on('session-start', () => (started = true));
      s.events.on('dave-transition', (e) => started && transitions.push([e.epoch, e.recorderInGroup]));
    },
  });
  const m = run.manifest!;
  assert.ok(m, String(run.error));
  const forged = run.truth.members[0]!.daveForged;
  const total = Object.values(forged).reduce((a, b) => a + b, 0);
  if (allKinds) assert.deepEqual(Object.keys(forged).sort(), [...HOSTILE_DAVE_KINDS].sort(), `every kind was sent: ${JSON.stringify(forged)}`);
  assert.ok(total >= 25, `${total} bad frames sent`);

  // The recorder's MLS session was never re-initialised: one key package, no op 31, and the group changed only
  // when the recorder left at the end of the recording.
  const dave = sim!.daveStatus()!;
  assert.deepEqual([dave.recorderKeyPackages, dave.recorderInvalidReports], [1, 0], 'key packages, op 31 from the recorder');
  assert.deepEqual(transitions, [[dave.epoch, false]], 'no new epoch until the recorder left');

  // Every bad frame is counted where it belongs, and nothing else failed DAVE.
  assert.equal(m.dropped?.daveUndecryptable, total, `daveUndecryptable ${m.dropped?.daveUndecryptable} vs ${total} forged (${JSON.stringify(forged)})`);
  const t1 = m.tracks.find((t) => t.userId === hostile.userId)!;
  assert.equal(t1.packets.undecryptable, total, 'attributed to the hostile member');
  others.forEach((o, i) => {
    const t = m.tracks.find((x) => x.userId === o.userId)!;
    const truth = run.truth.members.find((x) => x.userId === o.userId)!;
    assert.equal(t.packets.undecryptable, 0, `${o.userId} untouched`);
    assert.equal(t.packets.received, truth.packetsSent, `${o.userId}: every packet`);
    assertOnset(run, o.userId);
    assert.deepEqual(weakBlocks(run, o.userId, hz[i]!), [], `${o.userId}: the tone in every 20 ms block`);
  });
}

test('a hostile DAVE member (bad frames in genuine datagrams): other tracks intact, bad frames counted, MLS session not re-initialised', async () => {
  // Every 3rd audio frame of member 1 is bad; members 2 and 3 speak over the same time, as in a real call.
  const hostile = member(1, HZ[0]!, [[200, 2000]], { hostileDave: { every: 3 } });
  await checkHostileDave(hostile, [member(2, HZ[1]!, [[250, 1900]]), member(3, HZ[2]!, [[300, 1800]])], [HZ[1]!, HZ[2]!], true);
});

test('a hostile DAVE member alone, every frame bad for 800 ms', async () => {
  const hostile = member(1, HZ[0]!, [[200, 2000]], { hostileDave: { every: 1 } });
  await checkHostileDave(hostile, [member(2, HZ[1]!, [[1000, 1200]]), member(3, HZ[2]!, [[1050, 1100]])], [HZ[1]!, HZ[2]!], false);
});

test('a hostile DAVE member flooding alone for 4 s: one re-join at most, then judged; members speaking during and after it intact', async (t) => {
  // H sends nothing but bad frames for 4 s. B speaks early in the flood, C joins mid-flood (a real transition while
  // the flood goes on) and speaks late in it, D speaks after it. Alone for over 1 s, H gets the one re-join the
  // lone-sender rule allows (dave-guard.ts); its frames still fail after it, so H is judged and never again a reason.
  const hz = [...HZ, 1450];
  const hostile = member(1, hz[0]!, [[200, 4000]], { hostileDave: { every: 1 } });
  const others = [
    member(2, hz[1]!, [[500, 300]]),
    member(3, hz[2]!, [[3000, 500]], { joinAtMs: 2600 }),
    member(4, hz[3]!, [[4500, 400]]),
  ];
  let sim: Simulator | undefined;
  let t0 = 0;
  const events: string[] = [];
  const run = await recordScenario(scenario([hostile, ...others], { seed: 33 }), {
    durationMs: 5400,
    onSimulator: (s) => {
      sim = s;
      const at = (wallMs: number) => (wallMs - t0).toFixed(0);
      s.events.on('session-start', (e) => (t0 = e.wallMs));
      s.events.on('warning', (e) => /op 31/.test(e.message) && events.push(`op 31 @${at(performance.timeOrigin + performance.now())}`));
      s.events.on('dave-transition', (e) => events.push(`transition ${e.transitionId} (recorder ${e.recorderInGroup ? 'in' : 'out'}) @${at(e.wallMs)}`));
    },
  });
  const m = run.manifest!;
  assert.ok(m, String(run.error));
  t.diagnostic(`simulator: ${events.join(', ')}`);
  t.diagnostic(`dvrec: ${run.warnings.join(' | ')}`);

  const dave = sim!.daveStatus()!;
  assert.deepEqual([dave.recorderInvalidReports, dave.recorderKeyPackages], [1, 2], 'exactly one re-join (op 31, a second key package)');
  const guard = run.warnings.filter((w) => w.startsWith('DAVE:'));
  assert.equal(guard.length, 2, guard.join(' | '));
  assert.match(guard[0]!, new RegExp(`re-joining the MLS group .*every DAVE frame of member ${hostile.userId} has failed`));
  assert.match(guard[1]!, new RegExp(`frames from member ${hostile.userId} still fail after the recorder rejoined`));

  const forged = Object.values(run.truth.members[0]!.daveForged).reduce((a, b) => a + b, 0);
  const th = m.tracks.find((x) => x.userId === hostile.userId)!;
  // Every bad frame is lost, except 'garbage-after-magic' ones (no DAVE trailer) that arrived while the recorder was
  // out of the group: with no group, a frame without a trailer passes as plain Opus, as in @discordjs/voice.
  assert.equal(th.packets.undecryptable + th.packets.received, run.truth.members[0]!.packetsSent, 'every packet of H accounted for');
  assert.ok(th.packets.undecryptable >= 0.95 * forged, `${th.packets.undecryptable} of ${forged} bad frames lost`);
  assert.equal(m.dropped?.daveUndecryptable, th.packets.undecryptable, 'nobody else lost a frame to DAVE');
  others.forEach((o, i) => {
    const tr = m.tracks.find((x) => x.userId === o.userId)!;
    const truth = run.truth.members.find((x) => x.userId === o.userId)!;
    assert.equal(tr.packets.undecryptable, 0, `${o.userId} untouched`);
    assert.equal(tr.packets.received, truth.packetsSent, `${o.userId}: every packet`);
    assertOnset(run, o.userId);
    assert.deepEqual(weakBlocks(run, o.userId, hz[i + 1]!), [], `${o.userId}: the tone in every 20 ms block`);
  });
});
