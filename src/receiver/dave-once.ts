/**
 * One DAVE decryption per frame, shared by everyone who reads the connection.
 *
 * A DAVE decryptor refuses a frame it has already decrypted (libdave keeps the newest nonce per sender and a short
 * list of missing ones, as a replay defence; @snazzah/davey follows it), so when a host bot's own
 * `receiver.subscribe(user)` and dvrec's receiver both decrypted the same frame, the second would fail and that
 * user's audio would be lost to one of them. The tap therefore routes the connection's DAVE session through this
 * memo: the first reader decrypts, the second gets the same result. Frames are matched by content (the same
 * datagram's payload is byte-identical for both); only the last few frames per user are remembered, which covers
 * readers called for the same datagram one after the other.
 */

import type { DaveFrameDecryptor } from './dave.ts';

/** Frames remembered per user: readers of one datagram run back to back, so a handful is plenty. */
const REMEMBER = 8;

interface Entry {
  frame: Buffer;
  out: Buffer | null;
}

/** A front on a decryptor (dave-guard.ts, which never throws) that decrypts each frame once, whoever asks. */
export class DecryptOnce implements DaveFrameDecryptor {
  readonly #inner: (packet: Buffer, userId: string) => Buffer | null;
  readonly #recent = new Map<string, Entry[]>();

  constructor(inner: (packet: Buffer, userId: string) => Buffer | null) {
    this.#inner = inner;
  }

  decrypt(packet: Buffer, userId: string): Buffer | null {
    let list = this.#recent.get(userId);
    if (list) {
      for (const e of list) if (e.frame.equals(packet)) return e.out;
    } else {
      // Bounded by the users of the call: entries are per user and each list is capped.
      if (this.#recent.size >= 4096) this.#recent.delete(this.#recent.keys().next().value!);
      this.#recent.set(userId, (list = []));
    }
    const out = this.#inner(packet, userId);
    if (list.length >= REMEMBER) list.shift();
    list.push({ frame: Buffer.from(packet), out });
    return out;
  }
}
