/**
 * Replay detection for authenticated datagrams, keyed by the rtpsize transport nonce.
 *
 * Why: an AEAD tag proves a datagram came from the voice server, not that it is new. An on-path attacker (or a
 * network that duplicates) can resend a valid datagram any number of times. Each copy would pass transport
 * decryption and reach DAVE, and @discordjs/voice's DAVE wrapper re-initialises the whole MLS session (audio
 * lost for everyone until the group is rebuilt) after 36 consecutive failures — so a burst of replays must
 * never get that far.
 *
 * Why an exact-repeat set and not an SRTP-style "too old" window: every nonce under one key is unique (reusing
 * one breaks AES-GCM/XChaCha20-Poly1305, so a server never does), but nothing documents that Discord's
 * server→client counter is monotonic. Rejecting "old" nonces could drop real audio if it is not; rejecting a
 * nonce we have already accepted cannot. The set remembers the most recent `capacity` nonces (FIFO eviction):
 * bounded memory, and a replay older than that is only a late duplicate the jitter buffer discards.
 *
 * Call {@link ReplayFilter.reset} whenever the key changes: nonces restart under a new key.
 */
export class ReplayFilter {
  readonly capacity: number;
  readonly #seen = new Set<number>();
  /** FIFO of remembered nonces, oldest at #head once full. */
  readonly #ring: Uint32Array;
  #head = 0;

  constructor(capacity = 16_384) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer');
    this.capacity = capacity;
    this.#ring = new Uint32Array(capacity);
  }

  /** Number of nonces remembered (≤ capacity). */
  get size(): number {
    return this.#seen.size;
  }

  /**
   * Records `nonce` (a u32 read from the datagram's last 4 bytes) and returns true if it is new; false if it
   * was already seen (a replay or a network duplicate). Only call it for datagrams that passed authentication,
   * otherwise forged datagrams could pre-claim nonces the server is about to use.
   */
  accept(nonce: number): boolean {
    const n = nonce >>> 0;
    if (this.#seen.has(n)) return false;
    if (this.#seen.size >= this.capacity) this.#seen.delete(this.#ring[this.#head]!);
    this.#ring[this.#head] = n;
    this.#head = (this.#head + 1) % this.capacity;
    this.#seen.add(n);
    return true;
  }

  /** Forgets everything (new key). */
  reset(): void {
    this.#seen.clear();
    this.#head = 0;
  }
}

/** The rtpsize nonce counter: the datagram's last 4 bytes, big-endian. */
export function nonceOf(datagram: Uint8Array): number {
  const n = datagram.length;
  return ((datagram[n - 4]! << 24) | (datagram[n - 3]! << 16) | (datagram[n - 2]! << 8) | datagram[n - 1]!) >>> 0;
}
