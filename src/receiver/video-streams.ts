/**
 * Video on the voice socket: which RTP datagrams are a member's camera or screen share, so the receiver counts them
 * as `video` and never lets them near an Opus decoder.
 *
 * Discord documents no video for bots. What clients show (README "What Discord does not document"):
 *  - voice op 12 announces a user's SSRCs, `{user_id, audio_ssrc, video_ssrc, rtx_ssrc, streams: [{ssrc, rtx_ssrc,
 *    ...}]}` (polyphony-chat/chorus src/types/events/voice_gateway/ssrc_definition.rs; Discord-RE/Discord-video-stream
 *    src/client/voice/BaseMediaConnection.ts); op 18 and op 20 that follow a connection carry no SSRC;
 *  - video payload types are what clients list in op 1 `codecs`: H264 101 (RTX 102), H265 103/104, VP8 105/106,
 *    VP9 107/108, AV1 109/110 (Discord-RE/Discord-video-stream src/client/voice/CodecPayloadType.ts; older clients:
 *    VP8 103/104, VP9 105/106) — the same range either way.
 * A datagram is video when its SSRC was announced as video or RTX, or its payload type is one of those (video may
 * arrive before its op 12: UDP and the websocket race). Audio is only ever payload type 120, so none of this can
 * take audio away; anything else that is not Opus stays `notAudio`.
 *
 * op 12 also names the user's audio SSRC: the receiver uses it as an SSRC → user mapping, like op 5.
 */

/** Payload types Discord clients use for video and its RTX. */
const VIDEO_PAYLOAD_TYPES = new Set([101, 102, 103, 104, 105, 106, 107, 108, 109, 110]);
/** Announced video SSRCs remembered (oldest forgotten first; an unannounced one still counts by payload type). */
const MAX_VIDEO_SSRCS = 1024;

/** What one op 12 says. */
export interface VideoAnnouncement {
  userId: string;
  /** The user's audio SSRC (0: not given). */
  audioSsrc: number;
  /** Its video and RTX SSRCs (empty when its video is off). */
  videoSsrcs: number[];
}

const isSsrc = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= 0xffff_ffff;

/** Reads an op 12 payload; null when it names no user. Tolerant: unknown or missing fields are skipped. */
export function parseVideoOp(d: unknown): VideoAnnouncement | null {
  if (typeof d !== 'object' || d === null) return null;
  const o = d as Record<string, unknown>;
  if (typeof o.user_id !== 'string' || o.user_id === '') return null;
  const videoSsrcs = new Set<number>();
  for (const v of [o.video_ssrc, o.rtx_ssrc]) if (isSsrc(v)) videoSsrcs.add(v);
  if (Array.isArray(o.streams)) {
    for (const s of o.streams.slice(0, 16)) {
      if (typeof s !== 'object' || s === null) continue;
      const st = s as Record<string, unknown>;
      for (const v of [st.ssrc, st.rtx_ssrc]) if (isSsrc(v)) videoSsrcs.add(v);
    }
  }
  return { userId: o.user_id, audioSsrc: isSsrc(o.audio_ssrc) ? o.audio_ssrc : 0, videoSsrcs: [...videoSsrcs] };
}

/** The video SSRCs announced so far, bounded. */
export class VideoSsrcs {
  /** Insertion order = eviction order. */
  readonly #ssrcs = new Set<number>();

  /** Records the video SSRCs op 12 lists (those no longer listed stay known: their last packets may be in flight). */
  announce(a: VideoAnnouncement): void {
    for (const ssrc of a.videoSsrcs) {
      this.#ssrcs.delete(ssrc);
      this.#ssrcs.add(ssrc);
      if (this.#ssrcs.size > MAX_VIDEO_SSRCS) this.#ssrcs.delete(this.#ssrcs.values().next().value!);
    }
  }

  /** Is this RTP datagram, whose payload type is not Opus, video? */
  isVideo(ssrc: number, payloadType: number): boolean {
    return VIDEO_PAYLOAD_TYPES.has(payloadType) || this.#ssrcs.has(ssrc);
  }

  get size(): number {
    return this.#ssrcs.size;
  }
}
