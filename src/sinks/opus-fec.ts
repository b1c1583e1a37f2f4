/**
 * Does an Opus packet carry in-band FEC (SILK "LBRR" data) for the frame before it?
 *
 * Why: asked to recover a lost frame from the next packet's FEC, libopus silently runs packet-loss concealment
 * instead when that packet has no LBRR data (CELT-only packets, a quiet frame the encoder did not protect, FEC
 * off at the sender). The stats must say which of the two a concealed frame got, and a talk spurt's first frame
 * is only worth recovering when there is something to recover. libopus 1.5 has `opus_packet_has_lbrr()`, but the
 * WebAssembly build we decode with exports no such call, so this reads the flags itself: they are the first
 * symbols of the first Opus frame's range-coded data (RFC 6716 §4.2.3–4.2.4: per channel, one VAD flag per
 * SILK frame, then the LBRR flag, each a 1-bit symbol of probability ½), decoded with the range decoder of
 * RFC 6716 §4.1 (libopus celt/entdec.c).
 */

/** TOC config → SILK frames in one Opus frame (0 for CELT-only, which has no LBRR). RFC 6716 §3.1. */
function silkFramesPerOpusFrame(config: number): number {
  if (config >= 16) return 0; // CELT-only
  if (config >= 12) return 1; // hybrid: 10 or 20 ms, one SILK frame
  return [1, 1, 2, 3][config & 3]!; // SILK-only: 10, 20, 40, 60 ms
}

/** Byte range of the first Opus frame of a packet (RFC 6716 §3.2), or null if the packet is malformed. */
function firstFrame(p: Uint8Array): { start: number; end: number } | null {
  const n = p.length;
  if (n < 1) return null;
  const code = p[0]! & 3;
  if (code === 0) return { start: 1, end: n };
  if (code === 1) return (n - 1) % 2 === 0 ? { start: 1, end: 1 + (n - 1) / 2 } : null;
  if (code === 2) {
    if (n < 2) return null;
    let len = p[1]!;
    let at = 2;
    if (len >= 252) {
      if (n < 3) return null;
      len += 4 * p[2]!;
      at = 3;
    }
    return at + len <= n ? { start: at, end: at + len } : null;
  }
  // Code 3: frame count byte (VBR flag, padding flag, count), padding length, then VBR lengths.
  if (n < 2) return null;
  const vbr = (p[1]! & 0x80) !== 0;
  const count = p[1]! & 0x3f;
  if (count === 0) return null;
  let at = 2;
  let padding = 0;
  if ((p[1]! & 0x40) !== 0) {
    for (;;) {
      if (at >= n) return null;
      const b = p[at++]!;
      padding += b === 255 ? 254 : b;
      if (b !== 255) break;
    }
  }
  const dataEnd = n - padding;
  if (vbr) {
    // count−1 length fields (1 or 2 bytes each), the first of them the first frame's; then the frames.
    if (count < 2) return { start: at, end: dataEnd };
    if (at >= dataEnd) return null;
    let len = p[at]!;
    if (len >= 252) {
      if (at + 1 >= dataEnd) return null;
      len += 4 * p[at + 1]!;
    }
    let start = at;
    for (let k = 0; k < count - 1; k++) {
      if (start >= dataEnd) return null;
      start += p[start]! >= 252 ? 2 : 1;
    }
    return start + len <= dataEnd ? { start, end: start + len } : null;
  }
  const total = dataEnd - at;
  if (total < 0 || total % count !== 0) return null;
  return { start: at, end: at + total / count };
}

/** The few range-decoder steps needed to read 1-bit symbols from the start of a frame (RFC 6716 §4.1). */
class BitReader {
  private readonly buf: Uint8Array;
  private offs: number;
  private readonly end: number;
  private rng = 128;
  private val: number;
  private rem: number;

  constructor(buf: Uint8Array, start: number, end: number) {
    this.buf = buf;
    this.offs = start;
    this.end = end;
    this.rem = this.byte();
    this.val = this.rng - 1 - (this.rem >> 1);
    this.normalize();
  }

  /** Past the end of the frame the decoder reads zeros (RFC 6716 §4.1.2). */
  private byte(): number {
    return this.offs < this.end ? this.buf[this.offs++]! : 0;
  }

  private normalize(): void {
    while (this.rng <= 0x80_0000) {
      this.rng *= 256;
      let sym = this.rem;
      this.rem = this.byte();
      sym = ((sym << 8) | this.rem) >> 1;
      // (val·256 + (255 & ~sym)) mod 2^31; the products stay far below 2^53, so plain numbers are exact.
      this.val = (this.val * 256 + (255 & ~sym)) % 0x8000_0000;
    }
  }

  /** One symbol of probability ½ (ec_dec_bit_logp with logp = 1). */
  bit(): boolean {
    const s = Math.floor(this.rng / 2);
    const one = this.val < s;
    if (!one) this.val -= s;
    this.rng = one ? s : this.rng - s;
    this.normalize();
    return one;
  }
}

/** True if `packet`'s first Opus frame carries LBRR (in-band FEC) data for the preceding frame. */
export function opusHasFec(packet: Uint8Array): boolean {
  if (packet.length < 2) return false;
  const toc = packet[0]!;
  const silkFrames = silkFramesPerOpusFrame(toc >> 3);
  if (silkFrames === 0) return false;
  const f = firstFrame(packet);
  if (f === null || f.end - f.start < 1) return false;
  const r = new BitReader(packet, f.start, f.end);
  const channels = (toc & 4) !== 0 ? 2 : 1;
  let lbrr = false;
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < silkFrames; i++) r.bit(); // VAD flags
    if (r.bit()) lbrr = true;
  }
  return lbrr;
}

/** True for CELT-only packets (TOC config 16–31), such as the F8 FF FE silence frame. */
export function isCeltOnly(packet: Uint8Array): boolean {
  return packet.length > 0 && packet[0]! >> 3 >= 16;
}
