/**
 * End to end: the simulator plays members with known tones; runRecording (real discord.js, @discordjs/voice,
 * receiver, worker pool, finisher) records them; the tests decode the finished WAV tracks and compare with the
 * simulator's ground truth: whose tone is in which file, when it starts, that pauses are silent, that all
 * tracks share one length and timeline, through rejoins, a 4015 resume, a 4014 kick and network impairments.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSimulator, trustSimulatorCertificate, type Simulator } from '../src/simulator/index.ts';
import type { GroundTruth, Scenario, SimMember } from '../src/simulator/scenario.ts';
import { opusLoop } from '../src/simulator/opus-cache.ts';
import { Prng } from '../src/simulator/prng.ts';
import { ImpairmentModel } from '../src/simulator/impairments.ts';
import { HOSTILE_KINDS } from '../src/simulator/hostile.ts';
import type { SpurtTruth } from '../src/simulator/scenario.ts';
import { runRecording } from '../src/commands/run-recording.ts';
import type { Recording } from '../src/recorder/recording.ts';
import type { RecordingPhase, RecordOptions } from '../src/recording-api.ts';
import type { Manifest } from '../src/sinks/capture-layout.ts';
import { TONE_PEAK, BLOCK, CHANNEL, GUILD, TOKEN, msToSample, onsetMs, readWavLeft, rms, scenario, toneAmplitude } from './record-fixtures.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Run {
  manifest: Manifest;
  truth: GroundTruth;
  dir: string;
  phases: RecordingPhase[];
  warnings: string[];
  /** Decoded left channel per user id. */
  pcm: Map<string, Int16Array>;
  startedAtMs: number;
  /** RTCP packets the engine handed to the pool's onRtcp. */
  rtcpToPool: number;
}

async function record(sc: Scenario, opts: Partial<RecordOptions> & { stopAtMs?: number } = {}): Promise<Run> {
  // The simulator encodes each signal's Opus loop on first use, on this (shared) thread; doing that before
  // the session starts keeps its send schedule from stalling mid-scenario, which would skew the ground truth.
  for (const m of sc.members) opusLoop(m.signal);
  const sim: Simulator = await startSimulator(sc);
  trustSimulatorCertificate(sim);
  const dir = mkdtempSync(join(tmpdir(), 'dvrec-record-'));
  dirs.push(dir);
  const outDir = join(dir, 'out');
  const phases: RecordingPhase[] = [];
  const warnings: string[] = [];
  const stop = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let recording: Recording | undefined;
  try {
    const manifest = await runRecording(
      {
        token: TOKEN, apiUrl: sim.apiUrl, guildId: GUILD, channelId: CHANNEL, outDir, format: 'wav', mono: false,
        bitrateKbps: 128, mix: false, force: false, ...opts,
      },
      {
        phase: (p) => {
          phases.push(p);
          if (p.phase === 'recording' && opts.stopAtMs !== undefined && !timer) timer = setTimeout(() => stop.abort(), opts.stopAtMs);
        },
        status: () => {},
        convertProgress: () => {},
        warn: (w) => warnings.push(w),
      },
      stop.signal,
      { onRecording: (r) => (recording = r) },
    );
    const truth = sim.truth();
    const pcm = new Map<string, Int16Array>();
    for (const t of manifest.tracks) pcm.set(t.userId, readWavLeft(join(outDir, t.file)));
    // RTCP the recording handed to its sinks (the engine's onRtcp).
    const rtcpToPool = (recording as Recording | undefined)?.rtcpPackets ?? 0;
    return { manifest, truth, dir: outDir, phases, warnings, pcm, startedAtMs: Date.parse(manifest.startedAt), rtcpToPool };
  } finally {
    clearTimeout(timer);
    await sim.close();
  }
}

const member = (n: number, hz: number, spurts: [number, number][], extra: Partial<SimMember> = {}): SimMember => ({
  userId: `20000000000000000${n}`,
  username: `member${n}`,
  displayName: `Member ${n}`,
  signal: { kind: 'tone', hz },
  spurts: spurts.map(([atMs, durationMs]) => ({ atMs, durationMs })),
  ...extra,
});

/** Frequencies on 50 Hz bins (exact for 20 ms Goertzel blocks), no harmonic relations. */
const HZ = [400, 650, 1000];

/**
 * How many packets at the start of each spurt the simulator's network model dropped. The ground truth counts a
 * spurt's losses, not which of its packets were lost; the model is seeded, so its verdicts are replayed here
 * with the simulator's own classes, forked in the simulator's order (src/simulator/index.ts: one PRNG fork per
 * member for the speakers, then one per member for the networks; one verdict per frame a member sends). The
 * replay must reproduce the truth's loss count of every spurt, so a change in the simulator cannot skew it
 * silently. Only for scenarios without faults (an outage also counts as loss in the truth).
 */
function leadingLosses(sc: Scenario, truth: GroundTruth): Map<SpurtTruth, number> {
  assert.ok(!sc.faults?.length, 'loss replay: scenarios without faults only');
  const prng = new Prng(sc.seed);
  sc.members.forEach((_, i) => prng.fork(1000 + i));
  const networks = sc.members.map((_, i) => new ImpairmentModel(sc.impairments, prng.fork(2000 + i)));
  const out = new Map<SpurtTruth, number>();
  sc.members.forEach((m, i) => {
    for (const s of truth.members.find((t) => t.userId === m.userId)!.spurts) {
      const lost = Array.from({ length: s.packetsSent + s.packetsLost }, () => networks[i]!.decide().lost);
      assert.equal(lost.filter(Boolean).length, s.packetsLost, `loss replay of ${m.userId} matches the truth`);
      const lead = lost.indexOf(false);
      out.set(s, lead < 0 ? lost.length : lead);
    }
  });
  return out;
}

/**
 * The checks every recording must pass: each member's tone only in their track, silent pauses, onsets within
 * 20 ms of the ground truth, equal track lengths within one frame matching the duration.
 * `leadingLost` (from {@link leadingLosses}) allows a late onset by exactly the frames lost at the start of a
 * stream's first spurt: nothing precedes them to recover them from. A later spurt's lost first frame is rebuilt
 * from the next packet's FEC (test/sinks.test.ts checks that with packets known to carry FEC); no scenario here
 * loses it, and the check refuses to guess if one does.
 */
function checkTracks(run: Run, hzOf: Map<string, number>, opts: { leadingLost?: Map<SpurtTruth, number> } = {}): { dropouts: number; speechBlocks: number; where: string[] } {
  const { manifest, truth, pcm, startedAtMs } = run;
  const lengths = [...pcm.values()].map((x) => x.length);
  const expected = msToSample(manifest.durationMs);
  for (const len of lengths) assert.ok(Math.abs(len - expected) <= BLOCK, `track length ${len} vs duration ${expected} samples`);
  assert.ok(Math.max(...lengths) - Math.min(...lengths) <= BLOCK, `equal lengths: ${lengths}`);
  let dropouts = 0;
  let speechBlocks = 0;
  const where: string[] = [];
  for (const mt of truth.members) {
    if (!hzOf.has(mt.userId)) {
      assert.ok(!pcm.has(mt.userId), `no track for unrecorded user ${mt.userId}`);
      continue;
    }
    const hz = hzOf.get(mt.userId)!;
    const spurts = mt.spurts.filter((s) => s.packetsSent > 0);
    if (spurts.length === 0) continue;
    const x = pcm.get(mt.userId);
    assert.ok(x, `a track for ${mt.userId}`);
    // 1. Onsets within 20 ms of the truth, and the tone is there during the spurt. A packet leaves the sender
    // once its 20 ms frame has been captured, so the sound began one frame before the spurt's first send
    // (startWallMs); the sink anchors packets that way, and that is the instant compared here.
    const speech: [number, number][] = [];
    for (const s of spurts) {
      const startMs = s.onsetWallMs - startedAtMs;
      const endMs = s.endWallMs - startedAtMs;
      if (endMs > manifest.durationMs - 100) continue;
      const onset = onsetMs(x, startMs - 100, startMs + 200);
      assert.ok(onset !== null, `onset found for ${mt.userId} at ${startMs.toFixed(1)} ms`);
      const lead = opts.leadingLost?.get(s) ?? 0;
      const firstOfStream = mt.spurts.indexOf(s) === 0 || mt.spurts[mt.spurts.indexOf(s) - 1]!.ssrc !== s.ssrc;
      assert.ok(lead === 0 || firstOfStream, `${mt.userId}: a later spurt lost its first packet; extend the check`);
      const slack = 20 * lead;
      assert.ok(onset! - startMs >= -20 && onset! - startMs <= 20 + slack, `${mt.userId}: onset ${onset!.toFixed(1)} ms vs truth ${startMs.toFixed(1)} ms`);
      speech.push([startMs, endMs]);
      // Blocks well inside the spurt: a dropout is a block where the member's tone falls below 10% (−20 dB) of
      // its level, i.e. audio is missing; a concealed frame at reduced level is not a dropout.
      for (let ms = startMs + 40; ms + 20 <= endMs - 40; ms += 20) {
        speechBlocks++;
        const level = toneAmplitude(x, msToSample(ms), BLOCK, hz);
        if (level < 0.1 * TONE_PEAK) {
          dropouts++;
          where.push(`${mt.userId.slice(-1)}@${ms.toFixed(0)}ms:${level.toFixed(0)}`);
        }
      }
    }
    // 2. Pauses (away from any spurt of this member by 120 ms) are silent.
    for (let ms = 0; ms + 20 <= manifest.durationMs; ms += 20) {
      if (speech.some(([a, b]) => ms + 20 > a - 120 && ms < b + 120)) continue;
      if (spurts.some((s) => ms + 20 > s.startWallMs - startedAtMs - 140 && ms < s.endWallMs - startedAtMs + 120)) continue;
      const level = rms(x, msToSample(ms), BLOCK);
      assert.ok(level < 30, `${mt.userId}: pause at ${ms} ms should be silent, rms ${level.toFixed(1)}`);
    }
    // 3. Nobody else's tone leaks into this track (checked where this member speaks).
    for (const [a, b] of speech) {
      for (let ms = a + 40; ms + 20 <= b - 40; ms += 100) {
        const own = toneAmplitude(x, msToSample(ms), BLOCK, hz);
        for (const [other, ohz] of hzOf) {
          if (other === mt.userId) continue;
          const leak = toneAmplitude(x, msToSample(ms), BLOCK, ohz);
          // Another member's voice would show at full level (~9800); concealment artefacts stay far below 10%.
          assert.ok(leak < 0.1 * TONE_PEAK, `${mt.userId} track has ${ohz} Hz at ${ms} ms (${leak.toFixed(0)} vs own ${own.toFixed(0)})`);
        }
      }
    }
  }
  // Every track belongs to a member who spoke, and only silence is in a track outside its owner's speech.
  for (const t of manifest.tracks) assert.ok(hzOf.has(t.userId), `unexpected track ${t.userId}`);
  return { dropouts, speechBlocks, where };
}

for (const mode of ['aead_aes256_gcm_rtpsize', 'aead_xchacha20_poly1305_rtpsize'] as const) {
  test(`${mode} + DAVE: three members, each tone in its own aligned track, hostile traffic and RTCP survived`, async () => {
    const members = [
      member(1, HZ[0]!, [[200, 700], [1500, 600]]),
      member(2, HZ[1]!, [[500, 800]], { username: '../../etc', displayName: 'CON' }),
      member(3, HZ[2]!, [[1000, 500], [2200, 400]]),
    ];
    const run = await record(
      scenario(members, {
        modes: [mode],
        faults: [
          { atMs: 300, kind: 'hostile', count: 300 },
          { atMs: 800, kind: 'rtcp', count: 4 },
          // A second burst: by now the simulator has members' datagrams to replay (the first replays its own).
          { atMs: 1200, kind: 'hostile', count: 130 },
        ],
      }),
      { durationMs: 3000 },
    );
    const hzOf = new Map(members.map((m, i) => [m.userId, HZ[i]!]));
    assert.equal(run.manifest.tracks.length, 3);
    assert.ok(Math.abs(run.manifest.durationMs - 3000) <= 20, `duration ${run.manifest.durationMs}`);
    const { dropouts, speechBlocks } = checkTracks(run, hzOf);
    assert.equal(dropouts, 0, `${dropouts} dropouts in ${speechBlocks} blocks on a clean network`);
    // Names: safe stems, unique by id; the manifest keeps the real names.
    const t2 = run.manifest.tracks.find((t) => t.userId === members[1]!.userId)!;
    assert.equal(t2.displayName, 'CON');
    assert.equal(t2.file, `_CON-${members[1]!.userId}.wav`);
    for (const t of run.manifest.tracks) {
      assert.equal(t.packets.undecryptable, 0);
      assert.equal(t.ssrcs.length, 1);
      assert.ok(t.packets.received > 0);
    }
    assert.deepEqual(run.truth.faults.map((f) => f.outcome), ['sent', 'sent', 'sent']);
    assert.equal(run.truth.hostileSent, 430);
    assert.ok(run.warnings.some((w) => /skipped datagrams/.test(w)), 'hostile datagrams counted');
    // Datagram i of a burst is of kind i % HOSTILE_KINDS.length.
    const ofKind = (kind: string, count: number) => Array.from({ length: count }, (_, i) => HOSTILE_KINDS[i % HOSTILE_KINDS.length]).filter((k) => k === kind).length;
    // Every RTCP packet the simulator sent (the reports, and valid ones of other types in the bursts) reached
    // the sink's onRtcp once, and is counted as such in the manifest.
    const rtcpSent = run.truth.rtcpSent + ofKind('rtcp-any-type', 300) + ofKind('rtcp-any-type', 130);
    assert.equal(run.truth.rtcpSent, 4);
    assert.equal(run.manifest.dropped?.rtcp, rtcpSent, `manifest dropped.rtcp = the ${rtcpSent} RTCP packets sent`);
    assert.equal(run.rtcpToPool, rtcpSent, 'each handed to onRtcp');
    // Replays: all dropped; those of members' datagrams (the second burst's) count in that member's duplicate.
    assert.equal(run.manifest.dropped?.replayed, ofKind('replay', 300) + ofKind('replay', 130));
    const duplicates = run.manifest.tracks.reduce((n, t) => n + t.packets.duplicate, 0);
    assert.equal(duplicates, ofKind('replay', 130), 'replayed member packets are counted as their duplicates');
    assert.equal((statSync(run.dir).mode & 0o777), 0o700, 'output directory is private');
    const everything = readdirSync(run.dir).map((f) => readFileSync(join(run.dir, f)).toString('latin1')).join('');
    assert.ok(!everything.includes(TOKEN), 'token never written');
  });
}

test('late joiner, leaver, rejoin with a new SSRC: one file per user on one timeline', async () => {
  const members = [
    member(1, HZ[0]!, [[200, 600], [2000, 400]]),
    member(2, HZ[1]!, [[1200, 500]], { joinAtMs: 900 }),
    member(3, HZ[2]!, [[200, 400], [1800, 500]], { leaveAtMs: 900, rejoinAtMs: 1400 }),
  ];
  const run = await record(scenario(members), { durationMs: 2800 });
  const hzOf = new Map(members.map((m, i) => [m.userId, HZ[i]!]));
  assert.equal(run.manifest.tracks.length, 3, 'one track per user');
  const rejoiner = run.manifest.tracks.find((t) => t.userId === members[2]!.userId)!;
  assert.equal(rejoiner.ssrcs.length, 2, `two SSRCs in one track: ${rejoiner.ssrcs}`);
  const late = run.manifest.tracks.find((t) => t.userId === members[1]!.userId)!;
  const lateTruth = run.truth.members.find((m) => m.userId === members[1]!.userId)!.spurts[0]!;
  const lateAt = lateTruth.onsetWallMs - run.startedAtMs;
  assert.ok(Math.abs(late.startOffsetMs - lateAt) <= 20, `late joiner starts at ${late.startOffsetMs} ms, truth ${lateAt.toFixed(1)} ms`);
  const { dropouts } = checkTracks(run, hzOf);
  assert.equal(dropouts, 0);
});

test('4015 resume mid-recording keeps one timeline without a gap', async () => {
  const members = [member(1, HZ[0]!, [[200, 2400]]), member(2, HZ[1]!, [[1500, 700]])];
  const run = await record(scenario(members, { faults: [{ atMs: 1000, kind: 'voice-close', code: 4015 }] }), { durationMs: 2900 });
  const fault = run.truth.faults.find((f) => f.kind === 'voice-close');
  assert.ok(fault, 'the 4015 close happened');
  assert.equal(run.manifest.tracks.length, 2);
  const { dropouts, speechBlocks } = checkTracks(run, new Map(members.map((m, i) => [m.userId, HZ[i]!])));
  assert.ok(dropouts <= 1, `${dropouts}/${speechBlocks} dropouts across the resume`);
});

test('5% loss + 10% reorder + 30 ms jitter: under 1% dropouts inside speech', async (t) => {
  const members = [member(1, HZ[0]!, [[200, 3000]]), member(2, HZ[1]!, [[300, 3000]])];
  const sc = scenario(members, { seed: 11, impairments: { loss: 0.05, reorder: 0.1, jitterMs: 30 } });
  const run = await record(sc, { durationMs: 3600 });
  const lost = run.truth.members.reduce((n, m) => n + m.packetsLost, 0);
  assert.ok(lost > 5, `the network did lose packets (${lost})`);
  const leadingLost = leadingLosses(sc, run.truth);
  const { dropouts, speechBlocks, where } = checkTracks(run, new Map(members.map((m, i) => [m.userId, HZ[i]!])), { leadingLost });
  assert.ok(speechBlocks > 250);
  const stats = run.manifest.tracks.map((tr) => JSON.stringify(tr.packets)).join(' ');
  t.diagnostic(`${lost} packets lost by the network (leading: ${[...leadingLost.values()].join(', ')}); ${dropouts} dropouts in ${speechBlocks} speech blocks [${where.join(' ')}]; ${stats}`);
  assert.ok(dropouts / speechBlocks < 0.01, `${dropouts} dropouts in ${speechBlocks} blocks`);
  const concealed = run.manifest.tracks.reduce((n, t) => n + t.packets.concealed, 0);
  assert.ok(concealed > 0, 'losses were concealed');
});

test('4014 (bot disconnected) ends the recording cleanly; --users records only the chosen user', async () => {
  const members = [member(1, HZ[0]!, [[200, 600]]), member(2, HZ[1]!, [[300, 600]])];
  const run = await record(scenario(members, { dave: false, faults: [{ atMs: 1500, kind: 'disconnect-bot' }] }), {
    users: new Set([members[0]!.userId]),
    durationMs: 20_000,
  });
  assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'disconnected'), JSON.stringify(run.phases));
  assert.ok(run.manifest.durationMs >= 1400 && run.manifest.durationMs < 5000, `stopped at the kick: ${run.manifest.durationMs}`);
  assert.deepEqual(run.manifest.tracks.map((t) => t.userId), [members[0]!.userId]);
  checkTracks(run, new Map([[members[0]!.userId, HZ[0]!]]));
});

test('AbortSignal stops the recording at that instant', async () => {
  const members = [member(1, HZ[0]!, [[100, 5000]])];
  const run = await record(scenario(members, { dave: false }), { stopAtMs: 1200 });
  assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'signal'));
  assert.ok(Math.abs(run.manifest.durationMs - 1200) < 150, `duration ${run.manifest.durationMs}`);
  const x = run.pcm.get(members[0]!.userId)!;
  assert.ok(Math.abs(x.length - msToSample(run.manifest.durationMs)) <= BLOCK);
  assert.ok(toneAmplitude(x, x.length - 3 * BLOCK, BLOCK, HZ[0]!) > 1000, 'audio right up to the stop');
});
