/**
 * Stage 3 of the receive path: which user does an SSRC belong to?
 *
 * The only source is voice op 5 (Speaking `{user_id, ssrc}`), and Discord may deliver a member's first RTP
 * packets before that op 5 (UDP and the websocket race). Those packets are held here briefly (≤ holdMs, a
 * bounded number per SSRC and a bounded number of SSRCs) and released in order once the mapping arrives;
 * @discordjs/voice simply drops them, cutting off the first syllable.
 *
 * Only packets that passed transport authentication are held (the receiver decrypts before it asks), so
 * random garbage cannot fill this; still, every table is capped and evicts oldest-first so a flood of new
 * SSRCs costs bounded memory.
 */

export interface SsrcMapOptions {
  /** How long packets of an unmapped SSRC are held before being dropped. */
  holdMs?: number;
  /** Max packets held per unmapped SSRC (50 = one second of 20 ms frames). */
  maxHeldPerSsrc?: number;
  /** Max unmapped SSRCs holding packets at once. */
  maxPendingSsrcs?: number;
  /** Max known SSRC→user mappings (old ones evicted first). */
  maxMappings?: number;
}

interface Pending<T> {
  firstMs: number;
  items: T[];
}

/** Result of {@link SsrcMap.hold}: how many held items were dropped as a consequence (counted as unknown-ssrc). */
export interface HoldResult {
  held: boolean;
  dropped: number;
}

/** SSRC→user map with a short, bounded holding area for packets that beat their op 5. */
export class SsrcMap<T> {
  readonly holdMs: number;
  readonly maxHeldPerSsrc: number;
  readonly maxPendingSsrcs: number;
  readonly maxMappings: number;
  /** Insertion-ordered, so the first key is the oldest (eviction order). */
  readonly #users = new Map<number, string>();
  readonly #pending = new Map<number, Pending<T>>();

  constructor(options: SsrcMapOptions = {}) {
    this.holdMs = options.holdMs ?? 1000;
    this.maxHeldPerSsrc = options.maxHeldPerSsrc ?? 50;
    this.maxPendingSsrcs = options.maxPendingSsrcs ?? 32;
    this.maxMappings = options.maxMappings ?? 4096;
  }

  get(ssrc: number): string | undefined {
    return this.#users.get(ssrc);
  }

  get size(): number {
    return this.#users.size;
  }

  /** Number of unmapped SSRCs currently holding packets (≤ maxPendingSsrcs). */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Number of packets currently held (for memory accounting and tests). */
  get heldCount(): number {
    let n = 0;
    for (const p of this.#pending.values()) n += p.items.length;
    return n;
  }

  /**
   * Records `ssrc → userId` (from op 5) and returns the packets that were waiting for it, oldest first.
   * A user may own several SSRCs over time (rejoin, reconnect): old mappings stay valid because late packets
   * of the old SSRC may still be in flight.
   */
  set(ssrc: number, userId: string): T[] {
    this.#users.delete(ssrc);
    this.#users.set(ssrc, userId);
    while (this.#users.size > this.maxMappings) this.#users.delete(this.#users.keys().next().value!);
    const waiting = this.#pending.get(ssrc);
    if (!waiting) return [];
    this.#pending.delete(ssrc);
    return waiting.items;
  }

  /** Holds a packet of an unmapped SSRC. Returns whether it was kept and how many others were dropped. */
  hold(ssrc: number, item: T, nowMs: number): HoldResult {
    let dropped = this.expire(nowMs);
    let p = this.#pending.get(ssrc);
    if (!p) {
      if (this.#pending.size >= this.maxPendingSsrcs) {
        const oldest = this.#pending.keys().next().value!;
        dropped += this.#pending.get(oldest)!.items.length;
        this.#pending.delete(oldest);
      }
      p = { firstMs: nowMs, items: [] };
      this.#pending.set(ssrc, p);
    }
    if (p.items.length >= this.maxHeldPerSsrc) return { held: false, dropped };
    p.items.push(item);
    return { held: true, dropped };
  }

  /** Drops held packets older than holdMs; returns how many were dropped. */
  expire(nowMs: number): number {
    let dropped = 0;
    for (const [ssrc, p] of this.#pending) {
      if (nowMs - p.firstMs <= this.holdMs) break; // insertion order = age order
      dropped += p.items.length;
      this.#pending.delete(ssrc);
    }
    return dropped;
  }
}
