/**
 * One recording of one voice connection: the handle `record()` returns.
 *
 *   ConnectionTap ──datagram──▶ Receiver ──AudioPacket──▶ TrackRegistry ──▶ PoolTracks (workers: jitter, decode, files)
 *     │ op 4 key, op 5 ssrc ──────▶ ╯                                           │ tapped output
 *     │ state (t=0, reconnecting, ended)                                       ▼
 *     ▼                                                          sinks, listenTo streams, utterance events
 *   Recording: heartbeat (journal, live status, stop conditions) · stop: cleanup → final journal → finisher → manifest
 *
 * Parts are created once and hand results on; the recording only wires them and runs the stop sequence. It never
 * joins, rejoins or destroys the connection (its owner does), installs no signal handlers, prints nothing and
 * keeps no process-wide state: several recordings (of different guilds) can run in one process on one pool.
 *
 * States (typed `state` events):
 *   starting ──t=0──▶ recording ⇄ reconnecting
 *      │                  │ stop(), a stop condition, kicked/moved, an error
 *      │                  ▼
 *      ╰──(failed)──▶ stopping ──files finished──▶ stopped
 * A recording that cannot start (output not writable, refused, never ready, cancelled) goes straight to `stopped`
 * with its error; nothing is left on disk.
 */
import { EventEmitter } from 'node:events';
import { statSync } from 'node:fs';
import type { VoiceConnection } from '@discordjs/voice';
import { CancelledError, ConnectionError, DvrecError, InternalError, OutputError, UsageError, VoiceRejectedError } from '../errors.ts';
import { ConnectionTap, type TapState } from '../receiver/connection-tap.ts';
import { Receiver } from '../receiver/receiver.ts';
import type { WorkerPool } from '../pool/pool.ts';
import { PoolTracks } from '../pool/recording-tracks.ts';
import { finishRecording } from '../sinks/finalize.ts';
import type { StreamedMp3 } from '../sinks/mp3-stream.ts';
import { capturePath, type Journal, type Manifest, type Note } from '../sinks/capture-layout.ts';
import { copyStats } from '../sinks/types.ts';
import type { TapConfig, TapRecord } from '../sinks/track-tap.ts';
import { JournalWriter } from './journal.ts';
import { channelDirectory, humansInChannel } from './members.ts';
import { claimOutputDir, FULL_CODES, type OutputDir } from './output-dir.ts';
import type { ResolvedOptions } from './options.ts';
import { FRAMES_PER_MS, SinkHub } from './sinks.ts';
import { StopConditions, type StopReason } from './stop-conditions.ts';
import { ANONYMOUS, TrackRegistry, toJournalTrack, type MemberDirectory, type TrackInfo } from './track-registry.ts';
import { UserAudioStream, tapForFormat, type ListenOptions } from './user-streams.ts';
import type { ConvertProgress, LiveStatus, RecordingTrack, UtteranceEvent } from './types.ts';

/** How often the journal, status and stop conditions are refreshed. */
const HEARTBEAT_MS = 1000;
/** A user counts as speaking this long after their last voiced packet arrived. */
const SPEAKING_HOLD_MS = 300;

/** Where a recording is in its life (the `state` event and {@link Recording.state}). */
export type RecordingState =
  /** Waiting for the connection to be ready (t=0). */
  | {
      /** Waiting for t=0. */
      status: 'starting';
    }
  /** Receiving; `paused` while {@link Recording.pause} holds. */
  | {
      /** Receiving. */
      status: 'recording';
      /** Audio is not being taken (see {@link Recording.pause}). */
      paused: boolean;
    }
  /** The voice connection dropped; waiting up to `reconnectTimeoutMs` for it. */
  | {
      /** The connection dropped. */
      status: 'reconnecting';
      /** What the connection is doing (rejoining, reconnecting to the voice server...). */
      reason: string;
    }
  /** Finishing the tracks. */
  | {
      /** Finishing. */
      status: 'stopping';
      /** Why it stopped. */
      reason: StopReason;
    }
  /** Done: files written (or nothing, when it never started). Terminal. */
  | {
      /** Done. */
      status: 'stopped';
      /** Why it stopped. */
      reason: StopReason;
      /** The error it stopped on, if any. */
      error?: DvrecError;
    };

/** What a stopped recording leaves: its manifest (null when it never started), why it stopped, and its error if any. */
export interface RecordingResult {
  /** The finished recording's manifest; null when it never started (nothing was written). */
  manifest: Manifest | null;
  /** Why it stopped. */
  reason: StopReason;
  /** The error it stopped on (the files were finished first), or why it could not start. */
  error?: DvrecError;
}

/** The events of a {@link Recording}, with their arguments. */
export interface RecordingEvents {
  /** Every state change. */
  state: [next: RecordingState, previous: RecordingState];
  /** t=0: receiving now. */
  ready: [
    info: {
      /** Wall-clock time of t=0 (ISO 8601). */
      startedAt: string;
    },
  ];
  /** A user's first packet arrived: their track exists. */
  trackAdded: [track: RecordingTrack];
  /** A user started or stopped speaking (live: by packet arrival, 300 ms hold). */
  speaking: [userId: string, speaking: boolean];
  /** A talk spurt began or ended, placed on the recording clock (as written to the track). */
  utterance: [u: UtteranceEvent];
  /** Live figures, about once a second. */
  status: [status: LiveStatus];
  /** Non-fatal trouble worth a log line (reconnects, hostile datagrams, a slow stream reader...). */
  warning: [message: string];
  /** The voice connection dropped; the recording waits for it (reconnectTimeoutMs). */
  reconnecting: [reason: string];
  /** It came back: the timeline goes on (the outage is silence). */
  reconnected: [];
  /** {@link Recording.pause} took effect at `atMs` on the recording clock. */
  paused: [atMs: number];
  /** {@link Recording.resume} took effect at `atMs` on the recording clock. */
  resumed: [atMs: number];
  /** The recording is stopping: the tracks are being finished. */
  stopping: [reason: StopReason];
  /** The tracks are cut and journalled; the files are being written (`tracks` of them, plus the mix). */
  finishing: [tracks: number];
  /** Finishing the files: per-file progress. */
  progress: [p: ConvertProgress];
  /** Finished: files and manifest written (or nothing, when it never started). Always the last event. */
  stopped: [result: RecordingResult];
}

/** Test and diagnostics seams (never used in production). */
export interface RecordingHooks {
  /** The recording's tracks in the pool exist (t=0). */
  onPool?: (tracks: PoolTracks) => void;
  /** The connection tap exists (before the first voice event). */
  onTap?: (tap: ConnectionTap) => void;
}

/** What a {@link Recording} needs from its {@link Recorder}. */
export interface RecordingContext {
  pool: () => WorkerPool;
  /** Called once, when the recording is stopped (the recorder forgets it). */
  done: (r: Recording) => void;
  hooks?: RecordingHooks;
}

/**
 * One recording of one voice connection, made by `Recorder.record`. Await {@link ready} for t=0, call
 * {@link stop} to finish; listen to its {@link RecordingEvents}.
 */
export class Recording extends EventEmitter<RecordingEvents> {
  /** The connection being recorded (its owner's; the recording never joins, rejoins or destroys it). */
  readonly connection: VoiceConnection;
  /** Where the tracks, mix and manifest are written. */
  readonly outDir: string;
  /** Resolves at t=0; rejects (typed) when the recording cannot start. */
  readonly ready: Promise<{
    /** Wall-clock time of t=0 (ISO 8601). */
    startedAt: string;
  }>;
  /** Resolves with the manifest once stopped and finished; rejects (typed) if it stopped on an error or never started. */
  readonly finished: Promise<Manifest>;
  #state: RecordingState = { status: 'starting' };
  readonly #o: ResolvedOptions;
  readonly #ctx: RecordingContext;
  readonly #members: MemberDirectory;
  readonly #sinks: SinkHub;
  readonly #streams = new Map<string, Set<UserAudioStream>>();
  #out: OutputDir | undefined;
  #tap: ConnectionTap | undefined;
  #receiver: Receiver | undefined;
  #tracks: PoolTracks | undefined;
  #registry: TrackRegistry | undefined;
  #journal: JournalWriter | undefined;
  #conditions: StopConditions | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #speakingTimer: NodeJS.Timeout | undefined;
  readonly #speaking = new Set<string>();
  #paused: { since: number } | null = null;
  readonly #pauses: { startMs: number; endMs: number }[] = [];
  readonly #notes: Note[] = [];
  #stopRequested: { reason: StopReason; error?: DvrecError } | undefined;
  #wake: (() => void) | undefined;
  #result: RecordingResult | undefined;
  #stopped: Promise<RecordingResult>;
  /** RTCP packets handed to the sinks (diagnostics). */
  rtcpPackets = 0;

  /** @internal Made by `Recorder.record`. */
  constructor(connection: VoiceConnection, options: ResolvedOptions, ctx: RecordingContext) {
    super();
    this.connection = connection;
    this.outDir = options.outDir;
    this.#o = options;
    this.#ctx = ctx;
    this.#members = options.channel ? channelDirectory(options.channel) : ANONYMOUS;
    this.#sinks = new SinkHub(options.sinks, (m) => this.#warn(m));
    let resolveReady!: (v: { startedAt: string }) => void;
    let rejectReady!: (e: unknown) => void;
    this.ready = new Promise((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    this.ready.catch(() => {}); // observed through `finished` / `stopped` too: never an unhandled rejection
    // Claimed and tapped before anything else can happen on the connection (no await before this): the first
    // datagram, op 4 and op 5 must find the audio path in place.
    this.#out = claimOutputDir(options.outDir, options.force);
    this.#attach();
    this.#stopped = this.#run(resolveReady, rejectReady);
    this.finished = this.#stopped.then((r) => {
      if (r.error) throw r.error;
      return r.manifest!;
    });
    this.finished.catch(() => {});
  }

  /** Where the recording is in its life. */
  get state(): RecordingState {
    return this.#state;
  }

  /** Milliseconds since t=0 on the recording clock (NaN before t=0). */
  now(): number {
    return this.#tap?.now() ?? Number.NaN;
  }

  /** Epoch ms of t=0 (NaN before). */
  get startedAtMs(): number {
    return this.#tap?.startedAtMs ?? Number.NaN;
  }

  /** The tracks so far (one per user who was heard). */
  get tracks(): RecordingTrack[] {
    return [...(this.#registry?.tracks.values() ?? [])].map(publicTrack);
  }

  /**
   * Stops the recording and finishes the files. Resolves with the manifest (null when it had not started: then
   * nothing is left on disk). Never rejects: an error it stopped on is in `finished` and the `stopped` event.
   */
  async stop(): Promise<Manifest | null> {
    this.#requestStop('requested');
    return (await this.#stopped).manifest;
  }

  /**
   * Stops taking audio: nothing said while paused is written, kept or handed to sinks and streams. The timeline
   * keeps running, so the paused stretch is silence in every track and the tracks stay aligned with each other
   * and with the wall clock; the manifest lists each pause (`pauses`, recording-clock ms).
   */
  pause(): void {
    if (this.#state.status !== 'recording' || this.#paused) return;
    const at = this.now();
    this.#paused = { since: at };
    this.#setState({ status: 'recording', paused: true });
    this.emit('paused', at);
  }

  /** Takes audio again after {@link pause}. */
  resume(): void {
    if (!this.#paused) return;
    const at = this.now();
    // Nothing may bridge the pause (no FEC of what was said while paused, no timestamp continuity across it).
    this.#tracks?.restartStreams();
    this.#pauses.push({ startMs: Math.round(this.#paused.since), endMs: Math.round(at) });
    this.#paused = null;
    if (this.#state.status === 'recording') this.#setState({ status: 'recording', paused: false });
    this.emit('resumed', at);
  }

  /** True between {@link pause} and {@link resume}. */
  get paused(): boolean {
    return this.#paused !== null;
  }

  /**
   * Marks this moment with a line of text (Craig's `/note`): listed in the manifest (`notes`) and written beside the
   * tracks as Audacity labels (`labels.txt`). Returns the note, placed on the recording clock. Throws UsageError
   * when the text is empty or the recording is not recording (before t=0, or stopping).
   */
  note(text: string, by?: { userId?: string; name?: string }): Note {
    const clean = String(text ?? '').replace(/\s+/g, ' ').trim().slice(0, 2000);
    if (clean === '') throw new UsageError('a note needs some text');
    if (this.#state.status !== 'recording' && this.#state.status !== 'reconnecting') throw new UsageError(`cannot add a note: the recording is ${this.#state.status}`);
    const note: Note = { atMs: Math.round(Math.max(0, this.now())), text: this.#o.redactor.redact(clean), ...(by?.userId ? { userId: by.userId } : {}), ...(by?.name ? { author: by.name } : {}) };
    this.#notes.push(note);
    this.#journal?.soon(() => this.#writeJournal());
    return note;
  }

  /** The notes so far. */
  get notes(): readonly Note[] {
    return this.#notes;
  }

  /**
   * One user's audio as it is recorded (see user-streams.ts): an async iterable / Node Readable of timed chunks and
   * utterance edges. May be called before the user speaks. Ends when the recording stops (or on close()).
   */
  listenTo(userId: string, options: ListenOptions = {}): UserAudioStream {
    const stream = new UserAudioStream(userId, options, (s) => {
      this.#streams.get(userId)?.delete(s);
      this.#retap(userId);
    });
    if (this.#state.status === 'stopped' || this.#state.status === 'stopping') {
      stream.end();
      return stream;
    }
    let set = this.#streams.get(userId);
    if (!set) this.#streams.set(userId, (set = new Set()));
    set.add(stream);
    stream.on('overflow', (missed) => this.#warn(`the listenTo(${userId}) reader fell behind: ${Math.round(missed)} ms of audio dropped so far`));
    this.#retap(userId);
    return stream;
  }

  /** Live figures (the same as the `status` event). */
  status(): LiveStatus {
    const now = this.now();
    const live = this.#tracks?.status();
    return {
      elapsedMs: Number.isNaN(now) ? 0 : now,
      bytesWritten: this.#captureBytes(),
      tracks: [...(this.#registry?.tracks.values() ?? [])].map((t) => {
        const s = live?.get(t.userId);
        return {
          userId: t.userId,
          displayName: t.displayName,
          speaking: s?.speaking ?? now - t.lastVoiceMs < SPEAKING_HOLD_MS,
          activeMs: s?.activeMs ?? 0,
          received: s?.received ?? 0,
          lost: s?.lost ?? 0,
          concealed: s?.concealed ?? 0,
          bytes: s?.bytes ?? 0,
        };
      }),
    };
  }

  // ---------------------------------------------------------------------------------------------

  #setState(next: RecordingState): void {
    const prev = this.#state;
    if (prev.status === 'stopped') return;
    this.#state = next;
    this.emit('state', next, prev);
  }

  #warn(message: string): void {
    this.emit('warning', this.#o.redactor.redact(message));
  }

  #requestStop(reason: StopReason, error?: DvrecError): void {
    this.#stopRequested ??= { reason, ...(error ? { error } : {}) };
    this.#wake?.();
  }

  /** Where the recording clock stands, for messages ("stopped at 12.3 s"). */
  #at(): string {
    const now = this.now();
    return Number.isNaN(now) ? 'the start' : `${(Math.max(0, now) / 1000).toFixed(1)} s`;
  }

  /** The taps a user's track needs: the sinks', and those of the user's open streams. */
  #tapFor(userId: string): TapConfig {
    const t = { ...this.#sinks.tap };
    for (const s of this.#streams.get(userId) ?? []) {
      const need = tapForFormat(s.format);
      t.audio ||= need.audio;
      t.opus ||= need.opus;
    }
    return t;
  }

  #retap(userId: string): void {
    this.#tracks?.setTap(userId, this.#tapFor(userId));
  }

  #onTap(userId: string, r: TapRecord): void {
    this.#sinks.record(userId, r);
    for (const s of this.#streams.get(userId) ?? []) s.push(r);
    if (r.kind === 'utterance') this.emit('utterance', { userId, edge: r.edge, atMs: r.position / FRAMES_PER_MS });
  }

  #captureBytes(): number {
    let total = 0;
    for (const t of this.#registry?.tracks.values() ?? []) {
      try {
        total += statSync(capturePath(this.outDir, t.stem)).size;
      } catch {
        /* not created yet */
      }
    }
    return total;
  }

  #humans(): number {
    const channel = this.#o.channel;
    return channel ? humansInChannel(channel, this.#tap?.clients ?? new Set(), this.#members) : 0;
  }

  /** Emits `speaking` edges from packet arrivals (a 100 ms check while anyone is speaking). */
  #watchSpeaking(t: TrackInfo): void {
    if (this.#speaking.has(t.userId) || this.now() - t.lastVoiceMs >= SPEAKING_HOLD_MS) return;
    this.#speaking.add(t.userId);
    this.emit('speaking', t.userId, true);
    this.#speakingTimer ??= setInterval(() => {
      const now = this.now();
      for (const id of this.#speaking) {
        const tr = this.#registry?.tracks.get(id);
        if (!tr || now - tr.lastVoiceMs >= SPEAKING_HOLD_MS) {
          this.#speaking.delete(id);
          this.emit('speaking', id, false);
        }
      }
      if (this.#speaking.size === 0) {
        clearInterval(this.#speakingTimer);
        this.#speakingTimer = undefined;
      }
    }, 100);
  }

  /** The journal's refreshed fields: tracks with live counts, drops, and what is known to be on disk. */
  #journalUpdate(): Partial<Journal> {
    const live = this.#tracks?.status();
    const receiver = this.#receiver;
    const tracks = [...(this.#registry?.tracks.values() ?? [])].map((t) => {
      const s = live?.get(t.userId);
      if (s) Object.assign(t.packets, { received: s.received, lost: s.lost, concealed: s.concealed });
      t.packets.undecryptable = receiver?.undecryptableByUser.get(t.userId) ?? 0;
      // Duplicates: the jitter buffer's (fresh nonce) plus the receiver's (same nonce, stopped by the replay filter).
      t.packets.duplicate = (s?.duplicate ?? 0) + (receiver?.duplicateByUser.get(t.userId) ?? 0);
      return toJournalTrack(t);
    });
    const flushed = Math.floor(Math.min(this.now(), this.#tracks?.flushedMs ?? 0));
    return {
      tracks,
      flushedMs: Math.max(this.#journal?.journal.flushedMs ?? 0, flushed),
      pauses: this.#allPauses(),
      notes: [...this.#notes],
      ...(receiver ? { dropped: receiver.drops() } : {}),
    };
  }

  /** Every pause so far, the open one up to now. */
  #allPauses(endMs = this.now()): { startMs: number; endMs: number }[] {
    return this.#paused ? [...this.#pauses, { startMs: Math.round(this.#paused.since), endMs: Math.round(endMs) }] : [...this.#pauses];
  }

  #writeJournal(): void {
    const j = this.#journal;
    if (!j || j.broken) return;
    const e = j.write(this.#journalUpdate());
    if (e) {
      const code = e.code;
      if (code !== undefined && FULL_CODES.has(code)) this.#out?.releaseReserve();
      this.#warn(`cannot write ${j.path}: ${e.message}; stopping`);
      this.#requestStop('error', new OutputError(`cannot write the journal in ${this.outDir} (${code ?? 'error'}): recording stopped at ${this.#at()}; everything captured until then is kept`));
    }
  }

  /** Everything from claiming the directory to the `stopped` event. Never rejects. */
  async #run(resolveReady: (v: { startedAt: string }) => void, rejectReady: (e: unknown) => void): Promise<RecordingResult> {
    let result: RecordingResult;
    try {
      const started = await this.#start();
      resolveReady(started);
      this.emit('ready', started);
      result = await this.#record();
    } catch (e) {
      const error = e instanceof DvrecError ? e : new InternalError(this.#o.redactor.redact(`cannot record: ${(e as Error)?.message ?? String(e)}`), { cause: e });
      rejectReady(error);
      await this.#abandon();
      result = { manifest: null, reason: error.kind === 'cancelled' ? 'requested' : 'error', error };
    }
    this.#result = result;
    for (const set of this.#streams.values()) for (const s of [...set]) s.end();
    await this.#sinks.close({ durationMs: result.manifest?.durationMs ?? 0, manifest: result.manifest });
    this.#setState({ status: 'stopped', reason: result.reason, ...(result.error ? { error: result.error } : {}) });
    this.#ctx.done(this);
    this.emit('stopped', result);
    return result;
  }

  /** Taps the connection and wires the receive path (synchronously, from the constructor). */
  #attach(): void {
    const o = this.#o;
    const tap = new ConnectionTap(this.connection, {
      libraryReceiver: o.libraryReceiver,
      reconnectTimeoutMs: o.reconnectTimeoutMs,
      ...(o.channel ? { client: o.channel.client } : {}),
    });
    this.#tap = tap;
    this.#ctx.hooks?.onTap?.(tap);
    const users = o.users;
    const receiver = new Receiver({
      sink: {
        onAudio: (p) => {
          const registry = this.#registry;
          if (!registry) return;
          registry.onAudio(p);
          this.#watchSpeaking(registry.tracks.get(p.userId)!);
        },
        onRtcp: (p) => {
          this.rtcpPackets++;
          this.#sinks.rtcp(p);
        },
      },
      clock: () => tap.now(),
      dave: tap.dave(),
      accept: (u: string) => this.#paused === null && (users === undefined || users.has(u)),
    });
    this.#receiver = receiver;
    // What the connection already knew before the tap (a host bot's connection, Ready for a while).
    for (const [ssrc, userId] of tap.knownSsrcs) receiver.mapSsrc(ssrc, userId);
    if (tap.cipher) receiver.setCipher(tap.cipher);
    tap.on('cipher', (c) => receiver.setCipher(c));
    tap.on('speaking', (ssrc, userId) => receiver.mapSsrc(ssrc, userId));
    tap.on('video', (v) => receiver.onVideo(v));
    tap.on('datagram', (d) => receiver.onDatagram(d));
    tap.on('warn', (m) => this.#warn(m));
    tap.on('state', (next) => this.#onTapState(next));
    tap.start();
  }

  /** Waits for t=0. Throws (typed) when the recording cannot start: refused, never ready, cancelled. */
  async #start(): Promise<{ startedAt: string }> {
    const o = this.#o;
    const signal = o.signal;
    const tap = this.#tap!;
    const setAside = this.#out?.setAside;
    // After the caller's synchronous `on('warning')`: the handle was only just returned.
    if (setAside) queueMicrotask(() => this.#warn(`${o.outDir} held an unfinished recording: moved it to ${setAside}; finish it with dvrec convert ${setAside}`));
    if (signal?.aborted) throw new CancelledError('cancelled before the recording started');
    // Wait for t=0, a refusal, the timeout or a cancel.
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    let check: ((s: TapState) => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(
          () => reject(new ConnectionError(`timed out after ${Math.round(o.readyTimeoutMs / 1000)} s joining the voice channel (voice connection stuck in ${this.connection.state.status})`)),
          o.readyTimeoutMs,
        );
        onAbort = () => reject(new CancelledError('interrupted while joining the voice channel'));
        check = (s: TapState): void => {
          if (s.status === 'ready') resolve();
          else if (s.status === 'ended') {
            reject(
              s.reason === 'refused'
                ? new VoiceRejectedError(`the voice server refused the session${s.closeCode ? ` (close code ${s.closeCode})` : ''}${s.detail ? `: ${s.detail}` : ''}`, { closeCode: s.closeCode })
                : new ConnectionError(`the voice connection ended before the recording started${s.detail ? `: ${s.detail}` : ''}`),
            );
          }
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        tap.on('state', check);
        check(tap.state);
      });
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
      if (check) tap.off('state', check);
    }
    return { startedAt: new Date(tap.startedAtMs).toISOString() };
  }

  /** t=0 (the first Ready): the tracks' clock starts here, before the first decryptable datagram can arrive. */
  #onTapState(next: TapState): void {
    const tap = this.#tap!;
    if (next.status === 'ready' && next.readyCount === 1) {
      const o = this.#o;
      const tracks = new PoolTracks(this.#ctx.pool(), {
        dir: o.outDir,
        keepOpus: o.format === 'opus',
        t0EpochMs: tap.startedAtMs,
        // MP3 is encoded while recording, so that only a short tail is left at stop.
        ...(o.format === 'mp3' ? { mp3: { bitrateKbps: o.bitrateKbps, mono: o.mono } } : {}),
      });
      this.#tracks = tracks;
      this.#ctx.hooks?.onPool?.(tracks);
      tracks.on('tap', (userId, r) => this.#onTap(userId, r));
      tracks.on('workerRestarted', (i) => this.#warn(`decoder worker ${i.index} restarted (${i.error ?? `exit ${i.exitCode}`}); ${i.userIds.length} track(s) continue`));
      tracks.on('workerFailed', (i) => {
        // A worker that a fresh replacement cannot keep alive is a bug (or an exhausted machine): stop and
        // finish what is on disk rather than record on with some speakers silently missing.
        const why = this.#o.redactor.redact(i.error ?? `exit ${i.exitCode}`);
        this.#warn(`decoder worker ${i.index} failed ${i.deaths} times within ${i.windowMs / 1000} s (${why}); stopping`);
        this.#requestStop('error', new InternalError(`decoder worker ${i.index} kept failing (${i.deaths} times within ${i.windowMs / 1000} s: ${why}): recording stopped at ${this.#at()}; everything captured until then is kept`));
      });
      tracks.on('trackError', (i) => {
        const full = i.code !== undefined && FULL_CODES.has(i.code);
        // Free the reserve at once: the other tracks' last writes and the journal need the room.
        if (full) this.#out?.releaseReserve();
        this.#warn(`cannot write a track (${i.code ?? 'error'}): ${i.message}; stopping`);
        this.#requestStop('error', new OutputError(
          full
            ? `${i.code === 'EFBIG' ? 'file size limit reached' : 'disk full'} (${i.code}) in ${this.outDir}: recording stopped at ${this.#at()}; everything captured until then is kept`
            : `cannot write a track in ${this.outDir} (${i.code ?? 'error'}): recording stopped at ${this.#at()}; everything captured until then is kept`,
        ));
      });
      const registry = new TrackRegistry(tracks, this.#members, (u) => this.#tapFor(u));
      this.#registry = registry;
      registry.on('added', (t) => {
        this.#journal?.soon(() => this.#writeJournal());
        const track = publicTrack(t);
        this.#sinks.trackStarted({ userId: t.userId, username: t.username, displayName: t.displayName, stem: t.stem });
        this.emit('trackAdded', track);
      });
      this.#setState({ status: 'recording', paused: false });
    } else if (next.status === 'ready') {
      if (this.#state.status === 'reconnecting') {
        this.#setState({ status: 'recording', paused: this.#paused !== null });
        this.emit('reconnected');
      }
    } else if (next.status === 'reconnecting') {
      if (this.#state.status === 'recording') {
        this.#setState({ status: 'reconnecting', reason: next.reason });
        this.emit('reconnecting', next.reason);
      }
    } else if (next.status === 'ended' && !Number.isNaN(tap.t0Perf)) {
      if (next.reason === 'disconnected') {
        if (next.detail) this.#warn(next.detail);
        this.#requestStop('disconnected');
      } else if (next.reason === 'failed') {
        this.#warn(`voice connection lost: ${next.detail ?? 'failed'}`);
        this.#requestStop('error', new ConnectionError(`voice connection lost (${next.detail ?? 'failed'}): recording stopped at ${this.#at()}; everything captured until then is kept`));      } else if (next.reason === 'rejected') {
        // The voice server ended the session and Discord says not to come back (close-codes.ts).
        const why = next.detail ?? 'the voice server ended the session';
        this.#warn(`${why}; stopping`);
        this.#requestStop('error', new VoiceRejectedError(`${why}: recording stopped at ${this.#at()}; everything captured until then is kept`, { closeCode: next.closeCode }));
      }
    }
  }

  /** From t=0 to the files: heartbeat until a stop is requested, then the stop sequence. */
  async #record(): Promise<RecordingResult> {
    const o = this.#o;
    const tap = this.#tap!;
    const startedAt = new Date(tap.startedAtMs).toISOString();
    const journal = new JournalWriter(o.outDir, {
      version: 1,
      guildId: this.connection.joinConfig.guildId,
      channelId: tap.channelId ?? '',
      startedAt,
      startedAtMs: tap.startedAtMs,
      flushedMs: 0,
      format: o.format,
      mono: o.mono,
      bitrateKbps: o.bitrateKbps,
      mix: o.mix,
      tracks: [],
    });
    this.#journal = journal;
    this.#writeJournal();

    const conditions = new StopConditions({ durationMs: o.durationMs, maxSizeBytes: o.maxSizeBytes, stopWhenEmptyMs: o.stopWhenEmptyMs }, tap.now());
    this.#conditions = conditions;
    conditions.on('stop', (reason) => this.#requestStop(reason));
    const onAbort = (): void => this.#requestStop('requested');
    if (o.signal?.aborted) onAbort();
    else o.signal?.addEventListener('abort', onAbort, { once: true });
    this.#heartbeat = setInterval(() => {
      this.#receiver?.expire();
      this.#writeJournal();
      const status = this.status();
      this.emit('status', status);
      conditions.check(tap.now(), status.bytesWritten, this.#humans());
    }, HEARTBEAT_MS);

    if (this.#stopRequested === undefined) await new Promise<void>((resolve) => (this.#wake = resolve));
    const { reason, error: stopError } = this.#stopRequested!;
    // The stop instant: everything is cut here, on the recording clock, for every track alike.
    const endMs = Math.max(0, Math.round(tap.now()));
    clearInterval(this.#heartbeat);
    clearInterval(this.#speakingTimer);
    conditions.close();
    journal.close();
    o.signal?.removeEventListener('abort', onAbort);
    const pauses = this.#allPauses(endMs);
    this.#paused = null;
    // Let go of the connection first: its owner may leave the channel as soon as it hears of the stop.
    tap.close();
    this.#setState({ status: 'stopping', reason });
    this.emit('stopping', reason);

    // ---- finish ----
    const stats = (await this.#tracks?.cleanup(endMs)) ?? new Map();
    this.#tracks?.detach();
    const receiver = this.#receiver!;
    const streamedMp3: StreamedMp3[] = [];
    for (const t of this.#registry?.tracks.values() ?? []) {
      const s = stats.get(t.userId);
      if (s?.mp3?.state === 'done') streamedMp3.push({ stem: t.stem, path: s.mp3.path, frames: s.mp3.frames, bitrateKbps: s.mp3.bitrateKbps, mono: s.mp3.mono });
      if (s) {
        t.packets = copyStats(s);
        if (s.startOffsetMs !== null) t.startOffsetMs = s.startOffsetMs;
        for (const ssrc of s.ssrcs) if (!t.ssrcs.includes(ssrc)) t.ssrcs.push(ssrc);
      }
      t.packets.undecryptable += receiver.undecryptableByUser.get(t.userId) ?? 0;
      t.packets.duplicate += receiver.duplicateByUser.get(t.userId) ?? 0;
    }
    // The reserve has done its job (room for the final journal, header patches and manifest on a full disk).
    this.#out?.releaseReserve();
    try {
      journal.writeFinal({
        tracks: [...(this.#registry?.tracks.values() ?? [])].map(toJournalTrack),
        flushedMs: endMs,
        endedAt: new Date(tap.startedAtMs + endMs).toISOString(),
        durationMs: endMs,
        dropped: receiver.drops(),
        pauses,
        notes: [...this.#notes],
      });
    } catch (e) {
      const why = stopError ? `${stopError.message}; then ` : '';
      const error = new OutputError(`${why}cannot write the journal: ${this.#o.redactor.redact((e as Error).message)} (the captures are in ${o.outDir}; run dvrec convert ${o.outDir} after freeing space)`);
      return { manifest: null, reason, error };
    }
    const drops = receiver.dropSummary();
    if (drops) this.#warn(`skipped datagrams: ${drops}`);

    this.emit('finishing', this.#registry?.tracks.size ?? 0);
    let manifest: Manifest;
    try {
      manifest = await finishRecording(o.outDir, {
        ...(o.ffmpegPath !== undefined ? { ffmpegPath: o.ffmpegPath } : {}),
        force: o.force,
        durationMs: endMs,
        streamedMp3,
        onProgress: (p) => this.emit('progress', p),
      });
    } catch (e) {
      if (!stopError) throw e;
      // Say first why the recording stopped; the capture stays on disk for `convert`.
      const error = errorLike(stopError, `${stopError.message}; finishing failed too (${this.#o.redactor.redact((e as Error).message)}): run dvrec convert ${o.outDir} after freeing space`, e);
      return { manifest: null, reason, error };
    }
    return { manifest, reason, ...(stopError ? { error: stopError } : {}) };
  }

  /** A recording that never got to t=0 (or failed on the way): close what exists, leave no trace on disk. */
  async #abandon(): Promise<void> {
    clearInterval(this.#heartbeat);
    clearInterval(this.#speakingTimer);
    this.#conditions?.close();
    this.#journal?.close();
    this.#tap?.close();
    await this.#tracks?.cleanup(0).catch(() => undefined);
    this.#tracks?.detach();
    // Refused, unreachable or cancelled before t=0: nothing was captured, so leave no trace of this run.
    if (!this.#registry?.tracks.size) this.#out?.release();
    else this.#out?.releaseReserve();
  }
}

/** A track as the public API shows it. */
function publicTrack(t: TrackInfo): RecordingTrack {
  return { userId: t.userId, username: t.username, displayName: t.displayName, stem: t.stem, firstArrivalMs: t.firstArrivalMs };
}

/** An error of the same class as `like`, with a new message. */
function errorLike(like: DvrecError, message: string, cause: unknown): DvrecError {
  const Ctor = like.constructor as new (m: string, o?: { cause?: unknown }) => DvrecError;
  return new Ctor(message, { cause });
}
