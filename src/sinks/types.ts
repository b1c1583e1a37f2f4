/**
 * The contract between the receiver (main thread) and the sink stack.
 *
 * A packet travels: UDP socket → receiver (RTP parse, transport + DAVE decryption, SSRC→user)
 * → an {@link AudioSink} (in production the worker pool) → per-user jitter buffer + concealment
 * → per-user capture file → format conversion at stop.
 */

/** Audio is always 48 kHz; Discord's RTP clock runs at the same rate. */
export const SAMPLE_RATE = 48_000;
/** Captures are stereo s16le; `--mono` downmixes when a format is written. */
export const CHANNELS = 2;
export const BYTES_PER_SAMPLE_FRAME = CHANNELS * 2;
/** Discord clients send 20 ms Opus frames. */
export const FRAME_SAMPLES = 960;
/** 120 ms at 48 kHz: the longest frame an Opus packet can hold (both decoders size their output by it). */
export const MAX_FRAME_SAMPLES = 5760;
/** Largest Opus packet we decode (RFC 6716 allows 1275 bytes per frame, up to 48 frames; Discord sends < 1500). */
export const MAX_PACKET_BYTES = 8192;

/** One Opus frame as it left the receiver: transport- and DAVE-decrypted, RTP metadata kept. */
export interface AudioPacket {
  /** Discord user id (snowflake) the SSRC belongs to, from voice op 5. */
  userId: string;
  ssrc: number;
  /** RTP sequence number, 16 bits (wraps). */
  sequence: number;
  /** RTP timestamp, 32 bits, 48 kHz clock (wraps; jumps across silence). */
  timestamp: number;
  /** Arrival time on the recording clock: milliseconds since the recording's t=0 (fractional). */
  arrivalMs: number;
  /** The Opus payload (extension body, padding and DAVE trailer already removed). */
  opus: Uint8Array;
}

/** An RTCP packet (SR, RR, SDES, BYE, APP) received on the voice socket, decrypted. */
export interface RtcpPacket {
  /** RTCP packet type: 200..204. */
  packetType: number;
  /** Sender SSRC from bytes 4..7 of the RTCP header. */
  ssrc: number;
  /** Arrival on the recording clock (ms since t=0). */
  arrivalMs: number;
  /** The whole RTCP packet, decrypted (header included). */
  data: Uint8Array;
}

/** Where decoded audio goes. Implementations: the worker pool (production), test sinks. */
export interface AudioSink {
  onAudio(packet: AudioPacket): void;
  onRtcp(packet: RtcpPacket): void;
  /** Flush everything up to `endMs` on the recording clock, close files, resolve with per-user stats. */
  cleanup(endMs: number): Promise<Map<string, TrackStats>>;
}

/** Per-user packet accounting, as written to manifest.json. */
export interface TrackStats {
  received: number;
  lost: number;
  /** Frames synthesised for lost or corrupt packets: from in-band FEC (`fec` of them) or by PLC (the rest). */
  concealed: number;
  late: number;
  /** Second copies: dropped by the jitter buffer, plus (added by the engine) those the replay filter dropped. */
  duplicate: number;
  /** DAVE could not decrypt them (counted by the receiver; the engine adds them). */
  undecryptable: number;
  /** Delivered intact but not decodable by libopus (or impossibly large): each replaced by PLC, in `concealed`. */
  corrupt: number;
  /** Of `concealed`, the frames rebuilt from the next packet's in-band FEC data. */
  fec: number;
}

export function emptyStats(): TrackStats {
  return { received: 0, lost: 0, concealed: 0, late: 0, duplicate: 0, undecryptable: 0, corrupt: 0, fec: 0 };
}

/** Just the counters of `s` (which may carry more fields), with 0 for any an older journal lacks. */
export function copyStats(s: Partial<TrackStats>): TrackStats {
  return {
    received: s.received ?? 0,
    lost: s.lost ?? 0,
    concealed: s.concealed ?? 0,
    late: s.late ?? 0,
    duplicate: s.duplicate ?? 0,
    undecryptable: s.undecryptable ?? 0,
    corrupt: s.corrupt ?? 0,
    fec: s.fec ?? 0,
  };
}

/**
 * How long the first packet of a stream or talk spurt is held before it is placed: the clock anchors on the
 * least-delayed packet of this window (clock.ts). A gap is held only playoutDelayMs, but arrival times are
 * stamped by the receiving thread, and when hundreds of members start at once the first ~150 ms of their
 * packets are all stamped late while that thread works through the burst (measured at 500 simultaneous
 * starters: anchors up to 70 ms late with a 60 ms window, which the clock then had to pull back by resampling
 * for 10+ s). 250 ms reaches past such a burst; a recorder has no use for low latency, and the hold is opus
 * packets, not PCM.
 */
export const PRIMING_MS = 250;
