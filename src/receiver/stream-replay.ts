/**
 * Replay state per authenticated stream: one nonce window (replay-filter.ts) per RTP SSRC, or per RTCP sender SSRC.
 *
 * Discord does not document how its server numbers the nonces of the datagrams it forwards. One counter per
 * connection and one per forwarded stream (starting anywhere, even every stream at the same value, so that equal
 * nonces from different senders are normal) are both legal; the only thing any numbering guarantees is that one
 * stream's nonces count up. So the window is kept per stream, keyed by what the AEAD authenticates: the RTP header
 * (SSRC included) is the AAD of an rtpsize RTP datagram, and an RTCP datagram's 8-byte AAD holds its sender SSRC.
 * Keys are only ever taken from authenticated datagrams, so a forger cannot create state here.
 *
 * Window size: in nonce units. Under one counter per connection a stream's consecutive nonces are as far apart as
 * the datagrams of every stream in between (~N for N senders), so a packet held back by D seconds arrives behind by
 * (datagrams per second of the whole call) × D: 16,384 nonces is 0.55 s of lateness at 600 speakers (30,000
 * datagrams/s), well past the jitter buffer's 60 ms hold and 250 ms anchoring window, after which a packet is late
 * for the track anyway. Under one counter per stream it is 5 minutes of one speaker.
 *
 * A stream whose counter restarts (its nonces suddenly behind, or reusing ones already seen) would otherwise be
 * refused until the new counter passes the old one, or for good: plausible when the server rebuilds a sender's
 * forwarding state, e.g. after that sender resumed its own connection with the same SSRC. Such a datagram is told
 * apart from a replay by its authenticated RTP header: a replay or a network duplicate repeats a datagram already
 * accepted, so its RTP position is not ahead of the stream's newest; a datagram whose sequence number AND timestamp
 * are both ahead of everything accepted on that SSRC is new, numbered by a restarted counter.
 * That restarts the window at once: no packet is lost (a valve that stops judging age after N "too old" datagrams
 * would lose N, and refuse nothing old after it). What it gives up: after such a restart, a replay of a pre-restart datagram whose nonce lies
 * ahead of the new counter passes this filter (the track still drops it as late or duplicate unless its stream was
 * re-anchored) — only a server that restarts counters exposes that, and only to an on-path attacker. RTCP has no
 * order to check, so a restarted RTCP counter loses that sender's RTCP (not audio) until it passes its old position.
 *
 * Memory: every window costs capacity/8 bytes (2 KiB for 16,384). At most `maxStreams` are kept; beyond that the
 * stream used least recently gives up its window (a CLOCK sweep: no per-packet bookkeeping but a flag) and
 * leaves a tombstone with its highest nonce and RTP position, so that when it comes back nothing it already sent
 * gets in again. Tombstones are capped too (oldest first): only authenticated datagrams create streams, so only
 * the server itself (which could send anything anyway) can push a member's tombstone out, and a call does not see
 * thousands of rejoins. Evicted windows are recycled: a flood of new SSRCs allocates nothing.
 */
import { ReplayFilter } from './replay-filter.ts';

/** Where a stream is in its RTP numbering (the authenticated header's fields). */
export interface RtpPosition {
  sequence: number;
  timestamp: number;
}

export interface StreamReplayOptions {
  /** Window per stream, in nonces (rounded up to a power of two). */
  window: number;
  /** Streams with a window at once. */
  maxStreams: number;
  /** Evicted streams remembered (default 4 × maxStreams). */
  maxTombstones?: number;
}

interface Stream {
  filter: ReplayFilter;
  /** Newest RTP position accepted (RTP streams only). */
  sequence: number;
  timestamp: number;
  hasRtp: boolean;
  /** CLOCK reference bit: used since the sweep last passed it. */
  used: boolean;
}

interface Tombstone {
  highest: number;
  sequence: number;
  timestamp: number;
  hasRtp: boolean;
}

export class StreamReplayFilters {
  readonly window: number;
  readonly maxStreams: number;
  readonly maxTombstones: number;
  /** Insertion order is the CLOCK hand's order. */
  readonly #streams = new Map<number, Stream>();
  readonly #tombstones = new Map<number, Tombstone>();
  /** Windows of evicted streams, ready for reuse. */
  readonly #spare: ReplayFilter[] = [];
  #restarts = 0;

  constructor(opts: StreamReplayOptions) {
    if (!(Number.isInteger(opts.maxStreams) && opts.maxStreams >= 1)) throw new RangeError('maxStreams must be an integer ≥ 1');
    this.window = new ReplayFilter(opts.window).capacity;
    this.maxStreams = opts.maxStreams;
    this.maxTombstones = opts.maxTombstones ?? 4 * opts.maxStreams;
  }

  /**
   * True if this authenticated datagram of stream `ssrc` with transport nonce `nonce` is new; false for a replay, a
   * network duplicate or a datagram older than the stream's window. `rtp` (RTP streams) lets a restarted counter be
   * recognised (see the module comment).
   */
  accept(ssrc: number, nonce: number, rtp?: RtpPosition): boolean {
    const s = this.#stream(ssrc >>> 0);
    s.used = true;
    if (s.filter.judge(nonce) !== 'new') {
      // Seen, or behind the window. A replay or a duplicate repeats an RTP position already accepted here; a
      // datagram ahead of all of them is this stream numbered by a restarted counter (which may reuse nonces).
      if (!rtp || !s.hasRtp || !ahead(rtp, s)) return false;
      s.filter.rebase(nonce);
      this.#restarts++;
    }
    if (rtp) {
      if (!s.hasRtp || seqAhead(rtp.sequence, s.sequence)) s.sequence = rtp.sequence;
      if (!s.hasRtp || tsAhead(rtp.timestamp, s.timestamp)) s.timestamp = rtp.timestamp;
      s.hasRtp = true;
    }
    return true;
  }

  /** Forgets every stream (a new transport key: every counter starts again). */
  reset(): void {
    for (const s of this.#streams.values()) this.#recycle(s.filter);
    this.#streams.clear();
    this.#tombstones.clear();
  }

  /** Streams with a window now (≤ maxStreams). */
  get streams(): number {
    return this.#streams.size;
  }

  get tombstones(): number {
    return this.#tombstones.size;
  }

  /** Bytes of window bitmaps held, spares included (≤ maxStreams × window / 8). */
  get bytes(): number {
    return ((this.#streams.size + this.#spare.length) * this.window) / 8;
  }

  /** Counter restarts recognised so far (see the module comment). */
  get restarts(): number {
    return this.#restarts;
  }

  #stream(ssrc: number): Stream {
    const found = this.#streams.get(ssrc);
    if (found) return found;
    if (this.#streams.size >= this.maxStreams) this.#evict();
    const filter = this.#spare.pop() ?? new ReplayFilter(this.window);
    const s: Stream = { filter, sequence: 0, timestamp: 0, hasRtp: false, used: false };
    const tomb = this.#tombstones.get(ssrc);
    if (tomb) {
      this.#tombstones.delete(ssrc);
      filter.resumeAfter(tomb.highest);
      s.sequence = tomb.sequence;
      s.timestamp = tomb.timestamp;
      s.hasRtp = tomb.hasRtp;
    }
    this.#streams.set(ssrc, s);
    return s;
  }

  /** CLOCK: streams used since the hand last passed get a second chance (moved behind the hand); the first unused one goes. */
  #evict(): void {
    for (;;) {
      const [ssrc, s] = this.#streams.entries().next().value!;
      this.#streams.delete(ssrc);
      if (s.used) {
        s.used = false;
        this.#streams.set(ssrc, s);
        continue;
      }
      const highest = s.filter.highest;
      if (highest !== undefined) {
        if (this.#tombstones.size >= this.maxTombstones) this.#tombstones.delete(this.#tombstones.keys().next().value!);
        this.#tombstones.set(ssrc, { highest, sequence: s.sequence, timestamp: s.timestamp, hasRtp: s.hasRtp });
      }
      this.#recycle(s.filter);
      return;
    }
  }

  #recycle(filter: ReplayFilter): void {
    filter.reset();
    if (this.#spare.length < 16) this.#spare.push(filter);
  }
}

/** RTP position `p` strictly ahead of the stream's newest in both sequence (16-bit) and timestamp (32-bit serial). */
function ahead(p: RtpPosition, s: Stream): boolean {
  return seqAhead(p.sequence, s.sequence) && tsAhead(p.timestamp, s.timestamp);
}

function seqAhead(a: number, b: number): boolean {
  const d = (a - b) & 0xffff;
  return d !== 0 && d < 0x8000;
}

function tsAhead(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}
