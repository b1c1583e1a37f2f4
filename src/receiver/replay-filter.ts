/**
 * Replay detection over one stream's rtpsize transport nonces: an SRTP/IPsec-style sliding window
 * (RFC 3711 §3.3.2, RFC 6479) over the u32 nonce counter. stream-replay.ts keeps one per authenticated stream.
 *
 * Why: an AEAD tag proves a datagram came from the voice server, not that it is new. An on-path attacker (or a
 * network that duplicates) can resend a valid datagram any number of times. Each copy would pass transport
 * decryption and reach DAVE, where it fails (a DAVE decryptor decrypts each key/nonce once) and counts against the
 * member whose frame it carries: replays of two members' frames while nobody speaks would look like the
 * recorder's own group state being broken (dave-guard.ts) and cost everyone a re-initialisation of the MLS
 * session — so a burst of replays must never get that far. A replay that is old enough must not get through either: once its stream was closed
 * (30 s idle) or re-anchored (a new talk spurt), a track would write it at its arrival time, a blip of old audio.
 *
 * So: the highest nonce accepted so far, and one bit for each of the `capacity` nonces at and below it. A nonce
 * ahead of the highest is new (the window slides); one inside the window is new once; one further behind than the
 * window is "too old" and refused. Within one stream nonces only count up (whatever numbering the server uses:
 * stream-replay.ts), so the window (16,384 nonces by default) only has to be wider than the reordering a network
 * produces, measured in nonces. Comparisons use 32-bit serial arithmetic (RFC 1982), so the counter's wrap from
 * 0xFFFFFFFF to 0 is an ordinary step forward.
 */
/** What the window says about one nonce. */
export type NonceVerdict = 'new' | 'seen' | 'too-old';

export class ReplayFilter {
  /** Window length in nonces (a power of two, ≥ 32). */
  readonly capacity: number;
  readonly #mask: number;
  /** Bit (n & mask) is set when nonce n, inside the window, was accepted. */
  readonly #bits: Uint32Array;
  #highest = 0;
  #started = false;
  #size = 0;

  constructor(capacity = 16_384) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer');
    let c = 32;
    while (c < capacity) c *= 2;
    this.capacity = c;
    this.#mask = c - 1;
    this.#bits = new Uint32Array(c / 32);
  }

  /** Number of accepted nonces inside the window (≤ capacity). */
  get size(): number {
    return this.#size;
  }

  /** The highest nonce accepted (undefined before the first). */
  get highest(): number | undefined {
    return this.#started ? this.#highest : undefined;
  }

  /**
   * Records `nonce` (a u32 read from the datagram's last 4 bytes) and returns true if it is new; false if it
   * was already seen (a replay or a network duplicate) or is further behind the newest than the window (too old
   * to tell, so treated as a replay). Only call it for datagrams that passed authentication, otherwise forged
   * datagrams could move the window or pre-claim nonces the server is about to use.
   */
  accept(nonce: number): boolean {
    return this.judge(nonce) === 'new';
  }

  /** Like {@link accept}, but says why a nonce was refused; a 'new' nonce is recorded. */
  judge(nonce: number): NonceVerdict {
    const n = nonce >>> 0;
    if (!this.#started) {
      this.#started = true;
      this.#highest = n;
      this.#mark(n);
      return 'new';
    }
    const ahead = (n - this.#highest) | 0;
    if (ahead > 0) {
      this.#slide(ahead);
      this.#highest = n;
      this.#mark(n);
      return 'new';
    }
    if (-ahead >= this.capacity) return 'too-old';
    const i = n & this.#mask;
    if ((this.#bits[i >>> 5]! & (1 << (i & 31))) !== 0) return 'seen';
    this.#mark(n);
    return 'new';
  }

  /** Forgets everything (new key). */
  reset(): void {
    this.#bits.fill(0);
    this.#started = false;
    this.#highest = 0;
    this.#size = 0;
  }

  /** Starts over at `nonce`, accepted (the stream's counter was restarted: stream-replay.ts). */
  rebase(nonce: number): void {
    this.reset();
    this.judge(nonce);
  }

  /**
   * Starts as if every nonce up to and including `highest` had been seen: for a stream whose window was given up
   * (stream-replay.ts evicts idle streams) and comes back, nothing it already sent can get in again.
   */
  resumeAfter(highest: number): void {
    this.#bits.fill(0xffff_ffff);
    this.#started = true;
    this.#highest = highest >>> 0;
    this.#size = this.capacity;
  }

  #mark(n: number): void {
    const i = n & this.#mask;
    this.#bits[i >>> 5]! |= 1 << (i & 31);
    this.#size++;
  }

  /** Moves the window `by` nonces forward: the slots of the nonces that fall out are cleared for the new ones. */
  #slide(by: number): void {
    if (by >= this.capacity) {
      this.#bits.fill(0);
      this.#size = 0;
      return;
    }
    // A word at a time: under one counter per connection a stream's nonces step by the number of streams
    // (hundreds at 600 speakers), so clearing bit by bit would cost that much per datagram.
    let at = (this.#highest + 1) & this.#mask;
    for (let left = by; left > 0; ) {
      const bit = at & 31;
      const n = Math.min(32 - bit, left);
      const mask = (0xffff_ffff >>> (32 - n)) << bit;
      const w = at >>> 5;
      const cleared = this.#bits[w]! & mask;
      if (cleared !== 0) {
        this.#size -= popcount(cleared);
        this.#bits[w] = this.#bits[w]! & ~mask;
      }
      at = (at + n) & this.#mask;
      left -= n;
    }
  }
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x5555_5555;
  x = (x & 0x3333_3333) + ((x >>> 2) & 0x3333_3333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f_0f0f, 0x0101_0101) >>> 24);
}

/** The rtpsize nonce counter: the datagram's last 4 bytes, big-endian. */
export function nonceOf(datagram: Uint8Array): number {
  const n = datagram.length;
  return ((datagram[n - 4]! << 24) | (datagram[n - 3]! << 16) | (datagram[n - 2]! << 8) | datagram[n - 1]!) >>> 0;
}
