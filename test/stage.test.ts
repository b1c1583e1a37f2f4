/**
 * Stage channels (type 13) end to end: `--channel` names a stage, the bot joins it as Discord puts every non-speaker,
 * as suppressed audience (voice state `suppress: true`), and records every speaker. Discord's voice server answers
 * a stage without DAVE (`dave_protocol_version: 0`); the simulator can offer DAVE there too (`stageDave`), and the
 * recording must be right either way. Audience members never speak, so they get no track; `--stop-when-empty`
 * counts the people in the stage (speakers and audience), not the speakers.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Joined } from '../src/commands/join.ts';
import type { Scenario, SimMember } from '../src/simulator/scenario.ts';
import { cleanupDirs, member, recordScenario, silentMs, type RecordRunOptions, type Run } from './fault-fixtures.ts';
import { BOT, TONE_PEAK, msToSample, onsetMs, scenario, toneAmplitude } from './record-fixtures.ts';

after(cleanupDirs);

const STAGE = 13;
const HZ = [400, 650, 1000];
/** A guild id per recording: @discordjs/voice keeps one voice connection per guild id in a process-wide map. */
let guilds = 0;
const ownGuild = (): { guildId: string } => ({ guildId: `1000000000001${String(++guilds).padStart(5, '0')}` });
const audience = (n: number, extra: Partial<SimMember> = {}): SimMember => ({ ...member(n, 300, []), audience: true, ...extra });

interface StageRun extends Run {
  daveVersions: number[];
  /** The bot's own voice state as discord.js saw it while recording. */
  botSuppressed: boolean | null;
  channelType: number | null;
}

async function recordStage(sc: Scenario, opts: RecordRunOptions): Promise<StageRun> {
  const daveVersions: number[] = [];
  let session: Joined | undefined;
  let botSuppressed: boolean | null = null;
  let channelType: number | null = null;
  const run = await recordScenario(sc, {
    ...opts,
    onSimulator: (sim) => sim.events.on('session-ready', (e) => daveVersions.push(e.daveProtocolVersion)),
    hooks: {
      onJoined: (s) => {
        session = s;
        channelType = s.channel.type;
      },
    },
  });
  botSuppressed = session?.guild.voiceStates.cache.get(BOT)?.suppress ?? null;
  return { ...run, daveVersions, botSuppressed, channelType };
}

/** Every speaker: one track, onset within 20 ms of the truth, their tone through the spurt, nothing lost to DAVE. */
function assertSpeakers(run: StageRun, speakers: SimMember[], label: string): string[] {
  const m = run.manifest!;
  assert.ok(m, `${label}: ${String(run.error)}`);
  assert.deepEqual(m.tracks.map((t) => t.userId).sort(), speakers.map((s) => s.userId).sort(), `${label}: a track per speaker, none for the audience`);
  const figures: string[] = [];
  for (const s of speakers) {
    const i = run.truth.members.findIndex((x) => x.userId === s.userId);
    const x = run.pcm.get(s.userId)!;
    const tr = m.tracks.find((t) => t.userId === s.userId)!;
    assert.equal(tr.packets.undecryptable, 0, `${label} ${s.username}: undecryptable packets`);
    for (const sp of run.truth.members[i]!.spurts) {
      const start = sp.onsetWallMs - run.startedAtMs;
      const end = sp.endWallMs - run.startedAtMs;
      const on = onsetMs(x, start - 100, start + 200);
      assert.ok(on !== null && Math.abs(on - start) <= 20, `${label} ${s.username}: onset ${on?.toFixed(1)} vs truth ${start.toFixed(1)}`);
      assert.equal(silentMs(x, start + 30, end - 30), 0, `${label} ${s.username}: spurt intact`);
      const hz = (s.signal as { hz: number }).hz;
      assert.ok(toneAmplitude(x, msToSample(start + 100), 960, hz) > 0.5 * TONE_PEAK, `${label} ${s.username}: their tone`);
      figures.push(`${s.username} onset ${(on! - start).toFixed(1)} ms`);
    }
  }
  return figures;
}

describe('stage channels', { concurrency: 3 }, () => {
  const speakers = [member(1, HZ[0]!, [[200, 800], [1500, 500]]), member(2, HZ[1]!, [[600, 900]])];

  test('without DAVE (Discord exempts stages): joined as suppressed audience, every speaker recorded, no track for the audience', async (t) => {
    const guild = ownGuild();
    const run = await recordStage(scenario([...speakers, audience(3), audience(4)], { channelType: STAGE, ...guild }), { durationMs: 2400, ...guild });
    assert.equal(run.channelType, STAGE, 'the recorded channel is a stage');
    assert.equal(run.botSuppressed, true, 'the bot sits in the audience (suppressed)');
    assert.deepEqual(run.daveVersions, [0], 'the voice server answered without DAVE');
    const figures = assertSpeakers(run, speakers, 'stage, no DAVE');
    t.diagnostic(figures.join(', '));
  });

  test('with DAVE offered on the stage: the same recording, through the MLS group', async (t) => {
    const guild = ownGuild();
    const run = await recordStage(scenario([...speakers, audience(3)], { channelType: STAGE, stageDave: true, ...guild }), { durationMs: 2400, ...guild });
    assert.equal(run.botSuppressed, true);
    assert.deepEqual(run.daveVersions, [1], 'the voice server used DAVE');
    const figures = assertSpeakers(run, speakers, 'stage, DAVE');
    t.diagnostic(figures.join(', '));
  });

  test('--stop-when-empty counts people, not speakers: the audience keeps the recording going', async (t) => {
    const guild = ownGuild();
    // Both speakers leave at 1 s; the audience member stays until 2.5 s. A stop counted on speakers would come ~1 s
    // after the speakers left; counted on people, 1 s after the audience left.
    const members = [
      member(1, HZ[0]!, [[200, 400]], { leaveAtMs: 900 }),
      member(2, HZ[1]!, [[300, 400]], { leaveAtMs: 1000 }),
      audience(3, { leaveAtMs: 2500 }),
    ];
    let leftAt = NaN;
    const run = await recordScenario(scenario(members, { channelType: STAGE, ...guild }), {
      durationMs: 20_000,
      stopWhenEmptyMs: 1000,
      ...guild,
      onSimulator: (sim) => sim.events.on('member-leave', (e) => (leftAt = e.wallMs)),
    });
    assert.ok(run.manifest, String(run.error));
    assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'empty-channel'), JSON.stringify(run.phases));
    const empty = leftAt - run.startedAtMs;
    // Checked once a second: stopped between grace and grace + 1 s (+ slack) after the last person left.
    assert.ok(run.manifest.durationMs >= empty + 1000 && run.manifest.durationMs <= empty + 2500, `stopped at ${run.manifest.durationMs} ms, empty since ${empty.toFixed(0)} ms`);
    assert.equal(run.manifest.tracks.length, 2, 'the audience member got no track');
    t.diagnostic(`speakers left at ~1000 ms, the audience at ${empty.toFixed(0)} ms; stopped at ${run.manifest.durationMs} ms`);
  });
});
