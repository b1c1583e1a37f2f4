/**
 * Custom sinks: the listening extensions' `AudioSink` (`on_audio`, `on_rtcp`, `cleanup`), for TypeScript. A sink
 * receives every recorded user's audio exactly as it goes into that user's track file: after the jitter buffer,
 * concealment (FEC/PLC) and drift correction, placed on the recording clock. dvrec's own file writer is a sink
 * of the same shape (src/sinks/track-output.ts); a custom sink gets a copy of its input.
 *
 * Sinks run on the main thread, called from the event loop as the decoder workers hand their output over (about
 * every 20 ms). A sink must return quickly (do heavy work asynchronously): the receive path shares the thread.
 * A sink that throws is reported once (a `warning`) and otherwise ignored; it never stops the recording.
 */
import type { RtcpPacket } from '../sinks/types.ts';
import type { TapConfig, TapRecord } from '../sinks/track-tap.ts';
import type { Manifest } from '../sinks/capture-layout.ts';

/** 48 kHz sample frames per millisecond: positions are sample frames since the recording's t=0. */
export const FRAMES_PER_MS = 48;

/** A recorded user's track began (their first packet arrived). */
export interface SinkTrack {
  /** Discord user id. */
  userId: string;
  /** Their user name (the id itself when no `channel` was given, until the API answers). */
  username: string;
  /** Their display name in the guild. */
  displayName: string;
  /** The track's file name without extension (unique in the recording directory). */
  stem: string;
}

/** PCM of one user, placed on the recording clock. */
export interface SinkAudio {
  /** Discord user id of the speaker. */
  userId: string;
  /**
   * Where the first sample lands: 48 kHz sample frames since the recording's t=0. Chunks of one user never
   * overlap and come in increasing order; a gap between two chunks is silence in the track.
   */
  position: number;
  /** 48 kHz, 16-bit little-endian, interleaved stereo (left, right). The buffer is the sink's to keep. */
  pcm: Buffer;
}

/** One Opus packet of one user as received (decrypted), with where its first sample lands on the recording clock. */
export interface SinkOpus {
  /** Discord user id of the speaker. */
  userId: string;
  /** Where the packet's first sample lands: 48 kHz sample frames since t=0. */
  position: number;
  /** The Opus packet (transport- and DAVE-decrypted); the sink's to keep. */
  packet: Buffer;
}

/** A talk spurt's edge: `start` at its first voiced sample, `end` just past its last. */
export interface SinkUtterance {
  /** Discord user id of the speaker. */
  userId: string;
  /** Which edge of the talk spurt. */
  edge: 'start' | 'end';
  /** 48 kHz sample frames since t=0: the first voiced sample (start), or just past the last (end). */
  position: number;
}

/** Implement the methods you need; every one is optional. */
export interface Sink {
  /** A user's track began (before any of their audio is delivered). */
  trackStarted?(track: SinkTrack): void;
  /** Audio as it goes into the user's track file. */
  audio?(chunk: SinkAudio): void;
  /** The user's Opus packets (only asked for from the decoder workers when some sink implements this). */
  opus?(packet: SinkOpus): void;
  /** Utterance edges (talk spurts on the recording clock). */
  utterance?(u: SinkUtterance): void;
  /** RTCP received on the voice socket (sender and receiver reports), decrypted. */
  rtcp?(packet: RtcpPacket): void;
  /**
   * The recording stopped: every chunk was delivered. Awaited (a sink may flush) before the recording reports
   * itself stopped. `manifest` is null when nothing was recorded.
   */
  close?(end: { durationMs: number; manifest: Manifest | null }): void | Promise<void>;
}

/** Hands records to the sinks, isolating their failures. */
export class SinkHub {
  readonly #sinks: readonly Sink[];
  readonly #warn: (message: string) => void;
  readonly #failed = new Set<Sink>();

  constructor(sinks: readonly Sink[], warn: (message: string) => void) {
    this.#sinks = sinks;
    this.#warn = warn;
  }

  /** What the workers must hand back for the sinks. */
  get tap(): TapConfig {
    return { audio: this.#sinks.some((s) => s.audio), opus: this.#sinks.some((s) => s.opus) };
  }

  trackStarted(track: SinkTrack): void {
    for (const s of this.#sinks) if (s.trackStarted) this.#call(s, () => s.trackStarted!(track));
  }

  /** One tapped record of a user's track. */
  record(userId: string, r: TapRecord): void {
    for (const s of this.#sinks) {
      if (r.kind === 'audio' && s.audio) this.#call(s, () => s.audio!({ userId, position: r.position, pcm: toBuffer(r.data) }));
      else if (r.kind === 'opus' && s.opus) this.#call(s, () => s.opus!({ userId, position: r.position, packet: toBuffer(r.data) }));
      else if (r.kind === 'utterance' && s.utterance) this.#call(s, () => s.utterance!({ userId, edge: r.edge, position: r.position }));
    }
  }

  rtcp(p: RtcpPacket): void {
    for (const s of this.#sinks) if (s.rtcp) this.#call(s, () => s.rtcp!(p));
  }

  async close(end: { durationMs: number; manifest: Manifest | null }): Promise<void> {
    for (const s of this.#sinks) {
      if (!s.close) continue;
      try {
        await s.close(end);
      } catch (e) {
        this.#report(s, e);
      }
    }
  }

  #call(s: Sink, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.#report(s, e);
    }
  }

  #report(s: Sink, e: unknown): void {
    if (this.#failed.has(s)) return;
    this.#failed.add(s);
    this.#warn(`a sink threw (${e instanceof Error ? e.message : String(e)}); it keeps receiving, further errors of it are not reported`);
  }
}

/** A Buffer over a tapped record's bytes (the transferred buffer belongs to this thread: no copy needed). */
function toBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
