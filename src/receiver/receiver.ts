/**
 * The receive path, one datagram at a time, in the order a packet travels:
 *
 *   datagram ─ rtp.ts classifyDatagram ─┬─ RTCP ─ transport-crypto openRtcp ─ stream-replay (sender SSRC) ─ sink.onRtcp
 *                                       ├─ RTP, not Opus ─ video-streams: video (op 12 SSRC, video payload type) or notAudio
 *                                       └─ RTP ── transport-crypto openRtp ─ stream-replay (SSRC) ─ ssrc-map (hold until op 5)
 *                                                 ─ users filter ─ dave-guard.ts (DAVE) ─ AudioPacket ── sink.onAudio
 *
 * Transport decryption comes before the SSRC lookup on purpose: only authenticated packets may occupy the
 * op-5 holding area, so forged SSRCs cannot fill it. Replays are dropped right after authentication, before
 * DAVE: a replayed DAVE frame always fails (a DAVE decryptor decrypts each key/nonce once) and would count
 * against the member whose frame it carries (see replay-filter.ts, dave-guard.ts). Replay state is per authenticated stream, because Discord does not say how it
 * numbers the nonces it forwards (stream-replay.ts). Video is never decrypted: counting it is all a recorder
 * needs. Every datagram that is not delivered is counted by exactly one kind, so
 * `datagrams === delivered + Σ drops + held` always holds (see {@link Receiver.accounted}).
 * Nothing here throws on network input; all state is bounded (SSRC map caps, replay streams and tombstones,
 * video SSRCs, per-user tables bounded by the mapping cap).
 */
import type { AudioPacket, AudioSink } from '../sinks/types.ts';
import { accountedDrops, dropSummary, emptyDrops, type ReceiverDrops } from './drops.ts';
import { classifyDatagram, type RtpHeader } from './rtp.ts';
import type { TransportCipher } from './transport-crypto.ts';
import { SsrcMap, type SsrcMapOptions } from './ssrc-map.ts';
import { nonceOf } from './replay-filter.ts';
import { StreamReplayFilters } from './stream-replay.ts';
import { VideoSsrcs, type VideoAnnouncement } from './video-streams.ts';
import type { DaveFrameDecryptor } from './dave.ts';

/**
 * The receiver's live counts: one per outcome of a datagram (drops.ts, the one table of kinds). Packets still held
 * waiting for an op 5 are not in them yet ({@link Receiver.drops} counts those as unknown SSRC).
 */
export type ReceiverCounters = ReceiverDrops;

export interface ReceiverOptions {
  /** Where decoded-ready packets go (the engine's router in front of the worker pool). */
  sink: Pick<AudioSink, 'onAudio' | 'onRtcp'>;
  /** Recording clock: milliseconds since t=0 (may be negative before the first Ready). */
  clock: () => number;
  /** Stage 4, DAVE decryption (dave-guard.ts DaveGuard; dave.ts withoutDave when there is no DAVE). */
  dave: DaveFrameDecryptor;
  /** Users to record (undefined = everyone). */
  accept?: (userId: string) => boolean;
  ssrcMap?: SsrcMapOptions;
  /** Width of each stream's replay window in transport nonces (default 16,384; rounded up to a power of two). */
  replayWindow?: number;
  /** RTP streams with a replay window at once (default 1,024; see stream-replay.ts). */
  replayStreams?: number;
}

/** Default of ReceiverOptions.replayStreams; RTCP senders get as many (with 1,024-nonce windows). */
const REPLAY_STREAMS = 1024;
/** An RTCP sender's window: its reports come about once a second, so reordering spans a handful of them. */
const RTCP_REPLAY_WINDOW = 1024;

/** A transport-decrypted packet waiting for its SSRC's op 5. */
interface Held {
  header: RtpHeader;
  frame: Buffer;
  arrivalMs: number;
}

/** Turns raw voice-socket datagrams into {@link AudioPacket}s for one recording. */
export class Receiver {
  readonly counters: ReceiverCounters = emptyDrops();
  /** Authenticated packets of a user that DAVE could not decrypt (forged transport packets are not attributed). */
  readonly undecryptableByUser = new Map<string, number>();
  /**
   * Replayed/duplicated datagrams of a mapped SSRC, per user: the manifest's per-track `duplicate` includes them
   * (a duplicated datagram carries the same nonce, so it stops here and never reaches the user's jitter buffer,
   * which counts only duplicates that arrive with a fresh nonce).
   */
  readonly duplicateByUser = new Map<string, number>();
  readonly #opts: ReceiverOptions;
  readonly #ssrcs: SsrcMap<Held>;
  /**
   * Replay state per RTP SSRC and per RTCP sender SSRC, separately: a server may number a sender's RTP and RTCP
   * with separate counters, so their nonces may be equal (stream-replay.ts).
   */
  readonly #replays: StreamReplayFilters;
  readonly #rtcpReplays: StreamReplayFilters;
  readonly #video = new VideoSsrcs();
  #cipher: TransportCipher | null = null;

  constructor(opts: ReceiverOptions) {
    this.#opts = opts;
    this.#ssrcs = new SsrcMap<Held>(opts.ssrcMap);
    const streams = opts.replayStreams ?? REPLAY_STREAMS;
    this.#replays = new StreamReplayFilters({ window: opts.replayWindow ?? 16_384, maxStreams: streams });
    this.#rtcpReplays = new StreamReplayFilters({ window: RTCP_REPLAY_WINDOW, maxStreams: streams });
  }

  /** Sets the transport key (op 4 Session Description); null while none is valid. */
  setCipher(cipher: TransportCipher | null): void {
    // Nonces restart under a new key; the same cipher again (a resume) keeps its history.
    if (cipher !== this.#cipher) {
      this.#replays.reset();
      this.#rtcpReplays.reset();
    }
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

  /**
   * op 12: a user's video and RTX SSRCs (counted as video from now on), and its audio SSRC, which maps that SSRC
   * to the user as op 5 does (releasing packets held for it).
   */
  onVideo(a: VideoAnnouncement): void {
    this.#video.announce(a);
    if (a.audioSsrc !== 0) this.mapSsrc(a.audioSsrc, a.userId);
  }

  userOf(ssrc: number): string | undefined {
    return this.#ssrcs.get(ssrc);
  }

  /** Packets currently waiting for an op 5. */
  get heldCount(): number {
    return this.#ssrcs.heldCount;
  }

  /** Sizes of every table that grows with input, for memory-bound checks. */
  get tableSizes(): {
    mappings: number; pendingSsrcs: number; held: number; replayStreams: number; replayTombstones: number; replayBytes: number;
    videoSsrcs: number; usersWithFailures: number;
  } {
    return {
      mappings: this.#ssrcs.size,
      pendingSsrcs: this.#ssrcs.pendingCount,
      held: this.#ssrcs.heldCount,
      replayStreams: this.#replays.streams + this.#rtcpReplays.streams,
      replayTombstones: this.#replays.tombstones + this.#rtcpReplays.tombstones,
      replayBytes: this.#replays.bytes + this.#rtcpReplays.bytes,
      videoSsrcs: this.#video.size,
      usersWithFailures: this.undecryptableByUser.size + this.duplicateByUser.size,
    };
  }

  /** The drop counts for the journal/manifest (packets still waiting for an op 5 count as unknown SSRC). */
  drops(): ReceiverDrops {
    // Still held at this instant: their SSRC has had no op 5 yet, so they count as unknown until it comes.
    return { ...this.counters, unknownSsrc: this.counters.unknownSsrc + this.#ssrcs.heldCount };
  }

  /**
   * One line of what was skipped as hostile, broken or undecryptable (for a warning at the stop), or '' when
   * nothing was. Routine traffic (RTCP, keepalive echoes, non-audio payloads, users not recorded) is not listed.
   */
  dropSummary(): string {
    return dropSummary(this.counters);
  }

  /** Datagrams accounted for: delivered + every drop kind + still held. Always equals `counters.datagrams`. */
  accounted(): number {
    return accountedDrops(this.counters) + this.#ssrcs.heldCount;
  }

  /** Entry point: one datagram from the voice UDP socket. */
  onDatagram(datagram: Buffer): void {
    const arrivalMs = this.#opts.clock();
    const c = this.counters;
    c.datagrams++;
    const kind = classifyDatagram(datagram);
    if (kind.kind === 'skip') {
      if (kind.reason === 'not-audio') {
        if (this.#video.isVideo(kind.ssrc, kind.payloadType)) c.video++;
        else c.notAudio++;
      } else if (kind.reason === 'control') c.control++;
      else c.malformed++;
      return;
    }
    const cipher = this.#cipher;
    if (!cipher) {
      c.noKey++;
      return;
    }
    if (kind.kind === 'rtcp') {
      const opened = cipher.openRtcp(datagram);
      // A plaintext compound packet is unauthenticated, so it cannot be replay-checked: it is only counted.
      const data = opened ?? plainRtcp(datagram);
      if (!data) {
        c.rtcpBadAuth++;
        return;
      }
      // The sender SSRC (bytes 4..7) is inside the 8-byte AAD: authenticated when `opened`.
      if (opened && !this.#rtcpReplays.accept(kind.ssrc, nonceOf(datagram))) {
        c.replayed++;
        return;
      }
      c.rtcp++;
      this.#opts.sink.onRtcp({ packetType: kind.packetType, ssrc: kind.ssrc, arrivalMs, data });
      return;
    }
    const { header } = kind;
    const userId = this.#ssrcs.get(header.ssrc);
    const opened = cipher.openRtpDetailed(datagram, header);
    if (!opened.ok && opened.reason === 'auth') {
      // Not attributed to the SSRC's user: an unauthenticated header proves nothing about who sent it.
      c.badAuth++;
      return;
    }
    // Authenticated from here on (the header, SSRC included, is the AAD): the nonce is the server's, so it may be
    // remembered, in this SSRC's own window.
    if (!this.#replays.accept(header.ssrc, nonceOf(datagram), header)) {
      c.replayed++;
      // The header is authenticated: this SSRC's packet really was delivered twice, so its user is told.
      if (userId !== undefined && (this.#opts.accept?.(userId) ?? true)) countFor(this.duplicateByUser, userId);
      return;
    }
    if (!opened.ok) {
      c.badPadding++;
      return;
    }
    const frame = opened.payload;
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
    const opus = this.#opts.dave.decrypt(frame, userId);
    if (!opus) {
      this.counters.daveUndecryptable++;
      countFor(this.undecryptableByUser, userId);
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
}

function countFor(byUser: Map<string, number>, userId: string): void {
  byUser.set(userId, (byUser.get(userId) ?? 0) + 1);
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
