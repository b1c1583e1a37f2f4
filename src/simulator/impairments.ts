/**
 * The seeded network model between a simulated member and the recorder. For each packet it decides
 * whether the packet is lost and, if not, when each copy leaves (delays in ms from its due time):
 *   - loss: independent drop with probability `loss`;
 *   - burst: Gilbert-style: with probability `burst.probability` a burst starts and drops `length` packets;
 *   - duplicate: a second copy with probability `duplicate`;
 *   - reorder: held back by 1..3 packet intervals (20 ms each), so it arrives after the next 1..3 packets;
 *   - jitter: uniform extra delay 0..jitterMs.
 * One model per member stream (bursts are per stream), each with its own PRNG fork.
 */
import type { Prng } from './prng.ts';
import type { Impairments } from './scenario.ts';

export interface Verdict {
  lost: boolean;
  /** Delay of each copy in ms (empty when lost; two entries when duplicated). */
  delaysMs: number[];
  reordered: boolean;
  duplicated: boolean;
}

const PACKET_INTERVAL_MS = 20;

export class ImpairmentModel {
  readonly #cfg: Impairments;
  readonly #prng: Prng;
  #burstLeft = 0;

  constructor(cfg: Impairments | undefined, prng: Prng) {
    this.#cfg = cfg ?? {};
    this.#prng = prng;
  }

  decide(): Verdict {
    const c = this.#cfg;
    const p = this.#prng;
    if (this.#burstLeft > 0) {
      this.#burstLeft--;
      return { lost: true, delaysMs: [], reordered: false, duplicated: false };
    }
    if (c.burst && c.burst.length > 0 && p.chance(c.burst.probability)) {
      this.#burstLeft = c.burst.length - 1;
      return { lost: true, delaysMs: [], reordered: false, duplicated: false };
    }
    if (p.chance(c.loss ?? 0)) return { lost: true, delaysMs: [], reordered: false, duplicated: false };
    const jitter = () => (c.jitterMs ? p.next() * c.jitterMs : 0);
    const reordered = p.chance(c.reorder ?? 0);
    const first = jitter() + (reordered ? p.int(1, 3) * PACKET_INTERVAL_MS + 1 : 0);
    const duplicated = p.chance(c.duplicate ?? 0);
    const delaysMs = duplicated ? [first, first + jitter()] : [first];
    return { lost: false, delaysMs, reordered, duplicated };
  }
}
