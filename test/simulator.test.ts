/**
 * The local Discord (src/simulator) against the REAL, unmodified discord.js 14 + @discordjs/voice 0.19 client
 * over loopback: login, join, receive each member's Opus decrypted and check the decoded tone; both transport
 * modes; impairments and faults as scripted; hostile datagrams and RTCP; clean shutdown.
 */
import opus from '@discordjs/opus';
import { EndBehaviorType, entersState, joinVoiceChannel, VoiceConnectionStatus, type VoiceConnection } from '@discordjs/voice';
import { spawn } from 'node:child_process';
import { createDecipheriv } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Client, GatewayIntentBits } from 'discord.js';
import { startSimulator, trustSimulatorCertificate, type Simulator } from '../src/simulator/index.ts';
import { HOSTILE_KINDS } from '../src/simulator/hostile.ts';
import { ImpairmentModel } from '../src/simulator/impairments.ts';
import { Prng } from '../src/simulator/prng.ts';
import type { Impairments, Scenario, SimMember, TransportMode } from '../src/simulator/scenario.ts';

const { OpusEncoder } = opus;
const sodium = createRequire(import.meta.url)('sodium-native') as {
  crypto_aead_xchacha20poly1305_ietf_decrypt(m: Buffer, nsec: null, c: Buffer, ad: Buffer, npub: Buffer, k: Buffer): number;
};

const GUILD = '810000000000000001';
const CHANNEL = '810000000000000002';
const BOT = '810000000000000003';
const TOKEN = 'simulated-token-0123456789';

function member(n: number, hz: number, spurts: SimMember['spurts'], extra: Partial<SimMember> = {}): SimMember {
  return { userId: `82000000000000000${n}`, username: `member${n}`, signal: { kind: 'tone', hz }, spurts, ...extra };
}

function scenario(over: Partial<Scenario>): Scenario {
  return { seed: 42, guildId: GUILD, channelId: CHANNEL, botUserId: BOT, token: TOKEN, dave: false, members: [], ...over };
}

/** Goertzel power of `freq` in mono float samples at 48 kHz. */
function goertzel(samples: Float64Array, freq: number): number {
  const w = (2 * Math.PI * freq) / 48_000;
  const c = 2 * Math.cos(w);
  let s1 = 0;
  let s2 = 0;
  for (const x of samples) {
    const s0 = x + c * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return s1 * s1 + s2 * s2 - c * s1 * s2;
}

/** Decodes Opus packets (skipping silence frames) to mono samples. */
function decodeMono(packets: Buffer[]): Float64Array {
  const dec = new OpusEncoder(48_000, 2); // @discordjs/opus decodes with its OpusEncoder class
  const chunks: Int16Array[] = [];
  for (const p of packets) {
    if (p.length <= 3) continue; // F8 FF FE silence
    const pcm = dec.decode(p);
    chunks.push(new Int16Array(pcm.buffer, pcm.byteOffset, pcm.byteLength / 2));
  }
  const frames = chunks.reduce((n, c) => n + c.length / 2, 0);
  const out = new Float64Array(frames);
  let o = 0;
  for (const c of chunks) for (let i = 0; i < c.length; i += 2) out[o++] = (c[i]! + c[i + 1]!) / 65536;
  return out;
}

/** Asserts that `hz` dominates the decoded audio among all members' frequencies. */
function assertTone(packets: Buffer[], hz: number, all: number[], who: string): void {
  const mono = decodeMono(packets);
  assert.ok(mono.length >= 48_000 / 2, `${who}: at least 0.5 s decoded (got ${mono.length} samples)`);
  const own = goertzel(mono, hz);
  for (const other of all) {
    if (other === hz) continue;
    assert.ok(own > 20 * goertzel(mono, other), `${who}: ${hz} Hz must dominate ${other} Hz`);
  }
}

interface Session {
  sim: Simulator;
  client: Client;
  connection: VoiceConnection;
}

async function connect(sc: Scenario, onSimulator?: (sim: Simulator) => void): Promise<Session> {
  const sim = await startSimulator(sc);
  onSimulator?.(sim);
  trustSimulatorCertificate(sim);
  const client = new Client({ intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildVoiceStates], rest: { api: sim.apiUrl } });
  const ready = once(client, 'clientReady');
  await client.login(sc.token);
  await ready;
  const guild = client.guilds.cache.get(sc.guildId);
  assert.ok(guild, 'guild is cached from GUILD_CREATE');
  const channel = guild.channels.cache.get(sc.channelId);
  assert.ok(channel?.isVoiceBased(), 'voice channel is voice based');
  const connection = joinVoiceChannel({
    guildId: sc.guildId,
    channelId: sc.channelId,
    selfDeaf: false,
    adapterCreator: guild.voiceAdapterCreator,
  });
  await entersState(connection, VoiceConnectionStatus.Ready, 10_000);
  return { sim, client, connection };
}

async function disconnect(s: Session): Promise<void> {
  s.connection.destroy();
  await s.client.destroy();
  await s.sim.close();
}

/** The Networking state of a ready connection (mode, key, udp socket), read as @discordjs/voice keeps it. */
function networking(connection: VoiceConnection): { mode: string; key: Buffer; udp: any } {
  const state = connection.state as any;
  const ns = state.networking.state;
  return { mode: ns.connectionData.encryptionMode, key: Buffer.from(ns.connectionData.secretKey), udp: ns.udp };
}

/** An IP discovery response (type 2, length 70), not an RTP packet that happens to be 74 bytes long. */
function isDiscovery(msg: Buffer): boolean {
  return msg.length === 74 && msg.readUInt16BE(0) === 2 && msg.readUInt16BE(2) === 70;
}

interface RtpPacket {
  ssrc: number;
  seq: number;
  timestamp: number;
  marker: boolean;
  /** The header extension body (decrypted), when the X bit is set. */
  extension?: Buffer;
  opus: Buffer;
}

/** Independent rtpsize decryption for the raw tap (both modes). Returns the packet or null. */
function openRtp(msg: Buffer, mode: string, key: Buffer): RtpPacket | null {
  if (msg.length < 12 + 20 || msg[0]! >> 6 !== 2 || (msg[1]! & 0x7f) !== 0x78) return null;
  const x = (msg[0]! & 0x10) !== 0;
  const aadLen = 12 + (x ? 4 : 0);
  const aad = msg.subarray(0, aadLen);
  const tag = msg.subarray(msg.length - 20, msg.length - 4);
  const ct = msg.subarray(aadLen, msg.length - 20);
  let plain: Buffer;
  try {
    if (mode === 'aead_aes256_gcm_rtpsize') {
      const nonce = Buffer.alloc(12);
      msg.copy(nonce, 0, msg.length - 4);
      const d = createDecipheriv('aes-256-gcm', key, nonce);
      d.setAAD(aad);
      d.setAuthTag(tag);
      plain = Buffer.concat([d.update(ct), d.final()]);
    } else {
      const nonce = Buffer.alloc(24);
      msg.copy(nonce, 0, msg.length - 4);
      plain = Buffer.alloc(ct.length);
      sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(plain, null, Buffer.concat([ct, tag]), aad, nonce, key);
    }
  } catch {
    return null;
  }
  const extWords = x ? msg.readUInt16BE(14) : 0;
  return {
    ssrc: msg.readUInt32BE(8),
    seq: msg.readUInt16BE(2),
    timestamp: msg.readUInt32BE(4),
    marker: (msg[1]! & 0x80) !== 0,
    ...(x ? { extension: plain.subarray(0, extWords * 4) } : {}),
    opus: plain.subarray(extWords * 4),
  };
}

/** Expected loss rate of the model: bursts of L started with probability b outside bursts, independent loss p. */
function expectedLoss(c: Impairments): number {
  const b = c.burst?.probability ?? 0;
  const L = c.burst?.length ?? 0;
  const p = c.loss ?? 0;
  return (b * L + (1 - b) * p) / (1 + b * Math.max(0, L - 1));
}

test('impairment model (seeded): bursts drop runs of exactly their length, loss/reorder/duplicate rates and jitter bounds as configured', () => {
  const cfg: Impairments = { loss: 0.05, burst: { probability: 0.02, length: 6 }, reorder: 0.1, duplicate: 0.07, jitterMs: 12 };
  const N = 400_000;
  const model = new ImpairmentModel(cfg, new Prng(99));
  let lost = 0;
  let delivered = 0;
  let reordered = 0;
  let duplicated = 0;
  let bursts = 0;
  let burstLeft = 0;
  const plain: number[] = [];
  const held = [0, 0, 0, 0];
  for (let i = 0; i < N; i++) {
    const v = model.decide();
    // A burst is this packet and exactly the next length − 1, all 'burst'; nothing else is.
    if (burstLeft > 0) {
      assert.ok(v.lost && v.cause === 'burst' && !v.burstStart, `packet ${i} is inside a burst`);
      burstLeft--;
      lost++;
      continue;
    }
    assert.notEqual(v.cause === 'burst' && !v.burstStart, true, `packet ${i}: burst loss outside a burst`);
    if (v.burstStart) {
      bursts++;
      burstLeft = cfg.burst!.length - 1;
    }
    if (v.lost) {
      assert.deepEqual(v.delaysMs, []);
      lost++;
      continue;
    }
    delivered++;
    const [first, second] = v.delaysMs as [number, number | undefined];
    if (v.reordered) {
      reordered++;
      // Held back 1..3 packet intervals (+1 ms so it lands after them), plus jitter.
      const intervals = Math.floor((first - 1) / 20);
      assert.ok(intervals >= 1 && intervals <= 3 && first - 1 - intervals * 20 < cfg.jitterMs!, `reorder delay ${first}`);
      held[intervals]!++;
    } else {
      assert.ok(first >= 0 && first < cfg.jitterMs!, `jitter ${first} outside 0..${cfg.jitterMs}`);
      plain.push(first);
    }
    assert.equal(v.delaysMs.length, v.duplicated ? 2 : 1);
    if (v.duplicated) {
      duplicated++;
      assert.ok(second! >= first && second! - first < cfg.jitterMs!, `duplicate copy ${second! - first} ms after the first`);
    }
  }
  // σ of the loss rate here is ≈ 0.0012 (bursts dominate); the others ≈ 0.0005. Bounds are ≈ 4σ.
  const rate = lost / N;
  assert.ok(Math.abs(rate - expectedLoss(cfg)) < 0.005, `loss rate ${rate.toFixed(4)} vs expected ${expectedLoss(cfg).toFixed(4)}`);
  assert.ok(Math.abs(bursts / (N / (1 + 0.02 * 5)) - 0.02) < 0.002, `burst start rate ${bursts}`);
  assert.ok(Math.abs(reordered / delivered - cfg.reorder!) < 0.003, `reorder rate ${(reordered / delivered).toFixed(4)}`);
  assert.ok(Math.abs(duplicated / delivered - cfg.duplicate!) < 0.003, `duplicate rate ${(duplicated / delivered).toFixed(4)}`);
  for (const n of [1, 2, 3]) assert.ok(Math.abs(held[n]! / reordered - 1 / 3) < 0.02, `held back ${n} intervals: ${held[n]}`);
  // Jitter is uniform over 0..jitterMs: mean, spread and both ends.
  const mean = plain.reduce((a, b) => a + b, 0) / plain.length;
  assert.ok(Math.abs(mean - cfg.jitterMs! / 2) < 0.1, `mean jitter ${mean.toFixed(3)} ms`);
  const [lo, hi] = plain.reduce(([a, b], x) => [Math.min(a, x), Math.max(b, x)], [Infinity, -Infinity]);
  assert.ok(lo < 0.01 && hi > cfg.jitterMs! - 0.01, `jitter spans 0..jitterMs (${lo}..${hi})`);
  // No configuration, no impairment.
  const clean = new ImpairmentModel(undefined, new Prng(1));
  for (let i = 0; i < 1000; i++) assert.deepEqual(clean.decide().delaysMs, [0]);
});

describe('simulator', { timeout: 60_000 }, () => {
  test('REST answers like Discord (gateway/bot, users/@me, 401/403/404)', async () => {
    const sim = await startSimulator(scenario({ extraChannels: [{ id: '810000000000000009', type: 2, name: 'Secret' }], denyView: ['810000000000000009'] }));
    try {
      const get = async (path: string, token = TOKEN) => {
        const r = await fetch(`${sim.apiUrl}/v10${path}`, { headers: { authorization: `Bot ${token}` } });
        return { status: r.status, type: r.headers.get('content-type'), body: (await r.json()) as any };
      };
      const gw = await get('/gateway/bot');
      assert.equal(gw.status, 200);
      assert.match(gw.type ?? '', /application\/json/);
      assert.match(gw.body.url, /^ws:\/\/127\.0\.0\.1:\d+$/);
      assert.equal((await get('/users/@me')).body.id, BOT);
      assert.deepEqual((await get('/users/@me', 'wrong-token-xxxxxxxx')).body, { message: '401: Unauthorized', code: 0 });
      assert.equal((await get(`/channels/${CHANNEL}`)).body.type, 2);
      const denied = await get('/channels/810000000000000009');
      assert.deepEqual([denied.status, denied.body.code], [403, 50001]);
      const unknown = await get('/channels/810000000000000099');
      assert.deepEqual([unknown.status, unknown.body.code], [404, 10003]);
      assert.equal((await get('/guilds/810000000000000098')).body.code, 10004);
      assert.equal((await get(`/guilds/${GUILD}/members/810000000000000097`)).body.code, 10007);
      assert.equal((await get(`/guilds/${GUILD}/channels`)).body.length, 1, 'hidden channel not listed');
    } finally {
      await sim.close();
    }
  });

  test('a bad token is refused by the gateway with 4004', async () => {
    const sim = await startSimulator(scenario({}));
    try {
      const ws = new WebSocket(sim.apiUrl.replace('http', 'ws').replace('/api', '') + '?v=10&encoding=json');
      ws.onmessage = (e) => {
        const msg = JSON.parse(String(e.data));
        if (msg.op === 10) ws.send(JSON.stringify({ op: 2, d: { token: 'not-the-token-xxxx', intents: 129, properties: {} } }));
      };
      const [ev] = (await once(ws, 'close')) as [CloseEvent];
      assert.equal(ev.code, 4004);
    } finally {
      await sim.close();
    }
  });

  test('discord.js logs in, joins, and receives every member decrypted (aead_aes256_gcm_rtpsize)', async () => {
    const tones = [440, 700, 1100];
    const members = [
      member(1, tones[0]!, [{ atMs: 100, durationMs: 1200 }, { atMs: 1800, durationMs: 600 }]),
      member(2, tones[1]!, [{ atMs: 300, durationMs: 1400 }]),
      member(3, tones[2]!, [{ atMs: 200, durationMs: 1000 }], { joinAtMs: 400 }),
    ];
    const s = await connect(scenario({ members, modes: ['aead_aes256_gcm_rtpsize'] }));
    try {
      assert.equal(networking(s.connection).mode, 'aead_aes256_gcm_rtpsize');
      const got = new Map<string, Buffer[]>(members.map((m) => [m.userId, []]));
      for (const m of members) {
        const stream = s.connection.receiver.subscribe(m.userId, { end: { behavior: EndBehaviorType.Manual } });
        stream.on('data', (d: Buffer) => got.get(m.userId)!.push(d));
        stream.on('error', (e) => assert.fail(`receive stream of ${m.username}: ${e.message}`));
      }
      const joins: string[] = [];
      s.sim.events.on('member-join', (e) => joins.push(e.userId));
      await sleep(2900);
      const truth = s.sim.truth();
      assert.ok(truth.sessionStartWallMs !== null);
      assert.deepEqual(joins, [members[2]!.userId], 'member 3 joined mid-call');
      members.forEach((m, i) => {
        const t = truth.members[i]!;
        const packets = got.get(m.userId)!;
        // Member 3 joined at 400 ms: its 200 ms spurt start was before it was in the call.
        assert.equal(t.packetsLost, 0);
        assert.ok(t.packetsSent > 0);
        // Every packet the simulator sent arrived and was mapped to its user (loopback, no impairments, op 5 always
        // ahead of an SSRC's first packet); decrypted payloads include the 5 silence frames per spurt.
        assert.equal(packets.length, t.packetsSent, `${m.username}: ${packets.length} of ${t.packetsSent}`);
        assert.equal(packets.filter((p) => p.equals(Buffer.from([0xf8, 0xff, 0xfe]))).length, 5 * t.spurts.length);
        assertTone(packets, tones[i]!, tones, m.username);
      });
      assert.equal(truth.members[0]!.spurts.length, 2);
      const first = truth.members[0]!.spurts[0]!;
      // Spurt 1 starts at scenario 100 ms: its first packet left ~100 ms after session start.
      assert.ok(Math.abs(first.startWallMs - truth.sessionStartWallMs! - 100) < 50, `spurt start ${first.startWallMs - truth.sessionStartWallMs!} ms`);
      assert.equal(first.packetsSent, 60 + 5);
    } finally {
      await disconnect(s);
    }
  });

  test('aead_xchacha20_poly1305_rtpsize (raw tap): every member decrypts; header extensions, marker bits, RTP timestamps that jump across silence; a chirp sweeps', async () => {
    // @discordjs/voice 0.19.2's own xchacha path is broken when sodium-native 5 is installed (it reads
    // crypto_aead_xchacha20poly1305_ietf_ABYTES from an ESM namespace where it is undefined → Buffer.alloc(NaN)),
    // so receiver.subscribe cannot be used in this mode; decrypt the datagrams from its UDP socket instead.
    const chirp = { kind: 'chirp', fromHz: 600, toHz: 1400, periodMs: 1000 } as const;
    const members = [
      member(1, 523, [{ atMs: 100, durationMs: 600 }, { atMs: 1100, durationMs: 500 }]),
      { ...member(2, 0, [{ atMs: 200, durationMs: 1300 }], { extensionRatio: 1 }), signal: chirp },
    ];
    const s = await connect(scenario({ seed: 9, members, modes: ['aead_xchacha20_poly1305_rtpsize', 'aead_aes256_gcm_rtpsize'] }));
    try {
      const { mode, key, udp } = networking(s.connection);
      assert.equal(mode, 'aead_xchacha20_poly1305_rtpsize');
      udp.off('message', (s.connection.receiver as any).onUdpMessage);
      const bySsrc = new Map<number, RtpPacket[]>();
      let bad = 0;
      udp.on('message', (msg: Buffer) => {
        if (msg.length <= 8 || isDiscovery(msg)) return;
        const p = openRtp(msg, mode, key);
        if (!p) return void bad++;
        if (!bySsrc.has(p.ssrc)) bySsrc.set(p.ssrc, []);
        bySsrc.get(p.ssrc)!.push(p);
      });
      await sleep(2000);
      assert.equal(bad, 0, 'every datagram authenticates');
      const truth = s.sim.truth();
      const [p1, p2] = truth.members.map((t, i) => {
        const packets = bySsrc.get(t.ssrcs[0]!) ?? [];
        assert.equal(packets.length, t.packetsSent, `${members[i]!.username}: all packets`);
        return packets;
      }) as [RtpPacket[], RtpPacket[]];
      assertTone(p1.map((p) => p.opus), 523, [523, 1000], 'member1');

      // Member 1: two spurts of 30 and 25 audio frames, each followed by 5 silence frames. Inside a spurt the RTP
      // timestamp advances 960 per packet; across the pause it jumps by the pause (tick 39 → tick 55), while the
      // sequence number goes on by 1. The first packet of each spurt has the marker bit.
      assert.equal(p1.length, 30 + 5 + 25 + 5);
      const tsSteps = p1.slice(1).map((p, i) => (p.timestamp - p1[i]!.timestamp) >>> 0);
      const seqSteps = p1.slice(1).map((p, i) => (p.seq - p1[i]!.seq) & 0xffff);
      assert.deepEqual(seqSteps, new Array(p1.length - 1).fill(1));
      assert.deepEqual(tsSteps.map((d, i) => (d !== 960 ? `${i}:${d}` : '')).filter(Boolean), [`34:${(55 - 39) * 960}`], 'one timestamp jump, across the pause');
      assert.deepEqual(p1.flatMap((p, i) => (p.marker ? [i] : [])), [0, 35], 'marker bit on each spurt\'s first packet');
      assert.deepEqual(p1.slice(30, 35).map((p) => p.opus.toString('hex')), new Array(5).fill('f8fffe'), '5 silence frames end the spurt');
      // Header extensions: default ratio 0.3 for member 1, every packet for member 2; the body is the
      // ssrc-audio-level element and the Opus after it decodes (the tone checks above and below).
      const x1 = p1.filter((p) => p.extension).length / p1.length;
      assert.ok(x1 > 0.15 && x1 < 0.45, `member 1: ${(100 * x1).toFixed(0)} % of packets carry the header extension`);
      assert.ok(p2.every((p) => p.extension?.length === 4 && p.extension[0] === 0x10), 'member 2: every packet carries the audio-level extension');

      // Member 2's chirp: frame k of the call (tick k) carries loop position k mod 50, a linear sweep 600 → 1400 Hz.
      const firstTick = 10; // spurt at 200 ms
      const dec = new OpusEncoder(48_000, 2);
      let near = 0;
      let checked = 0;
      p2.forEach((p, j) => {
        if (p.opus.length <= 3) return;
        const pcm = dec.decode(p.opus);
        const mono = new Float64Array(960);
        for (let i = 0; i < 960; i++) mono[i] = pcm.readInt16LE(i * 4) + pcm.readInt16LE(i * 4 + 2);
        const pos = (firstTick + j) % 50;
        if (j < 2 || pos === 0 || pos === 49) return; // decoder start-up; the sweep's wrap inside a frame
        const expected = chirp.fromHz + ((chirp.toHz - chirp.fromHz) * (pos + 0.5)) / 50;
        let best = 0;
        let bestHz = 0;
        for (let hz = 400; hz <= 1600; hz += 5) {
          const e = goertzel(mono, hz);
          if (e > best) [best, bestHz] = [e, hz];
        }
        checked++;
        if (Math.abs(bestHz - expected) <= 40) near++;
      });
      assert.ok(checked > 50 && near >= 0.9 * checked, `chirp: ${near} of ${checked} frames at the expected frequency`);
    } finally {
      await disconnect(s);
    }
  });

  test('a member leaves (op 13) and rejoins with a new SSRC; op 5 precedes its packets again', async () => {
    const members = [member(1, 500, [{ atMs: 100, durationMs: 2600 }], { leaveAtMs: 900, rejoinAtMs: 1500 })];
    const s = await connect(scenario({ seed: 11, members }));
    try {
      const packets: Buffer[] = [];
      const stream = s.connection.receiver.subscribe(members[0]!.userId, { end: { behavior: EndBehaviorType.Manual } });
      stream.on('data', (d: Buffer) => packets.push(d));
      const seen: string[] = [];
      s.sim.events.on('member-leave', () => seen.push('leave'));
      s.sim.events.on('member-join', (e) => seen.push(e.rejoin ? 'rejoin' : 'join'));
      s.sim.events.on('speaking', () => seen.push('speaking'));
      const cached = () => s.client.guilds.cache.get(GUILD)!.voiceStates.cache.get(members[0]!.userId)?.channelId ?? null;
      assert.equal(cached(), CHANNEL, 'voice state from GUILD_CREATE');
      await sleep(1200);
      assert.equal(cached(), null, 'VOICE_STATE_UPDATE with channel_id null on leave');
      await sleep(1800);
      assert.equal(cached(), CHANNEL);
      assert.deepEqual(seen, ['leave', 'rejoin', 'speaking']);
      const t = s.sim.truth().members[0]!;
      assert.equal(t.ssrcs.length, 2);
      assert.notEqual(t.ssrcs[0], t.ssrcs[1], 'new SSRC after rejoin');
      assert.equal(t.spurts.length, 2, 'the spurt is split by the absence');
      assert.equal(packets.length, t.packetsSent, `received ${packets.length} of ${t.packetsSent}, both SSRCs`);
      assertTone(packets, 500, [500, 300, 900], 'member1');
    } finally {
      await disconnect(s);
    }
  });

  test('op 5 reaches the client before each SSRC\'s first packet (session start, a join and a rejoin mid-spurt, a voice server move); the truth counts exactly what arrived, also with copies in flight at a 4014 kick', async () => {
    const members = [
      member(1, 440, [{ atMs: 0, durationMs: 2600 }]),
      member(2, 700, [{ atMs: 200, durationMs: 2400 }], { joinAtMs: 410 }),
      member(3, 1100, [{ atMs: 0, durationMs: 2600 }], { leaveAtMs: 700, rejoinAtMs: 1010 }),
    ];
    // Reordering and jitter keep datagrams in flight at the kick (4014): those due after their session is gone
    // never leave, and the truth must count them lost.
    const impairments = { reorder: 0.5, jitterMs: 15 };
    const faults = [{ atMs: 1500, kind: 'voice-server-move' }, { atMs: 2310, kind: 'disconnect-bot' }] as const;
    const sim = await startSimulator(scenario({ seed: 21, members, impairments, faults: [...faults] }));
    trustSimulatorCertificate(sim);
    const client = new Client({ intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildVoiceStates], rest: { api: sim.apiUrl } });
    let connection: VoiceConnection | undefined;
    try {
      const ready = once(client, 'clientReady');
      await client.login(TOKEN);
      await ready;
      const guild = client.guilds.cache.get(GUILD)!;
      connection = joinVoiceChannel({ guildId: GUILD, channelId: CHANNEL, selfDeaf: false, adapterCreator: guild.voiceAdapterCreator });
      // Per voice session (Networking): the SSRCs its websocket announced, in the order the CLIENT processed them
      // relative to its UDP socket's datagrams.
      const firstPackets: string[] = [];
      const early: string[] = [];
      const received = new Set<string>();
      const hooked = new WeakSet<object>();
      let sessions = 0;
      const track = (net: any): void => {
        if (hooked.has(net)) return;
        hooked.add(net);
        const n = ++sessions;
        const announced = new Set<number>();
        const seen = new Set<number>();
        const hook = (state: any): void => {
          if (state.ws && !hooked.has(state.ws)) {
            hooked.add(state.ws);
            state.ws.on('packet', (p: any) => p.op === 5 && announced.add(p.d.ssrc));
          }
          if (state.udp && !hooked.has(state.udp)) {
            hooked.add(state.udp);
            // Read what was already sent to a socket the client is tearing down (kick, move): this test counts what
            // the network delivered, not what the client still cared to read.
            const destroy = state.udp.destroy.bind(state.udp);
            state.udp.destroy = () => void setTimeout(destroy, 250);
            state.udp.on('message', (msg: Buffer) => {
              if (msg.length < 12 || msg[0]! >> 6 !== 2 || (msg[1]! & 0x7f) !== 0x78 || isDiscovery(msg)) return;
              const ssrc = msg.readUInt32BE(8);
              received.add(`${ssrc}/${msg.readUInt16BE(2)}`);
              if (seen.has(ssrc)) return;
              seen.add(ssrc);
              firstPackets.push(`${n}/${ssrc}`);
              if (!announced.has(ssrc)) early.push(`session ${n}: SSRC ${ssrc} arrived before its op 5`);
            });
          }
        };
        hook(net.state);
        net.on('stateChange', (_o: unknown, ns: unknown) => hook(ns));
      };
      connection.on('stateChange', (_o, ns: any) => ns.networking && track(ns.networking));
      await entersState(connection, VoiceConnectionStatus.Ready, 10_000);
      await sleep(3000);
      assert.deepEqual(early, []);
      assert.equal(sessions, 2, 'the voice server move made a second voice session');
      // Session 1: members 1, 2, 3 and member 3's second SSRC; session 2: all three again.
      assert.equal(firstPackets.length, 7, `first packets seen: ${firstPackets}`);
      const truth = sim.truth();
      assert.equal(truth.members[2]!.ssrcs.length, 2, 'member 3 rejoined with a new SSRC');
      // The truth counts a packet sent only when a datagram of it left on a live session: exactly what arrived.
      const sent = truth.members.reduce((n, t) => n + t.packetsSent, 0);
      assert.equal(received.size, sent, `${received.size} packets arrived, the truth says ${sent} were sent`);
      assert.ok(truth.members.every((t) => t.packetsLost > 0), 'the move was an outage for everyone');
      // Held packets keep the member's send time in the truth: member 1's spurt began at tick 0, not at the release.
      assert.ok(Math.abs(truth.members[0]!.spurts[0]!.startWallMs - truth.sessionStartWallMs!) < 10, 'truth times are the member\'s');
    } finally {
      connection?.destroy();
      await client.destroy();
      await sim.close();
    }
  });

  test('DAVE on: MLS group with the recorder, frames on the wire are DAVE, a member joins mid-call (new epoch)', async () => {
    const tones = [440, 760, 1250];
    const members = [
      member(1, tones[0]!, [{ atMs: 100, durationMs: 2600 }]),
      member(2, tones[1]!, [{ atMs: 300, durationMs: 2400 }]),
      member(3, tones[2]!, [{ atMs: 1500, durationMs: 1500 }], { joinAtMs: 900 }),
    ];
    const warnings: string[] = [];
    const s = await connect(scenario({ seed: 77, dave: true, members }), (sim) => sim.events.on('warning', (w) => warnings.push(w.message)));
    try {
      const state = (s.connection.state as any).networking.state;
      assert.ok(state.dave, 'the client runs a DAVE session');
      const { mode, key, udp } = networking(s.connection);
      let daveFrames = 0;
      let plainAudio = 0;
      udp.on('message', (msg: Buffer) => {
        if (msg.length <= 8 || isDiscovery(msg)) return;
        const p = openRtp(msg, mode, key);
        if (!p || p.opus.length <= 3) return;
        if (p.opus.readUInt16BE(p.opus.length - 2) === 0xfafa) daveFrames++;
        else plainAudio++;
      });
      const got = new Map<string, Buffer[]>(members.map((m) => [m.userId, []]));
      for (const m of members) {
        const stream = s.connection.receiver.subscribe(m.userId, { end: { behavior: EndBehaviorType.Manual } });
        stream.on('data', (d: Buffer) => got.get(m.userId)!.push(d));
        stream.on('error', () => {}); // counted below through the packet totals
      }
      await sleep(3300);
      assert.ok(daveFrames > 200, `audio on the wire is DAVE-encrypted (${daveFrames} frames)`);
      assert.equal(plainAudio, 0, 'no unencrypted audio frames');
      const truth = s.sim.truth();
      members.forEach((m, i) => {
        const packets = got.get(m.userId)!;
        // Every frame decrypts, across the epoch change too: members switch keys only at op 22 execute, which the
        // gateway sends once the recorder acknowledged the commit (op 23), and the recorder keeps the old keys.
        assert.equal(packets.length, truth.members[i]!.packetsSent, `${m.username}: ${packets.length} of ${truth.members[i]!.packetsSent}`);
        assertTone(packets, tones[i]!, tones, m.username);
      });
      assert.equal(s.connection.state.status, VoiceConnectionStatus.Ready);
      const dave = s.sim.daveStatus()!;
      assert.deepEqual(new Set(dave.members), new Set([...members.map((m) => m.userId), BOT]), 'everyone is in the group');
      assert.deepEqual([dave.recorderAckTimeouts, dave.recorderKeyPackages, dave.recorderInvalidReports], [0, 1, 0]);
      assert.deepEqual(warnings, [], 'no DAVE trouble reported by the simulator');
    } finally {
      await disconnect(s);
    }
  });

  test('impairments happen as scripted (loss, bursts, byte-identical duplicates, reordering); RTP wraps; hostile datagrams and RTCP are sent', async () => {
    const impairments: Impairments = { loss: 0.1, burst: { probability: 0.03, length: 4 }, duplicate: 0.05, reorder: 0.05, jitterMs: 8 };
    // Member 5 is on a link that only loses in bursts: every gap in its sequence numbers must be whole bursts.
    const bursty: Impairments = { burst: { probability: 0.04, length: 6 } };
    const members = [0, 1, 2, 3].map((n) => member(n + 1, 300 + 100 * n, [{ atMs: 250, durationMs: 3000 }]));
    members.push(member(5, 800, [{ atMs: 250, durationMs: 3000 }], { impairments: bursty }));
    const s = await connect(
      scenario({
        seed: 1234,
        members,
        impairments,
        faults: [
          { atMs: 1000, kind: 'hostile', count: 50 },
          { atMs: 1500, kind: 'rtcp', count: 10 },
        ],
      }),
    );
    try {
      const { mode, key, udp } = networking(s.connection);
      // @discordjs/voice's own receiver throws on 9–11 byte datagrams: keep it off the raw input here.
      udp.off('message', (s.connection.receiver as any).onUdpMessage);
      const seqs = new Map<number, number[]>();
      const firstCopy = new Map<string, Buffer>();
      let hostileOrRtcp = 0;
      let rtcp = 0;
      let dupes = 0;
      let notIdentical = 0;
      udp.on('message', (msg: Buffer) => {
        if (msg.length === 8 || isDiscovery(msg)) return; // keepalive echo / discovery
        const p = openRtp(msg, mode, key);
        if (msg.length >= 8 && msg[1]! >= 200 && msg[1]! <= 204) rtcp++;
        if (!p) return void hostileOrRtcp++;
        if (!seqs.has(p.ssrc)) seqs.set(p.ssrc, []);
        seqs.get(p.ssrc)!.push(p.seq);
        // A network duplicate is the same datagram: same bytes, same transport nonce.
        const id = `${p.ssrc}/${p.seq}`;
        const first = firstCopy.get(id);
        if (!first) firstCopy.set(id, Buffer.from(msg));
        else if (first.equals(msg)) dupes++;
        else notIdentical++;
      });
      await sleep(3800);
      const truth = s.sim.truth();
      let reordered = 0;
      let wrapped = 0;
      truth.members.forEach((t) => {
        const got = seqs.get(t.ssrcs[0]!) ?? [];
        assert.equal(t.packetsSent + t.packetsLost, 150 + 5, `${t.userId}: every scripted packet is accounted for`);
        assert.equal(new Set(got).size, t.packetsSent, `${t.userId}: each packet not lost arrived (duplicates aside)`);
        assert.equal(t.packetsLost, t.network.burstLost + t.network.randomLost, `${t.userId}: every loss is the network model's`);
        for (let i = 1; i < got.length; i++) {
          const d = (got[i]! - got[i - 1]! + 65536) & 0xffff;
          if (d > 32768) reordered++;
          if (got[i]! < 100 && got[i - 1]! > 65400) wrapped++;
        }
      });
      assert.equal(notIdentical, 0, 'duplicates are byte-identical datagrams');
      const dupTruth = truth.members.reduce((n, t) => n + t.network.duplicatesSent, 0);
      // The hostile burst's 'replay' datagrams are copies of members' audio datagrams too (an on-path replay).
      const replays = Array.from({ length: 50 }, (_, i) => HOSTILE_KINDS[i % HOSTILE_KINDS.length]).filter((k) => k === 'replay').length;
      assert.ok(dupTruth > 0, 'some packets duplicated');
      assert.equal(dupes, dupTruth + replays, 'every duplicate the truth counts (and every hostile replay) arrived as a second copy');
      assert.ok(reordered > 0 && truth.members.some((t) => t.network.reordered > 0), 'some packets reordered');
      assert.ok(wrapped > 0, 'sequence numbers wrapped past 65535');

      // Members 1–4: the combined loss rate of bursts and independent loss. 620 packets: σ ≈ 0.025, bound ≈ 3σ
      // (the model's rates are checked precisely by the seeded model test; this checks they reach the wire).
      const mixed = truth.members.slice(0, 4);
      const lost = mixed.reduce((n, t) => n + t.packetsLost, 0);
      const rate = lost / (4 * 155);
      assert.ok(Math.abs(rate - expectedLoss(impairments)) < 0.075, `measured loss ${rate.toFixed(3)} near ${expectedLoss(impairments).toFixed(3)}`);
      assert.ok(mixed.some((t) => t.network.bursts > 0) && mixed.some((t) => t.network.randomLost > 0), 'both kinds of loss happened');

      // Member 5: the missing runs on the wire are whole bursts of 6 (no reordering on its link, so arrival order is send order).
      const t5 = truth.members[4]!;
      const got5 = seqs.get(t5.ssrcs[0]!)!;
      const rel = got5.map((q) => (q - got5[0]! + 65536) & 0xffff);
      const runs: number[] = [];
      for (let i = 1; i < rel.length; i++) if (rel[i]! - rel[i - 1]! > 1) runs.push(rel[i]! - rel[i - 1]! - 1);
      assert.ok(runs.length >= 2, `member 5 lost whole bursts (${runs})`);
      for (const r of runs) assert.equal(r % 6, 0, `member 5: a gap of ${r} packets is not a whole number of 6-packet bursts (${runs})`);
      assert.equal(t5.network.randomLost, 0);
      assert.ok(t5.packetsLost <= 6 * t5.network.bursts && t5.packetsLost > 6 * (t5.network.bursts - 1), `member 5: ${t5.packetsLost} lost in ${t5.network.bursts} bursts`);
      assert.ok(runs.reduce((a, b) => a + b, 0) <= t5.packetsLost);

      assert.equal(truth.hostileSent, 50);
      assert.equal(truth.rtcpSent, 10);
      assert.equal(rtcp, 10, 'RTCP SR/RR arrived');
      assert.ok(hostileOrRtcp >= 50, `hostile datagrams arrived (${hostileOrRtcp})`);
    } finally {
      await disconnect(s);
    }
  });

  test('faults: 4015 close is resumed (op 7 → op 9), gateway reconnect resumes, voice server move, 4014 disconnect', async () => {
    const tones = [600];
    const members = [member(1, tones[0]!, [{ atMs: 0, durationMs: 5200 }])];
    const s = await connect(
      scenario({
        seed: 5,
        members,
        faults: [
          { atMs: 800, kind: 'voice-close', code: 4015 },
          { atMs: 1800, kind: 'gateway-reconnect' },
          { atMs: 2800, kind: 'voice-server-move' },
          { atMs: 5600, kind: 'disconnect-bot' },
        ],
      }),
    );
    try {
      const packets: Buffer[] = [];
      const subscribe = () => {
        const stream = s.connection.receiver.subscribe(members[0]!.userId, { end: { behavior: EndBehaviorType.Manual } });
        stream.on('data', (d: Buffer) => packets.push(d));
      };
      subscribe();
      const resumed: string[] = [];
      s.sim.events.on('resumed', (e) => resumed.push(e.kind));
      const statuses: string[] = [];
      s.connection.on('stateChange', (_a, b) => statuses.push(b.status));
      await sleep(2600);
      assert.deepEqual(resumed, ['voice', 'gateway']);
      assert.equal(s.connection.state.status, VoiceConnectionStatus.Ready, 'still ready after 4015 + resume');
      const beforeMove = packets.length;
      assert.ok(beforeMove > 100, `audio flowed through the resume (${beforeMove})`);
      await sleep(1500);
      assert.equal(s.connection.state.status, VoiceConnectionStatus.Ready, 'ready again on the new voice server');
      await sleep(900);
      assert.ok(packets.length > beforeMove + 30, 'audio flows from the new voice server');
      assertTone(packets, 600, [600, 300, 1000], 'member1');
      await sleep(1000);
      assert.equal(s.connection.state.status, VoiceConnectionStatus.Disconnected);
      assert.equal((s.connection.state as any).closeCode, 4014);
      const faults = s.sim.truth().faults.map((f) => [f.kind, f.outcome]);
      assert.deepEqual(faults, [
        ['voice-close', 'resumed'],
        ['gateway-reconnect', 'resumed'],
        ['voice-server-move', 'moved'],
        ['disconnect-bot', 'disconnected'],
      ]);
    } finally {
      await disconnect(s);
    }
  });

  test('voice close codes as Discord documents them: 4009 ends the session (a new identify, no resume); 4021 refuses identifies for a while, and @discordjs/voice alone rejoins again and again', async () => {
    const members = [member(1, 600, [{ atMs: 0, durationMs: 4000 }])];
    const rejected: number[] = [];
    const identifies: number[] = [];
    const resumes: string[] = [];
    const s = await connect(
      scenario({ seed: 9, members, faults: [{ atMs: 500, kind: 'voice-close', code: 4009 }, { atMs: 1500, kind: 'voice-close', code: 4021, rateLimitMs: 1000 }] }),
      (sim) => {
        sim.events.on('voice-rejected', (e) => rejected.push(e.code));
        sim.events.on('voice-identify', () => identifies.push(performance.now()));
        sim.events.on('resumed', (e) => resumes.push(e.kind));
      },
    );
    try {
      await sleep(1200);
      // 4009: the library does not resume (only 4015 and codes below 4000); the simulator's session is gone, and the
      // library's new join gets a new session.
      assert.equal(identifies.length, 2, 'a second voice session after 4009');
      assert.deepEqual(resumes, []);
      assert.equal(s.connection.state.status, VoiceConnectionStatus.Ready);
      await sleep(1800);
      // 4021: every identify within rateLimitMs is refused with 4021, and the library keeps rejoining at once, without
      // a bound of its own (seen: over 100 joins in that second, after which discord.js's own gateway send limit holds
      // the next op 4 back): the loop dvrec's close-codes.ts ends at the first 4021.
      assert.ok(rejected.length >= 10 && rejected.every((c) => c === 4021), `identifies refused: ${rejected.length} × ${[...new Set(rejected)].join(', ')}`);
      assert.notEqual(s.connection.state.status, VoiceConnectionStatus.Destroyed);
      const faults = s.sim.truth().faults.map((f) => [f.kind, f.outcome]);
      assert.deepEqual(faults, [['voice-close', 'reidentified'], ['voice-close', 'rate-limited']]);
    } finally {
      await disconnect(s);
    }
  });

  test('serve.ts runs the local Discord for another process: prints where it is, answers, closes cleanly on SIGINT', async () => {
    const child = spawn(process.execPath, ['src/simulator/serve.ts'], { cwd: new URL('..', import.meta.url), stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    try {
      let out = '';
      for await (const chunk of child.stdout) {
        out += chunk;
        if (out.includes('\n')) break;
      }
      const info = JSON.parse(out) as { apiUrl: string; caCertPath: string; token: string; guildId: string; channelId: string };
      const r = await fetch(`${info.apiUrl}/v10/channels/${info.channelId}`, { headers: { authorization: `Bot ${info.token}` } });
      assert.equal(r.status, 200);
      assert.equal(((await r.json()) as { type: number }).type, 2, 'the voice channel');
      assert.match(readFileSync(info.caCertPath, 'utf8'), /BEGIN CERTIFICATE/, 'the certificate for NODE_EXTRA_CA_CERTS');
      child.kill('SIGINT');
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 0);
      assert.equal(existsSync(info.caCertPath), false, 'the certificate file is removed');
    } finally {
      clearTimeout(timer);
      child.kill('SIGKILL');
    }
  });

  test('close() leaves no handles: a child process running a whole session exits by itself', async () => {
    const code = `
      import { Client, GatewayIntentBits } from 'discord.js';
      import { joinVoiceChannel, entersState, VoiceConnectionStatus } from '@discordjs/voice';
      import { once } from 'node:events';
      import { startSimulator, trustSimulatorCertificate } from './src/simulator/index.ts';
      const sc = { seed: 3, guildId: '${GUILD}', channelId: '${CHANNEL}', botUserId: '${BOT}', token: '${TOKEN}', dave: false,
        members: [{ userId: '820000000000000001', username: 'a', signal: { kind: 'tone', hz: 440 }, spurts: [{ atMs: 0, durationMs: 60000 }] }],
        faults: [{ atMs: 200, kind: 'voice-server-move' }] };
      const sim = await startSimulator(sc);
      trustSimulatorCertificate(sim);
      const client = new Client({ intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildVoiceStates], rest: { api: sim.apiUrl } });
      const ready = once(client, 'clientReady');
      await client.login(sc.token); await ready;
      const guild = client.guilds.cache.get(sc.guildId);
      const c = joinVoiceChannel({ guildId: sc.guildId, channelId: sc.channelId, selfDeaf: false, adapterCreator: guild.voiceAdapterCreator });
      await entersState(c, VoiceConnectionStatus.Ready, 10000);
      await new Promise((r) => setTimeout(r, 800));
      c.destroy(); await client.destroy();
      await sim.close();
      console.log('CLOSED', sim.truth().members[0].packetsSent > 0);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: new URL('..', import.meta.url), stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const [exitCode, signal] = (await once(child, 'exit')) as [number | null, string | null];
    clearTimeout(timer);
    assert.equal(signal, null, 'the child exited on its own (no leaked sockets or timers)');
    assert.equal(exitCode, 0);
    assert.match(out, /CLOSED true/);
  });
});

after(() => {
  // Nothing to clean up globally: every test closes its simulator and client in `finally`.
});
