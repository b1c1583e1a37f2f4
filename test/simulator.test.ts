/**
 * The local Discord (src/simulator) against the REAL, unmodified discord.js 14 + @discordjs/voice 0.19 client
 * over loopback: login, join, receive each member's Opus decrypted and check the decoded tone; both transport
 * modes; impairments and faults as scripted; hostile datagrams and RTCP; clean shutdown.
 */
import opus from '@discordjs/opus';
import { EndBehaviorType, entersState, joinVoiceChannel, VoiceConnectionStatus, type VoiceConnection } from '@discordjs/voice';
import { spawn } from 'node:child_process';
import { createDecipheriv } from 'node:crypto';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Client, GatewayIntentBits } from 'discord.js';
import { startSimulator, trustSimulatorCertificate, type Simulator } from '../src/simulator/index.ts';
import type { Scenario, SimMember, TransportMode } from '../src/simulator/scenario.ts';

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

async function connect(sc: Scenario): Promise<Session> {
  const sim = await startSimulator(sc);
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

/** Independent rtpsize decryption for the raw tap (both modes). Returns the Opus payload or null. */
function openRtp(msg: Buffer, mode: string, key: Buffer): { ssrc: number; seq: number; opus: Buffer } | null {
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
  return { ssrc: msg.readUInt32BE(8), seq: msg.readUInt16BE(2), opus: plain.subarray(extWords * 4) };
}

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
        // Every packet the simulator sent arrived (loopback, no impairments), possibly minus the
        // first one if op 5 raced it; decrypted payloads include the 5 silence frames per spurt.
        assert.ok(packets.length >= t.packetsSent - 1 && packets.length <= t.packetsSent, `${m.username}: ${packets.length} of ${t.packetsSent}`);
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

  test('aead_xchacha20_poly1305_rtpsize: negotiated and every member decrypts (raw tap)', async () => {
    // @discordjs/voice 0.19.2's own xchacha path is broken when sodium-native 5 is installed (it reads
    // crypto_aead_xchacha20poly1305_ietf_ABYTES from an ESM namespace where it is undefined → Buffer.alloc(NaN)),
    // so receiver.subscribe cannot be used in this mode; decrypt the datagrams from its UDP socket instead.
    const tones = [523, 880];
    const members = [member(1, tones[0]!, [{ atMs: 100, durationMs: 1500 }]), member(2, tones[1]!, [{ atMs: 200, durationMs: 1300 }])];
    const s = await connect(scenario({ seed: 9, members, modes: ['aead_xchacha20_poly1305_rtpsize', 'aead_aes256_gcm_rtpsize'] }));
    try {
      const { mode, key, udp } = networking(s.connection);
      assert.equal(mode, 'aead_xchacha20_poly1305_rtpsize');
      udp.off('message', (s.connection.receiver as any).onUdpMessage);
      const bySsrc = new Map<number, Buffer[]>();
      let bad = 0;
      udp.on('message', (msg: Buffer) => {
        if (msg.length <= 8 || isDiscovery(msg)) return;
        const p = openRtp(msg, mode, key);
        if (!p) return void bad++;
        if (!bySsrc.has(p.ssrc)) bySsrc.set(p.ssrc, []);
        bySsrc.get(p.ssrc)!.push(p.opus);
      });
      await sleep(2000);
      assert.equal(bad, 0, 'every datagram authenticates');
      const truth = s.sim.truth();
      members.forEach((m, i) => {
        const ssrc = truth.members[i]!.ssrcs[0]!;
        const packets = bySsrc.get(ssrc) ?? [];
        assert.equal(packets.length, truth.members[i]!.packetsSent, `${m.username}: all packets`);
        assertTone(packets, tones[i]!, tones, m.username);
      });
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
      assert.ok(packets.length >= t.packetsSent - 2, `received ${packets.length} of ${t.packetsSent}, both SSRCs`);
      assertTone(packets, 500, [500, 300, 900], 'member1');
    } finally {
      await disconnect(s);
    }
  });

  test('DAVE on: MLS group with the recorder, frames on the wire are DAVE, a member joins mid-call (new epoch)', async () => {
    const tones = [440, 760, 1250];
    const members = [
      member(1, tones[0]!, [{ atMs: 100, durationMs: 2600 }]),
      member(2, tones[1]!, [{ atMs: 300, durationMs: 2400 }]),
      member(3, tones[2]!, [{ atMs: 1500, durationMs: 1500 }], { joinAtMs: 900 }),
    ];
    const s = await connect(scenario({ seed: 77, dave: true, members }));
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
        // Frames around the epoch change may be undecryptable; the bulk must arrive decrypted.
        assert.ok(packets.length >= truth.members[i]!.packetsSent * 0.8, `${m.username}: ${packets.length} of ${truth.members[i]!.packetsSent}`);
        assertTone(packets, tones[i]!, tones, m.username);
      });
      assert.equal(s.connection.state.status, VoiceConnectionStatus.Ready);
    } finally {
      await disconnect(s);
    }
  });

  test('impairments happen as scripted; RTP wraps; hostile datagrams and RTCP are sent', async () => {
    const loss = 0.15;
    const members = [0, 1, 2, 3].map((n) => member(n + 1, 300 + 100 * n, [{ atMs: 250, durationMs: 3000 }]));
    const s = await connect(
      scenario({
        seed: 1234,
        members,
        impairments: { loss, duplicate: 0.05, reorder: 0.05, jitterMs: 8 },
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
      let hostileOrRtcp = 0;
      let rtcp = 0;
      udp.on('message', (msg: Buffer) => {
        if (msg.length === 8 || isDiscovery(msg)) return; // keepalive echo / discovery
        const p = openRtp(msg, mode, key);
        if (msg.length >= 8 && msg[1]! >= 200 && msg[1]! <= 204) rtcp++;
        if (!p) return void hostileOrRtcp++;
        if (!seqs.has(p.ssrc)) seqs.set(p.ssrc, []);
        seqs.get(p.ssrc)!.push(p.seq);
      });
      await sleep(3800);
      const truth = s.sim.truth();
      let sent = 0;
      let lost = 0;
      let dupes = 0;
      let reordered = 0;
      let wrapped = 0;
      truth.members.forEach((t) => {
        sent += t.packetsSent;
        lost += t.packetsLost;
        const got = seqs.get(t.ssrcs[0]!) ?? [];
        assert.equal(new Set(got).size, t.packetsSent, 'each packet not lost arrived (duplicates aside)');
        dupes += got.length - new Set(got).size;
        for (let i = 1; i < got.length; i++) {
          const d = (got[i]! - got[i - 1]! + 65536) & 0xffff;
          if (d > 32768) reordered++;
          if (got[i]! < 100 && got[i - 1]! > 65400) wrapped++;
        }
      });
      const total = sent + lost;
      assert.equal(total, 4 * (150 + 5), 'every scripted packet is accounted for');
      const rate = lost / total;
      // 620 packets at p = 0.15: σ ≈ 0.014; ±0.06 is > 4σ.
      assert.ok(Math.abs(rate - loss) < 0.06, `measured loss ${rate.toFixed(3)} near ${loss}`);
      assert.ok(dupes > 0, 'some packets duplicated');
      assert.ok(reordered > 0, 'some packets reordered');
      assert.ok(wrapped > 0, 'sequence numbers wrapped past 65535');
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
