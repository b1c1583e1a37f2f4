/**
 * How the simulated voice server numbers the rtpsize nonce of the datagrams it forwards to the recorder.
 *
 * Discord documents the nonce only as "a 32-bit incrementing counter appended to the payload" of what a client
 * sends (discord-api-docs, topics/voice-connections, "Transport Encryption Modes"); how the server numbers what it
 * FORWARDS is not documented. Each of these is legal for a server, so the simulator can play each
 * (Scenario.nonces) and the tests show a recording comes out the same under all of them:
 *  - 'per-connection' (default): one counter per voice session (per transport key), counting every datagram the
 *    server sends to that recorder, RTP and RTCP alike, from 0;
 *  - 'per-stream-random': one counter per forwarded stream, each starting at a random value;
 *  - 'per-stream-zero': one counter per forwarded stream, every one starting at 0, so equal nonces from different
 *    senders are normal;
 *  - 'per-stream-high': the same, every stream starting at 0x80000000.
 * A stream is an RTP SSRC (audio, video and RTX each its own), or, for RTCP, the RTCP packet's sender SSRC: an RTCP
 * counter starts at the same value as the RTP streams, so a sender's RTP and RTCP nonces collide too. A new SSRC
 * (a rejoin) is a new stream with a new counter; a new transport key (a new voice session) starts everything over.
 * Counters are u32 and wrap from 0xFFFFFFFF to 0.
 */
import type { Prng } from './prng.ts';

export type NonceNumbering = 'per-connection' | 'per-stream-random' | 'per-stream-zero' | 'per-stream-high';
export const NONCE_NUMBERINGS: readonly NonceNumbering[] = ['per-connection', 'per-stream-random', 'per-stream-zero', 'per-stream-high'];

/**
 * Streams remembered per kind. Only a flood of hostile datagrams, each from a fresh SSRC, gets near it; a stream
 * forgotten here and seen again would restart its counter (and the recorder would rightly refuse the repeats).
 */
const MAX_STREAMS = 65_536;

/** Hands out the nonce counter of each datagram one voice session sends. */
export class NonceCounter {
  readonly numbering: NonceNumbering;
  readonly #prng: Prng | null;
  #connection: number;
  /** Next counter per RTP SSRC / per RTCP sender SSRC (insertion order = eviction order). */
  readonly #rtp = new Map<number, number>();
  readonly #rtcp = new Map<number, number>();

  /**
   * @param prng draws the random starts of 'per-stream-random' (seeded: the same scenario numbers the same way)
   * @param initial the first counter of 'per-connection'
   */
  constructor(numbering: NonceNumbering = 'per-connection', prng: Prng | null = null, initial = 0) {
    if (numbering === 'per-stream-random' && !prng) throw new RangeError('per-stream-random nonces need a PRNG');
    this.numbering = numbering;
    this.#prng = prng;
    this.#connection = initial >>> 0;
  }

  /** The counter for the datagram whose authenticated header is `aad` (an RTP header, or an 8-byte RTCP header). */
  next(aad: Uint8Array): number {
    if (this.numbering === 'per-connection') {
      const n = this.#connection;
      this.#connection = (n + 1) >>> 0;
      return n;
    }
    // RFC 5761 §4: byte 1 in 192..223 is an RTCP packet type, whose sender SSRC is bytes 4..7; RTP's SSRC is 8..11.
    const rtcp = aad.length >= 8 && aad[1]! >= 192 && aad[1]! <= 223;
    const at = rtcp ? 4 : 8;
    const ssrc = aad.length >= at + 4 ? ((aad[at]! << 24) | (aad[at + 1]! << 16) | (aad[at + 2]! << 8) | aad[at + 3]!) >>> 0 : 0;
    const streams = rtcp ? this.#rtcp : this.#rtp;
    let n = streams.get(ssrc);
    if (n === undefined) {
      n = this.#start();
      if (streams.size >= MAX_STREAMS) streams.delete(streams.keys().next().value!);
    }
    streams.set(ssrc, (n + 1) >>> 0);
    return n;
  }

  #start(): number {
    switch (this.numbering) {
      case 'per-stream-random':
        return this.#prng!.u32();
      case 'per-stream-high':
        return 0x8000_0000;
      default:
        return 0;
    }
  }
}
