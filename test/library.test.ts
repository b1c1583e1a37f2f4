/**
 * dvrec as a library inside a discord.js bot: the test owns the Client, joins the channel itself, and records with
 * the public API (src/index.ts) against the local Discord, while the bot goes on using the voice connection as
 * bots do (its own receiver.subscribe() stream, speaking events, an AudioPlayer). What is checked is the audio:
 * which member, where on the recording clock, against the simulator's ground truth.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Client, Events, GatewayIntentBits, type Guild, type VoiceBasedChannel } from 'discord.js';
import {
  AudioPlayerStatus, EndBehaviorType, StreamType, createAudioPlayer, createAudioResource, joinVoiceChannel, type VoiceConnection,
} from '@discordjs/voice';
import opusPkg from '@discordjs/opus';
import {
  OutputError, Recorder, UsageError, VoiceRejectedError, type Manifest, type Recording, type Sink, type UserAudioEvent,
} from '../src/index.ts';
import { startSimulator, trustSimulatorCertificate, type Simulator } from '../src/simulator/index.ts';
import type { GroundTruth, Scenario } from '../src/simulator/scenario.ts';
import { opusLoop } from '../src/simulator/opus-cache.ts';
import { BLOCK, CHANNEL, GUILD, TONE_PEAK, TOKEN, msToSample, onsetMs, readWavLeft, scenario, toneAmplitude } from './record-fixtures.ts';
import { cleanupDirs, member, tempDir } from './fault-fixtures.ts';

after(cleanupDirs);

const HZ = [400, 650, 1000];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A bot as its author writes it: a Client logged in to the local Discord, and the voice channel. */
async function bot(sim: Simulator, sc: Scenario): Promise<{ client: Client<true>; guild: Guild; channel: VoiceBasedChannel; join(): VoiceConnection }> {
  const client = new Client({ intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildVoiceStates], rest: { api: sim.apiUrl } });
  const ready = new Promise<void>((resolve) => client.once(Events.ClientReady, () => resolve()));
  await client.login(sc.token);
  await ready;
  const guild = await client.guilds.fetch(sc.guildId);
  const channel = (await guild.channels.fetch(sc.channelId)) as VoiceBasedChannel;
  const join = (): VoiceConnection =>
    joinVoiceChannel({ guildId: guild.id, channelId: channel.id, adapterCreator: guild.voiceAdapterCreator, selfDeaf: false, selfMute: false });
  return { client: client as Client<true>, guild, channel, join };
}

/** A sink that keeps every user's chunks, to rebuild their track as the sink saw it. */
function collectingSink(): Sink & { pcm(userId: string, frames: number): Int16Array; utterances: Map<string, { edge: string; position: number }[]> } {
  const chunks = new Map<string, { position: number; pcm: Buffer }[]>();
  const utterances = new Map<string, { edge: string; position: number }[]>();
  let lastPosition = new Map<string, number>();
  return {
    utterances,
    audio({ userId, position, pcm }) {
      const prev = lastPosition.get(userId) ?? -1;
      assert.ok(position >= prev, `${userId}: chunks only move forward (${position} after ${prev})`);
      lastPosition.set(userId, position + pcm.length / 4);
      (chunks.get(userId) ?? chunks.set(userId, []).get(userId)!).push({ position, pcm });
    },
    utterance({ userId, edge, position }) {
      (utterances.get(userId) ?? utterances.set(userId, []).get(userId)!).push({ edge, position });
    },
    pcm(userId, frames) {
      const left = new Int16Array(frames);
      for (const c of chunks.get(userId) ?? []) {
        for (let i = 0; i < c.pcm.length / 4 && c.position + i < frames; i++) left[c.position + i] = c.pcm.readInt16LE(i * 4);
      }
      return left;
    },
    close() {
      lastPosition = new Map();
    },
  };
}

/** 20 ms blocks inside a spurt (40 ms in from each edge) where the tone is below 30 % of its level. */
function weakBlocks(x: Int16Array, truth: GroundTruth, t0: number, userId: string, hz: number, spurt = 0, rate = 48_000): string[] {
  const s = truth.members.find((m) => m.userId === userId)!.spurts[spurt]!;
  const weak: string[] = [];
  const block = (rate * 20) / 1000;
  for (let ms = s.onsetWallMs - t0 + 40; ms + 20 <= s.endWallMs - t0 - 40; ms += 20) {
    const level = toneAmplitude48(x, Math.round((ms * rate) / 1000), block, hz, rate);
    if (level < 0.3 * TONE_PEAK) weak.push(`${ms.toFixed(0)} ms: ${level.toFixed(0)}`);
  }
  return weak;
}

/** Goertzel at any sample rate (record-fixtures' toneAmplitude assumes 48 kHz). */
function toneAmplitude48(x: Int16Array, from: number, n: number, hz: number, rate: number): number {
  if (rate === 48_000) return toneAmplitude(x, from, n, hz);
  const k = (2 * Math.PI * hz) / rate;
  const c = 2 * Math.cos(k);
  let s1 = 0;
  let s2 = 0;
  for (let i = Math.max(0, from); i < Math.min(x.length, from + n); i++) {
    const s0 = x[i]! + c * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return (2 * Math.sqrt(Math.max(0, s1 * s1 + s2 * s2 - c * s1 * s2))) / n;
}

/** Reads a user stream to its end (in the background), returning what it yielded. */
function drain(stream: AsyncIterable<UserAudioEvent>): Promise<UserAudioEvent[]> {
  return (async () => {
    const out: UserAudioEvent[] = [];
    for await (const e of stream) out.push(e);
    return out;
  })();
}

test('a bot records with the library while it uses its own receiver and plays audio: sinks, streams and files all right', async (t) => {
  const members = [member(1, HZ[0]!, [[300, 1500]]), member(2, HZ[1]!, [[600, 900], [2000, 600]]), member(3, HZ[2]!, [[900, 1200]])];
  const sc = scenario(members, { seed: 41 });
  for (const m of members) opusLoop(m.signal);
  const sim = await startSimulator(sc);
  trustSimulatorCertificate(sim);
  const b = await bot(sim, sc);
  const connection = b.join();
  const recorder = new Recorder();
  const sink = collectingSink();
  const outDir = join(tempDir('dvrec-lib-'), 'out');
  try {
    const recording = recorder.record(connection, { outDir, channel: b.channel, sinks: [sink] });
    // The host bot's own use of the connection, as before it recorded:
    const speakingStarts = new Set<string>();
    connection.receiver.speaking.on('start', (userId) => speakingStarts.add(userId));
    const subscribed: Buffer[] = [];
    connection.receiver.subscribe(members[0]!.userId, { end: { behavior: EndBehaviorType.Manual } }).on('data', (p: Buffer) => subscribed.push(p));
    // Per-user streams: member 2 as a speech recogniser would take it; member 1 read by nobody (a stalled consumer).
    const live = drain(recording.listenTo(members[1]!.userId, { format: 'pcm-16k' }));
    const stalled = recording.listenTo(members[0]!.userId, { format: 'pcm', maxBufferMs: 300 });
    let overflowed = 0;
    stalled.on('overflow', () => overflowed++);
    const utterances: { userId: string; edge: string; atMs: number }[] = [];
    recording.on('utterance', (u) => utterances.push(u));
    const added: string[] = [];
    recording.on('trackAdded', (tr) => added.push(tr.userId));
    const { startedAt } = await recording.ready;
    assert.ok(Date.parse(startedAt) > 0);

    // The bot plays a tone while it records (its AudioPlayer must still work).
    const player = createAudioPlayer();
    connection.subscribe(player);
    const tone = opusLoop({ kind: 'tone', hz: 850 });
    player.play(createAudioResource(Readable.from(Array.from({ length: 60 }, (_, i) => tone[i % tone.length]!)), { inputType: StreamType.Opus }));
    await new Promise<void>((resolve) => player.once(AudioPlayerStatus.Playing, () => resolve()));
    await new Promise<void>((resolve) => player.once(AudioPlayerStatus.Idle, () => resolve()));

    await sleep(3000 - recording.now());
    const manifest = (await recording.stop())!;
    const truth = sim.truth();
    const t0 = Date.parse(manifest.startedAt);
    const frames = Math.round(manifest.durationMs * 48);

    // The host's receiver.subscribe() stream got member 1's Opus, decodable to member 1's tone.
    const decoder = new opusPkg.OpusEncoder(48_000, 2);
    const pcm = Buffer.concat(subscribed.filter((p) => p.length > 3).map((p) => decoder.decode(p)));
    const left = new Int16Array(pcm.length / 4);
    for (let k = 0; k < left.length; k++) left[k] = pcm.readInt16LE(k * 4);
    assert.ok(subscribed.length >= 0.9 * truth.members[0]!.audioPacketsSent, `subscribe() got ${subscribed.length} of ${truth.members[0]!.audioPacketsSent}`);
    assert.ok(toneAmplitude(left, Math.floor(left.length / 2), BLOCK, HZ[0]!) > 0.5 * TONE_PEAK, 'the subscribed stream is member 1\'s tone');
    assert.deepEqual([...speakingStarts].sort(), members.map((m) => m.userId).sort(), 'speaking events fired for everyone');
    // The AudioPlayer's packets reached the voice server, transport- and DAVE-decryptable by the call's members.
    const played = sim.recorderAudio();
    t.diagnostic(`bot audio at the server: ${JSON.stringify(played)}`);
    assert.ok(played.decrypted >= 55, `the bot's audio was received and decrypted: ${JSON.stringify(played)}`);

    // Every member in its own track, from the files, from the sink, and from the events.
    assert.deepEqual(added.sort(), members.map((m) => m.userId).sort());
    assert.equal(manifest.tracks.length, 3);
    for (const [i, m] of members.entries()) {
      const tr = manifest.tracks.find((x) => x.userId === m.userId)!;
      const file = readWavLeft(join(outDir, tr.file));
      const fromSink = sink.pcm(m.userId, file.length);
      for (const [s, spurt] of truth.members[i]!.spurts.entries()) {
        const onset = spurt.onsetWallMs - t0;
        const fileOn = onsetMs(file, onset - 100, onset + 200);
        const sinkOn = onsetMs(fromSink, onset - 100, onset + 200);
        assert.ok(fileOn !== null && Math.abs(fileOn - onset) <= 20, `${m.userId} spurt ${s}: file onset ${fileOn} vs ${onset.toFixed(1)}`);
        assert.ok(sinkOn !== null && Math.abs(sinkOn - onset) <= 20, `${m.userId} spurt ${s}: sink onset ${sinkOn} vs ${onset.toFixed(1)}`);
        assert.deepEqual(weakBlocks(fromSink, truth, t0, m.userId, m.signal.kind === 'tone' ? m.signal.hz : 0, s), [], `${m.userId}: the sink has the tone in every block`);
        // The manifest's utterances and the live events put each spurt where it was spoken.
        const u = tr.utterances![s]!;
        assert.ok(Math.abs(u.startMs - onset) <= 20 && Math.abs(u.endMs - (spurt.endWallMs - t0)) <= 20, `${m.userId}: utterance ${JSON.stringify(u)} vs ${onset.toFixed(1)}–${(spurt.endWallMs - t0).toFixed(1)}`);
        const ev = utterances.filter((x) => x.userId === m.userId);
        assert.ok(Math.abs(ev[2 * s]!.atMs - onset) <= 20 && ev[2 * s]!.edge === 'start', `${m.userId}: live utterance start`);
      }
      // The sink saw exactly what the file holds.
      let differ = 0;
      for (let k = 0; k < file.length; k++) if (file[k] !== fromSink[k]) differ++;
      assert.equal(differ, 0, `${m.userId}: the sink's audio is the track's`);
    }

    // The listenTo stream: member 2's own tone at 16 kHz mono, utterance edges within 20 ms of the truth.
    const events = await live;
    const audio = events.filter((e): e is Extract<UserAudioEvent, { type: 'audio' }> => e.type === 'audio');
    assert.ok(audio.length > 0 && audio.every((a) => a.sampleRate === 16_000 && a.channels === 1));
    const x16 = new Int16Array(Math.ceil((manifest.durationMs * 16_000) / 1000) + 16_000);
    for (const a of audio) {
      const at = Math.round((a.startMs * 16_000) / 1000);
      for (let k = 0; k < a.data.length / 2; k++) if (at + k >= 0 && at + k < x16.length) x16[at + k] = a.data.readInt16LE(k * 2);
    }
    assert.deepEqual(weakBlocks(x16, truth, t0, members[1]!.userId, HZ[1]!, 0, 16_000), [], 'member 2\'s tone at 16 kHz, spurt 1');
    assert.deepEqual(weakBlocks(x16, truth, t0, members[1]!.userId, HZ[1]!, 1, 16_000), [], 'member 2\'s tone at 16 kHz, spurt 2');
    const mid = Math.round((((truth.members[1]!.spurts[0]!.onsetWallMs + truth.members[1]!.spurts[0]!.endWallMs) / 2 - t0) * 16_000) / 1000);
    assert.ok(toneAmplitude48(x16, mid, 320, HZ[0]!, 16_000) < 0.05 * TONE_PEAK, 'no other member in member 2\'s stream');
    const edges = events.filter((e): e is Extract<UserAudioEvent, { type: 'utterance' }> => e.type === 'utterance');
    assert.equal(edges.length, 4, JSON.stringify(edges));
    for (const [s, spurt] of truth.members[1]!.spurts.entries()) {
      assert.ok(Math.abs(edges[2 * s]!.atMs - (spurt.onsetWallMs - t0)) <= 20, `stream utterance ${s} start ${edges[2 * s]!.atMs}`);
      assert.ok(Math.abs(edges[2 * s + 1]!.atMs - (spurt.endWallMs - t0)) <= 20, `stream utterance ${s} end ${edges[2 * s + 1]!.atMs}`);
    }
    // The stalled reader: its backlog was bounded, what it missed was counted and reported, and nobody else suffered.
    assert.ok(stalled.missedMs >= 1000, `missed ${stalled.missedMs} ms`);
    assert.equal(overflowed, 1, 'one overflow episode');
    const kept = await drain(stalled);
    const keptMs = kept.filter((e) => e.type === 'audio').reduce((n, e) => n + (e.type === 'audio' ? e.data.length / 4 / 48 : 0), 0);
    assert.ok(keptMs <= 300 + 20, `kept ${keptMs} ms`);
    t.diagnostic(`stalled reader: ${stalled.missedMs.toFixed(0)} ms missed, ${keptMs.toFixed(0)} ms kept`);
  } finally {
    connection.destroy();
    await recorder.close();
    await b.client.destroy();
    await sim.close();
  }
});

test('two guilds at once in one process, one pool: each right, and stopping one disturbs nothing of the other', async () => {
  const sc1 = scenario([member(1, HZ[0]!, [[200, 2600]])], { seed: 51 });
  const sc2 = scenario([member(2, HZ[1]!, [[300, 2700]])], { seed: 52, guildId: '100000000000000011', channelId: '100000000000000012' });
  for (const m of [...sc1.members, ...sc2.members]) opusLoop(m.signal);
  const sims = [await startSimulator(sc1), await startSimulator(sc2)];
  for (const s of sims) trustSimulatorCertificate(s);
  const bots = [await bot(sims[0]!, sc1), await bot(sims[1]!, sc2)];
  const connections = bots.map((b) => b.join());
  const recorder = new Recorder({ workers: 2 });
  const dirs = [join(tempDir('dvrec-lib-'), 'a'), join(tempDir('dvrec-lib-'), 'b')];
  try {
    const recs = connections.map((c, i) => recorder.record(c, { outDir: dirs[i]!, channel: bots[i]!.channel }));
    await Promise.all(recs.map((r) => r.ready));
    await sleep(1500 - recs[0]!.now());
    const first = (await recs[0]!.stop())!;
    assert.equal(recs[1]!.state.status, 'recording', 'the other recording goes on');
    await sleep(3200 - recs[1]!.now());
    const second = (await recs[1]!.stop())!;
    const check = (m: Manifest, dir: string, sim: Simulator, hz: number): void => {
      const t0 = Date.parse(m.startedAt);
      const truth = sim.truth();
      assert.equal(m.tracks.length, 1);
      const x = readWavLeft(join(dir, m.tracks[0]!.file));
      const s = truth.members[0]!.spurts[0]!;
      const on = onsetMs(x, s.onsetWallMs - t0 - 100, s.onsetWallMs - t0 + 200);
      assert.ok(on !== null && Math.abs(on - (s.onsetWallMs - t0)) <= 20, `onset ${on}`);
      // The tone in every block up to the stop (or the spurt's end).
      const end = Math.min(m.durationMs - 60, s.endWallMs - t0 - 40);
      for (let ms = s.onsetWallMs - t0 + 40; ms + 20 <= end; ms += 20) {
        assert.ok(toneAmplitude(x, msToSample(ms), BLOCK, hz) > 0.3 * TONE_PEAK, `tone at ${ms.toFixed(0)} ms of ${m.guildId}`);
      }
    };
    check(first, dirs[0]!, sims[0]!, HZ[0]!);
    check(second, dirs[1]!, sims[1]!, HZ[1]!);
    assert.ok(first.durationMs < 1700 && second.durationMs > 3000, `${first.durationMs} / ${second.durationMs}`);
  } finally {
    for (const c of connections) c.destroy();
    await recorder.close();
    for (const b of bots) await b.client.destroy();
    for (const s of sims) await s.close();
  }
});

test('pause and resume: the paused stretch is silence in every track, the timeline runs on, the manifest lists it; notes become labels', async () => {
  const members = [member(1, HZ[0]!, [[200, 2600]]), member(2, HZ[2]!, [[250, 2500]])];
  const sc = scenario(members, { seed: 61 });
  for (const m of members) opusLoop(m.signal);
  const sim = await startSimulator(sc);
  trustSimulatorCertificate(sim);
  const b = await bot(sim, sc);
  const connection = b.join();
  const recorder = new Recorder();
  const outDir = join(tempDir('dvrec-lib-'), 'out');
  try {
    const rec = recorder.record(connection, { outDir, channel: b.channel });
    await rec.ready;
    assert.throws(() => rec.note('   '), UsageError);
    await sleep(500 - rec.now());
    const n1 = rec.note('first\tnote\nacross lines', { userId: members[0]!.userId, name: 'Member 1' });
    const n1Ms = rec.now();
    await sleep(1000 - rec.now());
    rec.pause();
    assert.equal(rec.paused, true);
    await sleep(1800 - rec.now());
    rec.resume();
    await sleep(2200 - rec.now());
    const n2Ms = rec.now();
    rec.note('second');
    await sleep(3000 - rec.now());
    const m = (await rec.stop())!;
    // Notes: in the manifest at the moment they were made, and as Audacity labels beside the tracks.
    assert.equal(n1.text, 'first note across lines');
    assert.deepEqual(m.notes?.map((n) => n.text), ['first note across lines', 'second']);
    assert.ok(Math.abs(m.notes![0]!.atMs - n1Ms) <= 20 && Math.abs(m.notes![1]!.atMs - n2Ms) <= 20, JSON.stringify(m.notes));
    assert.equal(m.notes![0]!.userId, members[0]!.userId);
    assert.equal(m.labels, 'labels.txt');
    const labels = readFileSync(join(outDir, 'labels.txt'), 'utf8').trim().split('\n').map((l) => l.split('\t'));
    assert.deepEqual(labels.map((l) => l.length), [3, 3]);
    assert.equal(labels[0]![2], 'Member 1: first note across lines');
    assert.ok(Math.abs(Number(labels[1]![0]) * 1000 - m.notes![1]!.atMs) < 1 && labels[1]![0] === labels[1]![1], labels[1]!.join('|'));
    assert.equal(m.pauses?.length, 1);
    const p = m.pauses![0]!;
    assert.ok(Math.abs(p.startMs - 1000) <= 30 && Math.abs(p.endMs - 1800) <= 30, JSON.stringify(p));
    const lengths = new Set<number>();
    for (const [i, mem] of members.entries()) {
      const tr = m.tracks.find((x) => x.userId === mem.userId)!;
      const x = readWavLeft(join(outDir, tr.file));
      lengths.add(x.length);
      const hz = mem.signal.kind === 'tone' ? mem.signal.hz : 0;
      // Before the pause (what was already in the jitter buffer may still land just after it) and after it: the tone.
      for (const ms of [600, 900, 2000, 2400]) assert.ok(toneAmplitude(x, msToSample(ms), BLOCK, hz) > 0.3 * TONE_PEAK, `${i}: tone at ${ms} ms`);
      // Inside the pause: nothing at all.
      for (let ms = p.startMs + 300; ms + 20 <= p.endMs - 20; ms += 20) {
        assert.ok(toneAmplitude(x, msToSample(ms), BLOCK, hz) < 50, `${i}: silence at ${ms} ms (paused)`);
      }
    }
    assert.equal(lengths.size, 1, 'equal lengths');
  } finally {
    connection.destroy();
    await recorder.close();
    await b.client.destroy();
    await sim.close();
  }
});

test('a stop with nobody speaking: a manifest with no tracks, of the recording\'s length; typed errors for misuse', async () => {
  const members = [member(1, HZ[0]!, [])];
  const sc = scenario(members, { seed: 71 });
  const sim = await startSimulator(sc);
  trustSimulatorCertificate(sim);
  const b = await bot(sim, sc);
  const connection = b.join();
  const recorder = new Recorder();
  const root = tempDir('dvrec-lib-');
  const outDir = join(root, 'out');
  try {
    assert.throws(() => recorder.record(connection, { outDir, format: 'ogg' as never }), UsageError);
    assert.throws(() => recorder.record(connection, { outDir, stopWhenEmptyMs: 1000 }), (e: unknown) => e instanceof UsageError && /needs `channel`/.test(e.message));
    writeFileSync(join(root, 'file'), 'x');
    assert.throws(() => recorder.record(connection, { outDir: join(root, 'file', 'sub') }), OutputError);
    const rec: Recording = recorder.record(connection, { outDir, channel: b.channel });
    assert.throws(() => recorder.record(connection, { outDir: join(root, 'again') }), (e: unknown) => e instanceof UsageError && /already being recorded/.test(e.message));
    await rec.ready;
    await sleep(1200 - rec.now());
    const m = (await rec.stop())!;
    assert.deepEqual(m.tracks, []);
    assert.ok(m.durationMs >= 1150 && m.durationMs <= 1500, `${m.durationMs}`);
    assert.deepEqual(readdirSync(outDir).sort(), ['manifest.json']);
  } finally {
    connection.destroy();
    await recorder.close();
    await b.client.destroy();
    await sim.close();
  }
});

test('a session the voice server refuses (4017): ready and finished reject with VoiceRejectedError, nothing left on disk', async () => {
  const sc = scenario([member(1, HZ[0]!, [[100, 500]])], { seed: 72, rejectVoiceWith: 4017 });
  const sim = await startSimulator(sc);
  trustSimulatorCertificate(sim);
  const b = await bot(sim, sc);
  const connection = b.join();
  const recorder = new Recorder();
  const outDir = join(tempDir('dvrec-lib-'), 'nested', 'out');
  try {
    const rec = recorder.record(connection, { outDir, channel: b.channel, readyTimeoutMs: 10_000 });
    await assert.rejects(rec.ready, (e: unknown) => e instanceof VoiceRejectedError && e.closeCode === 4017 && /DAVE/.test(e.message));
    await assert.rejects(rec.finished, VoiceRejectedError);
    assert.equal(rec.state.status, 'stopped');
    assert.equal(await rec.stop(), null);
    assert.ok(!existsSync(outDir), 'the output directory the recording created is gone');
  } finally {
    connection.destroy();
    await recorder.close();
    await b.client.destroy();
    await sim.close();
  }
});
