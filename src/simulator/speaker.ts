/**
 * One simulated member's media sender, as a real Discord client behaves: talk spurts of Opus frames every
 * 20 ms, 5 silence frames (F8 FF FE) at the end of each spurt, then nothing until the next spurt. RTP
 * timestamps follow wall time (+960 per 20 ms tick, so they jump across pauses); sequence numbers go +1
 * per packet and wrap past 65535; SSRC, initial sequence and timestamp are random (seeded), and every
 * (re)connection draws new ones. Some packets carry the one-byte header extension.
 *
 * Time is counted in scheduler ticks (tick k = scenario time k × 20 ms); `frameAt` must be called with
 * non-decreasing ticks.
 */
import { opusLoop, SILENCE_FRAME } from './opus-cache.ts';
import type { Prng } from './prng.ts';
import { audioLevelExtension } from './rtp.ts';
import type { SimMember } from './scenario.ts';

export const TICK_MS = 20;
export const SAMPLES_PER_TICK = 960;
const SILENCE_FRAMES = 5;

export interface EmittedFrame {
  kind: 'audio' | 'silence';
  opus: Buffer;
  sequence: number;
  timestamp: number;
  ssrc: number;
  /** First packet of a talk spurt (RTP marker bit). */
  marker: boolean;
  extension?: Buffer;
  /** Index into the member's `spurts`. */
  spurtIndex: number;
}

interface Span {
  spurtIndex: number;
  start: number;
  audioEnd: number;
  silenceEnd: number;
}

export class Speaker {
  readonly member: SimMember;
  readonly #prng: Prng;
  readonly #loop: Buffer[];
  readonly #spans: Span[];
  readonly #nearWrap: boolean;
  readonly #extensionRatio: number;
  #cursor = 0;
  present = false;
  ssrc = 0;
  #seq = 0;
  #tsBase = 0;
  #tickBase = 0;
  /** On the current SSRC: packets and payload octets sent (what an RTCP sender report counts), and the last tick. */
  packetsOnSsrc = 0;
  octetsOnSsrc = 0;
  lastSendTick = -Infinity;

  /**
   * @param nearWrap start the sequence number just below 65536, so a short test sees it wrap.
   */
  constructor(member: SimMember, prng: Prng, nearWrap: boolean) {
    this.member = member;
    this.#prng = prng;
    this.#nearWrap = nearWrap;
    this.#extensionRatio = member.extensionRatio ?? 0.3;
    this.#loop = opusLoop(member.signal);
    this.#spans = Speaker.#plan(member);
  }

  static #plan(m: SimMember): Span[] {
    const order = m.spurts.map((s, i) => ({ s, i })).sort((a, b) => a.s.atMs - b.s.atMs);
    const spans: Span[] = [];
    for (const { s, i } of order) {
      const prev = spans[spans.length - 1];
      const start = Math.max(Math.ceil(s.atMs / TICK_MS), prev ? prev.audioEnd : -Infinity);
      const audioEnd = Math.max(start + 1, Math.ceil((s.atMs + s.durationMs) / TICK_MS));
      if (prev) prev.silenceEnd = Math.min(prev.silenceEnd, start);
      spans.push({ spurtIndex: i, start, audioEnd, silenceEnd: audioEnd + SILENCE_FRAMES });
    }
    return spans;
  }

  /** Joins the call at tick `k` with a fresh random SSRC, sequence number and timestamp. */
  connect(k: number, usedSsrcs: Set<number>): void {
    do this.ssrc = this.#prng.u32() || 1;
    while (usedSsrcs.has(this.ssrc));
    usedSsrcs.add(this.ssrc);
    this.#seq = this.#nearWrap ? this.#prng.int(65_480, 65_530) : this.#prng.int(0, 65_535);
    this.#tsBase = this.#prng.u32();
    this.#tickBase = k;
    this.packetsOnSsrc = 0;
    this.octetsOnSsrc = 0;
    this.lastSendTick = -Infinity;
    this.present = true;
  }

  disconnect(): void {
    this.present = false;
  }

  #advance(k: number): Span | undefined {
    while (this.#cursor < this.#spans.length && k >= this.#spans[this.#cursor]!.silenceEnd) this.#cursor++;
    return this.#spans[this.#cursor];
  }

  /** The next tick ≥ k at which this member has something to send, or null when its script is over. */
  nextEmitTick(k: number): number | null {
    const span = this.#advance(k);
    if (!span) return null;
    return Math.max(k, span.start);
  }

  /** The frame this member sends at tick k (null: quiet). Consumes a sequence number when non-null. */
  frameAt(k: number): EmittedFrame | null {
    if (!this.present) return null;
    const span = this.#advance(k);
    if (!span || k < span.start) return null;
    const audio = k < span.audioEnd;
    const frame: EmittedFrame = {
      kind: audio ? 'audio' : 'silence',
      opus: audio ? this.#loop[k % this.#loop.length]! : SILENCE_FRAME,
      sequence: this.#seq,
      timestamp: this.timestampAt(k),
      ssrc: this.ssrc,
      marker: k === span.start,
      spurtIndex: span.spurtIndex,
    };
    if (this.#prng.chance(this.#extensionRatio)) frame.extension = audioLevelExtension(audio ? 30 : 127);
    this.#seq = (this.#seq + 1) & 0xffff;
    this.packetsOnSsrc++;
    this.octetsOnSsrc += frame.opus.length;
    this.lastSendTick = k;
    return frame;
  }

  /** The RTP timestamp of this member's stream at tick k (what its packet due then carries). */
  timestampAt(k: number): number {
    return (this.#tsBase + (k - this.#tickBase) * SAMPLES_PER_TICK) >>> 0;
  }

  /** Total ticks of audio (not silence) in the script, for sizing tests. */
  get scriptedAudioTicks(): number {
    return this.#spans.reduce((n, s) => n + (s.audioEnd - s.start), 0);
  }
}
