/**
 * Hostile input on the receive path (issue 6). Seeded, reproducible fuzzing of:
 *  1. the RTP/RTCP classifier and header parser (pure random bytes, structured headers with every field and
 *     length at random, truncations, bit-flip mutations of valid packets);
 *  2. the full decrypt path — parse → transport decrypt → replay filter → SSRC map → DAVE — on the datagrams of a
 *     LIVE session with the simulator (real keys, real @discordjs/voice DAVE session), mutated, truncated,
 *     replayed and mixed with garbage, while the members keep talking;
 *  3. floods: thousands of new authenticated SSRCs, thousands of op-5 mappings, a long mixed flood with the heap
 *     measured (caps and eviction keep every table and the heap flat);
 *  4. RTCP of every type 192..223, encrypted, plaintext, truncated and forged;
 *  5. end to end: a recording under heavy hostile traffic finishes, every member's audio is intact, and every
 *     kind is counted in manifest.json's `dropped`.
 * Invariant everywhere: nothing throws, and every datagram is counted exactly once (`accounted() === datagrams`).
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { classifyDatagram, RTCP_TYPE_MIN, RTCP_TYPE_MAX } from '../src/receiver/rtp.ts';
import { TransportCipher, type TransportMode } from '../src/receiver/transport-crypto.ts';
import { Receiver, type ReceiverCounters } from '../src/receiver/receiver.ts';
import { ReplayFilter } from '../src/receiver/replay-filter.ts';
import { withoutDave } from '../src/receiver/dave.ts';
import { DaveGuard } from '../src/receiver/dave-guard.ts';
import { SsrcMap } from '../src/receiver/ssrc-map.ts';
import { Prng } from '../src/simulator/prng.ts';
import { rtpHeader, audioLevelExtension } from '../src/simulator/rtp.ts';
import { TransportEncryptor } from '../src/simulator/transport-crypto.ts';
import { NONCE_NUMBERINGS, NonceCounter } from '../src/simulator/nonces.ts';
import { HOSTILE_EXPECTED, HOSTILE_KINDS } from '../src/simulator/hostile.ts';
import type { AudioPacket, RtcpPacket } from '../src/sinks/types.ts';
import type { ReceiverDrops } from '../src/sinks/capture-layout.ts';
import { CHANNEL, GUILD, TOKEN, TONE_PEAK, readWavLeft, scenario, toneAmplitude, msToSample, BLOCK } from './record-fixtures.ts';

const MODES: TransportMode[] = ['aead_aes256_gcm_rtpsize', 'aead_xchacha20_poly1305_rtpsize'];
/** Replay windows a receiver may hold at most: 1,024 RTP streams × 2 KiB and 1,024 RTCP senders × 128 B, +16 spares each. */
const REPLAY_BYTES_CAP = (1024 + 16) * (16_384 + 1024) / 8;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Valid RTP sealed by the SIMULATOR's encryptor (an implementation independent of the receiver's). */
function validRtp(enc: TransportEncryptor, prng: Prng, ssrc: number, seq: number, opts: { ext?: boolean; pad?: number; csrcs?: number } = {}): Buffer {
  const ext = opts.ext ? audioLevelExtension(prng.int(0, 127)) : undefined;
  let aad = rtpHeader({ sequence: seq, timestamp: seq * 960, ssrc, ...(ext ? { extension: ext } : {}) });
  if (opts.csrcs) {
    // CSRCs sit between the fixed header and the extension preamble, all inside the AAD.
    const csrc = prng.bytes(4 * opts.csrcs);
    aad = Buffer.concat([aad.subarray(0, 12), csrc, aad.subarray(12)]);
    aad[0]! |= opts.csrcs;
  }
  const body = [ext ?? Buffer.alloc(0), prng.bytes(prng.int(3, 120))];
  if (opts.pad) {
    aad[0]! |= 0x20;
    const p = Buffer.alloc(opts.pad);
    p[opts.pad - 1] = opts.pad;
    body.push(p);
  }
  return enc.seal(aad, Buffer.concat(body));
}

function validRtcp(enc: TransportEncryptor, prng: Prng, type: number): Buffer {
  const clear = prng.bytes(4 * prng.int(2, 24));
  clear[0] = 0x80 | prng.int(0, 31);
  clear[1] = type;
  clear.writeUInt16BE(clear.length / 4 - 1, 2);
  return enc.seal(clear.subarray(0, 8), clear.subarray(8));
}

function newReceiver(opts: { dave?: () => undefined; ssrcMap?: ConstructorParameters<typeof SsrcMap>[0]; replayWindow?: number } = {}) {
  const audio: AudioPacket[] = [];
  const rtcp: RtcpPacket[] = [];
  let now = 0;
  const receiver = new Receiver({
    sink: { onAudio: (p) => audio.push(p), onRtcp: (p) => rtcp.push(p) },
    clock: () => now,
    dave: withoutDave,
    ...(opts.ssrcMap ? { ssrcMap: opts.ssrcMap } : {}),
    ...(opts.replayWindow ? { replayWindow: opts.replayWindow } : {}),
  });
  return { receiver, audio, rtcp, advance: (ms: number) => (now += ms) };
}

function snapshot(c: ReceiverCounters): ReceiverCounters {
  return { ...c };
}
function delta(after: ReceiverCounters, before: ReceiverCounters): Partial<ReceiverCounters> {
  const out: Partial<ReceiverCounters> = {};
  for (const k of Object.keys(after) as (keyof ReceiverCounters)[]) if (after[k] !== before[k]) out[k] = after[k] - before[k];
  return out;
}

describe('RTP/RTCP parser fuzz', () => {
  /** Checks one classification against the bytes: the parser's claims must be consistent with the datagram. */
  function checkShape(d: Buffer): string {
    const k = classifyDatagram(d); // must not throw
    if (k.kind === 'skip') return `skip:${k.reason}`;
    if (k.kind === 'rtcp') {
      assert.ok(k.packetType >= RTCP_TYPE_MIN && k.packetType <= RTCP_TYPE_MAX);
      assert.ok(d.length >= 8 + 16 + 4);
      assert.equal(d[0]! >> 6, 2);
      return 'rtcp';
    }
    const h = k.header;
    assert.equal(d[0]! >> 6, 2, 'version 2');
    assert.equal(h.payloadType, 0x78);
    assert.equal(h.csrcCount, d[0]! & 0x0f);
    assert.equal(h.extension, (d[0]! & 0x10) !== 0, 'X bit decides, not bytes 12–13');
    assert.equal(h.aadLength, 12 + 4 * h.csrcCount + (h.extension ? 4 : 0));
    if (h.extension) {
      // Any profile: the extension is skipped by its length word (RFC 3550 §5.3.1).
      const at = 12 + 4 * h.csrcCount;
      assert.equal(h.extensionBodyLength, 4 * d.readUInt16BE(at + 2));
    } else assert.equal(h.extensionBodyLength, 0);
    assert.ok(h.aadLength + h.extensionBodyLength + 16 + 4 <= d.length, 'every length it reports fits in the datagram');
    assert.equal(h.ssrc, d.readUInt32BE(8));
    assert.equal(h.sequence, d.readUInt16BE(2));
    assert.equal(h.timestamp, d.readUInt32BE(4));
    return 'rtp';
  }

  test('pure random bytes, 0..400 long: never throws, every claim fits the datagram', () => {
    const prng = new Prng(0x5eed01);
    const seen = new Map<string, number>();
    for (let i = 0; i < 40_000; i++) {
      const r = checkShape(prng.bytes(prng.int(0, 400)));
      seen.set(r, (seen.get(r) ?? 0) + 1);
    }
    // Random bytes are mostly the wrong version; all the main outcomes are reached.
    for (const k of ['skip:bad-version', 'skip:too-short', 'skip:not-audio', 'rtcp']) assert.ok((seen.get(k) ?? 0) > 0, `${k}: ${[...seen]}`);
  });

  test('structured headers: every field and length at random, CSRC/extension/padding overruns', () => {
    const prng = new Prng(0x5eed02);
    const seen = new Map<string, number>();
    for (let i = 0; i < 40_000; i++) {
      const cc = prng.int(0, 15);
      const x = prng.chance(0.5);
      const len = prng.int(0, 12 + 4 * cc + (x ? 4 : 0) + 200);
      const d = prng.bytes(len);
      if (len > 0) d[0] = (prng.chance(0.9) ? 0x80 : prng.int(0, 3) << 6) | (prng.chance(0.3) ? 0x20 : 0) | (x ? 0x10 : 0) | cc;
      if (len > 1) d[1] = prng.chance(0.8) ? (prng.chance(0.5) ? 0x80 : 0) | 0x78 : prng.int(0, 255);
      const at = 12 + 4 * cc;
      if (x && len >= at + 4) {
        if (prng.chance(0.8)) d.writeUInt16BE(0xbede, at);
        d.writeUInt16BE(prng.chance(0.5) ? prng.int(0, 8) : prng.int(0, 0xffff), at + 2);
      }
      const r = checkShape(d);
      seen.set(r, (seen.get(r) ?? 0) + 1);
    }
    for (const k of ['rtp', 'rtcp', 'skip:too-short', 'skip:bad-extension', 'skip:not-audio', 'skip:bad-version']) {
      assert.ok((seen.get(k) ?? 0) > 100, `${k} reached: ${[...seen]}`);
    }
  });

  test('every truncation and bit-flip mutations of valid RTP and RTCP', () => {
    const prng = new Prng(0x5eed03);
    const enc = new TransportEncryptor('aead_aes256_gcm_rtpsize', randomBytes(32));
    const seeds: Buffer[] = [];
    for (let i = 0; i < 40; i++) seeds.push(validRtp(enc, prng, prng.u32(), i, { ext: i % 2 === 0, pad: i % 3 === 0 ? prng.int(1, 9) : 0, csrcs: i % 5 === 0 ? prng.int(1, 15) : 0 }));
    for (let t = 192; t <= 223; t++) seeds.push(validRtcp(enc, prng, t));
    let cases = 0;
    for (const s of seeds) {
      for (let n = 0; n <= s.length; n++, cases++) checkShape(s.subarray(0, n));
      for (let m = 0; m < 200; m++, cases++) {
        const d = Buffer.from(s);
        for (let f = prng.int(1, 8); f > 0; f--) d[prng.int(0, d.length - 1)]! ^= 1 << prng.int(0, 7);
        checkShape(d);
      }
    }
    assert.ok(cases > 15_000, `${cases} cases`);
  });
});

describe('decrypt path fuzz (transport → replay → SSRC map), counted and bounded', () => {
  for (const mode of MODES) {
    test(`${mode}: mutated, truncated, replayed, random and forged datagrams: nothing forged is delivered, each kind counted`, () => {
      const prng = new Prng(0xf022 + mode.length);
      const key = randomBytes(32);
      const enc = new TransportEncryptor(mode, key);
      const { receiver, audio } = newReceiver();
      receiver.setCipher(new TransportCipher(mode, key));
      receiver.mapSsrc(11, 'alice');
      receiver.mapSsrc(22, 'bob');
      const sent: Buffer[] = [];
      let expectAudio = 0;
      let expectReplay = 0;
      let expectBadAuth = 0;
      let expectPadding = 0;
      for (let i = 0; i < 12_000; i++) {
        const r = prng.next();
        const before = snapshot(receiver.counters);
        if (r < 0.2) {
          // A fresh valid packet.
          const d = validRtp(enc, prng, prng.chance(0.5) ? 11 : 22, i & 0xffff, { ext: prng.chance(0.3), pad: prng.chance(0.2) ? prng.int(1, 8) : 0, csrcs: prng.chance(0.1) ? prng.int(1, 4) : 0 });
          sent.push(d);
          receiver.onDatagram(d);
          expectAudio++;
          assert.deepEqual(delta(receiver.counters, before), { datagrams: 1, audio: 1 });
        } else if (r < 0.4 && sent.length) {
          // Bit flips of a valid packet: at most it still parses, it never authenticates.
          const d = Buffer.from(sent[prng.int(0, sent.length - 1)]!);
          for (let f = prng.int(1, 6); f > 0; f--) d[prng.int(0, d.length - 1)]! ^= 1 << prng.int(0, 7);
          receiver.onDatagram(d);
          assert.equal(receiver.counters.audio, before.audio, 'a mutated packet is never delivered');
        } else if (r < 0.5 && sent.length) {
          const s = sent[prng.int(0, sent.length - 1)]!;
          receiver.onDatagram(s.subarray(0, prng.int(0, s.length - 1)));
          assert.equal(receiver.counters.audio, before.audio, 'a truncated packet is never delivered');
        } else if (r < 0.65 && sent.length) {
          receiver.onDatagram(Buffer.from(sent[prng.int(0, sent.length - 1)]!));
          expectReplay++;
          assert.deepEqual(delta(receiver.counters, before), { datagrams: 1, replayed: 1 });
        } else if (r < 0.75) {
          // Correct framing, wrong key: forged.
          receiver.onDatagram(validRtp(new TransportEncryptor(mode, randomBytes(32), prng.u32()), prng, 11, prng.int(0, 65535)));
          expectBadAuth++;
          assert.deepEqual(delta(receiver.counters, before), { datagrams: 1, badAuth: 1 });
        } else if (r < 0.8) {
          // Authenticated, padding count overruns.
          const h = rtpHeader({ sequence: i & 0xffff, timestamp: i, ssrc: 11 });
          h[0]! |= 0x20;
          const body = prng.bytes(prng.int(1, 30));
          body[body.length - 1] = prng.chance(0.2) ? 0 : prng.int(body.length + 1, 255);
          receiver.onDatagram(enc.seal(h, body));
          expectPadding++;
          assert.deepEqual(delta(receiver.counters, before), { datagrams: 1, badPadding: 1 });
        } else {
          receiver.onDatagram(prng.bytes(prng.int(0, 300)));
          assert.equal(receiver.counters.audio, before.audio);
        }
        assert.equal(receiver.accounted(), receiver.counters.datagrams, 'every datagram counted exactly once');
      }
      const c = receiver.counters;
      assert.equal(c.audio, expectAudio);
      assert.equal(audio.length, expectAudio);
      assert.equal(c.replayed, expectReplay);
      assert.ok(c.badAuth >= expectBadAuth);
      assert.equal(c.badPadding, expectPadding);
      // Seeded: ~2,400 random datagrams, a quarter of them with RTP version 2, most of those with a payload type
      // that is not audio (this seed: ~280).
      assert.ok(c.malformed > 100 && c.notAudio > 100, `random datagrams reached both kinds of skip: ${c.malformed} malformed, ${c.notAudio} not audio`);
      assert.ok(expectReplay > 1000 && expectAudio > 1000, `${expectReplay} replays, ${expectAudio} valid`);
      // Replays are caught before DAVE and never re-delivered; the sink saw each sequence number once per SSRC.
      const keys = audio.map((p) => `${p.ssrc}:${p.sequence}`);
      assert.equal(new Set(keys).size, keys.length);
    });
  }

  test('RTCP of every type 192..223: encrypted (delivered once, replays dropped), plaintext compound, truncated, forged', () => {
    const prng = new Prng(0x7c);
    const key = randomBytes(32);
    const enc = new TransportEncryptor(MODES[0]!, key);
    const { receiver, rtcp } = newReceiver();
    receiver.setCipher(new TransportCipher(MODES[0]!, key));
    const types: number[] = [];
    for (let t = RTCP_TYPE_MIN; t <= RTCP_TYPE_MAX; t++) {
      const d = validRtcp(enc, prng, t);
      receiver.onDatagram(d);
      receiver.onDatagram(d); // replay
      types.push(t);
    }
    assert.deepEqual(rtcp.map((p) => p.packetType), types, 'each type delivered once');
    assert.equal(receiver.counters.replayed, types.length);
    const before = snapshot(receiver.counters);
    let n = 0;
    for (let t = RTCP_TYPE_MIN; t <= RTCP_TYPE_MAX; t++) {
      // Truncated below header + tag + nonce (but never 8 bytes: that is a keepalive echo).
      for (let len = 2; len < 28; len++) {
        if (len === 8) continue;
        const d = prng.bytes(len);
        d[0] = 0x80;
        d[1] = t;
        receiver.onDatagram(d);
        n++;
      }
      // Forged: a length field that overruns, random tag.
      const f = prng.bytes(prng.int(28, 120));
      f[0] = 0x80;
      f[1] = t;
      f.writeUInt16BE(0xffff, 2);
      receiver.onDatagram(f);
      // Length 0 words repeated: a compound of zero-length packets must not loop forever.
      const z = Buffer.alloc(40);
      for (let at = 0; at < 40; at += 4) z[at] = 0x80;
      z[1] = t;
      receiver.onDatagram(z);
    }
    const d = delta(receiver.counters, before);
    const span = RTCP_TYPE_MAX - RTCP_TYPE_MIN + 1;
    assert.equal(d.malformed, n);
    assert.equal(d.rtcpBadAuth, span, 'forged ones are refused');
    assert.equal(d.rtcp, span, 'a well-formed plaintext compound is accepted (servers may send RTCP in the clear)');
    assert.equal(receiver.accounted(), receiver.counters.datagrams);
  });
});

describe('floods: caps, eviction, flat heap', () => {
  test('50,000 new authenticated SSRCs and 100,000 op-5 mappings: every table stays within its cap', () => {
    const prng = new Prng(0xf100d);
    const key = randomBytes(32);
    const enc = new TransportEncryptor(MODES[0]!, key);
    const { receiver, audio } = newReceiver({ ssrcMap: { maxPendingSsrcs: 32, maxHeldPerSsrc: 50, maxMappings: 4096 } });
    receiver.setCipher(new TransportCipher(MODES[0]!, key));
    receiver.mapSsrc(1, 'alice');
    for (let i = 0; i < 50_000; i++) {
      receiver.onDatagram(validRtp(enc, prng, 1000 + i, i & 0xffff));
      if (i % 1000 === 0) receiver.onDatagram(validRtp(enc, prng, 1, i & 0xffff)); // alice keeps talking
      const t = receiver.tableSizes;
      assert.ok(t.pendingSsrcs <= 32 && t.held <= 32 * 50, JSON.stringify(t));
    }
    assert.equal(audio.filter((p) => p.userId === 'alice').length, 50, "alice's audio is untouched by the flood");
    assert.equal(receiver.counters.unknownSsrc + receiver.heldCount, 50_000);
    for (let s = 0; s < 100_000; s++) receiver.mapSsrc(0x10000 + s, `u${s % 5000}`);
    const t = receiver.tableSizes;
    assert.ok(t.mappings <= 4096, `mappings ${t.mappings}`);
    // One replay window per authenticated stream (RTP SSRC, RTCP sender), capped, plus tombstones of evicted ones.
    assert.ok(t.replayStreams <= 2 * 1024 && t.replayTombstones <= 2 * 4096, JSON.stringify(t));
    assert.ok(t.replayBytes <= REPLAY_BYTES_CAP, `replay windows: ${t.replayBytes} bytes`);
    assert.equal(receiver.drops().unknownSsrc, 50_000, 'held packets count as unknown in the manifest figures');
  });

  test('replay filter: a sliding window over the u32 nonce; replays inside it and anything older are refused', () => {
    const f = new ReplayFilter(100);
    assert.equal(f.capacity, 128, 'rounded up to a power of two');
    for (let n = 0; n < 1000; n++) assert.equal(f.accept(n), true);
    assert.equal(f.size, 128, 'bounded memory: one bit per nonce of the window');
    assert.equal(f.accept(999), false, 'the newest again: replay');
    assert.equal(f.accept(872), false, 'the oldest inside the window: replay');
    assert.equal(f.accept(871), false, 'behind the window: too old, refused rather than forgotten');
    assert.equal(f.accept(0), false);
    // Reordering inside the window: a nonce skipped and seen later is accepted once.
    assert.equal(f.accept(1005), true);
    assert.equal(f.accept(1002), true, 'late but new');
    assert.equal(f.accept(1002), false);
    assert.equal(f.accept(1000), true);
    // A jump wider than the window clears it; what was behind stays refused.
    assert.equal(f.accept(5000), true);
    assert.equal(f.size, 1);
    assert.equal(f.accept(1005), false);
    f.reset();
    assert.equal(f.accept(999), true, 'a new key starts a new history');
    // The u32 counter wraps: serial arithmetic makes 0xFFFFFFFF → 0 an ordinary step forward.
    f.reset();
    for (let n = 0xffff_fff0; n <= 0xffff_ffff; n++) assert.equal(f.accept(n), true);
    for (let n = 0; n < 20; n++) assert.equal(f.accept(n), true, `after the wrap: ${n}`);
    assert.equal(f.accept(-1), false, 'u32: -1 is 0xFFFFFFFF, seen before the wrap');
    assert.equal(f.accept(0xffff_fff5), false, 'replay from before the wrap');
    assert.equal(f.accept(0x8000_0014), false, 'more than half the counter ahead is behind (serial arithmetic): refused');
  });

  test('replay filter: 20,000 fresh nonces, then a replay of the first is refused (it used to be forgotten)', () => {
    const f = new ReplayFilter();
    for (let n = 0; n < 20_000; n++) assert.equal(f.accept(n), true);
    assert.equal(f.accept(0), false);
    assert.equal(f.accept(20_000 - 16_384), false, 'the oldest nonce still inside the window');
    assert.equal(f.size, 16_384);
  });

  for (const numbering of NONCE_NUMBERINGS) test(`receiver (nonces ${numbering}): an old replay after 40,000 fresh datagrams (20,000 per stream: past its window) is dropped as replayed and blamed on its SSRC's user`, () => {
    const prng = new Prng(0x01d);
    const key = randomBytes(32);
    const enc = new TransportEncryptor(MODES[0]!, key, new NonceCounter(numbering, new Prng(5)));
    const { receiver, audio } = newReceiver();
    receiver.setCipher(new TransportCipher(MODES[0]!, key));
    receiver.mapSsrc(7, 'alice');
    receiver.mapSsrc(8, 'bob');
    const first = validRtp(enc, prng, 7, 0);
    receiver.onDatagram(first);
    for (let i = 1; i < 40_000; i++) receiver.onDatagram(validRtp(enc, prng, i % 2 ? 7 : 8, i & 0xffff));
    assert.equal(audio.length, 40_000);
    const before = snapshot(receiver.counters);
    receiver.onDatagram(Buffer.from(first));
    assert.deepEqual(delta(receiver.counters, before), { datagrams: 1, replayed: 1 }, 'not delivered again');
    assert.equal(audio.length, 40_000);
    assert.equal(receiver.duplicateByUser.get('alice'), 1);
    assert.equal(receiver.duplicateByUser.get('bob'), undefined);
    assert.equal(receiver.accounted(), receiver.counters.datagrams);
  });

  test('receiver: a byte-identical duplicate datagram counts as the user\'s duplicate (and as dropped.replayed)', () => {
    const prng = new Prng(0xd0b1e);
    const key = randomBytes(32);
    const enc = new TransportEncryptor(MODES[1]!, key);
    const { receiver, audio } = newReceiver();
    receiver.setCipher(new TransportCipher(MODES[1]!, key));
    receiver.mapSsrc(7, 'alice');
    for (let i = 0; i < 50; i++) {
      const d = validRtp(enc, prng, i < 45 ? 7 : 99, i);
      receiver.onDatagram(d);
      if (i % 10 === 3) receiver.onDatagram(Buffer.from(d)); // the network delivered it twice
    }
    // SSRC 99 is unmapped: its packet is held, its duplicate is counted globally only.
    receiver.onDatagram(validRtp(enc, prng, 99, 60));
    const d = validRtp(enc, prng, 99, 61);
    receiver.onDatagram(d);
    receiver.onDatagram(Buffer.from(d));
    assert.equal(audio.length, 45);
    assert.equal(receiver.counters.replayed, 6);
    assert.equal(receiver.duplicateByUser.get('alice'), 5, 'five duplicates of alice\'s packets');
    assert.equal(receiver.drops().replayed, 6);
    // With --users excluding alice, nothing is attributed to her.
    const r2 = new Receiver({ sink: { onAudio: () => {}, onRtcp: () => {} }, clock: () => 0, dave: withoutDave, accept: (u) => u !== 'alice' });
    r2.setCipher(new TransportCipher(MODES[1]!, key));
    r2.mapSsrc(7, 'alice');
    const e = validRtp(new TransportEncryptor(MODES[1]!, key, 1000), prng, 7, 1);
    r2.onDatagram(e);
    r2.onDatagram(e);
    assert.equal(r2.counters.filtered, 1);
    assert.equal(r2.counters.replayed, 1);
    assert.equal(r2.duplicateByUser.size, 0);
  });

  test('heap stays flat across a long mixed flood (150,000 datagrams)', () => {
    const prng = new Prng(0x4ea9);
    const key = randomBytes(32);
    const enc = new TransportEncryptor(MODES[0]!, key);
    let clock = 0;
    // The sink keeps nothing: only the receiver's own state may grow.
    const rx = new Receiver({ sink: { onAudio: () => {}, onRtcp: () => {} }, clock: () => clock, dave: withoutDave });
    rx.setCipher(new TransportCipher(MODES[0]!, key));
    rx.mapSsrc(1, 'alice');
    const valid = Array.from({ length: 200 }, (_, i) => validRtp(enc, prng, 1, i));
    const batch = (n: number) => {
      for (let i = 0; i < n; i++) {
        clock += 0.2;
        const r = i % 6;
        if (r === 0) rx.onDatagram(validRtp(enc, prng, 0x100000 + ((i * 7919) >>> 0), i & 0xffff)); // new SSRCs
        else if (r === 1) rx.onDatagram(valid[i % valid.length]!); // replays
        else if (r === 2) rx.onDatagram(validRtp(enc, prng, 1, i & 0xffff)); // real audio
        else if (r === 3) rx.onDatagram(validRtcp(enc, prng, 200 + (i % 5)));
        else if (r === 4) {
          const d = Buffer.from(valid[i % valid.length]!);
          d[20]! ^= 4;
          rx.onDatagram(d);
        } else rx.onDatagram(prng.bytes(i % 120));
        if (i % 5000 === 0) rx.expire();
      }
    };
    const heap = () => {
      gc();
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    batch(40_000); // warm up: every table reaches its cap (1,024 replay streams per kind, 32 pending SSRCs)
    const base = heap();
    const sizes = rx.tableSizes;
    batch(110_000);
    const grown = heap() - base;
    // 110,000 more datagrams (~10 MB of input) after the caps were reached: at most a few MB of noise.
    assert.ok(grown < 6 * 1024 * 1024, `heap grew ${(grown / 1048576).toFixed(2)} MB`);
    assert.ok(rx.tableSizes.pendingSsrcs <= 32, `pending SSRCs ${rx.tableSizes.pendingSsrcs}`);
    assert.ok(rx.tableSizes.replayBytes <= REPLAY_BYTES_CAP && sizes.replayBytes <= REPLAY_BYTES_CAP, `${rx.tableSizes.replayBytes} bytes of replay windows`);
    assert.ok(rx.tableSizes.replayStreams <= 2 * 1024 && rx.tableSizes.replayTombstones <= 2 * 4096);
    assert.equal(rx.accounted(), rx.counters.datagrams);
    assert.equal(rx.counters.datagrams, 150_000);
  });
});

describe('live session: the full path with real DAVE under a fuzz storm', () => {
  test('mutations, truncations, replays and garbage built from real datagrams: DAVE session survives, audio continues', async () => {
    const { startSimulator, trustSimulatorCertificate } = await import('../src/simulator/index.ts');
    const { opusLoop } = await import('../src/simulator/opus-cache.ts');
    const { loginAndJoin } = await import('../src/commands/join.ts');
    const { ConnectionTap } = await import('../src/receiver/connection-tap.ts');
    const members = [
      { userId: '200000000000000001', username: 'a', signal: { kind: 'tone' as const, hz: 400 }, spurts: [{ atMs: 100, durationMs: 6000 }] },
      { userId: '200000000000000002', username: 'b', signal: { kind: 'tone' as const, hz: 1000 }, spurts: [{ atMs: 100, durationMs: 6000 }] },
    ];
    for (const m of members) opusLoop(m.signal);
    const sim = await startSimulator(scenario(members, { modes: ['aead_aes256_gcm_rtpsize'] }));
    trustSimulatorCertificate(sim);
    const audio = new Map<string, number>();
    const real: Buffer[] = [];
    const joined = await loginAndJoin({ token: TOKEN, apiUrl: sim.apiUrl, guildId: GUILD, channelId: CHANNEL });
    // The library's own receive handler stays on the socket, contained (the tap's default): the storm must not
    // reach it in a form that throws, and must not disturb the tap.
    const session = new ConnectionTap(joined.connection);
    const guardWarnings: string[] = [];
    session.on('warn', (m) => guardWarnings.push(m));
    const r = new Receiver({
      sink: { onAudio: (p) => audio.set(p.userId, (audio.get(p.userId) ?? 0) + 1), onRtcp: () => {} },
      clock: () => session.now(),
      dave: session.dave(),
    });
    const receiver: Receiver | undefined = r;
    session.on('cipher', (c) => r.setCipher(c));
    session.on('speaking', (ssrc, u) => r.mapSsrc(ssrc, u));
    session.on('datagram', (d) => {
      r.onDatagram(d);
      if (real.length < 400 && classifyDatagram(d).kind === 'rtp') real.push(Buffer.from(d));
    });
    const ready = new Promise<void>((resolve) => session.on('state', (st) => st.status === 'ready' && resolve()));
    session.start();
    await ready;
    try {
      const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));
      await sleep(1500);
      assert.ok(session.dave(), 'DAVE is on');
      const rx = receiver!;
      const before = snapshot(rx.counters);
      const audioBefore = rx.counters.audio;
      const prng = new Prng(0xda7e);
      let replays = 0;
      // 20,000 hostile datagrams in bursts, interleaved with the live stream (the event loop runs between bursts).
      for (let burst = 0; burst < 20; burst++) {
        for (let i = 0; i < 1000; i++) {
          const src = real[prng.int(0, real.length - 1)]!;
          const r = prng.next();
          if (r < 0.35) {
            const d = Buffer.from(src);
            for (let f = prng.int(1, 4); f > 0; f--) d[prng.int(0, d.length - 1)]! ^= 1 << prng.int(0, 7);
            rx.onDatagram(d);
          } else if (r < 0.5) rx.onDatagram(src.subarray(0, prng.int(0, src.length - 1)));
          else if (r < 0.8) {
            // Consecutive replays of real, DAVE-encrypted audio of both members: without the replay filter each
            // would fail DAVE (a frame decrypts once), and both members failing with nothing decrypting in between
            // is what a broken group state looks like (dave-guard.ts): the MLS session would be re-initialised.
            rx.onDatagram(Buffer.from(src));
            replays++;
          } else rx.onDatagram(prng.bytes(prng.int(0, 200)));
        }
        await sleep(50);
      }
      await sleep(600);
      const d = delta(rx.counters, before);
      assert.equal(rx.accounted(), rx.counters.datagrams, 'every datagram counted once');
      assert.ok((d.replayed ?? 0) >= replays, `replays caught: ${d.replayed} of ${replays}`);
      assert.equal(d.daveUndecryptable ?? 0, 0, `no DAVE failures from the storm: ${JSON.stringify(d)}`);
      assert.deepEqual(guardWarnings, [], 'the MLS session was not re-initialised');
      // Live audio kept flowing: ~1.6 s of two members at 50 packets/s each, beyond what arrived before.
      const gained = rx.counters.audio - audioBefore;
      assert.ok(gained >= 2 * 50 * 1.2, `audio continued during and after the storm: +${gained}`);
      const truth = sim.truth();
      for (const m of members) {
        const sent = truth.members.find((t) => t.userId === m.userId)!.packetsSent;
        assert.ok((audio.get(m.userId) ?? 0) >= sent - 2, `${m.userId}: ${audio.get(m.userId)} of ${sent} sent so far`);
      }
    } finally {
      session.close();
      joined.leave();
      await sim.close();
    }
  });
});

describe('end to end: a recording under heavy hostile traffic', () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('finishes, members intact, every hostile kind counted in manifest.json', async (t) => {
    const { startSimulator, trustSimulatorCertificate } = await import('../src/simulator/index.ts');
    const { opusLoop } = await import('../src/simulator/opus-cache.ts');
    const { runRecording } = await import('../src/commands/run-recording.ts');
    const members = [
      { userId: '200000000000000011', username: 'ann', displayName: 'Ann', signal: { kind: 'tone' as const, hz: 400 }, spurts: [{ atMs: 200, durationMs: 3200 }] },
      { userId: '200000000000000012', username: 'ben', displayName: 'Ben', signal: { kind: 'tone' as const, hz: 1000 }, spurts: [{ atMs: 300, durationMs: 3000 }] },
    ];
    for (const m of members) opusLoop(m.signal);
    const perBurst = HOSTILE_KINDS.length * 200; // 2,600 datagrams, 200 of each kind
    const bursts = [500, 1200, 1900, 2600, 3300];
    const sim = await startSimulator(scenario(members, {
      faults: [...bursts.map((atMs) => ({ atMs, kind: 'hostile' as const, count: perBurst })), { atMs: 1500, kind: 'rtcp' as const, count: 40 }],
    }));
    trustSimulatorCertificate(sim);
    const dir = mkdtempSync(join(tmpdir(), 'dvrec-hostile-'));
    dirs.push(dir);
    const outDir = join(dir, 'out');
    const warnings: string[] = [];
    try {
      const manifest = await runRecording(
        { token: TOKEN, apiUrl: sim.apiUrl, guildId: GUILD, channelId: CHANNEL, outDir, format: 'wav', mono: false, bitrateKbps: 128, mix: false, force: false, durationMs: 4200 },
        { phase: () => {}, status: () => {}, convertProgress: () => {}, warn: (w) => warnings.push(w) },
        new AbortController().signal,
      );
      const truth = sim.truth();
      assert.equal(truth.hostileSent, perBurst * bursts.length, 'the simulator sent every hostile datagram');
      // 1. Audio intact: each member's own tone in the middle of their spurt, the other's absent, full length.
      assert.equal(manifest.tracks.length, 2);
      for (const [i, m] of members.entries()) {
        const t = manifest.tracks.find((x) => x.userId === m.userId);
        assert.ok(t, `track for ${m.userId}`);
        assert.equal(t.packets.lost, 0, `${m.userId}: nothing lost to the flood`);
        const x = readWavLeft(join(outDir, t.file));
        assert.ok(Math.abs(x.length - msToSample(manifest.durationMs)) <= BLOCK);
        const mt = truth.members.find((y) => y.userId === m.userId)!;
        const start = msToSample(mt.spurts[0]!.onsetWallMs - Date.parse(manifest.startedAt));
        const end = msToSample(mt.spurts[0]!.endWallMs - Date.parse(manifest.startedAt));
        let good = 0;
        let blocks = 0;
        // As record.test.ts judges it: a dropout is the member's tone below 10% of its level (the signal is voiced,
        // with a syllable envelope), a leak is the other member's tone above 10%.
        const bad: string[] = [];
        for (let at = start + 2 * BLOCK; at + 3 * BLOCK <= Math.min(end, x.length); at += BLOCK, blocks++) {
          const own = toneAmplitude(x, at, BLOCK, m.signal.hz);
          const other = toneAmplitude(x, at, BLOCK, members[1 - i]!.signal.hz);
          if (own >= 0.1 * TONE_PEAK && other < 0.1 * TONE_PEAK) good++;
          else bad.push(`${(at / 48).toFixed(0)}ms:${own.toFixed(0)}/${other.toFixed(0)}`);
        }
        assert.ok(blocks > 100 && good === blocks, `${m.userId}: ${good}/${blocks} blocks carry the member's tone alone; ${bad}`);
      }
      assert.ok(warnings.some((w) => /skipped datagrams/.test(w)), `a warning summarises the drops: ${warnings}`);
      // 2. Every kind counted where it belongs, in manifest.json's `dropped` (the receiver's counts, via the journal).
      const dropped = (manifest as { dropped?: ReceiverDrops }).dropped;
      await t.test('manifest.json `dropped`: each kind in its field, fields add up to every datagram', () => {
        assert.ok(dropped, `manifest.json carries the receiver's drop counts: ${JSON.stringify(Object.keys(manifest))}`);
        const n = (perBurst / HOSTILE_KINDS.length) * bursts.length; // of each kind
        const expected = new Map<string, number>();
        for (const k of HOSTILE_KINDS) {
          const where = HOSTILE_EXPECTED[k];
          if (where) expected.set(where, (expected.get(where) ?? 0) + n);
        }
        for (const [field, count] of expected) {
          const got = (dropped as unknown as Record<string, number>)[field] ?? -1;
          assert.ok(got >= count, `${field}: ${got} ≥ ${count}`);
        }
        assert.ok(dropped.rtcp >= 40 + n, `RTCP reports and valid RTCP of every type: ${dropped.rtcp}`);
        const sum = Object.entries(dropped).filter(([k]) => k !== 'datagrams').reduce((a, [, v]) => a + v, 0);
        assert.equal(sum, dropped.datagrams, 'every datagram is in exactly one field');
        assert.ok(dropped.datagrams >= truth.hostileSent + 40, 'everything the simulator sent arrived and was counted');
      });
    } finally {
      await sim.close();
    }
  });
});
