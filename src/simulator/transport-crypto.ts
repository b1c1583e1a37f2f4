/**
 * Transport encryption of outgoing voice datagrams, the two AEAD "rtpsize" modes Discord offers today.
 * Packet = AAD ‖ ciphertext ‖ 16-byte tag ‖ 4-byte nonce counter (BE); the nonce is that counter followed by
 * zeros (12 bytes for AES-256-GCM, 24 for XChaCha20-Poly1305). For RTP the AAD is the 12-byte header plus the
 * 4-byte extension preamble when the X bit is set; for RTCP it is the 8-byte RTCP header.
 */
import { createCipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import type { TransportMode } from './scenario.ts';
import { NonceCounter } from './nonces.ts';

/** The one sodium-native function used here (the package ships no type declarations). */
interface SodiumAead {
  crypto_aead_xchacha20poly1305_ietf_encrypt(c: Buffer, m: Buffer, ad: Buffer | null, nsec: null, npub: Buffer, k: Buffer): number;
}
const sodium = createRequire(import.meta.url)('sodium-native') as SodiumAead;

const TAG = 16;

export class TransportEncryptor {
  readonly mode: TransportMode;
  readonly #key: Buffer;
  /** Made once: a raw key makes createCipheriv re-validate and copy it for every packet (~4× slower). */
  readonly #aesKey: KeyObject;
  readonly #nonces: NonceCounter;
  readonly #nonce: Buffer;

  /**
   * @param nonces how the datagrams are numbered (nonces.ts); a number is the first counter of one counter per
   *   connection (the default, from 0)
   */
  constructor(mode: TransportMode, key: Buffer, nonces: NonceCounter | number = 0) {
    if (key.length !== 32) throw new RangeError('secret key must be 32 bytes');
    this.mode = mode;
    this.#key = key;
    this.#aesKey = createSecretKey(key);
    this.#nonces = typeof nonces === 'number' ? new NonceCounter('per-connection', null, nonces) : nonces;
    this.#nonce = Buffer.alloc(mode === 'aead_aes256_gcm_rtpsize' ? 12 : 24);
  }

  /** Encrypts `plaintext` with `aad` authenticated in the clear, under the next nonce of its stream; returns the whole datagram. */
  seal(aad: Buffer, plaintext: Buffer): Buffer {
    const counter = this.#nonces.next(aad);
    this.#nonce.writeUInt32BE(counter, 0);
    const out = Buffer.allocUnsafe(aad.length + plaintext.length + TAG + 4);
    aad.copy(out, 0);
    if (this.mode === 'aead_aes256_gcm_rtpsize') {
      const c = createCipheriv('aes-256-gcm', this.#aesKey, this.#nonce);
      c.setAAD(aad);
      const n = c.update(plaintext).copy(out, aad.length);
      c.final();
      c.getAuthTag().copy(out, aad.length + n);
    } else {
      sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        out.subarray(aad.length, aad.length + plaintext.length + TAG),
        plaintext,
        aad,
        null,
        this.#nonce,
        this.#key,
      );
    }
    out.writeUInt32BE(counter, out.length - 4);
    return out;
  }
}
