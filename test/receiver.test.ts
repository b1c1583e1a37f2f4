/**
 * Receiver tests. Part 1: the parsing and decryption stages with crafted packets, encrypted by
 * @discordjs/voice's own sender code (an independent implementation of the rtpsize modes), plus a seeded fuzz.
 * Part 2 (below): receiving from the simulator over loopback with the real discord.js + @discordjs/voice.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { classifyDatagram } from '../src/receiver/rtp.ts';
import { TransportCipher, type TransportMode } from '../src/receiver/transport-crypto.ts';
import { SsrcMap } from '../src/receiver/ssrc-map.ts';
import { isSilenceFrame, looksLikeDaveFrame, withoutDave, type DaveFrameDecryptor } from '../src/receiver/dave.ts';
import { DaveGuard, type DaveWrapper } from '../src/receiver/dave-guard.ts';
import { Receiver } from '../src/receiver/receiver.ts';
import { trackStem, sanitizeName } from '../src/sinks/naming.ts';
import type { AudioPacket, RtcpPacket } from '../src/sinks/types.ts';
import { Prng } from '../src/simulator/prng.ts';
import { NONCE_NUMBERINGS, NonceCounter } from '../src/simulator/nonces.ts';
import { TransportEncryptor } from '../src/simulator/transport-crypto.ts';
import { rtcpSenderReport, rtpHeader } from '../src/simulator/rtp.ts';
import { parseVideoOp } from '../src/receiver/video-streams.ts';

const require = createRequire(import.meta.url);
const { Networking } = require('@discordjs/voice') as typeof import('@discordjs/voice');
/**
 * Reference sealers. AES-GCM: @discordjs/voice's own sender. XChaCha20: libsodium called directly, because
 * @discordjs/voice 0.19.2 loads sodium-native with `import()`, whose namespace lacks the constants it reads
 * (ABYTES is undefined), so its XChaCha path fails with sodium-native 5 on this Node.
 */
const sodium = require('sodium-native') as {
  crypto_aead_xchacha20poly1305_ietf_encrypt(c: Buffer, m: Buffer, ad: Buffer, nsec: null, npub: Buffer, k: Uint8Array): number;
};

const MODES: TransportMode[] = ['aead_aes256_gcm_rtpsize', 'aead_xchacha20_poly1305_rtpsize'];

interface Craft {
  seq?: number;
  ts?: number;
  ssrc?: number;
  pt?: number;
  marker?: boolean;
  csrcs?: number[];
  /** Extension body words (each 4 bytes). */
  extWords?: number;
  /** Extension profile (default 0xBEDE, RFC 8285 one-byte headers). */
  extProfile?: number;
  /** Padding bytes to append (count byte included). */
  pad?: number;
  opus: Buffer;
}

/** Builds an RTP datagram by hand and encrypts it with @discordjs/voice's sender (Networking.encryptOpusPacket). */
function craft(mode: TransportMode, key: Uint8Array, nonce: number, c: Craft): Buffer {
  const cc = c.csrcs?.length ?? 0;
  const ext = c.extWords !== undefined;
  const header = Buffer.alloc(12 + 4 * cc + (ext ? 4 : 0));
  header[0] = 0x80 | (c.pad ? 0x20 : 0) | (ext ? 0x10 : 0) | cc;
  header[1] = (c.marker ? 0x80 : 0) | (c.pt ?? 0x78);
  header.writeUInt16BE(c.seq ?? 1, 2);
  header.writeUInt32BE(c.ts ?? 960, 4);
  header.writeUInt32BE(c.ssrc ?? 1234, 8);
  c.csrcs?.forEach((v, i) => header.writeUInt32BE(v, 12 + 4 * i));
  const parts: Buffer[] = [];
  if (ext) {
    header.writeUInt16BE(c.extProfile ?? 0xbede, 12 + 4 * cc);
    header.writeUInt16BE(c.extWords!, 14 + 4 * cc);
    parts.push(Buffer.alloc(4 * c.extWords!, 0x11));
  }
  parts.push(c.opus);
  if (c.pad) {
    const p = Buffer.alloc(c.pad, 0);
    p[c.pad - 1] = c.pad;
    parts.push(p);
  }
  const connectionData = {
    secretKey: key,
    encryptionMode: mode,
    nonce: nonce - 1,
    nonceBuffer: Buffer.alloc(mode === 'aead_aes256_gcm_rtpsize' ? 12 : 24),
  };
  if (mode === 'aead_xchacha20_poly1305_rtpsize') {
    const plain = Buffer.concat(parts);
    const n = Buffer.alloc(24);
    n.writeUInt32BE(nonce >>> 0, 0);
    const sealed = Buffer.alloc(plain.length + 16);
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(sealed, plain, header, null, n, key);
    return Buffer.concat([header, sealed, n.subarray(0, 4)]);
  }
  const encrypt = (Networking.prototype as unknown as {
    encryptOpusPacket(p: Buffer, cd: unknown, aad: Buffer, dave: undefined): Buffer[];
  }).encryptOpusPacket;
  const [sealed, noncePad] = encrypt.call({}, Buffer.concat(parts), connectionData, header, undefined);
  return Buffer.concat([header, sealed!, noncePad!]);
}

function collectingReceiver(opts: { dave?: DaveFrameDecryptor; accept?: (u: string) => boolean } = {}) {
  const audio: AudioPacket[] = [];
  const rtcp: RtcpPacket[] = [];
  let now = 0;
  const receiver = new Receiver({
    sink: { onAudio: (p) => audio.push(p), onRtcp: (p) => rtcp.push(p) },
    clock: () => now,
    dave: opts.dave ?? withoutDave,
    ...(opts.accept ? { accept: opts.accept } : {}),
  });
  return { receiver, audio, rtcp, advance: (ms: number) => (now += ms) };
}

describe('rtp.ts', () => {
  test('parses header fields, 16-bit sequence and 32-bit timestamp at their limits', () => {
    const d = craft(MODES[0]!, randomBytes(32), 1, { seq: 0xffff, ts: 0xffffffff, ssrc: 0xfffffffe, marker: true, opus: Buffer.from([1, 2, 3]) });
    const k = classifyDatagram(d);
    assert.equal(k.kind, 'rtp');
    if (k.kind !== 'rtp') return;
    assert.equal(k.header.sequence, 0xffff);
    assert.equal(k.header.timestamp, 0xffffffff);
    assert.equal(k.header.ssrc, 0xfffffffe);
    assert.equal(k.header.marker, true);
    assert.equal(k.header.aadLength, 12);
  });

  test('honours CSRC count and the extension preamble (AAD covers both)', () => {
    const d = craft(MODES[0]!, randomBytes(32), 1, { csrcs: [7, 8, 9], extWords: 2, opus: Buffer.from([1]) });
    const k = classifyDatagram(d);
    assert.equal(k.kind, 'rtp');
    if (k.kind !== 'rtp') return;
    assert.equal(k.header.csrcCount, 3);
    assert.equal(k.header.aadLength, 12 + 12 + 4);
    assert.equal(k.header.extensionBodyLength, 8);
  });

  test('skips a header extension of any profile by its length (RFC 3550 §5.3.1), not only BE DE', () => {
    const key = randomBytes(32);
    const cipher = new TransportCipher(MODES[0]!, key);
    const opus = randomBytes(33);
    // 0x1000: RFC 8285 two-byte headers; 0x0000 and 0x12DE: any other profile is framed the same way.
    for (const extProfile of [0x1000, 0x100f, 0x0000, 0x12de]) {
      const d = craft(MODES[0]!, key, 1, { extWords: 2, extProfile, csrcs: [5], opus });
      const k = classifyDatagram(d);
      assert.equal(k.kind, 'rtp', `profile ${extProfile.toString(16)}`);
      if (k.kind !== 'rtp') continue;
      assert.equal(k.header.aadLength, 12 + 4 + 4);
      assert.equal(k.header.extensionBodyLength, 8);
      assert.deepEqual(cipher.openRtp(d, k.header), opus, 'extension body stripped, Opus intact');
    }
  });

  test('classifies RTCP by byte 1 in 200..204', () => {
    for (const pt of [200, 201, 202, 203, 204]) {
      const d = Buffer.alloc(40);
      d[0] = 0x80;
      d[1] = pt;
      d.writeUInt32BE(0xabcdef01, 4);
      const k = classifyDatagram(d);
      assert.deepEqual(k, { kind: 'rtcp', packetType: pt, ssrc: 0xabcdef01 });
    }
  });

  test('every malformed shape is a skip with a reason, never a throw', () => {
    const base = craft(MODES[0]!, randomBytes(32), 1, { extWords: 1, opus: Buffer.from([1, 2, 3, 4]) });
    const cases: [Buffer, string][] = [
      [Buffer.alloc(0), 'too-short'],
      [Buffer.from([0x80]), 'too-short'],
      ...[9, 10, 11].map((n): [Buffer, string] => [Buffer.concat([Buffer.from([0x80, 0x78]), Buffer.alloc(n - 2)]), 'too-short']),
      [Buffer.from([0x40, 0x78, ...Buffer.alloc(40)]), 'bad-version'],
      [Buffer.from([0x00, 0x02, 0x00, 0x46, ...Buffer.alloc(70)]), 'control'], // an IP discovery reply
      [Buffer.alloc(8), 'control'], // keepalive echo
      [Buffer.from([0x00, 0x02, 0x00, 0x46, ...Buffer.alloc(71)]), 'bad-version'], // not quite a discovery reply
      [Buffer.from([0x80, 0xc8, 0, 1]), 'too-short'], // truncated RTCP
      [(() => { const b = Buffer.from(base); b.writeUInt16BE(0xffff, 14); return b; })(), 'bad-extension'],
      [(() => { const b = Buffer.from([0x8f, 0x78, ...Buffer.alloc(30)]); return b; })(), 'too-short'], // CC=15 overruns
      [(() => { const b = Buffer.from(base); b[1] = 0x65; return b; })(), 'not-audio'],
    ];
    for (const [buf, reason] of cases) {
      const k = classifyDatagram(buf);
      assert.equal(k.kind, 'skip', `expected skip for ${buf.toString('hex')}`);
      if (k.kind === 'skip') assert.equal(k.reason, reason, buf.toString('hex'));
    }
  });
});

describe('transport-crypto.ts', () => {
  for (const mode of MODES) {
    test(`${mode}: decrypts what @discordjs/voice encrypts, strips extension body and padding`, () => {
      const key = randomBytes(32);
      const cipher = new TransportCipher(mode, key);
      const opus = randomBytes(57);
      const shapes: Omit<Craft, 'opus'>[] = [{}, { extWords: 1 }, { extWords: 3, pad: 5 }, { pad: 1 }, { csrcs: [1, 2], extWords: 2, pad: 4 }];
      let nonce = 0xfffffffe; // crosses the u32 nonce wrap
      for (const shape of shapes) {
        const d = craft(mode, key, nonce++ >>> 0, { ...shape, opus });
        const k = classifyDatagram(d);
        assert.equal(k.kind, 'rtp');
        if (k.kind !== 'rtp') continue;
        const out = cipher.openRtp(d, k.header);
        assert.ok(out, `decrypts ${JSON.stringify(shape)}`);
        assert.deepEqual(Buffer.from(out), opus);
      }
    });

    test(`${mode}: a flipped bit anywhere, a wrong key or a bad padding count gives null`, () => {
      const key = randomBytes(32);
      const cipher = new TransportCipher(mode, key);
      const d = craft(mode, key, 5, { extWords: 1, opus: randomBytes(40) });
      const k = classifyDatagram(d);
      assert.equal(k.kind, 'rtp');
      if (k.kind !== 'rtp') return;
      for (let i = 0; i < d.length; i++) {
        const bad = Buffer.from(d);
        bad[i]! ^= 0x01;
        const kb = classifyDatagram(bad);
        if (kb.kind !== 'rtp') continue;
        assert.equal(cipher.openRtp(bad, kb.header), null, `bit flip at byte ${i}`);
      }
      assert.equal(new TransportCipher(mode, randomBytes(32)).openRtp(d, k.header), null);
      // Padding count larger than the payload (authenticated, so only a buggy or hostile sender does this).
      const p = craft(mode, key, 6, { pad: 3, opus: Buffer.alloc(0) });
      const pk = classifyDatagram(p);
      assert.equal(pk.kind, 'rtp');
      if (pk.kind === 'rtp') assert.deepEqual(cipher.openRtp(p, pk.header), Buffer.alloc(0));
      // A pad count larger than what the plaintext holds is refused, not sliced into negative lengths.
      const hdr = Buffer.from([0xa0, 0x78, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9]); // P bit set
      const sealed = cipher.seal(hdr, Buffer.from([1, 2, 9]), 7); // last byte says 9 bytes of padding
      const ks = classifyDatagram(sealed);
      assert.equal(ks.kind, 'rtp');
      if (ks.kind === 'rtp') assert.equal(cipher.openRtp(sealed, ks.header), null);
    });

    test(`${mode}: RTCP authenticates its 8-byte header`, () => {
      const key = randomBytes(32);
      const cipher = new TransportCipher(mode, key);
      const hdr = Buffer.from([0x80, 200, 0, 6, 0xde, 0xad, 0xbe, 0xef]);
      const body = randomBytes(20);
      const d = cipher.seal(hdr, body, 42);
      assert.deepEqual(cipher.openRtcp(d), Buffer.concat([hdr, body]));
      const bad = Buffer.from(d);
      bad[5]! ^= 1;
      assert.equal(cipher.openRtcp(bad), null);
    });
  }
});

describe('ssrc-map.ts', () => {
  test('holds packets of an SSRC until its op 5, then releases them in order', () => {
    const m = new SsrcMap<number>();
    for (let i = 0; i < 5; i++) assert.deepEqual(m.hold(77, i, i * 20), { held: true, dropped: 0 });
    assert.equal(m.get(77), undefined);
    assert.deepEqual(m.set(77, 'u1'), [0, 1, 2, 3, 4]);
    assert.equal(m.get(77), 'u1');
    assert.equal(m.heldCount, 0);
  });

  test('held packets expire after holdMs; per-SSRC and SSRC-count caps evict oldest first', () => {
    const m = new SsrcMap<number>({ holdMs: 1000, maxHeldPerSsrc: 3, maxPendingSsrcs: 4 });
    m.hold(1, 0, 0);
    assert.equal(m.expire(1001), 1);
    assert.equal(m.heldCount, 0);
    for (let i = 0; i < 5; i++) m.hold(2, i, 10);
    assert.equal(m.heldCount, 3, 'per-SSRC cap');
    let dropped = 0;
    for (let s = 100; s < 10_100; s++) dropped += m.hold(s, s, 20).dropped; // a flood of new SSRCs
    assert.ok(m.heldCount <= 4, `bounded: ${m.heldCount}`);
    assert.equal(dropped, 3 + 10_000 - 4);
    assert.deepEqual(m.set(10_099, 'late'), [10_099], 'newest survives');
  });

  test('mapping table is bounded', () => {
    const m = new SsrcMap<number>({ maxMappings: 10 });
    for (let s = 0; s < 100; s++) m.set(s, `u${s}`);
    assert.equal(m.size, 10);
    assert.equal(m.get(99), 'u99');
    assert.equal(m.get(0), undefined);
  });
});

describe('dave.ts', () => {
  const daveFrame = Buffer.concat([randomBytes(30), randomBytes(8), Buffer.from([0x05, 12, 0xfa, 0xfa])]);
  test('silence passes; DAVE frames without a usable session are undecryptable', () => {
    const silence = Buffer.from([0xf8, 0xff, 0xfe]);
    const plain = randomBytes(40);
    plain[39] = 0; // not FA FA
    assert.ok(looksLikeDaveFrame(daveFrame));
    assert.equal(withoutDave.decrypt(silence, 'u'), silence);
    assert.equal(withoutDave.decrypt(daveFrame, 'u'), null);
    assert.equal(withoutDave.decrypt(plain, 'u'), plain);
    // The guard: no wrapper, a wrapper without a group yet, a session that passes frames through or throws.
    let wrapper: DaveWrapper | undefined;
    const guard = new DaveGuard({ wrapper: () => wrapper, canSignal: () => true, now: () => 0, warn: () => {} });
    assert.equal(guard.decrypt(silence, 'u'), silence);
    assert.equal(guard.decrypt(daveFrame, 'u'), null);
    assert.equal(guard.decrypt(plain, 'u'), plain);
    let decrypt = (_u: string, _m: 0, p: Buffer): Buffer => p;
    const session = { ready: false, canPassthrough: () => false, decrypt: (u: string, m: 0, p: Buffer) => decrypt(u, m, p) };
    wrapper = { session, protocolVersion: 1, pendingTransitions: new Map(), reinitializing: false, recoverFromInvalidTransition: () => {}, reinit: () => {}, emit: () => true };
    assert.equal(guard.decrypt(daveFrame, 'u'), null, 'not in a group yet');
    assert.equal(guard.decrypt(plain, 'u'), plain);
    session.ready = true;
    assert.equal(guard.decrypt(daveFrame, 'u'), null, 'returned unchanged but still encrypted');
    assert.equal(guard.decrypt(plain, 'u'), plain);
    decrypt = () => {
      throw new Error('NoValidCryptorFound');
    };
    assert.equal(guard.decrypt(daveFrame, 'u'), null);
    assert.equal(guard.decrypt(silence, 'u'), silence);
  });
});

describe('receiver.ts pipeline', () => {
  for (const mode of MODES) {
    test(`${mode}: datagram → AudioPacket for the right user; early packets wait for op 5`, () => {
      const key = randomBytes(32);
      const { receiver, audio, advance } = collectingReceiver();
      receiver.setCipher(new TransportCipher(mode, key));
      const opusA = randomBytes(30);
      const opusB = randomBytes(31);
      receiver.mapSsrc(1, 'alice');
      receiver.onDatagram(craft(mode, key, 1, { ssrc: 1, seq: 65535, ts: 100, opus: opusA }));
      advance(20);
      receiver.onDatagram(craft(mode, key, 2, { ssrc: 1, seq: 0, ts: 1060, extWords: 1, opus: opusA }));
      receiver.onDatagram(craft(mode, key, 3, { ssrc: 2, seq: 10, ts: 5, opus: opusB })); // before bob's op 5
      assert.equal(audio.length, 2);
      receiver.mapSsrc(2, 'bob');
      assert.equal(audio.length, 3);
      assert.deepEqual(audio.map((p) => [p.userId, p.sequence, p.arrivalMs]), [['alice', 65535, 0], ['alice', 0, 20], ['bob', 10, 20]]);
      assert.deepEqual(Buffer.from(audio[2]!.opus), opusB);
      assert.equal(receiver.counters.audio, 3);
    });
  }

  test('DAVE failures of authenticated packets count against that user', () => {
    const key = randomBytes(32);
    // A DAVE stage that can decrypt nothing (silence frames are never DAVE-encrypted: they pass).
    const { receiver, audio } = collectingReceiver({ dave: { decrypt: (f) => (isSilenceFrame(f) ? f : null) } });
    receiver.setCipher(new TransportCipher(MODES[1]!, key));
    receiver.mapSsrc(9, 'dave-user');
    receiver.onDatagram(craft(MODES[1]!, key, 1, { ssrc: 9, opus: Buffer.concat([randomBytes(20), Buffer.from([1, 12, 0xfa, 0xfa])]) }));
    receiver.onDatagram(craft(MODES[1]!, key, 2, { ssrc: 9, opus: Buffer.from([0xf8, 0xff, 0xfe]) }));
    assert.equal(receiver.counters.daveUndecryptable, 1);
    assert.equal(receiver.undecryptableByUser.get('dave-user'), 1);
    assert.equal(audio.length, 1, 'the silence frame passes');
  });

  test('users filter, RTCP delivery, forged packets counted but not blamed', () => {
    const key = randomBytes(32);
    const cipher = new TransportCipher(MODES[0]!, key);
    const { receiver, audio, rtcp } = collectingReceiver({ accept: (u) => u !== 'carol' });
    receiver.onDatagram(craft(MODES[0]!, key, 1, { ssrc: 1, opus: randomBytes(10) }));
    assert.equal(receiver.counters.noKey, 1, 'no key yet');
    receiver.setCipher(cipher);
    receiver.mapSsrc(1, 'alice');
    receiver.mapSsrc(3, 'carol');
    receiver.onDatagram(craft(MODES[0]!, key, 2, { ssrc: 3, opus: randomBytes(10) }));
    assert.equal(receiver.counters.filtered, 1);
    const bad = craft(MODES[0]!, key, 3, { ssrc: 1, opus: randomBytes(10) });
    bad[20]! ^= 0xff;
    receiver.onDatagram(bad);
    assert.equal(receiver.counters.badAuth, 1);
    assert.equal(receiver.undecryptableByUser.get('alice'), undefined, 'a forged packet is not blamed on the SSRC owner');
    receiver.onDatagram(cipher.seal(Buffer.from([0x80, 201, 0, 7, 0, 0, 0, 1]), randomBytes(24), 9));
    assert.equal(rtcp.length, 1);
    assert.equal(rtcp[0]!.packetType, 201);
    assert.equal(audio.length, 0);
  });

  for (const numbering of NONCE_NUMBERINGS) {
    test(`nonces ${numbering}: three speakers, their sender reports and a camera, all delivered once; every copy refused`, () => {
      const key = randomBytes(32);
      const mode = MODES[0]!;
      // The simulator's sealer, numbering the datagrams as a server with this numbering does.
      const enc = new TransportEncryptor(mode, key, new NonceCounter(numbering, new Prng(3)));
      const { receiver, audio, rtcp } = collectingReceiver();
      receiver.setCipher(new TransportCipher(mode, key));
      const users = ['alice', 'bob', 'carol'];
      users.forEach((u, i) => receiver.mapSsrc(100 + i, u));
      receiver.onVideo({ userId: 'alice', audioSsrc: 100, videoSsrcs: [500, 501] });
      const sent: Buffer[] = [];
      let reports = 0;
      let video = 0;
      for (let k = 0; k < 300; k++) {
        users.forEach((_, i) => {
          const opus = randomBytes(20);
          sent.push(enc.seal(rtpHeader({ sequence: (k + 7 * i) & 0xffff, timestamp: (k * 960 + i) >>> 0, ssrc: 100 + i }), opus));
          if (k % 50 === 10 * i) {
            const sr = rtcpSenderReport(100 + i, Date.now(), k * 960, k, k * 20);
            sent.push(enc.seal(sr.subarray(0, 8), sr.subarray(8)));
            reports++;
          }
        });
        // Alice's camera: VP8 (105) and now and then an RTX (106), whose payload is never opened.
        sent.push(enc.seal(rtpHeader({ sequence: k, timestamp: k * 3000, ssrc: 500, payloadType: 105 }), randomBytes(900)));
        video++;
        if (k % 10 === 0) {
          sent.push(enc.seal(rtpHeader({ sequence: k / 10, timestamp: k * 3000, ssrc: 501, payloadType: 106 }), randomBytes(900)));
          video++;
        }
      }
      for (const d of sent) receiver.onDatagram(d);
      for (const d of sent) receiver.onDatagram(Buffer.from(d)); // every one again: duplicates, or replays
      const c = receiver.counters;
      assert.equal(audio.length, 900, 'every audio packet delivered');
      assert.equal(new Set(audio.map((p) => `${p.ssrc}:${p.sequence}`)).size, 900, 'each once');
      assert.equal(c.rtcp, reports, 'every sender report delivered once');
      assert.equal(rtcp.length, reports);
      assert.equal(c.replayed, 900 + reports, 'every copy of audio and RTCP refused');
      assert.equal(c.video, 2 * video, 'video counted (never opened, so both copies)');
      assert.equal(c.notAudio, 0);
      assert.equal(receiver.accounted(), c.datagrams);
    });
  }

  test('op 12: its audio SSRC maps like op 5 (held packets released); its video SSRCs count as video whatever the payload type', () => {
    const key = randomBytes(32);
    const mode = MODES[1]!;
    const { receiver, audio } = collectingReceiver();
    receiver.setCipher(new TransportCipher(mode, key));
    receiver.onDatagram(craft(mode, key, 1, { ssrc: 42, seq: 1, opus: randomBytes(20) }));
    assert.equal(receiver.heldCount, 1, 'no mapping yet: held');
    const a = parseVideoOp({
      user_id: 'dana', audio_ssrc: 42, video_ssrc: 43, rtx_ssrc: 44,
      streams: [{ type: 'video', rid: '100', ssrc: 43, rtx_ssrc: 44, active: true }, { type: 'screen', ssrc: 45, rtx_ssrc: 46 }],
    })!;
    assert.deepEqual(a, { userId: 'dana', audioSsrc: 42, videoSsrcs: [43, 44, 45, 46] });
    receiver.onVideo(a);
    assert.deepEqual(audio.map((p) => p.userId), ['dana'], 'released to its user');
    // A payload type outside Discord's video range: video on an announced SSRC, not audio elsewhere.
    receiver.onDatagram(craft(mode, key, 2, { ssrc: 45, pt: 96, opus: randomBytes(200) }));
    receiver.onDatagram(craft(mode, key, 3, { ssrc: 77, pt: 96, opus: randomBytes(200) }));
    receiver.onDatagram(craft(mode, key, 4, { ssrc: 78, pt: 102, opus: randomBytes(200) })); // H264 RTX before its op 12
    assert.deepEqual([receiver.counters.video, receiver.counters.notAudio], [2, 1]);
    // Video off: op 12 with no SSRCs, and payloads that are no op 12 at all.
    assert.deepEqual(parseVideoOp({ user_id: 'dana', audio_ssrc: 42, video_ssrc: 0, rtx_ssrc: 0, streams: [] }), { userId: 'dana', audioSsrc: 42, videoSsrcs: [] });
    for (const bad of [null, 1, 'x', {}, { user_id: 5 }, { user_id: '' }]) assert.equal(parseVideoOp(bad), null);
    assert.deepEqual(parseVideoOp({ user_id: 'u', audio_ssrc: -1, video_ssrc: 2 ** 32, streams: [null, 7, { ssrc: 'x', rtx_ssrc: 9 }] }), { userId: 'u', audioSsrc: 0, videoSsrcs: [9] });
  });

  test('seeded fuzz: 30,000 hostile datagrams never throw, every one is counted, memory bounded', () => {
    const prng = new Prng(0xd1ec);
    const key = randomBytes(32);
    for (const mode of MODES) {
      const { receiver, audio } = collectingReceiver();
      receiver.setCipher(new TransportCipher(mode, key));
      receiver.mapSsrc(5, 'alice');
      const valid = Array.from({ length: 50 }, (_, i) => craft(mode, key, i + 1, { ssrc: 5, seq: i, extWords: i % 3 ? undefined : 1, pad: i % 5 ? undefined : 3, opus: prng.bytes(20 + (i % 40)) }));
      let delivered = 0;
      for (let i = 0; i < 15_000; i++) {
        const r = prng.next();
        let d: Buffer;
        if (r < 0.3) d = prng.bytes(prng.int(0, 80));
        else if (r < 0.5) d = Buffer.concat([Buffer.from([0x80 | prng.int(0, 0x3f), prng.int(0, 255)]), prng.bytes(prng.int(0, 60))]);
        else if (r < 0.7) {
          d = Buffer.from(valid[prng.int(0, valid.length - 1)]!);
          for (let f = prng.int(1, 4); f > 0; f--) d[prng.int(0, d.length - 1)]! ^= 1 << prng.int(0, 7);
        } else if (r < 0.85) d = valid[prng.int(0, valid.length - 1)]!.subarray(0, prng.int(0, 40));
        else if (r < 0.95) {
          d = Buffer.from(valid[prng.int(0, valid.length - 1)]!); // replay
          delivered++;
        } else {
          d = Buffer.from(valid[0]!);
          d.writeUInt32BE(prng.u32(), 8); // unknown SSRC flood (fails auth: SSRC is in the AAD)
        }
        receiver.onDatagram(d);
      }
      const c = receiver.counters;
      assert.equal(c.datagrams, 15_000);
      assert.equal(receiver.accounted(), 15_000);
      // Each valid packet is delivered once; its replays are dropped before DAVE (see replay-filter.ts).
      assert.ok(c.audio <= valid.length && c.replayed >= delivered - valid.length, `audio ${c.audio}, replayed ${c.replayed}`);
      assert.equal(audio.length, c.audio);
      assert.ok(receiver.heldCount <= 32 * 50);
    }
  });
});

describe('naming.ts', () => {
  test('stems are safe on every filesystem, keep unicode, stay bounded and unique by id', () => {
    const hostile = [
      '../../etc/passwd', '..', '.', 'CON', 'con.txt', 'lpt1', 'a/b\\c:d*e?f"g<h>i|j', 'bell\u0007name', 'rtl\u202Egnp.exe',
      ' trailing. ', '名前🎙️', 'x'.repeat(500), '🎧'.repeat(100), '', '\u0000', 'nul',
    ];
    const stems = new Set<string>();
    hostile.forEach((name, i) => {
      const id = `1000000000000000${String(i).padStart(2, '0')}`;
      const stem = trackStem(id, name, name);
      stems.add(stem);
      assert.ok(stem.endsWith(id), stem);
      assert.doesNotMatch(stem, /[/\\:*?"<>|\u0000-\u001f\u007f\u202e]/u, stem);
      assert.ok(!stem.startsWith('.') && !stem.endsWith('.') && !stem.endsWith(' '), stem);
      assert.notEqual(stem, '..');
      assert.ok(Buffer.byteLength(stem) <= 48 + 1 + 20, `${Buffer.byteLength(stem)} bytes`);
      assert.doesNotMatch(stem.split('-')[0]!, /^(con|prn|aux|nul|com\d|lpt\d)$/i, stem);
    });
    assert.equal(stems.size, hostile.length);
    assert.equal(trackStem('42', '名前🎙️', 'x'), '名前🎙️-42');
    assert.equal(sanitizeName('🎧'.repeat(100)).length, 12 * 2, 'cut at a code point boundary (4-byte emoji → 12 of them)');
    assert.equal(trackStem('42', undefined, '..'), '42');
  });
});

describe('receiving from the simulator (real discord.js + @discordjs/voice over loopback)', () => {
  for (const mode of MODES) {
    // The library's own receive handler is contained ('guard', what a host bot keeps) or off the socket ('detach',
    // what the command line uses): one transport mode each.
    const libraryReceiver = mode === MODES[0] ? 'guard' : 'detach';
    test(`${mode} + DAVE, library receiver ${libraryReceiver}: right user, decoded tone matches the member, 9–11 byte and hostile datagrams survived`, async () => {
      const { startSimulator, trustSimulatorCertificate } = await import('../src/simulator/index.ts');
      const { opusLoop } = await import('../src/simulator/opus-cache.ts');
      const { loginAndJoin } = await import('../src/commands/join.ts');
      const { ConnectionTap } = await import('../src/receiver/connection-tap.ts');
      const { scenario, TOKEN, GUILD, CHANNEL, toneAmplitude } = await import('./record-fixtures.ts');
      const dgram = await import('node:dgram');
      const opus = (await import('@discordjs/opus')).default;
      const members = [
        { userId: '200000000000000001', username: 'a', signal: { kind: 'tone' as const, hz: 400 }, spurts: [{ atMs: 100, durationMs: 600 }] },
        { userId: '200000000000000002', username: 'b', signal: { kind: 'tone' as const, hz: 1000 }, spurts: [{ atMs: 200, durationMs: 600 }] },
      ];
      for (const m of members) opusLoop(m.signal);
      const sim = await startSimulator(scenario(members, { modes: [mode], faults: [{ atMs: 300, kind: 'hostile', count: 200 }] }));
      trustSimulatorCertificate(sim);
      const packets = new Map<string, AudioPacket[]>();
      const joined = await loginAndJoin({ token: TOKEN, apiUrl: sim.apiUrl, guildId: GUILD, channelId: CHANNEL });
      const session = new ConnectionTap(joined.connection, { libraryReceiver });
      const r = new Receiver({
        sink: { onAudio: (p) => (packets.get(p.userId) ?? packets.set(p.userId, []).get(p.userId)!).push(p), onRtcp: () => {} },
        clock: () => session.now(),
        dave: session.dave(),
      });
      const receiver: Receiver | undefined = r;
      session.on('cipher', (c) => r.setCipher(c));
      session.on('speaking', (ssrc, u) => r.mapSsrc(ssrc, u));
      session.on('datagram', (d) => r.onDatagram(d));
      const ready = new Promise<void>((resolve) => session.on('state', (st) => st.status === 'ready' && resolve()));
      session.start();
      await ready;
      try {
        // The library's own handler never sees raw network input: contained behind the guard, or off the socket.
        const udp = session.udp!;
        const names = udp.listeners('message').map((f) => f.name);
        assert.ok(!names.includes('bound onUdpMessage'), `library handler not on the socket as it was: ${names}`);
        assert.equal(udp.listeners('message').length, libraryReceiver === 'guard' ? 2 : 1, `listeners: ${names}`);
        assert.ok(session.dave(), 'a DAVE session is active');
        // Datagrams of 9–11 bytes would make @discordjs/voice's VoiceReceiver throw outside any try/catch.
        const port = (udp as unknown as { socket: import('node:dgram').Socket }).socket.address().port;
        const evil = dgram.createSocket('udp4');
        for (let i = 0; i < 30; i++) evil.send(randomBytes(9 + (i % 3)), port, '127.0.0.1');
        await new Promise((r) => setTimeout(r, 1300));
        evil.close();
        const c = receiver!.counters;
        assert.ok(c.malformed >= 30, `short datagrams counted (${c.malformed})`);
        const truth = sim.truth();
        const decoder = new opus.OpusEncoder(48_000, 2);
        for (const [i, m] of members.entries()) {
          const got = packets.get(m.userId) ?? [];
          const mt = truth.members.find((t) => t.userId === m.userId)!;
          assert.equal(got.length, mt.packetsSent, `${m.userId}: every packet sent arrived, attributed to the right user`);
          assert.deepEqual([...new Set(got.map((p) => p.ssrc))], mt.ssrcs);
          // Decode in sequence order and check the member's tone (and not the other's) is what came out.
          const pcm = Buffer.concat(got.filter((p) => p.opus.length > 3).map((p) => decoder.decode(Buffer.from(p.opus))));
          const left = new Int16Array(pcm.length / 4);
          for (let k = 0; k < left.length; k++) left[k] = pcm.readInt16LE(k * 4);
          const mid = Math.floor(left.length / 2);
          const own = toneAmplitude(left, mid, 960, m.signal.hz);
          const other = toneAmplitude(left, mid, 960, members[1 - i]!.signal.hz);
          assert.ok(own > 5000 && other < 300, `${m.userId}: own ${own.toFixed(0)}, other ${other.toFixed(0)}`);
        }
      } finally {
        session.close();
        joined.leave();
        await sim.close();
      }
    });
  }
});
