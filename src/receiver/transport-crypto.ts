/**
 * Stage 2 of the receive path: transport decryption of Discord's two "rtpsize" AEAD modes.
 *
 * Packet layout (Discord voice docs, "Transport Encryption Modes"):
 *   AAD (RTP header + CSRCs + 4-byte extension preamble when X is set) ‖ ciphertext ‖ 16-byte tag ‖ u32 nonce counter
 * The nonce is that counter followed by zeros: 12 bytes for AES-256-GCM, 24 for XChaCha20-Poly1305. The plaintext
 * is the extension BODY followed by the Opus payload; with the padding bit the last byte counts padding bytes.
 *
 * RTCP in rtpsize modes authenticates the 8-byte RTCP header (V/P/RC, PT, length, sender SSRC) and encrypts
 * the rest with the same trailer.
 *
 * AES-GCM uses node:crypto (OpenSSL); XChaCha20-Poly1305 uses sodium-native (libsodium), which is what
 * @discordjs/voice itself prefers. Failures return null: a bad tag is a lost packet, never an exception.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import { AUTH_TAG_BYTES, NONCE_BYTES, type RtpHeader } from './rtp.ts';

export type TransportMode = 'aead_aes256_gcm_rtpsize' | 'aead_xchacha20_poly1305_rtpsize';
export const TRANSPORT_MODES: readonly TransportMode[] = ['aead_aes256_gcm_rtpsize', 'aead_xchacha20_poly1305_rtpsize'];

/** The slice of sodium-native we use (it ships no TypeScript types). */
interface Sodium {
  crypto_aead_xchacha20poly1305_ietf_decrypt(m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array, npub: Uint8Array, k: Uint8Array): number;
  crypto_aead_xchacha20poly1305_ietf_encrypt(c: Uint8Array, m: Uint8Array, ad: Uint8Array, nsec: null, npub: Uint8Array, k: Uint8Array): number;
}
const sodium = createRequire(import.meta.url)('sodium-native') as Sodium;

const RTCP_AAD_BYTES = 8;

/** Outcome of {@link TransportCipher.openRtpDetailed}. */
export type OpenResult = { ok: true; payload: Buffer } | { ok: false; reason: 'auth' | 'padding' };
const AUTH_FAILED: OpenResult = { ok: false, reason: 'auth' };
const BAD_PADDING: OpenResult = { ok: false, reason: 'padding' };

export function isTransportMode(mode: unknown): mode is TransportMode {
  return mode === 'aead_aes256_gcm_rtpsize' || mode === 'aead_xchacha20_poly1305_rtpsize';
}

/** Decrypts (and, for tests and the simulator, encrypts) one session's packets: one mode, one 32-byte key. */
export class TransportCipher {
  readonly mode: TransportMode;
  readonly #key: Uint8Array;
  /**
   * The AES key as a KeyObject, made once per session: given raw bytes, createDecipheriv re-validates and copies
   * the key for every datagram, the largest cost of the receive thread when it did (BENCHMARKS.md, "Measurements
   * behind the code").
   */
  readonly #aesKey: KeyObject;
  /** Reused nonce buffer: only the first 4 bytes ever change. */
  readonly #nonce: Buffer;

  constructor(mode: TransportMode, key: Uint8Array) {
    if (key.length !== 32) throw new RangeError('transport key must be 32 bytes');
    this.mode = mode;
    this.#key = Uint8Array.from(key);
    this.#aesKey = createSecretKey(this.#key);
    this.#nonce = Buffer.alloc(mode === 'aead_aes256_gcm_rtpsize' ? 12 : 24);
  }

  /**
   * Decrypts an RTP datagram whose header was parsed by rtp.ts and returns the Opus payload (extension body and
   * padding removed), or null when authentication fails or the padding count is impossible.
   */
  openRtp(datagram: Uint8Array, header: RtpHeader): Buffer | null {
    const r = this.openRtpDetailed(datagram, header);
    return r.ok ? r.payload : null;
  }

  /**
   * Like {@link openRtp} but says why a datagram was refused: `auth` (bad tag, wrong key, forged) or `padding`
   * (authenticated, so it really came from the server, but its padding count overruns the payload).
   */
  openRtpDetailed(datagram: Uint8Array, header: RtpHeader): OpenResult {
    const plain = this.#open(datagram, header.aadLength);
    if (plain === null) return AUTH_FAILED;
    let end = plain.length;
    if (header.padding) {
      const pad = end > 0 ? plain[end - 1]! : 0;
      // RFC 3550: the count includes itself, so 0 is invalid; it may not eat into the extension body.
      if (pad === 0 || pad > end - header.extensionBodyLength) return BAD_PADDING;
      end -= pad;
    }
    if (header.extensionBodyLength > end) return BAD_PADDING;
    return { ok: true, payload: plain.subarray(header.extensionBodyLength, end) };
  }

  /** Decrypts an RTCP datagram; returns header ‖ plaintext (a normal RTCP packet), or null. */
  openRtcp(datagram: Uint8Array): Buffer | null {
    const plain = this.#open(datagram, RTCP_AAD_BYTES);
    if (plain === null) return null;
    return Buffer.concat([datagram.subarray(0, RTCP_AAD_BYTES), plain]);
  }

  /** Encrypts `aad ‖ plaintext` into a rtpsize datagram with the given nonce counter (used by tests/simulator). */
  seal(aad: Uint8Array, plaintext: Uint8Array, nonceCounter: number): Buffer {
    const nonce = Buffer.alloc(this.#nonce.length);
    nonce.writeUInt32BE(nonceCounter >>> 0, 0);
    let sealed: Buffer;
    if (this.mode === 'aead_aes256_gcm_rtpsize') {
      const c = createCipheriv('aes-256-gcm', this.#aesKey, nonce);
      c.setAAD(aad);
      sealed = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
    } else {
      sealed = Buffer.alloc(plaintext.length + AUTH_TAG_BYTES);
      sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(sealed, plaintext, aad, null, nonce, this.#key);
    }
    return Buffer.concat([aad, sealed, nonce.subarray(0, NONCE_BYTES)]);
  }

  #open(datagram: Uint8Array, aadLength: number): Buffer | null {
    const tagEnd = datagram.length - NONCE_BYTES;
    const cipherEnd = tagEnd - AUTH_TAG_BYTES;
    if (cipherEnd < aadLength) return null;
    const nonce = this.#nonce;
    nonce.set(datagram.subarray(tagEnd), 0);
    const aad = datagram.subarray(0, aadLength);
    try {
      if (this.mode === 'aead_aes256_gcm_rtpsize') {
        const d = createDecipheriv('aes-256-gcm', this.#aesKey, nonce);
        d.setAAD(aad);
        d.setAuthTag(datagram.subarray(cipherEnd, tagEnd));
        // GCM is a stream mode: update() returns all the plaintext and final() only checks the tag (it returns
        // nothing, or throws), so no Buffer.concat: one allocation and one copy fewer per datagram. The
        // plaintext is returned only once final() has authenticated it.
        const plain = d.update(datagram.subarray(aadLength, cipherEnd));
        d.final();
        return plain;
      }
      const out = Buffer.allocUnsafe(cipherEnd - aadLength);
      sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, datagram.subarray(aadLength, tagEnd), aad, nonce, this.#key);
      return out;
    } catch {
      return null;
    }
  }
}
