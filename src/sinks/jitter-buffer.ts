/**
 * Per-RTP-stream reordering buffer.
 *
 * Hand-written because no maintained npm library reorders per-SSRC RTP by 16-bit serial-number arithmetic
 * with a playout deadline and reports gaps the way a concealing decoder needs (how many frames are missing,
 * and which packet follows them so its in-band FEC can be used). The seed's heuristic
 * (`last >= 65000 && new <= 1000`) and songbird's fixed 100 ms delay are what this replaces.
 *
 * Policy (times are recording-clock milliseconds, supplied by the caller, so the same code runs in real time
 * and in simulations faster than real time):
 * - A packet that is the next expected sequence number is released at once: in-order audio adds no delay.
 * - A gap (the next expected packet is missing while later ones are here) is held open for `playoutDelayMs`
 *   after the first later packet arrived; then the missing ones are declared lost and the next present packet
 *   is released with `lost = n`.
 * - Priming: the first packet of a stream, and the first packet after a long timestamp jump (a new talk
 *   spurt), is held `primingMs` so that packets reordered ahead of it can still get in and so the clock
 *   can anchor on the least-delayed packet of that window ({@link JitterBuffer.held}). The window is longer
 *   than a gap's hold because arrival times are taken by a busy process: when hundreds of members start in
 *   the same instant the first ~150 ms of their packets are all stamped late (the receiving thread is
 *   working through the burst), and an anchor taken only on those places the spurt tens of ms late.
 * - A packet older than the release point is `late` (or `duplicate` if it was released already); a second
 *   copy of a buffered packet is `duplicate`. Both are dropped.
 *
 * Sequence comparisons use 16-bit serial arithmetic (RFC 1982): `d = ((a - b + 0x8000) & 0xffff) - 0x8000`,
 * so wraparound from 65535 to 0 is not a special case.
 */

export interface JitterPacket {
  sequence: number;
  /** RTP timestamp (32-bit, 48 kHz). */
  timestamp: number;
  arrivalMs: number;
  opus: Uint8Array;
}

/** One released packet, in sequence order. */
export interface Release<P extends JitterPacket> {
  packet: P;
  /** Packets missing immediately before this one (0 = contiguous). */
  lost: number;
  /**
   * True for the first packet of the stream or of a new talk spurt after a long timestamp jump: the
   * consumer should (re)anchor its clock, using {@link JitterBuffer.held} for the rest of the window.
   */
  resync: boolean;
}

export interface JitterBufferOptions {
  /** How long a gap is held open for late packets (ms). Default 60. */
  playoutDelayMs?: number;
  /** How long the first packet of a stream or talk spurt is held (the clock's anchoring window, ms). Default playoutDelayMs. */
  primingMs?: number;
  /** Timestamp jump (samples) beyond which the next packet starts a new spurt and is primed. Default 48000 (1 s). */
  resyncSamples?: number;
  /** Slots; packets further ahead than this force the gap in front of them to be given up. Default 64. */
  capacity?: number;
  /** A sequence jump larger than this is a stream discontinuity, not loss (not counted). Default 1000. */
  maxLossRun?: number;
}

export interface JitterCounters {
  late: number;
  duplicate: number;
  lost: number;
}

/** 16-bit serial-number difference a − b in [-32768, 32767]. */
export function seqDiff(a: number, b: number): number {
  return ((a - b + 0x8000) & 0xffff) - 0x8000;
}

/** 32-bit RTP timestamp difference a − b as a signed 32-bit integer. */
export function tsDiff(a: number, b: number): number {
  return (a - b) | 0;
}

type State = 'empty' | 'priming' | 'running';

export class JitterBuffer<P extends JitterPacket = JitterPacket> {
  readonly counters: JitterCounters = { late: 0, duplicate: 0, lost: 0 };
  private readonly delayMs: number;
  private readonly primingMs: number;
  private readonly resyncSamples: number;
  private readonly capacity: number;
  private readonly maxLossRun: number;
  /** Ring of buffered packets indexed by sequence & mask. */
  private readonly slots: (P | undefined)[];
  /** Ring of recently released sequence numbers (to tell duplicates from late packets). */
  private readonly released: Int32Array;
  private readonly mask: number;
  private state: State = 'empty';
  /** Next sequence number to release. */
  private nextSeq = 0;
  /** Buffered packet count. */
  private count = 0;
  /** Deadline (ms) of the current priming window, spurt hold or open gap; Infinity when none. */
  private deadline = Infinity;
  /** Timestamp of the last released packet (for spurt detection). */
  private lastTs = 0;
  private haveLast = false;
  /** The next release starts a stream/spurt (set by priming). */
  private resyncNext = false;
  /** Releases forced by push() (a packet too far ahead to fit): returned first by pop(). */
  private readonly ready: Release<P>[] = [];
  /** Out-of-range packets that may be a sequence restart; confirmed by 3 consecutive ones. */
  private candidates: P[] = [];

  constructor(opts: JitterBufferOptions = {}) {
    this.delayMs = opts.playoutDelayMs ?? 60;
    this.primingMs = opts.primingMs ?? this.delayMs;
    this.resyncSamples = opts.resyncSamples ?? 48_000;
    let cap = 1;
    while (cap < (opts.capacity ?? 64)) cap <<= 1;
    this.capacity = cap;
    this.mask = cap - 1;
    this.maxLossRun = opts.maxLossRun ?? 1000;
    this.slots = new Array<P | undefined>(cap);
    this.released = new Int32Array(cap * 2).fill(-1);
  }

  /** Number of packets waiting. */
  get size(): number {
    return this.count + this.ready.length;
  }

  /** Adds a packet. Returns false if it was dropped (late or duplicate; counted). */
  push(p: P): boolean {
    const seq = p.sequence & 0xffff;
    if (this.state === 'empty') {
      this.state = 'priming';
      this.nextSeq = seq;
      this.deadline = p.arrivalMs + this.primingMs;
      this.resyncNext = true;
      this.store(seq, p);
      return true;
    }
    const d = seqDiff(seq, this.nextSeq);
    if (d > this.maxLossRun || d < -this.maxLossRun) return this.maybeRestart(p);
    if (d < 0) {
      // While priming, a packet reordered ahead of the first one just moves the start back.
      if (this.state === 'priming' && this.count > 0 && seqDiff(this.maxBuffered(), seq) < this.capacity) {
        this.nextSeq = seq;
        this.store(seq, p);
        return true;
      }
      if (this.released[seq & (this.released.length - 1)] === seq) this.counters.duplicate++;
      else this.counters.late++;
      return false;
    }
    const slot = this.slots[seq & this.mask];
    if (slot !== undefined && (slot.sequence & 0xffff) === seq) {
      this.counters.duplicate++;
      return false;
    }
    // Too far ahead of what is buffered to share the ring: give up the oldest gap(s) now.
    while (this.count > 0 && seqDiff(seq, this.minBuffered()) >= this.capacity) {
      if (this.state === 'priming') this.state = 'running';
      this.ready.push(this.releaseHead());
    }
    this.store(seq, p);
    if (d > 0 && this.state === 'running' && this.deadline === Infinity) this.deadline = p.arrivalMs + this.delayMs;
    return true;
  }

  /** A sequence jump beyond maxLossRun: a sender restart if confirmed, else a stray (counted late). */
  private maybeRestart(p: P): boolean {
    const last = this.candidates[this.candidates.length - 1];
    if (last !== undefined) {
      const step = seqDiff(p.sequence & 0xffff, last.sequence & 0xffff);
      if (step > 0 && step <= 10) this.candidates.push(p);
      else {
        this.counters.late += this.candidates.length;
        this.candidates = [p];
      }
    } else this.candidates = [p];
    if (this.candidates.length < 3) return true;
    // Confirmed: release everything buffered (in order, gaps as loss) and start over at the new numbers.
    while (this.count > 0) this.ready.push(this.releaseHead());
    const restart = this.candidates;
    this.candidates = [];
    this.state = 'empty';
    this.haveLast = false;
    for (const c of restart) this.push(c);
    return true;
  }

  private store(seq: number, p: P): void {
    const i = seq & this.mask;
    if (this.slots[i] === undefined) this.count++;
    this.slots[i] = p;
  }

  private minBuffered(): number {
    let best = -1;
    let bestD = Infinity;
    for (let i = 0; i < this.capacity; i++) {
      const s = this.slots[i];
      if (s === undefined) continue;
      const d = seqDiff(s.sequence & 0xffff, this.nextSeq);
      if (d < bestD) {
        bestD = d;
        best = s.sequence & 0xffff;
      }
    }
    return best;
  }

  private maxBuffered(): number {
    let best = this.nextSeq;
    for (let i = 0; i < this.capacity; i++) {
      const s = this.slots[i];
      if (s !== undefined && seqDiff(s.sequence & 0xffff, best) > 0) best = s.sequence & 0xffff;
    }
    return best;
  }

  private headPresent(): P | undefined {
    const h = this.slots[this.nextSeq & this.mask];
    return h !== undefined && (h.sequence & 0xffff) === this.nextSeq ? h : undefined;
  }

  /**
   * Releases the next packet if it is due at `nowMs` (recording clock), else null. Call in a loop.
   * With `drain`, every buffered packet is due (end of recording).
   */
  pop(nowMs: number, drain = false): Release<P> | null {
    const forced = this.ready.shift();
    if (forced !== undefined) return forced;
    if (this.count === 0) return null;
    if (this.state === 'priming') {
      if (!drain && nowMs < this.deadline && this.count < this.capacity / 2) return null;
      this.state = 'running';
      this.deadline = Infinity;
    }
    const head = this.headPresent();
    if (head !== undefined) {
      // Contiguous. A long timestamp jump means a new talk spurt: prime it (hold for packets reordered ahead
      // of it, and give the clock a window to anchor on) unless we are draining.
      if (this.haveLast && !this.resyncNext && tsDiff(head.timestamp, this.lastTs) > this.resyncSamples) {
        if (this.deadline === Infinity) this.deadline = head.arrivalMs + this.primingMs;
        if (!drain && nowMs < this.deadline && this.count < this.capacity / 2) return null;
        this.resyncNext = true;
      }
      return this.take(head, 0);
    }
    // A gap at the head: hold it open until the deadline.
    if (!drain && nowMs < this.deadline) return null;
    return this.releaseHead();
  }

  /** Releases the lowest buffered packet, counting the sequence numbers skipped before it as lost. */
  private releaseHead(): Release<P> {
    const head = this.headPresent();
    if (head !== undefined) return this.take(head, 0);
    const seq = this.minBuffered();
    const p = this.slots[seq & this.mask]!;
    const lost = seqDiff(seq, this.nextSeq);
    this.counters.lost += lost;
    return this.take(p, lost);
  }

  private take(p: P, lost: number): Release<P> {
    const seq = p.sequence & 0xffff;
    this.slots[seq & this.mask] = undefined;
    this.count--;
    this.released[seq & (this.released.length - 1)] = seq;
    this.nextSeq = (seq + 1) & 0xffff;
    const resync =
      this.resyncNext || !this.haveLast || tsDiff(p.timestamp, this.lastTs) > this.resyncSamples;
    this.resyncNext = false;
    this.lastTs = p.timestamp;
    this.haveLast = true;
    // If later packets are still buffered and the next one is missing, a gap is open: its deadline counts
    // from the earliest arrival among them.
    this.deadline = Infinity;
    if (this.count > 0 && this.headPresent() === undefined) {
      let earliest = Infinity;
      for (let i = 0; i < this.capacity; i++) {
        const s = this.slots[i];
        if (s !== undefined && s.arrivalMs < earliest) earliest = s.arrivalMs;
      }
      this.deadline = earliest + this.delayMs;
    }
    return { packet: p, lost, resync };
  }

  /** Packets currently held (any order): the rest of a priming window, for clock anchoring. */
  *held(): IterableIterator<P> {
    for (let i = 0; i < this.capacity; i++) {
      const s = this.slots[i];
      if (s !== undefined) yield s;
    }
  }

  /** Earliest time (ms) at which pop() may release something new, or Infinity. */
  get nextDeadline(): number {
    return this.ready.length > 0 ? -Infinity : this.deadline;
  }
}
