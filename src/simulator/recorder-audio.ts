/**
 * What the recorder's own client sends as media (a host bot that records may also play audio with an
 * AudioPlayer): each datagram is checked as Discord would, transport-authenticated with its voice session's key,
 * and, with DAVE, end-to-end decrypted by a call member (a real MLS member of the group). Counts only; the audio
 * is not forwarded to anyone.
 */
import { createDecipheriv } from 'node:crypto';
import { createRequire } from 'node:module';
import type { TransportMode } from './scenario.ts';

interface SodiumOpen {
  crypto_aead_xchacha20poly1305_ietf_decrypt(m: Buffer, nsec: null, c: Buffer, ad: Buffer, npub: Buffer, k: Buffer): number;
}
const sodium = createRequire(import.meta.url)('sodium-native') as SodiumOpen;

/** What the simulator saw of the recorder's own audio (Simulator.recorderAudio()). */
export interface RecorderAudioTruth {
  /** RTP datagrams with the Opus payload type from the recorder's address. */
  datagrams: number;
  /** Of those, transport-authenticated with the session key. */
  authenticated: number;
  /** Of those, Opus silence frames (F8 FF FE: an AudioPlayer's closing frames). */
  silence: number;
  /** Of the rest, DAVE-decrypted by a call member (DAVE on), or plain Opus (DAVE off). */
  decrypted: number;
}

export class RecorderAudio {
  readonly truth: RecorderAudioTruth = { datagrams: 0, authenticated: 0, silence: 0, decrypted: 0 };

  /**
   * One datagram the recorder's client sent. `key`/`mode`: its voice session's; `dave`: a call member's DAVE
   * decryption of the recorder's frames (null when the frame cannot be decrypted), or undefined without DAVE.
   */
  observe(msg: Buffer, mode: TransportMode, key: Buffer, dave: ((frame: Buffer) => Buffer | null) | undefined): void {
    if (msg.length < 12 + 20 || msg[0]! >> 6 !== 2 || (msg[1]! & 0x7f) !== 0x78) return;
    this.truth.datagrams++;
    const x = (msg[0]! & 0x10) !== 0;
    const aadLength = 12 + 4 * (msg[0]! & 0x0f) + (x ? 4 : 0);
    if (msg.length < aadLength + 20) return;
    const extBody = x ? 4 * msg.readUInt16BE(aadLength - 2) : 0;
    const plain = open(msg, aadLength, mode, key);
    if (!plain) return;
    this.truth.authenticated++;
    const frame = plain.subarray(extBody);
    if (frame.length === 3 && frame[0] === 0xf8 && frame[1] === 0xff && frame[2] === 0xfe) {
      this.truth.silence++;
      return;
    }
    if (dave === undefined || dave(frame) !== null) this.truth.decrypted++;
  }
}

function open(msg: Buffer, aadLength: number, mode: TransportMode, key: Buffer): Buffer | null {
  const tagEnd = msg.length - 4;
  const cipherEnd = tagEnd - 16;
  const aad = msg.subarray(0, aadLength);
  try {
    if (mode === 'aead_aes256_gcm_rtpsize') {
      const nonce = Buffer.alloc(12);
      msg.copy(nonce, 0, tagEnd);
      const d = createDecipheriv('aes-256-gcm', key, nonce);
      d.setAAD(aad);
      d.setAuthTag(msg.subarray(cipherEnd, tagEnd));
      return Buffer.concat([d.update(msg.subarray(aadLength, cipherEnd)), d.final()]);
    }
    const nonce = Buffer.alloc(24);
    msg.copy(nonce, 0, tagEnd);
    const out = Buffer.alloc(cipherEnd - aadLength);
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, msg.subarray(aadLength, tagEnd), aad, nonce, key);
    return out;
  } catch {
    return null;
  }
}
