/**
 * A member's camera and screen share as the voice server forwards them on the recorder's UDP socket (SimMember.video).
 *
 * Discord documents none of this. What other clients show (cited in README "What Discord does not document"):
 *  - voice op 12 announces a user's SSRCs: `{user_id, audio_ssrc, video_ssrc, rtx_ssrc, streams: [{type, rid, ssrc,
 *    rtx_ssrc, active, quality, max_bitrate, max_framerate, max_resolution}]}`, with video_ssrc 0 and no active
 *    stream when video is off (polyphony-chat/chorus src/types/events/voice_gateway/ssrc_definition.rs;
 *    Discord-RE/Discord-video-stream src/client/voice/BaseMediaConnection.ts setVideoAttributes);
 *  - op 18 `{user_id, flags}` and op 20 `{user_id, platform}` follow a user's connection and carry no SSRC
 *    (chorus client_connect.rs);
 *  - video payload types are those clients list in op 1 `codecs`: H264 101 (RTX 102), H265 103/104, VP8 105/106,
 *    VP9 107/108, AV1 109/110 (Discord-RE/Discord-video-stream src/client/voice/CodecPayloadType.ts; older clients
 *    used VP8 103/104), on a 90 kHz clock.
 * Go Live normally runs on a separate stream connection; a screen share here is forwarded on the voice socket as a
 * second video stream, the harder case for a recorder (more traffic of the same shape on the same socket).
 *
 * Each source produces frames at its frame rate (a keyframe every 2 s, several times larger), which the caller may
 * DAVE-encrypt as a video frame before {@link VideoSender.packetize} cuts it into RTP packets of ≤ 1,100 payload
 * bytes (marker on a frame's last packet, a one-byte header extension on each); about 3 % of packets are sent again
 * as RTX (RFC 4588: the original sequence number, then the original payload) on the source's RTX SSRC.
 */
import type { Prng } from './prng.ts';
import { rtcpSenderReport, rtpHeader } from './rtp.ts';
import type { Spurt } from './scenario.ts';

export type VideoCodec = 'H264' | 'VP8' | 'VP9' | 'AV1';
export type VideoSource = 'camera' | 'screen';

/** RTP payload types per codec (see the module comment for where they come from). */
export const VIDEO_PAYLOAD_TYPES: Readonly<Record<VideoCodec, { payloadType: number; rtxPayloadType: number }>> = {
  H264: { payloadType: 101, rtxPayloadType: 102 },
  VP8: { payloadType: 105, rtxPayloadType: 106 },
  VP9: { payloadType: 107, rtxPayloadType: 108 },
  AV1: { payloadType: 109, rtxPayloadType: 110 },
};

interface Profile {
  fps: number;
  bitsPerSecond: number;
  width: number;
  height: number;
}
const PROFILES: Readonly<Record<VideoSource, Profile>> = {
  camera: { fps: 30, bitsPerSecond: 1_200_000, width: 1280, height: 720 },
  screen: { fps: 15, bitsPerSecond: 2_500_000, width: 1920, height: 1080 },
};
const KEYFRAME_EVERY_MS = 2000;
const KEYFRAME_SIZE_FACTOR = 4;
const MAX_PAYLOAD = 1100;
const RTX_PROBABILITY = 0.03;
/** Video RTP clock. */
const CLOCK_HZ = 90_000;

/** One encoded frame, before DAVE and packetization. */
export interface VideoFrame {
  source: VideoSource;
  codec: VideoCodec;
  keyframe: boolean;
  /** RTP timestamp (90 kHz) of the frame. */
  timestamp: number;
  data: Buffer;
}

/** One video datagram's cleartext parts: seal `aad` ‖ `plaintext`. */
export interface VideoPacket {
  aad: Buffer;
  plaintext: Buffer;
  ssrc: number;
  rtx: boolean;
}

interface Stream {
  source: VideoSource;
  codec: VideoCodec;
  ssrc: number;
  rtxSsrc: number;
  seq: number;
  rtxSeq: number;
  tsBase: number;
  startMs: number;
  frames: number;
  packets: number;
  octets: number;
}

/** One member's video sources. Times are scenario milliseconds, non-decreasing. */
export class VideoSender {
  readonly spans: Readonly<Record<VideoSource, Spurt[]>>;
  readonly #codecs: Readonly<Record<VideoSource, VideoCodec>>;
  readonly #prng: Prng;
  readonly #streams = new Map<VideoSource, Stream>();

  constructor(video: { camera?: Spurt[]; screen?: Spurt[]; cameraCodec?: VideoCodec; screenCodec?: VideoCodec }, prng: Prng) {
    this.spans = { camera: video.camera ?? [], screen: video.screen ?? [] };
    this.#codecs = { camera: video.cameraCodec ?? 'VP8', screen: video.screenCodec ?? 'H264' };
    this.#prng = prng;
  }

  get active(): boolean {
    return this.#streams.size > 0;
  }

  isOn(source: VideoSource): boolean {
    return this.#streams.has(source);
  }

  /** Turns a source on at `nowMs` with new SSRCs (drawn from `usedSsrcs`'s complement); returns them. */
  start(source: VideoSource, nowMs: number, usedSsrcs: Set<number>): number[] {
    if (this.#streams.has(source)) return [];
    const fresh = (): number => {
      let s: number;
      do s = this.#prng.u32() || 1;
      while (usedSsrcs.has(s));
      usedSsrcs.add(s);
      return s;
    };
    const stream: Stream = {
      source, codec: this.#codecs[source], ssrc: fresh(), rtxSsrc: fresh(), seq: this.#prng.int(0, 65_535),
      rtxSeq: this.#prng.int(0, 65_535), tsBase: this.#prng.u32(), startMs: nowMs, frames: 0, packets: 0, octets: 0,
    };
    this.#streams.set(source, stream);
    return [stream.ssrc, stream.rtxSsrc];
  }

  stop(source: VideoSource): void {
    this.#streams.delete(source);
  }

  stopAll(): void {
    this.#streams.clear();
  }

  /** Which sources are on, and with which SSRCs: changes exactly when op 12 must be sent again. */
  signature(): string {
    return [...this.#streams.values()].map((s) => `${s.source}:${s.ssrc}`).join(',') || 'off';
  }

  /** The op 12 payload announcing this member's SSRCs as they are now. */
  announcement(userId: string, audioSsrc: number): Record<string, unknown> {
    const streams = [...this.#streams.values()];
    const main = streams.find((s) => s.source === 'camera') ?? streams[0];
    return {
      user_id: userId,
      audio_ssrc: audioSsrc,
      video_ssrc: main?.ssrc ?? 0,
      rtx_ssrc: main?.rtxSsrc ?? 0,
      streams: streams.map((s) => {
        const p = PROFILES[s.source];
        return {
          type: s.source === 'camera' ? 'video' : 'screen', rid: '100', ssrc: s.ssrc, rtx_ssrc: s.rtxSsrc, active: true,
          quality: 100, max_bitrate: p.bitsPerSecond * 2, max_framerate: p.fps,
          max_resolution: { type: 'fixed', width: p.width, height: p.height },
        };
      }),
    };
  }

  /** Frames due up to `nowMs` (each source at its frame rate since it turned on). */
  framesDue(nowMs: number): VideoFrame[] {
    const out: VideoFrame[] = [];
    for (const s of this.#streams.values()) {
      const p = PROFILES[s.source];
      while (s.startMs + (s.frames * 1000) / p.fps <= nowMs) {
        const atMs = (s.frames * 1000) / p.fps;
        const keyframe = s.frames % Math.round((KEYFRAME_EVERY_MS * p.fps) / 1000) === 0;
        const mean = p.bitsPerSecond / 8 / p.fps;
        const size = Math.max(64, Math.round(mean * (keyframe ? KEYFRAME_SIZE_FACTOR : 1) * (0.7 + 0.6 * this.#prng.next())));
        out.push({ source: s.source, codec: s.codec, keyframe, timestamp: (s.tsBase + Math.round((atMs * CLOCK_HZ) / 1000)) >>> 0, data: this.#frame(s.codec, keyframe, size) });
        s.frames++;
      }
    }
    return out;
  }

  /** Cuts one (possibly DAVE-encrypted) frame into RTP packets, with the occasional RTX retransmission. */
  packetize(frame: VideoFrame, payload: Buffer): VideoPacket[] {
    const s = this.#streams.get(frame.source);
    if (!s) return [];
    const pts = VIDEO_PAYLOAD_TYPES[s.codec];
    const out: VideoPacket[] = [];
    const count = Math.max(1, Math.ceil(payload.length / MAX_PAYLOAD));
    for (let i = 0; i < count; i++) {
      const chunk = payload.subarray(i * MAX_PAYLOAD, (i + 1) * MAX_PAYLOAD);
      // A one-byte-header extension element (id 3, 2 bytes: a transport-wide sequence number), padded to 4 bytes.
      const extension = Buffer.from([0x31, (s.packets >> 8) & 0xff, s.packets & 0xff, 0]);
      const marker = i === count - 1;
      const aad = rtpHeader({ sequence: s.seq, timestamp: frame.timestamp, ssrc: s.ssrc, extension, marker, payloadType: pts.payloadType });
      out.push({ aad, plaintext: Buffer.concat([extension, chunk]), ssrc: s.ssrc, rtx: false });
      if (this.#prng.chance(RTX_PROBABILITY)) {
        const osn = Buffer.from([(s.seq >> 8) & 0xff, s.seq & 0xff]);
        const rtxAad = rtpHeader({ sequence: s.rtxSeq, timestamp: frame.timestamp, ssrc: s.rtxSsrc, extension, marker, payloadType: pts.rtxPayloadType });
        out.push({ aad: rtxAad, plaintext: Buffer.concat([extension, osn, chunk]), ssrc: s.rtxSsrc, rtx: true });
        s.rtxSeq = (s.rtxSeq + 1) & 0xffff;
      }
      s.seq = (s.seq + 1) & 0xffff;
      s.packets++;
      s.octets += chunk.length;
    }
    return out;
  }

  /** Video streams on now (for their RTCP), with an SR builder each. */
  reportable(): { ssrc: number; report: (nowMs: number, wallMs: number) => Buffer }[] {
    return [...this.#streams.values()].map((s) => ({
      ssrc: s.ssrc,
      report: (nowMs: number, wallMs: number) =>
        rtcpSenderReport(s.ssrc, wallMs, (s.tsBase + Math.round(((nowMs - s.startMs) * CLOCK_HZ) / 1000)) >>> 0, s.packets, s.octets),
    }));
  }

  /**
   * Frame bytes shaped like the codec's bitstream where DAVE looks (it leaves codec headers unencrypted):
   * VP8's frame tag (and a keyframe's start code and size), an H.264 Annex B access unit (SPS + PPS + IDR, or one
   * non-IDR slice); random bytes otherwise.
   */
  #frame(codec: VideoCodec, keyframe: boolean, size: number): Buffer {
    const body = this.#prng.bytes(size);
    if (codec === 'VP8') {
      body[0] = (body[0]! & 0xfe) | (keyframe ? 0 : 1);
      if (keyframe && size >= 10) body.set([0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02], 3);
      return body;
    }
    if (codec === 'H264') {
      // Start codes must not appear inside the NAL units: clear every zero byte of the random body.
      for (let i = 0; i < body.length; i++) if (body[i] === 0) body[i] = 1;
      const nal = (type: number, b: Buffer): Buffer => Buffer.concat([Buffer.from([0, 0, 0, 1, type]), b]);
      if (!keyframe) return nal(0x41, body);
      return Buffer.concat([nal(0x67, Buffer.from([0x42, 0xc0, 0x1f, 0x8c, 0x8d, 0x40])), nal(0x68, Buffer.from([0xce, 0x3c, 0x80])), nal(0x65, body)]);
    }
    return body;
  }
}
