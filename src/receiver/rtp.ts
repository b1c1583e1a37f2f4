/**
 * Stage 1 of the receive path: classify one UDP datagram from the voice socket and parse its RTP header.
 *
 * Parsing goes strictly by the header bits (RFC 3550 §5.1): version, padding bit, extension bit, CSRC count.
 * @discordjs/voice instead compares bytes 12–13 with `BE DE`, which misreads ~1 in 65,536 packets whose
 * ciphertext happens to start with those bytes; here the X bit alone decides.
 *
 * Nothing in this module throws: every input yields either a parsed packet or a reason to skip it, so hostile
 * datagrams are counted, never fatal.
 */

/** Discord's Opus payload type. */
export const OPUS_PAYLOAD_TYPE = 0x78;
/** rtpsize AEAD trailer: 16-byte tag then the 4-byte nonce counter. */
export const AUTH_TAG_BYTES = 16;
export const NONCE_BYTES = 4;
const FIXED_HEADER_BYTES = 12;

/** What the header tells us about one RTP packet; the payload is still encrypted. */
export interface RtpHeader {
  padding: boolean;
  extension: boolean;
  csrcCount: number;
  marker: boolean;
  payloadType: number;
  /** 16-bit sequence number. */
  sequence: number;
  /** 32-bit timestamp (48 kHz). */
  timestamp: number;
  ssrc: number;
  /**
   * Bytes authenticated but not encrypted in rtpsize modes: the fixed header, the CSRC list and (when X is set)
   * the 4-byte extension preamble. The extension BODY is inside the ciphertext.
   */
  aadLength: number;
  /** Length in bytes of the (encrypted) extension body that leads the plaintext; 0 without X. */
  extensionBodyLength: number;
}

export type SkipReason =
  /** The server's echo of our 8-byte UDP keepalive, or an IP discovery reply: protocol chatter, not an error. */
  | 'control'
  /** Shorter than any RTP/RTCP packet we accept (includes the 9–11 byte datagrams that crash @discordjs/voice). */
  | 'too-short'
  /** Not RTP version 2 (keepalive echoes, IP discovery replies, garbage). */
  | 'bad-version'
  /** X bit set but the extension preamble or its length overruns the datagram. */
  | 'bad-extension'
  /** Valid RTP but not Opus audio (e.g. video payload types). */
  | 'not-audio';

export type DatagramKind =
  | { kind: 'rtp'; header: RtpHeader }
  | { kind: 'rtcp'; packetType: number; ssrc: number }
  | { kind: 'skip'; reason: Exclude<SkipReason, 'not-audio'> }
  /** Its payload type and (unauthenticated: it is never decrypted) SSRC tell the receiver whether it is video. */
  | { kind: 'skip'; reason: 'not-audio'; payloadType: number; ssrc: number };

/** RTCP packet types as RFC 5761 §4 delimits them on a multiplexed socket. */
export const RTCP_TYPE_MIN = 192;
export const RTCP_TYPE_MAX = 223;
/** Smallest RTCP header: V/P/RC, PT, length, sender SSRC. */
const RTCP_HEADER_BYTES = 8;

/**
 * Classifies a datagram and parses its RTP header.
 *
 * RTP and RTCP share the socket (RFC 5761 §4): byte 1 in 192..223 is an RTCP packet type (Discord sends SR, RR,
 * SDES, BYE, APP = 200..204; feedback 205/206 and XR 207 exist too); an RTP byte 1 is marker bit + payload type
 * and RFC 5761 reserves the payload types that would land there, so Discord's 0x78 (0xF8 with marker) never does.
 */
export function classifyDatagram(buf: Uint8Array): DatagramKind {
  if (isControl(buf)) return { kind: 'skip', reason: 'control' };
  if (buf.length < 2) return { kind: 'skip', reason: 'too-short' };
  if (buf[0]! >> 6 !== 2) return { kind: 'skip', reason: 'bad-version' };
  const second = buf[1]!;
  if (second >= RTCP_TYPE_MIN && second <= RTCP_TYPE_MAX) {
    // An encrypted rtpsize RTCP packet still needs its tag and nonce after the 8-byte header.
    if (buf.length < RTCP_HEADER_BYTES + AUTH_TAG_BYTES + NONCE_BYTES) return { kind: 'skip', reason: 'too-short' };
    return { kind: 'rtcp', packetType: second, ssrc: readU32(buf, 4) };
  }
  return parseRtpHeader(buf);
}

/**
 * Parses an RTP header (assumes the caller already ruled out RTCP).
 *
 * The header extension is skipped by its length word whatever its profile: RFC 3550 §5.3.1 defines the 4-byte
 * preamble (16-bit profile, 16-bit length in 32-bit words) generically, and Discord's `BE DE` (RFC 8285 one-byte
 * headers) is only one profile; a two-byte-header extension (`0x100x`) or any other is framed the same way.
 */
export function parseRtpHeader(buf: Uint8Array): DatagramKind {
  if (buf.length < FIXED_HEADER_BYTES + AUTH_TAG_BYTES + NONCE_BYTES) return { kind: 'skip', reason: 'too-short' };
  const b0 = buf[0]!;
  if (b0 >> 6 !== 2) return { kind: 'skip', reason: 'bad-version' };
  const padding = (b0 & 0x20) !== 0;
  const extension = (b0 & 0x10) !== 0;
  const csrcCount = b0 & 0x0f;
  const b1 = buf[1]!;
  const payloadType = b1 & 0x7f;
  let aadLength = FIXED_HEADER_BYTES + 4 * csrcCount;
  let extensionBodyLength = 0;
  if (extension) {
    if (buf.length < aadLength + 4 + AUTH_TAG_BYTES + NONCE_BYTES) return { kind: 'skip', reason: 'too-short' };
    extensionBodyLength = 4 * ((buf[aadLength + 2]! << 8) | buf[aadLength + 3]!);
    aadLength += 4;
  }
  // The ciphertext must at least hold the extension body.
  if (buf.length < aadLength + extensionBodyLength + AUTH_TAG_BYTES + NONCE_BYTES) {
    return { kind: 'skip', reason: extension ? 'bad-extension' : 'too-short' };
  }
  if (payloadType !== OPUS_PAYLOAD_TYPE) return { kind: 'skip', reason: 'not-audio', payloadType, ssrc: readU32(buf, 8) };
  return {
    kind: 'rtp',
    header: {
      padding,
      extension,
      csrcCount,
      marker: (b1 & 0x80) !== 0,
      payloadType,
      sequence: (buf[2]! << 8) | buf[3]!,
      timestamp: readU32(buf, 4),
      ssrc: readU32(buf, 8),
      aadLength,
      extensionBodyLength,
    },
  };
}

/** Keepalive echo (exactly 8 bytes) or IP discovery reply (74 bytes, type 2, length 70): see discord-api-docs. */
function isControl(buf: Uint8Array): boolean {
  if (buf.length === KEEPALIVE_BYTES) return true;
  return buf.length === DISCOVERY_BYTES && buf[0] === 0 && buf[1] === 2 && buf[2] === 0 && buf[3] === 70;
}
const KEEPALIVE_BYTES = 8;
const DISCOVERY_BYTES = 74;

function readU32(buf: Uint8Array, at: number): number {
  return ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
}
