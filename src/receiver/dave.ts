/**
 * Stage 4 of the receive path: DAVE (end-to-end) decryption of a transport-decrypted Opus frame.
 *
 * The MLS group state lives in @discordjs/voice's DAVESession wrapper (`connection.state.networking.state.dave`),
 * which follows the voice gateway's DAVE ops (external sender, proposals, welcome, transitions). Its
 * `decrypt(packet, userId)`:
 *  - returns the input unchanged for the silence frame, while the session is not ready, or when the sender may
 *    pass through unencrypted (transition windows);
 *  - returns null on a failure it decided to ignore (pending transition, re-initialising);
 *  - throws once more than `decryptionFailureTolerance` consecutive failures happen and no transition id is
 *    known to recover with.
 * None of those may stop a recording: a frame we cannot decrypt is a lost packet (concealed downstream).
 * The one case the wrapper cannot see is "returned unchanged but still a DAVE frame" (session not ready yet,
 * or no DAVE session at all): that would hand ciphertext to the Opus decoder, so it is detected by the DAVE
 * trailer and counted as undecryptable too.
 */

/** Opus "silence" frame Discord clients send at the end of a talk spurt; never DAVE-encrypted. */
export const SILENCE_FRAME = Buffer.from([0xf8, 0xff, 0xfe]);

/** The part of @discordjs/voice's DAVESession the receiver uses. */
export interface DaveDecryptor {
  decrypt(packet: Buffer, userId: string): Buffer | null;
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
 * DAVE-decrypts one frame. Returns the Opus payload, or null when it cannot be decrypted (a lost packet).
 * Never throws.
 */
export function daveDecrypt(session: DaveDecryptor | undefined, frame: Buffer, userId: string): Buffer | null {
  if (isSilenceFrame(frame)) return frame;
  if (!session) return looksLikeDaveFrame(frame) ? null : frame;
  let out: Buffer | null;
  try {
    out = session.decrypt(frame, userId);
  } catch {
    return null;
  }
  if (out === null) return null;
  if (out === frame && looksLikeDaveFrame(frame)) return null;
  return out;
}
