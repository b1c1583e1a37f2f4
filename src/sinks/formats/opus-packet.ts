/** Opus packet facts needed to place packets on the timeline (RFC 6716 section 3.1). */
import { MAX_FRAME_SAMPLES } from '../types.ts';

/** Samples at 48 kHz of one frame for each TOC config (0..31). */
function frameSamples(config: number): number {
  if (config < 12) return [480, 960, 1920, 2880][config & 3]!; // SILK: 10/20/40/60 ms
  if (config < 16) return [480, 960][config & 1]!; // Hybrid: 10/20 ms
  return [120, 240, 480, 960][config & 3]!; // CELT: 2.5/5/10/20 ms
}

/** Samples (48 kHz) of ONE frame of a packet, from its TOC byte; 0 for an empty packet. */
export function opusFrameSamples(p: Uint8Array): number {
  return p.length < 1 ? 0 : frameSamples(p[0]! >> 3);
}

/** Total samples (48 kHz) a packet decodes to, or 0 when the packet is malformed. */
export function opusPacketSamples(p: Uint8Array): number {
  if (p.length < 1) return 0;
  const toc = p[0]!;
  const per = frameSamples(toc >> 3);
  const code = toc & 3;
  let frames: number;
  if (code === 0) frames = 1;
  else if (code === 1 || code === 2) frames = 2;
  else {
    if (p.length < 2) return 0;
    frames = p[1]! & 0x3f;
  }
  const total = per * frames;
  return frames > 0 && total <= MAX_FRAME_SAMPLES ? total : 0; // RFC: at most 120 ms per packet
}

/**
 * CELT silence frames (TOC + FF FE, the frame Discord clients send at the end of a talk spurt) for each
 * duration. They decode to exact digital silence, so gaps can be filled at 2.5 ms granularity.
 */
export const SILENCE_FRAMES: ReadonlyArray<{ samples: number; packet: Uint8Array }> = [
  { samples: 960, packet: Uint8Array.of(0xf8, 0xff, 0xfe) },
  { samples: 480, packet: Uint8Array.of(0xf0, 0xff, 0xfe) },
  { samples: 240, packet: Uint8Array.of(0xe8, 0xff, 0xfe) },
  { samples: 120, packet: Uint8Array.of(0xe0, 0xff, 0xfe) },
];

/**
 * TOC-only packets (one empty frame: "lost"/DTX, RFC 6716 section 3.2.1) of each duration. Decoding them is
 * packet-loss concealment, which on a decoder that has not heard anything yet is exact silence and leaves it
 * in its initial state. That matters for the lead-in before a member's first packet: after a CELT silence
 * frame, libopus decodes the first frame of a fresh encoder ~14 ms later than a fresh decoder does (CELT
 * energy prediction), so real silence frames there would shift the member's first words against the capture.
 */
export const EMPTY_FRAMES: ReadonlyArray<{ samples: number; packet: Uint8Array }> = SILENCE_FRAMES.map((f) => ({
  samples: f.samples,
  packet: Uint8Array.of(f.packet[0]!),
}));

/**
 * The Opus "silence" frame Discord clients send five of at the end of a talk spurt (F8 FF FE: one 20 ms CELT frame
 * of digital silence). It is never DAVE-encrypted. The one definition used by the receiver and the tracks.
 */
export function isSilenceFrame(opus: Uint8Array): boolean {
  return opus.length === 3 && opus[0] === 0xf8 && opus[1] === 0xff && opus[2] === 0xfe;
}
