/**
 * The simulator's one clock. Tick k is due at `origin + k × tickMs` (performance.now() time), computed from
 * the start instant every time, never by chaining relative timers, so pacing does not drift. One tick sends
 * every due packet of every member; delayed datagrams (jitter, reordering) sit in a min-heap and are sent by
 * the same wake-up loop. Only one timer is ever armed.
 */
import { performance } from 'node:perf_hooks';

interface Delayed {
  due: number;
  order: number;
  run: () => void;
}

export class TickScheduler {
  readonly tickMs: number;
  readonly #onTick: (k: number) => void;
  #origin = 0;
  #next = 0;
  #timer: NodeJS.Timeout | null = null;
  #running = false;
  #order = 0;
  readonly #heap: Delayed[] = [];

  constructor(onTick: (k: number) => void, tickMs = 20) {
    this.#onTick = onTick;
    this.tickMs = tickMs;
  }

  /** performance.now() of tick 0. */
  get origin(): number {
    return this.#origin;
  }

  get running(): boolean {
    return this.#running;
  }

  /** Starts ticking: tick 0 is due at `origin` (default: now). */
  start(origin = performance.now()): void {
    if (this.#running) return;
    this.#running = true;
    this.#origin = origin;
    this.#next = 0;
    this.#wake();
  }

  /** Runs `run` at the absolute performance.now() time `due` (or at the next wake-up if already due). */
  at(due: number, run: () => void): void {
    if (!this.#running) return;
    this.#push({ due, order: this.#order++, run });
    if (this.#heap[0]!.due < this.#nextWake()) this.#arm();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#heap.length = 0;
  }

  #nextWake(): number {
    const tick = this.#origin + this.#next * this.tickMs;
    return this.#heap.length > 0 ? Math.min(tick, this.#heap[0]!.due) : tick;
  }

  #arm(): void {
    if (!this.#running) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#wake(), Math.max(0, this.#nextWake() - performance.now()));
  }

  #wake(): void {
    this.#timer = null;
    const now = performance.now();
    // Delayed datagrams first when they were due before the tick (keeps send order = due order).
    while (this.#running) {
      const tickDue = this.#origin + this.#next * this.tickMs;
      const top = this.#heap[0];
      if (top && top.due <= now && top.due <= tickDue) {
        this.#pop().run();
      } else if (tickDue <= now) {
        this.#onTick(this.#next++);
      } else if (top && top.due <= now) {
        this.#pop().run();
      } else break;
    }
    this.#arm();
  }

  #push(item: Delayed): void {
    const h = this.#heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, h[i]!)) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }

  #pop(): Delayed {
    const h = this.#heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}

function less(a: Delayed, b: Delayed): boolean {
  return a.due < b.due || (a.due === b.due && a.order < b.order);
}
