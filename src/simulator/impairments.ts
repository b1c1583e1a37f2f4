/**
 * The seeded network model between a simulated member and the recorder. For each packet it decides
 * whether the packet is lost and, if not, when each copy leaves (delays in ms from its due time):
 *   - burst: Gilbert-style: on a packet outside a burst, with probability `burst.probability` a burst starts and
 *     drops this packet and the next `length − 1`;
 *   - loss: otherwise an independent drop with probability `loss`;
 *   - reorder: held back by 1..3 packet intervals (20 ms each) + 1 ms, so it arrives after the next 1..3 packets;
 *   - jitter: uniform extra delay 0..jitterMs (on top of any reordering);
 *   - duplicate: a second copy with probability `duplicate`, 0..jitterMs after the first (the orchestrator sends
 *     the same datagram bytes twice, as a network that duplicates does).
 * So the expected loss rate is (b·L + (1 − b)·p) / (1 + b·(L − 1)) for burst probability b, length L, loss p.
 * One model per member stream (bursts are per stream), each with its own PRNG fork.
 */
import type { Prng } from './prng.ts';
import type { Impairments } from './scenario.ts';

export interface Verdict {
  lost: boolean;
  /** Why it was lost: inside a burst, or the independent loss. */
  cause?: 'burst' | 'random';
  /** This packet started a burst. */
  burstStart: boolean;
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
      return { lost: true, cause: 'burst', burstStart: false, delaysMs: [], reordered: false, duplicated: false };
    }
    if (c.burst && c.burst.length > 0 && p.chance(c.burst.probability)) {
      this.#burstLeft = c.burst.length - 1;
      return { lost: true, cause: 'burst', burstStart: true, delaysMs: [], reordered: false, duplicated: false };
    }
    if (p.chance(c.loss ?? 0)) return { lost: true, cause: 'random', burstStart: false, delaysMs: [], reordered: false, duplicated: false };
    const jitter = () => (c.jitterMs ? p.next() * c.jitterMs : 0);
    const reordered = p.chance(c.reorder ?? 0);
    const first = jitter() + (reordered ? p.int(1, 3) * PACKET_INTERVAL_MS + 1 : 0);
    const duplicated = p.chance(c.duplicate ?? 0);
    const delaysMs = duplicated ? [first, first + jitter()] : [first];
    return { lost: false, burstStart: false, delaysMs, reordered, duplicated };
  }
}
