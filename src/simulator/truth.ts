/**
 * Ground truth: what the simulator actually played, for comparing a recording with it (see GroundTruth
 * in scenario.ts). Counts are per talk spurt and per SSRC: a member that rejoins mid-spurt starts a new
 * SpurtTruth with its new SSRC.
 */
import type { Fault, GroundTruth, MemberTruth, SimMember, SpurtTruth } from './scenario.ts';

/** Duration of one Opus frame: the audio a packet carries was captured during the frame before it was sent. */
const FRAME_MS = 20;

export class TruthRecorder {
  readonly #truth: GroundTruth;
  readonly #byUser = new Map<string, MemberTruth>();
  /** The spurt currently being counted per user, keyed to its spurt index and SSRC. */
  readonly #current = new Map<string, { index: number; ssrc: number; spurt: SpurtTruth }>();

  constructor(members: SimMember[]) {
    this.#truth = { sessionStartWallMs: null, members: [], faults: [], hostileSent: 0, rtcpSent: 0 };
    for (const m of members) {
      const mt: MemberTruth = { userId: m.userId, signal: m.signal, ssrcs: [], spurts: [], packetsSent: 0, packetsLost: 0 };
      this.#truth.members.push(mt);
      this.#byUser.set(m.userId, mt);
    }
  }

  sessionStarted(wallMs: number): void {
    this.#truth.sessionStartWallMs ??= wallMs;
  }

  ssrc(userId: string, ssrc: number): void {
    this.#byUser.get(userId)?.ssrcs.push(ssrc);
  }

  /**
   * One packet of a member: `lost` when the impairment model (or the absence of a recorder address)
   * dropped it. `audio` is false for the trailing silence frames, which count in packetsSent/Lost but do
   * not move endWallMs.
   */
  packet(userId: string, spurtIndex: number, ssrc: number, wallMs: number, audio: boolean, lost: boolean): void {
    const mt = this.#byUser.get(userId);
    if (!mt) return;
    let cur = this.#current.get(userId);
    if (!cur || cur.index !== spurtIndex || cur.ssrc !== ssrc) {
      const spurt: SpurtTruth = { startWallMs: wallMs, onsetWallMs: wallMs - FRAME_MS, endWallMs: wallMs, packetsSent: 0, packetsLost: 0, ssrc };
      mt.spurts.push(spurt);
      cur = { index: spurtIndex, ssrc, spurt };
      this.#current.set(userId, cur);
    }
    if (audio) cur.spurt.endWallMs = wallMs;
    if (lost) {
      cur.spurt.packetsLost++;
      mt.packetsLost++;
    } else {
      cur.spurt.packetsSent++;
      mt.packetsSent++;
    }
  }

  /** Records a fault; returns a handle to set its outcome later. */
  fault(kind: Fault['kind'], wallMs: number): { outcome?: string } {
    const f: GroundTruth['faults'][number] = { kind, wallMs };
    this.#truth.faults.push(f);
    return f;
  }

  hostile(n: number): void {
    this.#truth.hostileSent += n;
  }

  rtcp(n: number): void {
    this.#truth.rtcpSent += n;
  }

  /** A deep copy, safe to keep while the simulator plays on. */
  snapshot(): GroundTruth {
    return structuredClone(this.#truth);
  }
}
