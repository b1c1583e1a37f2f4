/**
 * A hostile DAVE sender (SimMember.hostileDave): a real MLS member of the group whose datagrams are genuine at the
 * transport layer (sealed with the session key under fresh nonces, so no transport check can reject them) but
 * whose DAVE frames are not. What a malicious or broken client in the call can do to everyone who receives it.
 *
 * DAVE frame (protocol.md "Frame Format"): ciphertext ‖ 8-byte truncated AES-GCM tag ‖ ULEB128 nonce ‖ ULEB128
 * unencrypted ranges (none for Opus: 0 bytes) ‖ u8 supplemental size S (counts everything from the tag to the
 * magic) ‖ magic FA FA.
 * The kinds, each built from the frame the member would have sent (whose nonce it thereby consumes, so the real
 * stream shows a gap, which receivers tolerate):
 *  - 'garbage-after-magic': the genuine frame with random bytes appended, so the magic is no longer last;
 *  - 'garbage-body': random ciphertext under a well-formed trailer;
 *  - 'truncated-tag': 4 of the 8 tag bytes cut, the supplemental size adjusted to match;
 *  - 'wrong-nonce': the genuine ciphertext labelled with a neighbouring nonce;
 *  - 'replay': one of this member's own genuine frames from 8 packets earlier, resent (fresh transport nonce);
 *  - 'foreign-key': another member's genuine recent frame sent as this member's (the wrong sender key).
 * Every kind must fail DAVE authentication at a receiver; none may disturb the other members' streams.
 */
import type { Prng } from './prng.ts';

export type HostileDaveKind = 'garbage-after-magic' | 'garbage-body' | 'truncated-tag' | 'wrong-nonce' | 'replay' | 'foreign-key';

/** The order a hostile member cycles through (its n-th forged frame is kind n % length). */
export const HOSTILE_DAVE_KINDS: readonly HostileDaveKind[] = [
  'garbage-after-magic', 'garbage-body', 'truncated-tag', 'wrong-nonce', 'replay', 'foreign-key',
];

const MAGIC = 0xfafa;
const TAG_BYTES = 8;
/** How far back a 'replay' reaches: far enough that the receiver has certainly processed the original. */
const REPLAY_DEPTH = 8;

/** Smallest supplemental size: tag + a 1-byte nonce + no unencrypted ranges (0 bytes for Opus) + size + magic. */
const MIN_SUPPLEMENTAL = TAG_BYTES + 1 + 1 + 2;

/** Whether `frame` ends with a plausible DAVE trailer (the simulator only forges from its own genuine frames). */
export function isDaveFrame(frame: Buffer): boolean {
  const n = frame.length;
  return n > 3 && frame.readUInt16BE(n - 2) === MAGIC && frame[n - 3]! >= MIN_SUPPLEMENTAL && frame[n - 3]! < n;
}

export class DaveForger {
  readonly #prng: Prng;
  /** Recent genuine DAVE frames per member, oldest first (at most REPLAY_DEPTH). */
  readonly #recent = new Map<string, Buffer[]>();
  /** Forged frames made so far per hostile member (drives the kind cycle). */
  readonly #made = new Map<string, number>();

  constructor(prng: Prng) {
    this.#prng = prng;
  }

  /** Remembers a genuine DAVE frame a member sent (the material for 'replay' and 'foreign-key'). */
  observe(userId: string, frame: Buffer): void {
    let list = this.#recent.get(userId);
    if (!list) this.#recent.set(userId, (list = []));
    list.push(frame);
    if (list.length > REPLAY_DEPTH) list.shift();
  }

  /**
   * The bad frame member `userId` sends instead of its genuine `frame`, and its kind. A 'replay' or 'foreign-key'
   * without material yet (the first frames of a call) falls back to 'garbage-body'.
   */
  forge(userId: string, frame: Buffer): { kind: HostileDaveKind; frame: Buffer } {
    const n = this.#made.get(userId) ?? 0;
    this.#made.set(userId, n + 1);
    let kind = HOSTILE_DAVE_KINDS[n % HOSTILE_DAVE_KINDS.length]!;
    const own = this.#recent.get(userId) ?? [];
    const other = [...this.#recent].find(([id, list]) => id !== userId && list.length > 0)?.[1];
    if ((kind === 'replay' && own.length < REPLAY_DEPTH) || (kind === 'foreign-key' && !other)) kind = 'garbage-body';
    const size = frame[frame.length - 3]!;
    const trailer = frame.length - size; // offset of the tag
    switch (kind) {
      case 'garbage-after-magic': {
        const tail = this.#prng.bytes(this.#prng.int(1, 8));
        tail[tail.length - 1] = 0x00; // never ends in the magic again
        return { kind, frame: Buffer.concat([frame, tail]) };
      }
      case 'garbage-body': {
        const out = Buffer.from(frame);
        this.#prng.bytes(trailer).copy(out, 0);
        return { kind, frame: out };
      }
      case 'truncated-tag': {
        const cut = TAG_BYTES / 2;
        const out = Buffer.concat([frame.subarray(0, trailer + cut), frame.subarray(trailer + TAG_BYTES)]);
        out[out.length - 3] = size - cut;
        return { kind, frame: out };
      }
      case 'wrong-nonce': {
        const out = Buffer.from(frame);
        out[trailer + TAG_BYTES]! ^= 0x01; // low bit of the first ULEB128 byte: same length, a neighbouring nonce
        return { kind, frame: out };
      }
      case 'replay':
        return { kind, frame: Buffer.from(own[0]!) };
      case 'foreign-key':
        return { kind, frame: Buffer.from(other![other!.length - 1]!) };
    }
  }
}
