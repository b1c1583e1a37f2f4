/**
 * One user's track: every RTP stream (SSRC) the user has had during the recording — a rejoin or a reconnect
 * brings a new SSRC — each with its own jitter buffer, Opus decoder and clock anchor, all writing into one
 * capture file on the shared recording clock.
 *
 * Per released packet (in sequence order, from the jitter buffer):
 *   resync?  → anchor the stream's clock on the least-delayed packet of the priming window
 *   lost n?  → if the timestamp gap is exactly n frames and ≤ maxConcealMs: PLC for n−1 frames, then FEC
 *              from this packet for the frame right before it (PLC if it carries none); after a pause (a new
 *              talk spurt whose first packet was lost): FEC for the one frame before it, if that frame is this
 *              spurt's; otherwise nothing (a hole = exact silence)
 *   drift?   → the clock wants its anchor moved (clock.ts): in a pause at once, else this frame is resampled
 *              a few samples longer or shorter
 *   decode   → write at the clock position (trimmed so it never overwrites audio already written); a packet
 *              libopus rejects (corrupt) is replaced by a frame of PLC
 *
 * Everything placed goes to the track's outputs (track-output.ts): the capture writer (the files) and, when the
 * main thread listens, the tap. Utterances (talk spurts on the recording clock) are reported to both: one starts
 * at the first voiced sample (decoded or concealed, not the sender's silence frames) and ends just past the last
 * voiced sample, when the sender's closing silence frames come, when a new spurt or stream is anchored, when the
 * sender falls silent without closing it (UTTERANCE_IDLE_MS), or at the stop.
 */
import type { TrackStats } from './types.ts';
import { BYTES_PER_SAMPLE_FRAME, FRAME_SAMPLES, MAX_FRAME_SAMPLES, PRIMING_MS, SAMPLE_RATE, copyStats, emptyStats } from './types.ts';
import { JitterBuffer, type JitterPacket, type Release } from './jitter-buffer.ts';
import { StreamClock, type ClockSample } from './clock.ts';
import { CaptureWriter } from './capture-writer.ts';
import type { StreamDecoder, OpusDecoders } from './opus-decoder.ts';
import { isCeltOnly, opusHasFec } from './opus-fec.ts';
import { isSilenceFrame, opusFrameSamples, opusPacketSamples } from './formats/opus-packet.ts';
import { stretchFrame } from './stretch.ts';
import type { TrackOutput } from './track-output.ts';
import { Watermark } from './watermark.ts';

const SAMPLES_PER_MS = SAMPLE_RATE / 1000;
/**
 * Positions this far behind the track's clock are final even where nothing was written (a pause): the jitter
 * buffer releases everything within its playout delay (later packets are dropped as late) and a new spurt
 * or stream is anchored on its arrival, so no write lands this far back. Without it a streaming encoder
 * would stall at the start of every pause. Should a write ever land there anyway, it falls below the
 * encoder's read end, the watermark records the violation and the encoder gives up its stream.
 */
const SETTLED_MS = 2000;
/**
 * An open utterance whose sender sent nothing voiced for this long (by the track's clock, which runs the jitter
 * buffer's hold behind arrivals) ended at its last voiced sample: a sender that stops without the closing silence
 * frames. Longer than any hold or loss burst inside a spurt, so a spurt is never split by waiting for packets.
 */
const UTTERANCE_IDLE_MS = 1000;

/** A packet as the track sees it (AudioPacket without the userId). */
export interface TrackPacket extends JitterPacket {
  ssrc: number;
}

/** What a track reports at cleanup (and, partially, in live status). */
export interface TrackSummary extends TrackStats {
  /** Where the first audio landed on the recording clock (ms), null if nothing was written. */
  startOffsetMs: number | null;
  /** Milliseconds of audio written (decoded + concealed). */
  activeMs: number;
  /** PCM bytes written. */
  bytes: number;
  /** Every SSRC seen for this user, in order of appearance. */
  ssrcs: number[];
}

/** State carried over when a track continues in a new worker after the old one died. */
export interface TrackResume {
  stats: TrackStats;
  startOffsetMs: number | null;
  activeMs: number;
  bytes: number;
  ssrcs: number[];
  /** First sample not yet written (the new writer also checks the file size). */
  writtenEnd: number;
}

export interface TrackOptions {
  capturePath: string;
  packetLogPath?: string;
  /** Where the capture writer keeps the utterance log (absent: utterances go only to `tap`). */
  utteranceLogPath?: string;
  wasm: OpusDecoders;
  /** A second output besides the capture writer (the tap to the main thread). */
  tap?: TrackOutput;
  /** Shared with a streaming encoder of this track's capture, if any. */
  watermark?: Watermark;
  playoutDelayMs?: number;
  /** Longest gap concealed with FEC/PLC (ms). Default 100. */
  maxConcealMs?: number;
  flushMs?: number;
  resume?: TrackResume;
  /** Idle time after which a stream's decoder and buffer are freed (ms). Default 30 000. */
  streamIdleMs?: number;
}

interface Stream {
  ssrc: number;
  jb: JitterBuffer<TrackPacket>;
  decoder: StreamDecoder;
  clock: StreamClock;
  /** Extended timestamp just past the last released packet's audio, or null before the first. */
  endExt: number | null;
  /** Recording position just past the last released packet's audio. */
  endPos: number;
  /** The last packet the decoder decoded was CELT-only (then libopus cannot use FEC: see fecReady). */
  lastCelt: boolean;
  /** The last released packet was a silence frame; how many in a row end the stream so far. */
  lastSilent: boolean;
  trailingSilence: number;
  lastArrivalMs: number;
  /** Jitter-buffer counters already added to the track's stats. */
  folded: { late: number; duplicate: number; lost: number };
}

/** Silence frames a client sends at the end of a talk spurt (Discord clients and @discordjs/voice: five). */
const SILENCE_TAIL = 5;

/** Opus frame durations (samples at 48 kHz) a lost frame may have: 10, 20, 40, 60 ms. */
function isFrameSize(n: number): boolean {
  return n === FRAME_SAMPLES || n === 480 || n === 1920 || n === 2880;
}

export class Track {
  readonly stats: TrackStats;
  private readonly writer: CaptureWriter;
  private readonly wasm: OpusDecoders;
  private readonly streams = new Map<number, Stream>();
  private readonly ssrcs: number[];
  private readonly delayMs: number;
  private readonly maxConcealSamples: number;
  private readonly streamIdleMs: number;
  private startPos: number | null;
  private activeSamples: number;
  private bytesCarried: number;
  private nowMs = -Infinity;
  /** Recording time at which the last non-silent frame was released. */
  private lastVoiceMs = -Infinity;
  private closed = false;
  /**
   * Final-PCM watermark, published at each {@link flush}: the writer's end (every write lands at or after it:
   * emit trims), or SETTLED_MS behind the track's clock if that is later (a pause). A streaming encoder may
   * read up to there, and publishes how far it read.
   */
  readonly watermark: Watermark;
  private readonly tap: TrackOutput | null;
  private stretchBuf: Int16Array | undefined;
  /** An utterance is open (its start was reported); `uttEnd` is just past its last voiced sample. */
  private uttOpen = false;
  private uttEnd = 0;

  constructor(opts: TrackOptions) {
    this.wasm = opts.wasm;
    this.delayMs = opts.playoutDelayMs ?? 60;
    this.maxConcealSamples = Math.round((opts.maxConcealMs ?? 100) * SAMPLES_PER_MS);
    this.streamIdleMs = opts.streamIdleMs ?? 30_000;
    this.writer = new CaptureWriter(opts.capturePath, {
      packetLogPath: opts.packetLogPath,
      utteranceLogPath: opts.utteranceLogPath,
      flushMs: opts.flushMs,
      resume: opts.resume !== undefined,
      resumeFrom: opts.resume?.writtenEnd,
    });
    this.tap = opts.tap ?? null;
    this.watermark = opts.watermark ?? new Watermark();
    const r = opts.resume;
    this.stats = r ? copyStats(r.stats) : emptyStats();
    this.ssrcs = r ? [...r.ssrcs] : [];
    this.startPos = r?.startOffsetMs != null ? Math.round(r.startOffsetMs * SAMPLES_PER_MS) : null;
    this.activeSamples = r ? Math.round(r.activeMs * SAMPLES_PER_MS) : 0;
    this.bytesCarried = r?.bytes ?? 0;
  }

  /** Takes one packet (any order). `arrivalMs` also advances the track's notion of now. */
  push(p: TrackPacket): void {
    if (this.closed) return;
    this.stats.received++;
    this.advance(p.arrivalMs);
    let s = this.streams.get(p.ssrc);
    if (s === undefined) s = this.openStream(p.ssrc);
    s.lastArrivalMs = p.arrivalMs;
    if (!s.jb.push(p)) this.foldCounters(s);
    this.drainStream(s, false);
  }

  /** Releases whatever is due at `nowMs` (recording clock, ms) and flushes old pending audio. */
  advance(nowMs: number): void {
    if (nowMs > this.nowMs) this.nowMs = nowMs;
    this.writer.observe(this.nowMs);
    for (const s of this.streams.values()) {
      if (s.jb.nextDeadline <= this.nowMs) this.drainStream(s, false);
      else if (s.jb.size === 0 && this.nowMs - s.lastArrivalMs > this.streamIdleMs) this.closeStream(s);
    }
    if (this.uttOpen && this.nowMs * SAMPLES_PER_MS - this.uttEnd > UTTERANCE_IDLE_MS * SAMPLES_PER_MS) this.endUtterance();
  }

  flushIfDue(nowMs: number): void {
    this.writer.flushIfDue(nowMs);
  }

  /** Flushes pending writes to the file now (and so advances the final-PCM watermark). */
  flush(): void {
    this.writer.flush();
    const settled = Math.floor((this.nowMs - SETTLED_MS) * SAMPLES_PER_MS);
    this.watermark.publishFinal(Math.max(this.writer.writtenEnd, Number.isFinite(settled) ? settled : 0));
  }

  get speaking(): boolean {
    return this.nowMs - this.lastVoiceMs < 300;
  }

  summary(): TrackSummary {
    return {
      ...this.stats,
      startOffsetMs: this.startPos === null ? null : this.startPos / SAMPLES_PER_MS,
      activeMs: this.activeSamples / SAMPLES_PER_MS,
      bytes: this.bytesCarried + this.writer.bytes,
      ssrcs: [...this.ssrcs],
    };
  }

  /** First sample frame not yet written. */
  get writtenEnd(): number {
    return this.writer.writtenEnd;
  }

  /**
   * End of recording: releases everything buffered (short gaps still concealed), cuts the capture to
   * exactly `endMs` and closes it.
   */
  finish(endMs: number): TrackSummary {
    if (!this.closed) {
      this.advance(endMs);
      for (const s of this.streams.values()) this.drainStream(s, true);
      for (const s of [...this.streams.values()]) this.closeStream(s);
      const end = Math.max(0, Math.round(endMs * SAMPLES_PER_MS));
      if (this.uttOpen) this.endUtterance(Math.min(this.uttEnd, end));
      this.writer.finish(end);
      this.closed = true;
    }
    return this.summary();
  }

  /**
   * A discontinuity the track must not bridge (the recording was paused): everything buffered is released, and the
   * next packet of any SSRC opens a new stream, anchored on its own arrival. Without this, the first packet after
   * a pause would bring back, by FEC, 20 ms spoken while paused, and the clock would bridge the pause by timestamp.
   */
  restartStreams(): void {
    if (this.closed) return;
    for (const s of this.streams.values()) this.drainStream(s, true);
    for (const s of [...this.streams.values()]) this.closeStream(s);
    this.endUtterance();
  }

  /** Closes without cutting (worker shutdown). */
  close(): void {
    if (this.closed) return;
    for (const s of [...this.streams.values()]) this.closeStream(s);
    this.writer.close();
    this.closed = true;
  }

  private openStream(ssrc: number): Stream {
    const s: Stream = {
      ssrc,
      jb: new JitterBuffer<TrackPacket>({ playoutDelayMs: this.delayMs, primingMs: PRIMING_MS }),
      decoder: this.wasm.newDecoder(),
      clock: new StreamClock(),
      endExt: null,
      endPos: 0,
      lastCelt: false,
      lastSilent: false,
      trailingSilence: 0,
      lastArrivalMs: this.nowMs,
      folded: { late: 0, duplicate: 0, lost: 0 },
    };
    this.streams.set(ssrc, s);
    if (!this.ssrcs.includes(ssrc)) this.ssrcs.push(ssrc);
    return s;
  }

  private closeStream(s: Stream): void {
    s.decoder.free();
    this.foldCounters(s);
    this.streams.delete(s.ssrc);
  }

  /** Jitter-buffer counters are per stream; fold their increments into the track's stats. */
  private foldCounters(s: Stream): void {
    const c = s.jb.counters;
    const f = s.folded;
    this.stats.late += c.late - f.late;
    this.stats.duplicate += c.duplicate - f.duplicate;
    this.stats.lost += c.lost - f.lost;
    f.late = c.late;
    f.duplicate = c.duplicate;
    f.lost = c.lost;
  }

  private drainStream(s: Stream, drain: boolean): void {
    let r: Release<TrackPacket> | null;
    let any = false;
    while ((r = s.jb.pop(this.nowMs, drain)) !== null) {
      any = true;
      try {
        this.play(s, r);
      } catch (err) {
        // A write error (disk full) must surface; a codec surprise must not kill the track.
        if ((err as NodeJS.ErrnoException).code !== undefined) throw err;
        this.stats.corrupt++;
      }
    }
    if (any) this.foldCounters(s);
  }

  private play(s: Stream, r: Release<TrackPacket>): void {
    const p = r.packet;
    const resync = r.resync || !s.clock.anchored;
    if (resync) {
      // A new talk spurt (or stream): whatever was open ended where its voice did.
      this.endUtterance();
      s.clock.anchorOn(this.windowOf(s, p), p.timestamp, this.writer.writtenEnd);
    }
    const extNow = s.clock.peekExtended(p.timestamp);
    const pktSamples = opusPacketSamples(p.opus) || FRAME_SAMPLES;
    let pos = s.clock.position(p.timestamp, p.arrivalMs, pktSamples);
    const want = s.clock.pending;
    if (want !== 0 && !resync && s.endExt !== null) {
      // A drift correction is due. A pause before this packet (or the silence frames that end a spurt) takes it
      // whole: this packet and the rest move by a few samples, only silence gets longer or shorter.
      const pause = Math.max(0, extNow - s.endExt - r.lost * pktSamples);
      const d = want > 0 ? (pause > 0 || s.lastSilent ? want : 0) : Math.max(want, -pause);
      if (d !== 0) {
        s.clock.shift(d);
        pos += d;
      }
    }
    if (r.lost > 0 && s.endExt !== null) {
      const gap = resync ? -1 : extNow - s.endExt;
      if (gap > 0 && gap <= this.maxConcealSamples && gap % r.lost === 0 && isFrameSize(gap / r.lost)) {
        this.concealInPlace(s, p.opus, r.lost, gap / r.lost);
      } else this.recoverLeading(s, p.opus, r.lost, pos);
    }
    let pcm = s.decoder.decode(p.opus);
    const silent = isSilenceFrame(p.opus);
    if (pcm === null) {
      // Intact on the wire but not Opus libopus can decode (a broken sender, or an impossibly large payload):
      // a frame of PLC keeps the speech going instead of leaving a 20 ms hole.
      this.stats.corrupt++;
      pcm = s.decoder.conceal(pktSamples);
      if (pcm !== null) this.stats.concealed++;
    } else {
      this.writer.opus(pos, p.opus);
      this.tap?.opus(pos, p.opus);
      if (!silent) this.lastVoiceMs = this.nowMs;
      s.lastCelt = isCeltOnly(p.opus);
    }
    // The sender's closing silence frames end its utterance (before they are placed: they are not speech).
    if (silent) this.endUtterance();
    const samples = pcm === null ? pktSamples : pcm.length / BYTES_PER_SAMPLE_FRAME;
    let placed = samples;
    if (pcm !== null) {
      // A drift correction during continuous audio: this frame is resampled a few samples longer or shorter.
      const step = s.clock.slewStep(samples);
      if (step !== 0) {
        placed = samples + step;
        pcm = stretchFrame(pcm, samples, placed, this.scratch());
        s.clock.shift(step);
      }
      this.emit(pos, pcm, !silent);
    }
    // Frames lost between two silence frames were silence frames too.
    s.trailingSilence = silent ? s.trailingSilence + 1 + (s.lastSilent ? r.lost : 0) : 0;
    s.lastSilent = silent;
    s.endExt = extNow + samples;
    s.endPos = pos + placed;
  }

  /** Room for one stretched frame (allocated on the first drift correction, then reused). */
  private scratch(): Int16Array {
    return (this.stretchBuf ??= new Int16Array((MAX_FRAME_SAMPLES + 16) * 2));
  }

  /**
   * The gap before this packet is exactly the lost frames (no pause in it): PLC for all but the last, which is
   * rebuilt from this packet's in-band FEC when it carries some (else PLC too).
   */
  private concealInPlace(s: Stream, next: Uint8Array, lost: number, frame: number): void {
    let pos = s.endPos;
    for (let i = 0; i < lost; i++) {
      const fec = i === lost - 1 && frame >= opusFrameSamples(next) && this.fecReady(s, next);
      const pcm = fec ? s.decoder.decodeFec(next, frame) : s.decoder.conceal(frame);
      if (pcm !== null) {
        // Concealing a loss inside a spurt continues it (after silence frames it is their silence).
        this.emit(pos, pcm, !s.lastSilent);
        this.stats.concealed++;
        if (fec) this.stats.fec++;
      }
      pos += frame;
    }
  }

  /**
   * Packets were lost before this one, but a pause lies between it and the last audio (a new talk spurt, with or
   * without a re-anchor): the lost ones are the previous spurt's silence tail and/or the start of this spurt.
   * PLC has nothing to continue across a pause, but the frame right before this packet, if it belongs to this
   * spurt, is in this packet's FEC: placed one frame before it, it gives the spurt back its first 20 ms.
   * It belongs to this spurt when more were lost than the previous spurt's tail can account for (clients end a
   * spurt with SILENCE_TAIL silence frames): otherwise this packet's FEC would be the previous spurt's last words.
   */
  private recoverLeading(s: Stream, next: Uint8Array, lost: number, pos: number): void {
    const tailMissing = Math.max(0, SILENCE_TAIL - s.trailingSilence);
    if (lost <= tailMissing) return;
    const frame = opusFrameSamples(next);
    if (!isFrameSize(frame) || !this.fecReady(s, next)) return;
    const pcm = s.decoder.decodeFec(next, frame);
    if (pcm === null) return;
    this.endUtterance();
    this.emit(pos - frame, pcm, true);
    this.stats.concealed++;
    this.stats.fec++;
  }

  /**
   * True if libopus will decode `next`'s FEC rather than fall back to PLC: the packet carries LBRR data, and the
   * decoder is not in CELT-only mode (libopus refuses FEC right after a CELT packet). After the silence frames
   * that end a spurt (CELT-only, and silent) the decoder is reset first: it has nothing audible to lose.
   */
  private fecReady(s: Stream, next: Uint8Array): boolean {
    if (!opusHasFec(next)) return false;
    if (!s.lastCelt) return true;
    if (!s.lastSilent) return false;
    s.decoder.reset();
    s.lastCelt = false;
    return true;
  }

  /**
   * The released packet plus what the jitter buffer still holds of the same spurt: everything that came in
   * during the priming hold (up to twice its length of audio, as the first packets may have been stamped late
   * and the rest caught up), and nothing of a later spurt (that would be a timestamp jump of over 1 s).
   */
  private *windowOf(s: Stream, p: TrackPacket): IterableIterator<ClockSample> {
    yield { timestamp: p.timestamp, arrivalMs: p.arrivalMs, samples: opusPacketSamples(p.opus) || FRAME_SAMPLES };
    const horizon = Math.max(this.delayMs, PRIMING_MS) * SAMPLES_PER_MS * 2;
    for (const h of s.jb.held()) {
      const d = (h.timestamp - p.timestamp) | 0;
      if (d > 0 && d <= horizon) {
        yield { timestamp: h.timestamp, arrivalMs: h.arrivalMs, samples: opusPacketSamples(h.opus) || FRAME_SAMPLES };
      }
    }
  }

  /**
   * Writes PCM at `pos` to every output, trimming whatever falls before t=0 or over audio already written.
   * `voiced`: this is speech (decoded or concealed), which opens or extends the current utterance.
   */
  private emit(pos: number, pcm: Uint8Array, voiced: boolean): void {
    const floor = Math.max(0, this.writer.writtenEnd);
    if (pos < floor) {
      const skip = (floor - pos) * BYTES_PER_SAMPLE_FRAME;
      if (skip >= pcm.length) return;
      pcm = pcm.subarray(skip);
      pos = floor;
    }
    this.watermark.noteWrite(pos);
    if (this.startPos === null) this.startPos = pos;
    const samples = pcm.length / BYTES_PER_SAMPLE_FRAME;
    this.activeSamples += samples;
    if (voiced) {
      if (!this.uttOpen) {
        this.uttOpen = true;
        this.writer.utterance('start', pos);
        this.tap?.utterance('start', pos);
      }
      this.uttEnd = Math.max(this.uttEnd, pos + samples);
    }
    this.writer.audio(pos, pcm);
    this.tap?.audio(pos, pcm);
  }

  /** Ends the open utterance (if any) at `end` (default: just past its last voiced sample). */
  private endUtterance(end = this.uttEnd): void {
    if (!this.uttOpen) return;
    this.uttOpen = false;
    this.writer.utterance('end', end);
    this.tap?.utterance('end', end);
  }
}
