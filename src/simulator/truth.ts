/**
 * Ground truth: what the simulator actually played, for comparing a recording with it (see GroundTruth
 * in scenario.ts). Counts are per talk spurt and per SSRC: a member that rejoins mid-spurt starts a new
 * SpurtTruth with its new SSRC.
 *
 * A packet is registered when it is due (its time is the member's send instant) and settled later, when its
 * datagrams actually left or could no longer leave: a copy delayed by the network model (or held for the op 5
 * lead) may find that the voice session died in the meantime, and then nothing reached the recorder.
 */
import type { Fault, GroundTruth, MemberTruth, NetworkTruth, SimMember, SpurtTruth } from './scenario.ts';

/** Duration of one Opus frame: the audio a packet carries was captured during the frame before it was sent. */
const FRAME_MS = 20;

/** One registered packet, waiting for its fate. */
export interface PacketRecord {
  readonly member: MemberTruth;
  readonly spurt: SpurtTruth;
  /** Its position in the spurt (0 = the spurt's first packet). */
  readonly index: number;
  readonly audio: boolean;
  settled: boolean;
}

export class TruthRecorder {
  readonly #truth: GroundTruth;
  readonly #byUser = new Map<string, MemberTruth>();
  /** The spurt currently being counted per user, keyed to its spurt index and SSRC. */
  readonly #current = new Map<string, { index: number; ssrc: number; spurt: SpurtTruth; registered: number }>();

  constructor(members: SimMember[]) {
    this.#truth = {
      sessionStartWallMs: null, members: [], faults: [], hostileSent: 0, rtcpSent: 0,
      media: { videoRtp: 0, videoRtx: 0, videoRtcp: 0, senderReports: 0 },
    };
    for (const m of members) {
      const network: NetworkTruth = { bursts: 0, burstLost: 0, randomLost: 0, reordered: 0, duplicatesSent: 0 };
      const mt: MemberTruth = {
        userId: m.userId, signal: m.signal, ssrcs: [], spurts: [], packetsSent: 0, packetsLost: 0, audioPacketsSent: 0,
        daveForged: {}, network, videoSsrcs: [],
      };
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

  /** The member's network counters (the orchestrator adds to them as its model decides). */
  network(userId: string): NetworkTruth | undefined {
    return this.#byUser.get(userId)?.network;
  }

  /**
   * Registers one packet of a member, due at `wallMs`. `audio` is false for the trailing silence frames, which
   * count in packetsSent/Lost but do not move endWallMs. Settle it with {@link sent} or {@link lost}.
   */
  packet(userId: string, spurtIndex: number, ssrc: number, sequence: number, wallMs: number, audio: boolean): PacketRecord | null {
    const mt = this.#byUser.get(userId);
    if (!mt) return null;
    let cur = this.#current.get(userId);
    if (!cur || cur.index !== spurtIndex || cur.ssrc !== ssrc) {
      const spurt: SpurtTruth = {
        startWallMs: wallMs, onsetWallMs: wallMs - FRAME_MS, endWallMs: wallMs, packetsSent: 0, packetsLost: 0, lostIndices: [],
        audioPacketsSent: 0, ssrc, firstSequence: sequence,
      };
      mt.spurts.push(spurt);
      cur = { index: spurtIndex, ssrc, spurt, registered: 0 };
      this.#current.set(userId, cur);
    }
    if (audio) cur.spurt.endWallMs = wallMs;
    return { member: mt, spurt: cur.spurt, index: cur.registered++, audio, settled: false };
  }

  /** The packet's first datagram reached the wire (later copies of it are duplicates, not packets). */
  sent(rec: PacketRecord | null): void {
    if (!rec || rec.settled) return;
    rec.settled = true;
    rec.spurt.packetsSent++;
    rec.member.packetsSent++;
    if (rec.audio) {
      rec.spurt.audioPacketsSent++;
      rec.member.audioPacketsSent++;
    }
  }

  /** The packet never reached the wire (network model, or no usable voice session when it was due to leave). */
  lost(rec: PacketRecord | null): void {
    if (!rec || rec.settled) return;
    rec.settled = true;
    rec.spurt.packetsLost++;
    rec.member.packetsLost++;
    // Settled in send order, except a delayed copy that found no session: keep the list ascending.
    const lost = rec.spurt.lostIndices;
    let i = lost.length;
    while (i > 0 && lost[i - 1]! > rec.index) i--;
    lost.splice(i, 0, rec.index);
  }

  /** A packet carrying a deliberately bad DAVE frame of `kind` reached the wire. */
  forged(rec: PacketRecord | null, kind: string): void {
    if (!rec) return;
    rec.member.daveForged[kind] = (rec.member.daveForged[kind] ?? 0) + 1;
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

  /** A member's new video or RTX SSRC. */
  videoSsrc(userId: string, ssrc: number): void {
    this.#byUser.get(userId)?.videoSsrcs.push(ssrc);
  }

  /** A video RTP datagram (RTX or not) reached the wire. */
  videoRtp(rtx: boolean): void {
    this.#truth.media.videoRtp++;
    if (rtx) this.#truth.media.videoRtx++;
  }

  /** An RTCP sender report reached the wire: of a video stream, or of a member's audio stream. */
  senderReport(video: boolean): void {
    this.#truth.rtcpSent++;
    if (video) this.#truth.media.videoRtcp++;
    else this.#truth.media.senderReports++;
  }

  /** A deep copy, safe to keep while the simulator plays on. */
  snapshot(): GroundTruth {
    return structuredClone(this.#truth);
  }
}
