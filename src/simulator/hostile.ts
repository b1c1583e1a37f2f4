/**
 * Datagrams a robust recorder must survive: garbage, 9–11 byte scraps (which make @discordjs/voice 0.19's
 * own receiver throw), truncated RTP, correctly framed RTP with a broken auth tag, validly encrypted RTP from
 * an SSRC nobody announced; and RTCP Sender/Receiver Reports (encrypted like Discord's, the 8-byte RTCP
 * header as AAD).
 */
import type { Prng } from './prng.ts';
import { audioLevelExtension, rtcpReceiverReport, rtcpSenderReport, rtpHeader } from './rtp.ts';
import type { TransportEncryptor } from './transport-crypto.ts';

export type HostileKind = 'garbage' | 'short' | 'truncated-rtp' | 'bad-tag' | 'unknown-ssrc';
export const HOSTILE_KINDS: HostileKind[] = ['garbage', 'short', 'truncated-rtp', 'bad-tag', 'unknown-ssrc'];

/** Builds one hostile datagram of the given kind. `knownSsrcs` are members' SSRCs (for bad tags and truncation). */
export function hostileDatagram(kind: HostileKind, prng: Prng, enc: TransportEncryptor, knownSsrcs: number[], usedSsrcs: Set<number>): Buffer {
  const anySsrc = () => (knownSsrcs.length > 0 ? knownSsrcs[prng.int(0, knownSsrcs.length - 1)]! : prng.u32());
  switch (kind) {
    case 'garbage':
      return prng.bytes(prng.int(1, 300));
    case 'short':
      return prng.bytes(prng.int(9, 11));
    case 'truncated-rtp': {
      const h = rtpHeader({ sequence: prng.int(0, 65535), timestamp: prng.u32(), ssrc: anySsrc() });
      return Buffer.concat([h, prng.bytes(prng.int(0, 19))]); // shorter than header + tag + nonce
    }
    case 'bad-tag': {
      const h = rtpHeader({ sequence: prng.int(0, 65535), timestamp: prng.u32(), ssrc: anySsrc() });
      const pkt = enc.seal(h, prng.bytes(prng.int(20, 120)));
      pkt[pkt.length - 5]! ^= 0x5a; // flip bits in the tag
      return pkt;
    }
    case 'unknown-ssrc': {
      let ssrc: number;
      do ssrc = prng.u32();
      while (usedSsrcs.has(ssrc));
      const ext = audioLevelExtension(20);
      const h = rtpHeader({ sequence: prng.int(0, 65535), timestamp: prng.u32(), ssrc, extension: ext });
      return enc.seal(h, Buffer.concat([ext, prng.bytes(prng.int(20, 120))]));
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
