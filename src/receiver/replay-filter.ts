/**
 * Replay detection for authenticated datagrams, keyed by the rtpsize transport nonce: an SRTP/IPsec-style
 * sliding window (RFC 3711 §3.3.2, RFC 6479) over the u32 nonce counter.
 *
 * Why: an AEAD tag proves a datagram came from the voice server, not that it is new. An on-path attacker (or a
 * network that duplicates) can resend a valid datagram any number of times. Each copy would pass transport
 * decryption and reach DAVE, where it fails (a DAVE decryptor decrypts each key/nonce once) and counts against the
 * member whose frame it carries: replays of two members' frames while nobody speaks would look like the
 * recorder's own group state being broken (dave-guard.ts) and cost everyone a re-initialisation of the MLS
 * session — so a burst of replays must never get that far. A replay that is old enough must not get through either: once its stream was closed
 * (30 s idle) or re-anchored (a new talk spurt), a track would write it at its arrival time, a blip of old audio.
 *
 * So, per key: the highest nonce accepted so far, and one bit for each of the `capacity` nonces at and below it.
 * A nonce ahead of the highest is new (the window slides); one inside the window is new once; one further behind
 * than the window is rejected as too old. The server's counter is one per connection and counts up by one per
 * datagram (RTP and RTCP alike), so the window (16,384 datagrams by default: 33 s of 10 speakers, minutes of
 * one) is far wider than any reordering on a network. Comparisons use 32-bit serial arithmetic (RFC 1982), so
 * the counter's wrap from 0xFFFFFFFF to 0 is an ordinary step forward.
 *
 * Call {@link ReplayFilter.reset} whenever the key changes: nonces restart under a new key.
 *
 * The one assumption here that Discord does not document is that one counter numbers every datagram the server
 * sends this session (it must be unique per key, and a counter is how every client implements it, but the server
 * could, say, keep one counter per forwarded stream in disjoint ranges). Were it wrong, "too old" would drop real
 * audio wholesale, the one failure a recorder cannot afford; so the filter watches for it: once authenticated
 * nonces arrive "too old" at a rate no network and no sane replay attack produces alongside live traffic
 * (≥ {@link TOO_OLD_TRIP} of them, and more than 1 % of the accepted), it stops judging age and only refuses
 * exact repeats inside the window, until the next key. {@link ReplayFilter.ageCheck} tells which mode it is in.
 */
/** "Too old" nonces (with > 1 % of the accepted) after which the counter is taken not to be one sequence. */
export const TOO_OLD_TRIP = 64;

export class ReplayFilter {
  /** Window length in nonces (a power of two, ≥ 32). */
  readonly capacity: number;
  readonly #mask: number;
  /** Bit (n & mask) is set when nonce n, inside the window, was accepted. */
  readonly #bits: Uint32Array;
  #highest = 0;
  #started = false;
  #size = 0;
  #accepted = 0;
  #tooOld = 0;
  #ageCheck = true;

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

  /**
   * Records `nonce` (a u32 read from the datagram's last 4 bytes) and returns true if it is new; false if it
   * was already seen (a replay or a network duplicate) or is further behind the newest than the window (too old
   * to tell, so treated as a replay). Only call it for datagrams that passed authentication, otherwise forged
   * datagrams could move the window or pre-claim nonces the server is about to use.
   */
  accept(nonce: number): boolean {
    const n = nonce >>> 0;
    if (!this.#started) {
      this.#started = true;
      this.#highest = n;
      return this.#mark(n);
    }
    const ahead = (n - this.#highest) | 0;
    if (ahead > 0) {
      this.#slide(ahead);
      this.#highest = n;
      return this.#mark(n);
    }
    if (-ahead >= this.capacity) {
      if (!this.#ageCheck) return true;
      this.#tooOld++;
      if (this.#tooOld >= TOO_OLD_TRIP && this.#tooOld * 100 > this.#accepted) this.#ageCheck = false;
      return false;
    }
    const i = n & this.#mask;
    if ((this.#bits[i >>> 5]! & (1 << (i & 31))) !== 0) return false;
    return this.#mark(n);
  }

  /** Forgets everything (new key). */
  reset(): void {
    this.#bits.fill(0);
    this.#started = false;
    this.#highest = 0;
    this.#size = 0;
    this.#accepted = 0;
    this.#tooOld = 0;
    this.#ageCheck = true;
  }

  /** False once the filter saw too many "too old" nonces to trust the counter's order (see the class doc). */
  get ageCheck(): boolean {
    return this.#ageCheck;
  }

  #mark(n: number): boolean {
    this.#accepted++;
    const i = n & this.#mask;
    this.#bits[i >>> 5]! |= 1 << (i & 31);
    this.#size++;
    return true;
  }

  /** Moves the window `by` nonces forward: the slots of the nonces that fall out are cleared for the new ones. */
  #slide(by: number): void {
    if (by >= this.capacity) {
      this.#bits.fill(0);
      this.#size = 0;
      return;
    }
    // Almost always by = 1 (one datagram after another); a bigger step is bounded by the window.
    for (let k = 1; k <= by; k++) {
      const i = (this.#highest + k) & this.#mask;
      const w = i >>> 5;
      const bit = 1 << (i & 31);
      if ((this.#bits[w]! & bit) !== 0) {
        this.#bits[w]! &= ~bit;
        this.#size--;
      }
    }
  }
}

/** The rtpsize nonce counter: the datagram's last 4 bytes, big-endian. */
export function nonceOf(datagram: Uint8Array): number {
  const n = datagram.length;
  return ((datagram[n - 4]! << 24) | (datagram[n - 3]! << 16) | (datagram[n - 2]! << 8) | datagram[n - 1]!) >>> 0;
}
