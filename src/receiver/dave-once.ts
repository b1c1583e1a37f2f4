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

/** What the receiver calls (the @discordjs/voice DAVESession wrapper has this shape). */
export interface DaveDecryptor {
  decrypt(packet: Buffer, userId: string): Buffer | null;
}

/** Frames remembered per user: readers of one datagram run back to back, so a handful is plenty. */
const REMEMBER = 8;

interface Entry {
  frame: Buffer;
  /** The result, or the error the decryptor threw (rethrown to every reader). */
  out: Buffer | null;
  error?: unknown;
}

export class DecryptOnce implements DaveDecryptor {
  readonly #inner: (packet: Buffer, userId: string) => Buffer | null;
  readonly #recent = new Map<string, Entry[]>();

  constructor(inner: (packet: Buffer, userId: string) => Buffer | null) {
    this.#inner = inner;
  }

  decrypt(packet: Buffer, userId: string): Buffer | null {
    let list = this.#recent.get(userId);
    if (list) {
      for (const e of list) {
        if (e.frame.equals(packet)) {
          if (e.error !== undefined) throw e.error;
          return e.out;
        }
      }
    } else {
      // Bounded by the users of the call: entries are per user and each list is capped.
      if (this.#recent.size >= 4096) this.#recent.delete(this.#recent.keys().next().value!);
      this.#recent.set(userId, (list = []));
    }
    const entry: Entry = { frame: Buffer.from(packet), out: null };
    if (list.length >= REMEMBER) list.shift();
    list.push(entry);
    try {
      entry.out = this.#inner(packet, userId);
      return entry.out;
    } catch (error) {
      entry.error = error;
      throw error;
    }
  }
}
