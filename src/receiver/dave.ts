/**
 * DAVE frame format facts the receive path needs (protocol.md "Frame Format", "Silence Packets"), and the
 * interface of stage 4, DAVE decryption. The decryption itself, with dvrec's failure policy, is dave-guard.ts.
 */

/** Opus "silence" frame Discord clients send at the end of a talk spurt; never DAVE-encrypted. */
export const SILENCE_FRAME = Buffer.from([0xf8, 0xff, 0xfe]);

/** Stage 4: what the receiver calls for every mapped, accepted audio frame. */
export interface DaveFrameDecryptor {
  /** The Opus payload, or null when the frame cannot be decrypted (a lost packet). Never throws. */
  decrypt(frame: Buffer, userId: string): Buffer | null;
}

const DAVE_MAGIC = 0xfafa;
/** 8-byte truncated tag + ≥1-byte nonce + supplemental-size byte + 2-byte magic. */
const MIN_SUPPLEMENTAL = 12;

export function isSilenceFrame(opus: Uint8Array): boolean {
  return opus.length === 3 && opus[0] === 0xf8 && opus[1] === 0xff && opus[2] === 0xfe;
}

/**
 * Whether a frame carries a DAVE trailer: `... ‖ u8 supplemental size ‖ FA FA` with a plausible size.
 * (A plain Opus frame ending that way is possible but rare; treating it as lost costs one concealed frame.)
 */
export function looksLikeDaveFrame(frame: Uint8Array): boolean {
  const n = frame.length;
  if (n < MIN_SUPPLEMENTAL + 1) return false;
  if (((frame[n - 2]! << 8) | frame[n - 1]!) !== DAVE_MAGIC) return false;
  const supplemental = frame[n - 3]!;
  return supplemental >= MIN_SUPPLEMENTAL && supplemental < n;
}

/**
 * Stage 4 without a DAVE session (a server that does not use DAVE): frames pass as they are, except DAVE frames,
 * which would hand ciphertext to the Opus decoder and are lost instead.
 */
export const withoutDave: DaveFrameDecryptor = {
  decrypt: (frame) => (!isSilenceFrame(frame) && looksLikeDaveFrame(frame) ? null : frame),
};
