/**
 * The receive path, one datagram at a time, in the order a packet travels:
 *
 *   datagram ─ rtp.ts classifyDatagram ─┬─ RTCP ─ transport-crypto openRtcp ─────────────────────────── sink.onRtcp
 *                                       └─ RTP ── transport-crypto openRtp ─ ssrc-map (hold until op 5)
 *                                                 ─ users filter ─ dave.ts daveDecrypt ─ AudioPacket ─── sink.onAudio
 *
 * Transport decryption comes before the SSRC lookup on purpose: only authenticated packets may occupy the
 * op-5 holding area, so forged SSRCs cannot fill it. Every packet that is not delivered is counted by kind.
 * Nothing here throws on network input.
 */
import type { AudioPacket, AudioSink } from '../sinks/types.ts';
import { classifyDatagram, type RtpHeader } from './rtp.ts';
import type { TransportCipher } from './transport-crypto.ts';
import { SsrcMap, type SsrcMapOptions } from './ssrc-map.ts';
import { daveDecrypt, type DaveDecryptor } from './dave.ts';

/** Per-kind packet accounting (written to the manifest's receiver section and shown in warnings). */
export interface ReceiverCounters {
  datagrams: number;
  /** Audio packets delivered to the sink. */
  audio: number;
  rtcp: number;
  /** Too short, wrong version, broken extension. */
  malformed: number;
  /** Valid RTP with a payload type that is not Opus audio. */
  notAudio: number;
  /** Arrived before the transport key was known (before op 4 or during a reconnect). */
  noKey: number;
  /** Transport authentication failed (bad tag, wrong key, forged or corrupted). */
  undecryptable: number;
  /** DAVE could not decrypt the frame (group transitions, unknown sender). */
  daveUndecryptable: number;
  /** Authenticated but its SSRC never got an op 5 in time (dropped from the holding area). */
  unknownSsrc: number;
  /** From a user excluded by --users. */
  filtered: number;
  rtcpUndecryptable: number;
}

export function emptyCounters(): ReceiverCounters {
  return {
    datagrams: 0, audio: 0, rtcp: 0, malformed: 0, notAudio: 0, noKey: 0, undecryptable: 0,
    daveUndecryptable: 0, unknownSsrc: 0, filtered: 0, rtcpUndecryptable: 0,
  };
}

export interface ReceiverOptions {
  /** Where decoded-ready packets go (the engine's router in front of the worker pool). */
  sink: Pick<AudioSink, 'onAudio' | 'onRtcp'>;
  /** Recording clock: milliseconds since t=0 (may be negative before the first Ready). */
  clock: () => number;
  /** The connection's current DAVE session, looked up per packet because it changes with reconnects. */
  dave: () => DaveDecryptor | undefined;
  /** Users to record (undefined = everyone). */
  accept?: (userId: string) => boolean;
  ssrcMap?: SsrcMapOptions;
}

/** A transport-decrypted packet waiting for its SSRC's op 5. */
interface Held {
  header: RtpHeader;
  frame: Buffer;
  arrivalMs: number;
}

/** Turns raw voice-socket datagrams into {@link AudioPacket}s for one recording. */
export class Receiver {
  readonly counters: ReceiverCounters = emptyCounters();
  /** Authenticated packets of a user that DAVE could not decrypt (forged transport packets are not attributed). */
  readonly undecryptableByUser = new Map<string, number>();
  readonly #opts: ReceiverOptions;
  readonly #ssrcs: SsrcMap<Held>;
  #cipher: TransportCipher | null = null;

  constructor(opts: ReceiverOptions) {
    this.#opts = opts;
    this.#ssrcs = new SsrcMap<Held>(opts.ssrcMap);
  }

  /** Sets the transport key (op 4 Session Description); null while none is valid. */
  setCipher(cipher: TransportCipher | null): void {
    this.#cipher = cipher;
  }

  get cipher(): TransportCipher | null {
    return this.#cipher;
  }

  /** SSRC → user from op 5; releases any packets that were waiting for it. */
  mapSsrc(ssrc: number, userId: string): void {
    const held = this.#ssrcs.set(ssrc >>> 0, userId);
    for (const h of held) this.#deliver(h.header, h.frame, h.arrivalMs, userId);
  }

  userOf(ssrc: number): string | undefined {
    return this.#ssrcs.get(ssrc);
  }

  /** Packets currently waiting for an op 5. */
  get heldCount(): number {
    return this.#ssrcs.heldCount;
  }

  /** Entry point: one datagram from the voice UDP socket. */
  onDatagram(datagram: Buffer): void {
    const arrivalMs = this.#opts.clock();
    const c = this.counters;
    c.datagrams++;
    const kind = classifyDatagram(datagram);
    if (kind.kind === 'skip') {
      if (kind.reason === 'not-audio') c.notAudio++;
      else c.malformed++;
      return;
    }
    const cipher = this.#cipher;
    if (!cipher) {
      c.noKey++;
      return;
    }
    if (kind.kind === 'rtcp') {
      const data = cipher.openRtcp(datagram) ?? plainRtcp(datagram);
      if (!data) {
        c.rtcpUndecryptable++;
        return;
      }
      c.rtcp++;
      this.#opts.sink.onRtcp({ packetType: kind.packetType, ssrc: kind.ssrc, arrivalMs, data });
      return;
    }
    const { header } = kind;
    const userId = this.#ssrcs.get(header.ssrc);
    const frame = cipher.openRtp(datagram, header);
    if (!frame) {
      // Not attributed to the SSRC's user: an unauthenticated header proves nothing about who sent it.
      c.undecryptable++;
      return;
    }
    if (userId === undefined) {
      const r = this.#ssrcs.hold(header.ssrc, { header, frame, arrivalMs }, arrivalMs);
      c.unknownSsrc += r.dropped + (r.held ? 0 : 1);
      return;
    }
    this.#deliver(header, frame, arrivalMs, userId);
  }

  /** Drops held packets whose op 5 never came; call about once a second. */
  expire(): void {
    this.counters.unknownSsrc += this.#ssrcs.expire(this.#opts.clock());
  }

  #deliver(header: RtpHeader, frame: Buffer, arrivalMs: number, userId: string): void {
    if (this.#opts.accept && !this.#opts.accept(userId)) {
      this.counters.filtered++;
      return;
    }
    const opus = daveDecrypt(this.#opts.dave(), frame, userId);
    if (!opus) {
      this.counters.daveUndecryptable++;
      this.#countUserUndecryptable(userId);
      return;
    }
    this.counters.audio++;
    const packet: AudioPacket = {
      userId,
      ssrc: header.ssrc,
      sequence: header.sequence,
      timestamp: header.timestamp,
      arrivalMs,
      opus,
    };
    this.#opts.sink.onAudio(packet);
  }

  #countUserUndecryptable(userId: string): void {
    this.undecryptableByUser.set(userId, (this.undecryptableByUser.get(userId) ?? 0) + 1);
  }
}

/**
 * An RTCP packet that failed decryption is accepted only if it is a well-formed plaintext compound packet
 * (every sub-packet version 2, lengths adding up exactly to the datagram): some servers send RTCP unencrypted.
 */
function plainRtcp(datagram: Buffer): Buffer | null {
  let at = 0;
  while (at + 4 <= datagram.length) {
    if (datagram[at]! >> 6 !== 2) return null;
    at += 4 * (((datagram[at + 2]! << 8) | datagram[at + 3]!) + 1);
  }
  return at === datagram.length ? datagram : null;
}
