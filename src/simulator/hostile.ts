/**
 * Datagrams a robust recorder must survive, one generator per kind, each with the receiver drop kind it must
 * land in (so a test can check that every kind was counted where it belongs):
 *  - garbage and 9–11 byte scraps (the latter make @discordjs/voice 0.19's own receiver throw);
 *  - malformed RTP: truncated, wrong version, a CSRC count or a header extension length that overruns the datagram;
 *  - correctly framed RTP with a broken auth tag; authenticated RTP whose padding count overruns the payload;
 *  - validly encrypted RTP from an SSRC nobody announced (a new SSRC each time: a flood);
 *  - replays: a copy of a datagram the server sent a moment ago (a member's real audio when one was seen, as an
 *    on-path attacker would capture it; otherwise an earlier authenticated hostile datagram);
 *  - RTCP: truncated, forged (bad tag, inconsistent length), and validly encrypted of every type 192..223 except
 *    200..204, which stay reserved for the 'rtcp' fault's genuine reports (tests count those by type);
 * plus the regular encrypted RTCP Sender/Receiver Reports (the 8-byte RTCP header as AAD) of the 'rtcp' fault.
 */
import type { Prng } from './prng.ts';
import { audioLevelExtension, rtcpReceiverReport, rtcpSenderReport, rtpHeader, RTP_PAYLOAD_TYPE } from './rtp.ts';
import type { TransportEncryptor } from './transport-crypto.ts';

export type HostileKind =
  | 'garbage' | 'short' | 'truncated-rtp' | 'bad-tag' | 'unknown-ssrc' | 'bad-version' | 'csrc-overrun'
  | 'ext-overrun' | 'bad-padding' | 'replay' | 'rtcp-truncated' | 'rtcp-forged' | 'rtcp-any-type';
/**
 * The order the simulator cycles through (datagram i of a burst is kind i % length). 'unknown-ssrc' comes before
 * 'replay' so that even the first burst has an authenticated datagram to replay. The kinds that authenticate
 * ('bad-padding', 'replay') come last, so a short burst stays mostly unauthenticated, as the first five kinds were
 * (test/simulator.test.ts counts undecryptable arrivals of a 50-datagram burst).
 */
export const HOSTILE_KINDS: HostileKind[] = [
  'garbage', 'short', 'truncated-rtp', 'bad-tag', 'unknown-ssrc', 'bad-version', 'csrc-overrun', 'ext-overrun',
  'rtcp-truncated', 'rtcp-forged', 'rtcp-any-type', 'bad-padding', 'replay',
];

/**
 * Where the receiver must count each kind (names of the manifest's `dropped` fields). 'garbage' is random, so
 * it may land anywhere; 'rtcp-any-type' is valid RTCP and counts as received RTCP.
 */
export const HOSTILE_EXPECTED: Record<HostileKind, string | null> = {
  garbage: null,
  short: 'malformed',
  'truncated-rtp': 'malformed',
  'bad-tag': 'badAuth',
  'unknown-ssrc': 'unknownSsrc',
  'bad-version': 'malformed',
  'csrc-overrun': 'malformed',
  'ext-overrun': 'malformed',
  'bad-padding': 'badPadding',
  replay: 'replayed',
  'rtcp-truncated': 'malformed',
  'rtcp-forged': 'rtcpBadAuth',
  'rtcp-any-type': 'rtcp',
};

/** Recent datagrams an encryptor sealed, per encryptor (one per voice session). */
interface Capture {
  /** Members' audio datagrams, newest last (at most 64). */
  audio: Buffer[];
  /** The last authenticated datagram this module made (fallback replay). */
  lastHostile: Buffer | null;
  /** True while this module is sealing, so its own datagrams are not taken for members' audio. */
  generating: boolean;
}
const captures = new WeakMap<TransportEncryptor, Capture>();

/**
 * Starts remembering what `enc` seals, like an on-path attacker recording the server's datagrams. The simulator
 * seals members' audio through `session.encryptor.seal`, so wrapping that one method on this instance is enough
 * (and touches nothing when no hostile fault is scripted).
 */
function capture(enc: TransportEncryptor): Capture {
  let c = captures.get(enc);
  if (c) return c;
  const state: Capture = { audio: [], lastHostile: null, generating: false };
  c = state;
  captures.set(enc, c);
  const seal = enc.seal.bind(enc);
  enc.seal = (aad: Buffer, plaintext: Buffer): Buffer => {
    const d = seal(aad, plaintext);
    if (!state.generating && aad.length >= 12 && aad[0]! >> 6 === 2 && (aad[1]! & 0x7f) === RTP_PAYLOAD_TYPE) {
      state.audio.push(d);
      if (state.audio.length > 64) state.audio.shift();
    }
    return d;
  };
  return c;
}

/** Builds one hostile datagram of the given kind. `knownSsrcs` are members' SSRCs (for bad tags and truncation). */
export function hostileDatagram(kind: HostileKind, prng: Prng, enc: TransportEncryptor, knownSsrcs: number[], usedSsrcs: Set<number>): Buffer {
  const cap = capture(enc);
  cap.generating = true;
  try {
    return build(kind, prng, enc, knownSsrcs, usedSsrcs, cap);
  } finally {
    cap.generating = false;
  }
}

/** An RTCP packet type in 192..223 other than the SR/RR/SDES/BYE/APP (200..204) the 'rtcp' fault sends. */
function otherRtcpType(prng: Prng): number {
  const t = prng.int(192, 218);
  return t >= 200 ? t + 5 : t;
}

function build(kind: HostileKind, prng: Prng, enc: TransportEncryptor, knownSsrcs: number[], usedSsrcs: Set<number>, cap: Capture): Buffer {
  const anySsrc = () => (knownSsrcs.length > 0 ? knownSsrcs[prng.int(0, knownSsrcs.length - 1)]! : prng.u32());
  const freshSsrc = () => {
    let ssrc: number;
    do ssrc = prng.u32();
    while (usedSsrcs.has(ssrc));
    return ssrc;
  };
  /** A length that is neither a keepalive (8) nor an IP discovery reply (74). */
  const len = (min: number, max: number) => {
    const n = prng.int(min, max);
    return n === 8 || n === 74 ? n + 1 : n;
  };
  switch (kind) {
    case 'garbage':
      return prng.bytes(len(1, 300));
    case 'short':
      return prng.bytes(prng.int(9, 11));
    case 'truncated-rtp': {
      const h = rtpHeader({ sequence: prng.int(0, 65535), timestamp: prng.u32(), ssrc: anySsrc() });
      return Buffer.concat([h, prng.bytes(prng.int(0, 19))]); // shorter than header + tag + nonce
    }
    case 'bad-tag': {
      const h = rtpHeader({ sequence: prng.int(0, 65535), timestamp: prng.u32(), ssrc: anySsrc() });
      const pkt = enc.seal(h, prng.bytes(prng.int(20, 120)));
      pkt[pkt.length - 5]! ^= 1 << prng.int(0, 7); // flip a bit in the tag
      return pkt;
    }
    case 'unknown-ssrc': {
      const ssrc = freshSsrc();
      const ext = audioLevelExtension(20);
      const h = rtpHeader({ sequence: prng.int(0, 65535), timestamp: prng.u32(), ssrc, extension: ext });
      return (cap.lastHostile = enc.seal(h, Buffer.concat([ext, prng.bytes(prng.int(20, 120))])));
    }
    case 'bad-version': {
      const d = prng.bytes(len(12, 200));
      d[0] = (prng.int(0, 2) === 2 ? 3 : prng.int(0, 1)) << 6 | (d[0]! & 0x3f); // version 0, 1 or 3
      d[1] = prng.chance(0.5) ? RTP_PAYLOAD_TYPE : otherRtcpType(prng);
      return d;
    }
    case 'csrc-overrun': {
      // CC = 15 promises 60 bytes of CSRCs; fewer follow.
      const d = Buffer.concat([rtpHeader({ sequence: prng.int(0, 65535), timestamp: prng.u32(), ssrc: anySsrc() }), prng.bytes(len(0, 70))]);
      d[0] = 0x80 | 0x0f;
      return d;
    }
    case 'ext-overrun': {
      // X set, `BE DE` preamble claiming up to 65,535 words of extension.
      const h = rtpHeader({ sequence: prng.int(0, 65535), timestamp: prng.u32(), ssrc: anySsrc(), extension: Buffer.alloc(4) });
      h.writeUInt16BE(prng.int(64, 0xffff), 14);
      return Buffer.concat([h, prng.bytes(prng.int(20, 200))]);
    }
    case 'bad-padding': {
      // Authenticated (sealed with the session key) but its pad count is larger than the payload.
      const h = rtpHeader({ sequence: prng.int(0, 65535), timestamp: prng.u32(), ssrc: freshSsrc() });
      h[0]! |= 0x20;
      const body = prng.bytes(prng.int(1, 20));
      body[body.length - 1] = prng.int(body.length + 1, 255);
      return (cap.lastHostile = enc.seal(h, body));
    }
    case 'replay': {
      const from = cap.audio.length > 0 ? cap.audio[prng.int(0, cap.audio.length - 1)]! : cap.lastHostile;
      return from ? Buffer.from(from) : prng.bytes(len(1, 300));
    }
    case 'rtcp-truncated': {
      const d = prng.bytes(prng.int(9, 27)); // shorter than header + tag + nonce
      d[0] = 0x80;
      d[1] = otherRtcpType(prng);
      return d;
    }
    case 'rtcp-forged': {
      // A proper-looking header whose length field disagrees with the datagram, and a random "tag".
      const d = prng.bytes(len(28, 200));
      d[0] = 0x80;
      d[1] = otherRtcpType(prng);
      d.writeUInt16BE(Math.floor(d.length / 4) + prng.int(1, 50), 2);
      return d;
    }
    case 'rtcp-any-type': {
      const clear = prng.bytes(4 * prng.int(2, 20));
      clear[0] = 0x80;
      clear[1] = otherRtcpType(prng);
      clear.writeUInt16BE(clear.length / 4 - 1, 2);
      return enc.seal(clear.subarray(0, 8), clear.subarray(8));
    }
  }
}

/** One encrypted RTCP report (alternating SR and RR) attributed to a member SSRC. */
export function rtcpDatagram(i: number, prng: Prng, enc: TransportEncryptor, ssrc: number, recorderSsrc: number, wallMs: number): Buffer {
  const clear =
    i % 2 === 0
      ? rtcpSenderReport(ssrc, wallMs, prng.u32(), prng.int(0, 100_000), prng.int(0, 10_000_000))
      : rtcpReceiverReport(ssrc, recorderSsrc, prng.next() * 0.1, prng.int(0, 100_000));
  return enc.seal(clear.subarray(0, 8), clear.subarray(8));
}
