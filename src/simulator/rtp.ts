/**
 * RTP and RTCP packet layout for the simulated voice server (RFC 3550 as Discord uses it: version 2,
 * payload type 0x78 Opus, optional one-byte header extension `BE DE`). Only builds the cleartext parts;
 * transport-crypto.ts seals them.
 */
export const RTP_PAYLOAD_TYPE = 0x78;

export interface RtpFields {
  sequence: number;
  timestamp: number;
  ssrc: number;
  /** The header extension BODY (a multiple of 4 bytes); its `BE DE len` preamble goes into the header. */
  extension?: Buffer;
  marker?: boolean;
  /** Default: Opus (0x78). */
  payloadType?: number;
}

/** Returns the AAD (12-byte header [+ 4-byte extension preamble]) and the plaintext prefix (extension body). */
export function rtpHeader(f: RtpFields): Buffer {
  const ext = f.extension;
  const h = Buffer.allocUnsafe(ext ? 16 : 12);
  h[0] = ext ? 0x90 : 0x80;
  h[1] = (f.payloadType ?? RTP_PAYLOAD_TYPE) | (f.marker ? 0x80 : 0);
  h.writeUInt16BE(f.sequence & 0xffff, 2);
  h.writeUInt32BE(f.timestamp >>> 0, 4);
  h.writeUInt32BE(f.ssrc >>> 0, 8);
  if (ext) {
    if (ext.length % 4 !== 0) throw new RangeError('extension body must be a multiple of 4 bytes');
    h[12] = 0xbe;
    h[13] = 0xde;
    h.writeUInt16BE(ext.length / 4, 14);
  }
  return h;
}

/** A one-byte-header extension element "ssrc-audio-level" (id 1, 1 byte), padded to 4 bytes. */
export function audioLevelExtension(level: number): Buffer {
  return Buffer.from([0x10, level & 0x7f, 0, 0]);
}

/** RTCP Sender Report (PT 200) without report blocks: 28 bytes. */
export function rtcpSenderReport(ssrc: number, wallMs: number, rtpTimestamp: number, packets: number, octets: number): Buffer {
  const b = Buffer.alloc(28);
  b[0] = 0x80;
  b[1] = 200;
  b.writeUInt16BE(6, 2); // length in 32-bit words minus one
  b.writeUInt32BE(ssrc >>> 0, 4);
  const ntpSeconds = Math.floor(wallMs / 1000) + 2_208_988_800;
  b.writeUInt32BE(ntpSeconds >>> 0, 8);
  b.writeUInt32BE(Math.floor(((wallMs % 1000) / 1000) * 4294967296) >>> 0, 12);
  b.writeUInt32BE(rtpTimestamp >>> 0, 16);
  b.writeUInt32BE(packets >>> 0, 20);
  b.writeUInt32BE(octets >>> 0, 24);
  return b;
}

/** RTCP Receiver Report (PT 201) with one report block: 32 bytes. */
export function rtcpReceiverReport(ssrc: number, sourceSsrc: number, fractionLost: number, highestSeq: number): Buffer {
  const b = Buffer.alloc(32);
  b[0] = 0x81;
  b[1] = 201;
  b.writeUInt16BE(7, 2);
  b.writeUInt32BE(ssrc >>> 0, 4);
  b.writeUInt32BE(sourceSsrc >>> 0, 8);
  b[12] = Math.max(0, Math.min(255, Math.round(fractionLost * 256)));
  b.writeUInt32BE(highestSeq >>> 0, 16);
  return b;
}
