/**
 * Voice close codes during a real recording (simulator ↔ discord.js ↔ @discordjs/voice ↔ dvrec). The simulator plays
 * each code as Discord documents it (discord-api-docs, voice close event codes): 4015 keeps the session resumable;
 * 4014 disconnects; every other code ends the session on the server (a resume is refused), 4021 also refuses new
 * identifies for a while, and 4022 comes with its variants (the channel deleted, the call moved to another voice
 * server, or no answer to a rejoin). For each: the outcome src/receiver/close-codes.ts gives it (resume, rejoin or
 * end), the stop reason and exit code, the files finished, the audio before the close intact, and for the codes the
 * recording survives, the audio after it back at its true time with an outage of exactly the undelivered packets.
 * Nothing loops: a code that keeps coming back ends the recording after RECOVERY_LIMIT recoveries.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DvrecError } from '../src/errors.ts';
import { ExitCode, exitCodeOf } from '../src/commands/exit-codes.ts';
import { CALL_TERMINATED_GRACE_MS, RECOVERY_LIMIT, RECOVERY_WINDOW_MS, closePolicy, documentedCloseCodes } from '../src/receiver/close-codes.ts';
import { startSimulator } from '../src/simulator/index.ts';
import type { Fault } from '../src/simulator/scenario.ts';
import { opusLoop } from '../src/simulator/opus-cache.ts';
import { CAPTURE_DIR, MANIFEST_FILE, type Manifest } from '../src/sinks/capture-layout.ts';
import { baseEnv, errorLines, runCli } from './cli-helpers.ts';
import { checkSpanning, cleanupDirs, longestSilence, member, recordScenario, silentMs, tempDir, type Run } from './fault-fixtures.ts';
import { CHANNEL, GUILD, TOKEN, onsetMs, readWavLeft, scenario } from './record-fixtures.ts';

after(cleanupDirs);

const HZ = [400, 650, 1000];
const FAULT_MS = 1000;
/**
 * A guild id of its own per recording: @discordjs/voice keeps one voice connection per guild id in a process-wide
 * map, so two recordings of the same guild running side by side in this process would share one connection.
 */
let guilds = 0;
const ownGuild = (): { guildId: string } => ({ guildId: `1000000000000${String(++guilds).padStart(5, '0')}` });
/** Member 1 speaks across the close; member 2 once after it (checkSpanning's shape). */
const spanning = (fault: Fault, guild: { guildId: string }) =>
  scenario([member(1, HZ[0]!, [[200, 2000]]), member(2, HZ[1]!, [[1800, 400]])], { faults: [fault], ...guild });
/** One member speaking from 200 ms until well past any end, so that where the recording stops is visible. */
const longSpeaker = (faults: Fault[], guild: { guildId: string }) => scenario([member(1, HZ[0]!, [[200, 9000]])], { faults, ...guild });

/** Where the fault happened on the recording clock. */
function faultAt(run: Run, kind: Fault['kind'] = 'voice-close'): number {
  const f = run.truth.faults.find((x) => x.kind === kind);
  assert.ok(f, `the fault was played: ${JSON.stringify(run.truth.faults)}`);
  return f.wallMs - run.startedAtMs;
}

/**
 * The files are finished: manifest on disk, no capture left, every track cut to the recording's length. Reads the
 * tracks into run.pcm when the run ended with an error (recordScenario reads them only from a returned manifest).
 */
function assertFinished(run: Run): Manifest {
  assert.ok(existsSync(join(run.dir, MANIFEST_FILE)), 'manifest written');
  assert.ok(!existsSync(join(run.dir, CAPTURE_DIR)), 'captures finished in place');
  const manifest = JSON.parse(readFileSync(join(run.dir, MANIFEST_FILE), 'utf8')) as Manifest;
  for (const t of manifest.tracks) if (!run.pcm.has(t.userId)) run.pcm.set(t.userId, readWavLeft(join(run.dir, t.file)));
  assert.equal(run.pcm.size, manifest.tracks.length);
  for (const [userId, x] of run.pcm) assert.ok(Math.abs(x.length / 48 - manifest.durationMs) <= 20, `${userId}: ${x.length / 48} ms vs ${manifest.durationMs}`);
  return manifest;
}

/** A recording that ended at the close: it stopped within 1 s of it, and the speaker's audio is intact until it. */
function assertEndedAtClose(run: Run, closeMs: number, label: string): number {
  const manifest = assertFinished(run);
  // ≥ close − 2: startedAt and durationMs are each whole milliseconds.
  assert.ok(manifest.durationMs >= closeMs - 2 && manifest.durationMs < closeMs + 1000, `${label}: ended at ${manifest.durationMs} ms (close at ${closeMs.toFixed(0)} ms)`);
  const x = run.pcm.get(run.truth.members[0]!.userId)!;
  const start = run.truth.members[0]!.spurts[0]!.onsetWallMs - run.startedAtMs;
  const gap = silentMs(x, start + 30, closeMs - 60);
  assert.ok(gap <= 20, `${label}: ${gap} ms missing before the close`);
  return manifest.durationMs;
}

test('the policy table: Discord\'s "should not reconnect" codes end, "try resuming" resumes, the rest rejoin (bounded)', () => {
  const byCode = new Map(documentedCloseCodes().map((p) => [p.code, p]));
  // discord-api-docs, opcodes-and-status-codes.md, Voice Close Event Codes: every documented code has a policy.
  assert.deepEqual([...byCode.keys()].sort(), [4001, 4002, 4003, 4004, 4005, 4006, 4009, 4011, 4012, 4014, 4015, 4016, 4017, 4020, 4021, 4022]);
  for (const code of [4014, 4021, 4022]) assert.equal(byCode.get(code)!.action, 'end', `${code}: should not reconnect`);
  assert.equal(byCode.get(4015)!.action, 'resume');
  for (const code of [4012, 4016, 4017]) assert.equal(byCode.get(code)!.action, 'end', `${code}: a new session would be refused the same way`);
  for (const code of [4001, 4002, 4003, 4004, 4005, 4006, 4009, 4011, 4020]) assert.equal(byCode.get(code)!.action, 'rejoin', String(code));
  // The call is over for us (exit 0) vs Discord refused to go on (exit 7).
  assert.equal(byCode.get(4014)!.exit, 'stopped');
  assert.equal(byCode.get(4022)!.exit, 'stopped');
  for (const code of [4012, 4016, 4017, 4021]) assert.equal(byCode.get(code)!.exit, 'rejected', String(code));
  assert.equal(byCode.get(4022)!.graceMs, CALL_TERMINATED_GRACE_MS);
  // The websocket dropping without a Discord code resumes; an undocumented 4xxx gets a fresh session (bounded).
  assert.equal(closePolicy(1006).action, 'resume');
  assert.equal(closePolicy(4099).action, 'rejoin');
});

describe('closes the recording survives: one timeline, an outage of exactly the undelivered audio', { concurrency: 3 }, () => {
  for (const code of [4006, 4009, 4020]) {
    test(`${code} (${closePolicy(code).meaning}): rejoined with a new voice session`, async (t) => {
      const guild = ownGuild();
      const run = await recordScenario(spanning({ atMs: FAULT_MS, kind: 'voice-close', code }, guild), { durationMs: 3000, ...guild });
      assert.equal(run.error, undefined, String(run.error));
      assert.equal(run.truth.faults.find((f) => f.kind === 'voice-close')?.outcome, 'reidentified', JSON.stringify(run.truth.faults));
      assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'duration'), 'stopped by --duration, exit 0');
      assert.ok(run.warnings.some((w) => w.includes(`voice websocket closed (${code}: `) && w.includes('rejoining')), run.warnings.join(' | '));
      assertFinished(run);
      const r = checkSpanning(run, String(code), HZ[1]!);
      t.diagnostic(`${code}: silence in the spanning spurt ${r.silentMs} ms, expected ${r.expectedMs} ms (undelivered + ${r.undecryptable} undecryptable), error ${r.errorMs} ms`);
    });
  }

  test('4022, the call moved to another voice server: followed (Discord names it), same tracks, one timeline', async (t) => {
    const endpoints: string[] = [];
    const guild = ownGuild();
    const run = await recordScenario(spanning({ atMs: FAULT_MS, kind: 'voice-close', code: 4022, then: 'server-changed' }, guild), {
      durationMs: 3000,
      ...guild,
      onSimulator: (sim) => sim.events.on('voice-identify', (e) => endpoints.push(e.endpoint)),
    });
    assert.equal(run.error, undefined, String(run.error));
    assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'duration'), 'stopped by --duration, exit 0');
    assert.ok(endpoints.length >= 2 && endpoints.at(-1) !== endpoints[0], `identified on the new server: ${endpoints.join(', ')}`);
    assert.ok(run.warnings.some((w) => /4022.*waiting 5 s for Discord to name a new voice server/.test(w)), run.warnings.join(' | '));
    assertFinished(run);
    const r = checkSpanning(run, '4022 server changed', HZ[1]!);
    t.diagnostic(`4022 → ${endpoints.join(' → ')}: silence ${r.silentMs} ms, expected ${r.expectedMs} ms, error ${r.errorMs} ms`);
  });

  test('4006 when the channel empties (undocumented, seen on Discord): rejoined alone; a member who comes back is recorded', async (t) => {
    const members = [
      member(1, HZ[0]!, [[200, 700]], { leaveAtMs: 1200 }),
      member(2, HZ[1]!, [[300, 700]], { leaveAtMs: 1300 }),
      member(3, HZ[2]!, [[2600, 600]], { joinAtMs: 2200 }),
    ];
    const guild = ownGuild();
    let lastLeave = NaN;
    const run = await recordScenario(scenario(members, { emptyChannelCloseCode: 4006, ...guild }), {
      durationMs: 3600,
      ...guild,
      onSimulator: (sim) => sim.events.on('member-leave', (e) => (lastLeave = e.wallMs)),
    });
    assert.equal(run.error, undefined, String(run.error));
    const close = faultAt(run);
    const leave = lastLeave - run.startedAtMs;
    assert.ok(close >= leave && close - leave < 5, `the server closed the session as the last member left (${leave.toFixed(0)} ms): ${close.toFixed(0)} ms`);
    assert.equal(run.truth.faults[0]!.outcome, 'reidentified');
    const manifest = assertFinished(run);
    assert.equal(manifest.tracks.length, 3);
    const figures: string[] = [];
    for (const [i, m] of members.entries()) {
      const s = run.truth.members[i]!.spurts[0]!;
      const start = s.onsetWallMs - run.startedAtMs;
      const x = run.pcm.get(m.userId)!;
      const on = onsetMs(x, start - 100, start + 200);
      assert.ok(on !== null && Math.abs(on - start) <= 20, `member ${i + 1}: onset ${on?.toFixed(1)} vs truth ${start.toFixed(1)}`);
      assert.equal(silentMs(x, start + 30, s.endWallMs - run.startedAtMs - 30), 0, `member ${i + 1}: spurt intact`);
      figures.push(`member ${i + 1} onset ${(on! - start).toFixed(1)} ms`);
    }
    t.diagnostic(`last leave at ${leave.toFixed(0)} ms, 4006 at ${close.toFixed(0)} ms; ${figures.join(', ')}`);
  });
});

describe('closes that end the recording: clean stop, files finished, the documented exit', { concurrency: 3 }, () => {
  test('4014 (disconnected): stops at once, exit 0, everything before it kept', async () => {
    const guild = ownGuild();
    const run = await recordScenario(longSpeaker([{ atMs: 1500, kind: 'voice-close', code: 4014 }], guild), {
      ...guild,
      durationMs: 20_000,
    });
    assert.equal(run.error, undefined, String(run.error));
    assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'disconnected'));
    assert.ok(run.warnings.some((w) => /4014/.test(w)), run.warnings.join(' | '));
    assertEndedAtClose(run, faultAt(run), '4014');
  });

  test('4022 with the channel deleted: stops at once (no grace wait), exit 0', async (t) => {
    const refused: string[] = [];
    const guild = ownGuild();
    const run = await recordScenario(longSpeaker([{ atMs: 1500, kind: 'voice-close', code: 4022, then: 'channel-deleted' }], guild), {
      ...guild,
      durationMs: 20_000,
      onSimulator: (sim) => sim.events.on('voice-join-refused', (e) => refused.push(e.reason)),
    });
    assert.equal(run.error, undefined, String(run.error));
    assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'disconnected'));
    assert.ok(run.warnings.some((w) => /deleted|disconnected from the voice channel/.test(w)), run.warnings.join(' | '));
    assertEndedAtClose(run, faultAt(run), '4022 deleted');
    t.diagnostic(`op 4 joins refused after the deletion: ${refused.join(', ') || 'none'}`);
  });

  test('4022 and no answer to the library\'s rejoin: waits the grace for a new voice server, then stops, exit 0', async (t) => {
    const guild = ownGuild();
    const run = await recordScenario(longSpeaker([{ atMs: 1500, kind: 'voice-close', code: 4022, then: 'ignored' }], guild), {
      ...guild,
      durationMs: 20_000,
    });
    assert.equal(run.error, undefined, String(run.error));
    assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'disconnected'));
    assert.ok(run.warnings.some((w) => /the voice session ended \(4022: call terminated/.test(w)), run.warnings.join(' | '));
    const close = faultAt(run);
    const manifest = assertFinished(run);
    const waited = manifest.durationMs - close;
    assert.ok(waited >= CALL_TERMINATED_GRACE_MS - 2 && waited < CALL_TERMINATED_GRACE_MS + 1000, `stopped ${waited.toFixed(0)} ms after the close`);
    const x = run.pcm.get(run.truth.members[0]!.userId)!;
    const start = run.truth.members[0]!.spurts[0]!.onsetWallMs - run.startedAtMs;
    assert.ok(silentMs(x, start + 30, close - 60) <= 20, 'audio before the close intact');
    t.diagnostic(`4022 at ${close.toFixed(0)} ms, stopped ${waited.toFixed(0)} ms later`);
  });

  test('4021 (rate limited): stops at once, exit 7, and does not reconnect', async (t) => {
    const joins: { channelId: string | null; wallMs: number }[] = [];
    const identifies: number[] = [];
    const guild = ownGuild();
    const run = await recordScenario(longSpeaker([{ atMs: 1500, kind: 'voice-close', code: 4021 }], guild), {
      ...guild,
      durationMs: 20_000,
      onSimulator: (sim) => {
        const now = (): number => performance.timeOrigin + performance.now();
        sim.events.on('voice-join', (e) => joins.push({ channelId: e.channelId, wallMs: now() }));
        sim.events.on('voice-identify', () => identifies.push(now()));
      },
    });
    assert.ok(run.error instanceof DvrecError, `a DvrecError: ${String(run.error)}`);
    assert.equal(exitCodeOf(run.error), ExitCode.VOICE_REJECTED);
    assert.match(run.error.message, /^the voice server ended the session \(4021: rate limited \(Discord asks not to reconnect\)\): recording stopped at \d+\.\d s; everything captured until then is kept$/);
    assert.ok(run.phases.some((p) => p.phase === 'stopping' && p.reason === 'error'));
    const close = faultAt(run);
    assertEndedAtClose(run, close, '4021');
    const closeWall = run.startedAtMs + close;
    // @discordjs/voice 0.19.2 sends one op 4 join on its own as the socket closes; dvrec adds none and leaves.
    const after = joins.filter((j) => j.wallMs >= closeWall);
    assert.ok(after.filter((j) => j.channelId !== null).length <= 1, `joins after the close: ${JSON.stringify(after)}`);
    assert.equal(after.at(-1)?.channelId, null, 'the bot left the channel');
    assert.equal(identifies.filter((w) => w >= closeWall).length, 0, 'no new voice session');
    t.diagnostic(`4021 at ${close.toFixed(0)} ms; op 4 after it: ${after.map((j) => j.channelId === null ? 'leave' : 'join').join(', ')}`);
  });

  test('4017 mid-call (DAVE required): stops at once, exit 7', async () => {
    const guild = ownGuild();
    const run = await recordScenario(longSpeaker([{ atMs: 1500, kind: 'voice-close', code: 4017 }], guild), {
      ...guild,
      durationMs: 20_000,
    });
    assert.ok(run.error instanceof DvrecError, `a DvrecError: ${String(run.error)}`);
    assert.equal(exitCodeOf(run.error), ExitCode.VOICE_REJECTED);
    assert.match(run.error.message, /^the voice server ended the session \(4017: end-to-end encryption \(DAVE\) is required\): recording stopped at/);
    assertEndedAtClose(run, faultAt(run), '4017');
  });

  test(`a close that keeps coming back after every rejoin ends the recording after ${RECOVERY_LIMIT} recoveries: exit 7, no loop`, async (t) => {
    let identifies = 0;
    const closes: number[] = [];
    const guild = ownGuild();
    const run = await recordScenario(longSpeaker([], guild), {
      ...guild,
      durationMs: 20_000,
      onSimulator: (sim) => {
        // Every voice session the bot gets is closed with 4006 shortly after it is ready (the library would rejoin for ever).
        sim.events.on('voice-identify', () => identifies++);
        // The first after a second of recording, each later one 300 ms after its rejoin.
        sim.events.on('session-ready', () => setTimeout(() => {
          closes.push(performance.timeOrigin + performance.now());
          sim.inject({ atMs: 0, kind: 'voice-close', code: 4006 });
        }, closes.length === 0 ? 1000 : 300));
      },
    });
    assert.ok(run.error instanceof DvrecError, `a DvrecError: ${String(run.error)}`);
    assert.equal(exitCodeOf(run.error), ExitCode.VOICE_REJECTED);
    const times = `${RECOVERY_LIMIT + 1} times within ${RECOVERY_WINDOW_MS / 1000} s`;
    assert.match(run.error.message, new RegExp(`^the voice server closed the session ${times} \\(last: 4006, session no longer valid\\): recording stopped at \\d+\\.\\d s; everything captured until then is kept$`));
    assert.equal(identifies, RECOVERY_LIMIT + 1, `voice sessions: the first and ${RECOVERY_LIMIT} rejoins, then none`);
    const manifest = assertFinished(run);
    const last = closes[RECOVERY_LIMIT]! - run.startedAtMs;
    assert.ok(manifest.durationMs >= last - 2 && manifest.durationMs < last + 1000, `ended at ${manifest.durationMs} ms, last close at ${last.toFixed(0)} ms`);
    const x = run.pcm.get(run.truth.members[0]!.userId)!;
    const start = run.truth.members[0]!.spurts[0]!.onsetWallMs - run.startedAtMs;
    const first = closes[0]! - run.startedAtMs;
    const lg = longestSilence(x, start + 30, first - 60);
    assert.ok(silentMs(x, start + 30, first - 60) <= 20, `audio before the first close intact: ${silentMs(x, start + 30, first - 60)} ms silent, longest ${lg.lengthMs} at ${lg.startMs}; start ${start.toFixed(0)} first ${first.toFixed(0)}; undecryptable ${JSON.stringify(assertFinished(run).tracks[0]!.packets)}`);
    t.diagnostic(`closes at ${closes.map((c) => (c - run.startedAtMs).toFixed(0)).join(', ')} ms; stopped at ${manifest.durationMs} ms`);
  });
});

describe('the CLI\'s exit code and one-line message after t=0', { concurrency: 2 }, () => {
  for (const [code, fault, exit, line] of [
    [4021, { atMs: 1500, kind: 'voice-close', code: 4021 }, ExitCode.VOICE_REJECTED, /^dvrec: the voice server ended the session \(4021: rate limited \(Discord asks not to reconnect\)\): recording stopped at \d+\.\d s; everything captured until then is kept$/],
    [4022, { atMs: 1500, kind: 'voice-close', code: 4022, then: 'channel-deleted' }, ExitCode.OK, null],
  ] as const) {
    test(`${code}: exit ${exit}, the files listed`, async () => {
      const members = [member(1, HZ[0]!, [[200, 9000]])];
      for (const m of members) opusLoop(m.signal);
      const sim = await startSimulator(scenario(members, { faults: [fault as Fault] }));
      try {
        const out = join(tempDir('dvrec-close-cli-'), 'rec');
        const r = await runCli(['record', '--guild', GUILD, '--channel', CHANNEL, '--out', out, '--duration', '20'], {
          env: baseEnv({ DISCORD_TOKEN: TOKEN, DVREC_API_URL: sim.apiUrl, NODE_EXTRA_CA_CERTS: sim.caCertPath }),
        });
        assert.equal(r.code, exit, r.stderr);
        assert.match(r.stdout, /^Recorded \d+\.\d s, 1 track \(wav\) in /m, 'the files are listed');
        const errs = errorLines(r.stderr);
        if (line) {
          assert.equal(errs.length, 1, r.stderr);
          assert.match(errs[0]!, line);
        } else {
          assert.deepEqual(errs, [], r.stderr);
          assert.match(r.stderr, /the voice channel .* was deleted|disconnected from the voice channel/);
        }
        assert.ok(!(r.stdout + r.stderr).includes(TOKEN));
      } finally {
        await sim.close();
      }
    });
  }
});
