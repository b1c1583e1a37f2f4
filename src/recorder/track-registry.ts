/**
 * The tracks of one recording: one per USER, registered with the pool on the user's first packet and never
 * again, so a new SSRC (rejoin), a resume or a server move all land in the same capture, on the same t=0 clock.
 * Owns each track's names (which may improve once the API answers) and its file stem (which never changes).
 */
import { EventEmitter } from 'node:events';
import type { JournalTrack } from '../sinks/capture-layout.ts';
import { isSilenceFrame } from '../sinks/formats/opus-packet.ts';
import { trackStem } from '../sinks/naming.ts';
import { emptyStats, type AudioPacket } from '../sinks/types.ts';
import type { TapConfig } from '../sinks/track-tap.ts';
import type { PoolTracks } from '../pool/recording-tracks.ts';

/** Names of a call member. */
export interface MemberInfo {
  username: string;
  displayName: string;
  bot: boolean;
}

/** Where names come from: a discord.js guild when the caller gave one, else the ids themselves. */
export interface MemberDirectory {
  /** From caches only (no network); falls back to the id. */
  info(userId: string): MemberInfo;
  /** Asks the API when the cache does not know the user. Never rejects. */
  fetch(userId: string): Promise<MemberInfo>;
}

/** A directory that knows nobody: tracks are named by user id. */
export const ANONYMOUS: MemberDirectory = {
  info: (userId) => ({ username: userId, displayName: userId, bot: false }),
  fetch: (userId) => Promise.resolve({ username: userId, displayName: userId, bot: false }),
};

/** One user's track as the recording knows it (a {@link JournalTrack} plus live fields). */
export interface TrackInfo extends JournalTrack {
  /** Recording-clock arrival of the user's first packet. */
  firstArrivalMs: number;
  /** Last non-silence packet (recording clock), for the live "speaking" flag. */
  lastVoiceMs: number;
}

export interface TrackRegistryEvents {
  /** A user's first packet arrived: their track exists now. */
  added: [track: TrackInfo];
}

export class TrackRegistry extends EventEmitter<TrackRegistryEvents> {
  readonly tracks = new Map<string, TrackInfo>();
  readonly #stems = new Set<string>();
  readonly #pool: PoolTracks;
  readonly #members: MemberDirectory;
  readonly #tapFor: (userId: string) => TapConfig;

  constructor(pool: PoolTracks, members: MemberDirectory, tapFor: (userId: string) => TapConfig) {
    super();
    this.#pool = pool;
    this.#members = members;
    this.#tapFor = tapFor;
  }

  /** One packet of a user: registers the user's track on their first, then hands the packet to the pool. */
  onAudio(p: AudioPacket): void {
    let t = this.tracks.get(p.userId);
    if (!t) t = this.#register(p);
    if (!t.ssrcs.includes(p.ssrc)) t.ssrcs.push(p.ssrc);
    if (!isSilenceFrame(p.opus)) t.lastVoiceMs = p.arrivalMs;
    this.#pool.onAudio(p);
  }

  #register(p: AudioPacket): TrackInfo {
    const info = this.#members.info(p.userId);
    let stem = trackStem(p.userId, info.displayName, info.username);
    // The id in the stem makes it unique already; this only guards against ids that sanitise alike.
    for (let n = 2; this.#stems.has(stem); n++) stem = `${trackStem(p.userId, info.displayName, info.username)}-${n}`;
    this.#stems.add(stem);
    const t: TrackInfo = {
      userId: p.userId,
      username: info.username,
      displayName: info.displayName,
      stem,
      ssrcs: [],
      startOffsetMs: Math.max(0, p.arrivalMs),
      packets: emptyStats(),
      firstArrivalMs: p.arrivalMs,
      lastVoiceMs: -Infinity,
    };
    this.tracks.set(p.userId, t);
    this.#pool.addTrack(p.userId, t.stem, this.#tapFor(p.userId));
    // Names from the cache may be just the id; ask the API once, for the journal/manifest (not the stem).
    if (t.username === p.userId) {
      void this.#members.fetch(p.userId).then((m) => {
        t.username = m.username;
        t.displayName = m.displayName;
      });
    }
    this.emit('added', t);
    return t;
  }
}

/** A journal entry's copy of a track (no live fields). */
export function toJournalTrack(t: TrackInfo): JournalTrack {
  return {
    userId: t.userId,
    username: t.username,
    displayName: t.displayName,
    stem: t.stem,
    ssrcs: [...t.ssrcs],
    startOffsetMs: t.startOffsetMs,
    packets: { ...t.packets },
  };
}
