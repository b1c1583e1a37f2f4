/**
 * The recording engine: voice session → receiver → worker pool → finisher.
 *
 *   VoiceSession (login, join, reconnects, t=0) ──datagram──▶ Receiver (parse, decrypt, SSRC→user, DAVE)
 *        │ op 4 key, op 5 ssrc                                   │ AudioPacket
 *        ╰──────────────────────────────────────▶ TrackRouter ───┴──▶ WorkerPool (jitter, decode, capture files)
 *   every ~1 s: capture.json journal (crash-safe finishing), live status, stop checks
 *   at the stop: pool.cleanup(end) → final journal → finishRecording() → manifest
 *
 * One track per USER: the router registers a user with the pool on their first packet and never again, so a
 * new SSRC (rejoin), a resume or a server move all land in the same capture, on the same t=0 clock.
 */
import { promises as fsp, constants as fsConstants, existsSync, statSync, rmSync, rmdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DvrecError, ExitCode, redact } from './errors.ts';
import type { LiveStatus, RecordingObserver, RecordOptions, StopReason } from './recording-api.ts';
import { Receiver } from './receiver/receiver.ts';
import { DaveGuard } from './receiver/dave-guard.ts';
import { VoiceSession, type SessionState } from './receiver/voice-session.ts';
import { WorkerPool } from './pool/pool.ts';
import { finishRecording } from './sinks/finalize.ts';
import type { StreamedMp3 } from './sinks/mp3-stream.ts';
import { trackStem } from './sinks/naming.ts';
import {
  CAPTURE_DIR, JOURNAL_FILE, RESERVE_FILE, capturePath, ensureCaptureDir, writeJsonAtomic,
  type Journal, type JournalTrack, type Manifest,
} from './sinks/capture-layout.ts';
import { copyStats, emptyStats, type AudioPacket } from './sinks/types.ts';
import { isSilenceFrame } from './receiver/dave.ts';
import { hasUnfinishedRecording, setAsideUnfinished } from './sinks/leftover-capture.ts';

export type { RecordOptions, RecordingObserver } from './recording-api.ts';

/** How often the journal, status and stop conditions are refreshed. */
const HEARTBEAT_MS = 1000;
/** How soon after a new user's first packet the journal lists their track (writes are coalesced). */
const NEW_TRACK_JOURNAL_MS = 100;
/**
 * Space held back in the output directory while recording (`.capture/.reserve`), released when a write fails
 * for lack of space: it lets the final journal, the WAV header patches and the manifest still be written on a
 * full disk, so a disk-full stop finishes cleanly instead of leaving a capture only `convert` can finish.
 */
const RESERVE_BYTES = 256 * 1024;
/** Write errors that mean "the disk (or the file-size limit) is full": stop cleanly, exit OUTPUT. */
const FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

/** Test and diagnostics seams: observe the engine's parts and inject faults (never used in production). */
export interface RecordingHooks {
  /** Called once the worker pool exists (t=0). */
  onPool?: (pool: WorkerPool) => void;
  /** Called once the voice session exists (before the first voice event). */
  onSession?: (session: VoiceSession) => void;
  /** The pool's workers obey WorkerPool.injectWorkerCrash. */
  workerFaults?: boolean;
  /** How long a lost voice connection may take to come back before the recording stops (default 60 s). */
  reconnectTimeoutMs?: number;
}

/** One user's track as the engine knows it (names may improve after the first packet; the stem never changes). */
interface TrackInfo extends JournalTrack {
  firstArrivalMs: number;
  /** Last non-silence packet (recording clock), for the live "speaking" flag. */
  lastVoiceMs: number;
}

/** Registers users with the pool on first audio and keeps the journal's track list. */
class TrackRouter {
  readonly tracks = new Map<string, TrackInfo>();
  readonly #stems = new Set<string>();
  readonly #pool: WorkerPool;
  readonly #session: VoiceSession;
  readonly #onNewTrack: (t: TrackInfo) => void;

  constructor(pool: WorkerPool, session: VoiceSession, onNewTrack: (t: TrackInfo) => void) {
    this.#pool = pool;
    this.#session = session;
    this.#onNewTrack = onNewTrack;
  }

  onAudio(p: AudioPacket): void {
    let t = this.tracks.get(p.userId);
    if (!t) t = this.#register(p);
    if (!t.ssrcs.includes(p.ssrc)) t.ssrcs.push(p.ssrc);
    if (!isSilenceFrame(p.opus)) t.lastVoiceMs = p.arrivalMs;
    this.#pool.onAudio(p);
  }

  #register(p: AudioPacket): TrackInfo {
    const info = this.#session.memberInfo(p.userId);
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
    this.#pool.addTrack(p.userId, stem);
    // Names from the cache may be just the id; ask the API once, for the journal/manifest (not the stem).
    if (t.username === p.userId) {
      void this.#session.fetchMemberInfo(p.userId).then((m) => {
        t.username = m.username;
        t.displayName = m.displayName;
      });
    }
    this.#onNewTrack(t);
    return t;
  }
}

/**
 * Records until a stop condition, finishes the files, and returns the manifest.
 * Throws DvrecError (with its exit code) when the recording cannot start; once recording, trouble stops it
 * cleanly and what was captured is finished.
 */
export async function runRecording(opts: RecordOptions, observer: RecordingObserver, stop: AbortSignal, hooks: RecordingHooks = {}): Promise<Manifest> {
  const claim = await prepareOutDir(opts.outDir, opts.force);
  if (claim.setAside) observer.warn(`${opts.outDir} held an unfinished recording: moved it to ${claim.setAside}; finish it with dvrec convert ${claim.setAside}`);
  const reservePath = join(opts.outDir, CAPTURE_DIR, RESERVE_FILE);
  const releaseReserve = (): void => rmSync(reservePath, { force: true });
  observer.phase({ phase: 'connecting' });

  let pool: WorkerPool | undefined;
  let router: TrackRouter | undefined;
  let receiver: Receiver | undefined;
  /** A journal write scheduled for new tracks (see scheduleJournal). */
  let journalSoon: NodeJS.Timeout | undefined;
  let stopRequested: StopReason | undefined;
  /** Why an 'error' stop happened: thrown once the captured audio is finished (exit code ≠ 0). */
  let stopError: DvrecError | undefined;
  let wake: (() => void) | undefined;
  const requestStop = (reason: StopReason, error?: DvrecError): void => {
    if (stopRequested === undefined) {
      stopRequested = reason;
      stopError = error;
    }
    wake?.();
  };
  /** The recording clock, once the session exists (for messages). */
  let clock: (() => number) | undefined;
  const at = (): string => (clock ? `${(Math.max(0, clock()) / 1000).toFixed(1)} s` : 'the start');

  const session = await VoiceSession.open(
    {
      token: opts.token, guildId: opts.guildId, channelId: opts.channelId,
      ...(opts.apiUrl ? { apiUrl: opts.apiUrl } : {}),
      ...(hooks.reconnectTimeoutMs !== undefined ? { reconnectTimeoutMs: hooks.reconnectTimeoutMs } : {}),
    },
    {
      signal: stop,
      attach: (s) => {
        hooks.onSession?.(s);
        clock = () => s.now();
        observer.phase({ phase: 'joining', guildName: s.guild.name, channelName: s.channel.name });
        const users = opts.users;
        const dave = new DaveGuard({ wrapper: () => s.dave(), canSignal: () => s.daveCanSignal(), now: () => s.now(), warn: (m) => observer.warn(redact(m)) });
        s.on('daveExecute', (id) => dave.onExecuteTransition(id));
        const rx = new Receiver({
          sink: { onAudio: (p) => router?.onAudio(p), onRtcp: (p) => pool?.onRtcp(p) },
          clock: () => s.now(),
          dave,
          ...(users ? { accept: (u: string) => users.has(u) } : {}),
        });
        receiver = rx;
        s.on('cipher', (c) => rx.setCipher(c));
        s.on('speaking', (ssrc, userId) => rx.mapSsrc(ssrc, userId));
        s.on('video', (v) => rx.onVideo(v));
        s.on('datagram', (d) => rx.onDatagram(d));
        s.on('warn', (m) => observer.warn(redact(m)));
        s.on('state', (next: SessionState) => {
          if (next.status === 'ready' && next.readyCount === 1) {
            // t=0: the pool's clock starts here, before the first decryptable datagram can arrive.
            pool = new WorkerPool({
              dir: opts.outDir,
              keepOpus: opts.format === 'opus',
              t0EpochMs: s.startedAtMs,
              // MP3 is encoded while recording, so that only a short tail is left at stop.
              ...(opts.format === 'mp3' ? { mp3: { bitrateKbps: opts.bitrateKbps, mono: opts.mono } } : {}),
              ...(hooks.workerFaults === true ? { faultInjection: true } : {}),
            });
            hooks.onPool?.(pool);
            pool.on('workerRestarted', (i) => observer.warn(`decoder worker ${i.index} restarted (${i.error ?? `exit ${i.exitCode}`}); ${i.userIds.length} track(s) continue`));
            pool.on('workerFailed', (i) => {
              // A worker that a fresh replacement cannot keep alive is a bug (or an exhausted machine): stop and
              // finish what is on disk rather than record on with some speakers silently missing.
              const why = redact(i.error ?? `exit ${i.exitCode}`);
              observer.warn(`decoder worker ${i.index} failed ${i.deaths} times within ${i.windowMs / 1000} s (${why}); stopping`);
              requestStop('error', new DvrecError(
                `decoder worker ${i.index} kept failing (${i.deaths} times within ${i.windowMs / 1000} s: ${why}): recording stopped at ${at()}; everything captured until then is kept`,
                ExitCode.INTERNAL,
              ));
            });
            pool.on('trackError', (i) => {
              const full = i.code !== undefined && FULL_CODES.has(i.code);
              // Free the reserve at once: the other tracks' last writes and the journal need the room.
              if (full) releaseReserve();
              observer.warn(`cannot write a track (${i.code ?? 'error'}): ${redact(i.message)}; stopping`);
              requestStop('error', new DvrecError(
                full
                  ? `${i.code === 'EFBIG' ? 'file size limit reached' : 'disk full'} (${i.code}) in ${opts.outDir}: recording stopped at ${at()}; everything captured until then is kept`
                  : `cannot write a track in ${opts.outDir} (${i.code ?? 'error'}): recording stopped at ${at()}; everything captured until then is kept`,
                ExitCode.OUTPUT,
              ));
            });
            router = new TrackRouter(pool, s, () => scheduleJournal());
          } else if (next.status === 'ready') {
            observer.phase({ phase: 'recording', startedAt: new Date(s.startedAtMs).toISOString() });
          } else if (next.status === 'reconnecting') {
            observer.phase({ phase: 'reconnecting', reason: next.reason });
          } else if (next.status === 'ended') {
            if (next.reason === 'disconnected') {
              if (next.detail) observer.warn(next.detail);
              requestStop('disconnected');
            } else if (next.reason === 'failed') {
              observer.warn(`voice connection lost: ${next.detail ?? 'failed'}`);
              requestStop('error', new DvrecError(`voice connection lost (${next.detail ?? 'failed'}): recording stopped at ${at()}; everything captured until then is kept`, ExitCode.NETWORK));
            } else if (next.reason === 'rejected') {
              // The voice server ended the session and Discord says not to come back (close-codes.ts).
              observer.warn(`${next.detail ?? 'the voice server ended the session'}; stopping`);
              requestStop('error', new DvrecError(`${next.detail ?? 'the voice server ended the session'}: recording stopped at ${at()}; everything captured until then is kept`, ExitCode.VOICE_REJECTED));
            }
          }
        });
      },
    },
  ).catch(async (e: unknown) => {
    await pool?.cleanup(0).catch(() => undefined);
    await pool?.close().catch(() => undefined);
    releaseReserve();
    // Refused, unreachable or cancelled before t=0: nothing was captured, so leave no trace of this run
    // (an empty recordings/<guild>-<channel>-<time>/ per failed cron run helps nobody).
    if (!router?.tracks.size) releaseOutDir(claim);
    throw e;
  });

  const startedAt = new Date(session.startedAtMs).toISOString();
  const journal: Journal = {
    version: 1,
    guildId: opts.guildId,
    channelId: opts.channelId,
    startedAt,
    startedAtMs: session.startedAtMs,
    flushedMs: 0,
    format: opts.format,
    mono: opts.mono,
    bitrateKbps: opts.bitrateKbps,
    mix: opts.mix,
    tracks: [],
  };
  let journalBroken = false;
  /**
   * A new track is journalled soon, not at once: when hundreds of members start speaking together, one
   * synchronous rewrite per new user (each listing every track so far) stalled the main thread for hundreds
   * of milliseconds, long enough for the kernel's socket buffer to overflow and drop audio. A capture that a
   * crash leaves unjournalled is still finished by `convert DIR` (as an orphan named by its stem).
   */
  function scheduleJournal(): void {
    journalSoon ??= setTimeout(() => {
      journalSoon = undefined;
      writeJournalSafe();
    }, NEW_TRACK_JOURNAL_MS);
  }
  function writeJournalSafe(): void {
    if (journalBroken) return;
    try {
      // What the workers confirmed flushed (each flushes before its status report), never past now.
      journal.flushedMs = Math.max(journal.flushedMs, Math.floor(Math.min(session.now(), pool?.flushedMs ?? 0)));
      journal.tracks = journalTracks();
      if (receiver) journal.dropped = receiver.drops();
      writeJsonAtomic(join(opts.outDir, JOURNAL_FILE), journal);
    } catch (e) {
      journalBroken = true;
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== undefined && FULL_CODES.has(code)) releaseReserve();
      observer.warn(`cannot write ${JOURNAL_FILE}: ${redact((e as Error).message)}; stopping`);
      requestStop('error', new DvrecError(`cannot write ${JOURNAL_FILE} in ${opts.outDir} (${code ?? 'error'}): recording stopped at ${at()}; everything captured until then is kept`, ExitCode.OUTPUT));
    }
  }
  function journalTracks(): JournalTrack[] {
    const live = pool?.status();
    const out: JournalTrack[] = [];
    for (const t of router?.tracks.values() ?? []) {
      const s = live?.get(t.userId);
      if (s) Object.assign(t.packets, { received: s.received, lost: s.lost, concealed: s.concealed });
      t.packets.undecryptable = receiver?.undecryptableByUser.get(t.userId) ?? 0;
      // Duplicates: the jitter buffer's (fresh nonce) plus the receiver's (same nonce, stopped by the replay filter).
      t.packets.duplicate = (s?.duplicate ?? 0) + (receiver?.duplicateByUser.get(t.userId) ?? 0);
      out.push(toJournalTrack(t));
    }
    return out;
  }

  observer.phase({ phase: 'recording', startedAt });
  writeJournalSafe();

  // ---- stop conditions ----
  const onAbort = (): void => requestStop('signal');
  if (stop.aborted) onAbort();
  else stop.addEventListener('abort', onAbort, { once: true });
  let durationTimer: NodeJS.Timeout | undefined;
  if (opts.durationMs !== undefined) {
    durationTimer = setTimeout(() => requestStop('duration'), Math.max(0, opts.durationMs - session.now()));
  }
  let emptySince: number | undefined;
  const heartbeat = setInterval(() => {
    receiver?.expire();
    writeJournalSafe();
    const now = session.now();
    const bytes = captureBytes(opts.outDir, router);
    observer.status(liveStatus(now, bytes, router, pool));
    if (opts.maxSizeBytes !== undefined && bytes >= opts.maxSizeBytes) requestStop('max-size');
    if (opts.stopWhenEmptyMs !== undefined) {
      if (session.humansInChannel() === 0) {
        emptySince ??= now;
        // + slack: heartbeats land a little early or late, and a grace of whole heartbeats must not wait one more.
        if (now - emptySince + 50 >= opts.stopWhenEmptyMs) requestStop('empty-channel');
      } else emptySince = undefined;
    }
  }, HEARTBEAT_MS);

  if (stopRequested === undefined) await new Promise<void>((resolve) => (wake = resolve));
  const reason = stopRequested!;
  // The stop instant: everything is cut here, on the recording clock, for every track alike.
  const endMs = Math.max(0, Math.round(session.now()));
  clearInterval(heartbeat);
  clearTimeout(durationTimer);
  clearTimeout(journalSoon);
  stop.removeEventListener('abort', onAbort);
  observer.phase({ phase: 'stopping', reason });
  session.close();

  // ---- finish ----
  const stats = pool ? await pool.cleanup(endMs) : new Map();
  await pool?.close().catch(() => undefined);
  const streamedMp3: StreamedMp3[] = [];
  for (const t of router?.tracks.values() ?? []) {
    const s = stats.get(t.userId);
    if (s?.mp3?.state === 'done') streamedMp3.push({ stem: t.stem, path: s.mp3.path, frames: s.mp3.frames, bitrateKbps: s.mp3.bitrateKbps, mono: s.mp3.mono });
    if (s) {
      t.packets = copyStats(s);
      if (s.startOffsetMs !== null) t.startOffsetMs = s.startOffsetMs;
      for (const ssrc of s.ssrcs) if (!t.ssrcs.includes(ssrc)) t.ssrcs.push(ssrc);
    }
    t.packets.undecryptable += receiver?.undecryptableByUser.get(t.userId) ?? 0;
    t.packets.duplicate += receiver?.duplicateByUser.get(t.userId) ?? 0;
  }
  // The reserve has done its job (room for the final journal, header patches and manifest on a full disk).
  releaseReserve();
  journal.tracks = [...(router?.tracks.values() ?? [])].map(toJournalTrack);
  journal.flushedMs = endMs;
  journal.endedAt = new Date(session.startedAtMs + endMs).toISOString();
  journal.durationMs = endMs;
  try {
    if (receiver) journal.dropped = receiver.drops();
    writeJsonAtomic(join(opts.outDir, JOURNAL_FILE), journal);
  } catch (e) {
    const why = stopError ? `${stopError.message}; then ` : '';
    throw new DvrecError(`${why}cannot write ${JOURNAL_FILE}: ${redact((e as Error).message)} (the captures are in ${opts.outDir}; run dvrec convert ${opts.outDir} after freeing space)`, ExitCode.OUTPUT);
  }
  if (receiver) reportDrops(receiver, observer);

  observer.phase({ phase: 'converting', tracks: journal.tracks.length });
  let manifest: Manifest;
  try {
    manifest = await finishRecording(opts.outDir, {
      ...(opts.ffmpegPath !== undefined ? { ffmpegPath: opts.ffmpegPath } : {}),
      force: opts.force,
      durationMs: endMs,
      streamedMp3,
      onProgress: (p) => observer.convertProgress(p),
    });
  } catch (e) {
    if (!stopError) throw e;
    // Say first why the recording stopped; the capture stays on disk for `convert`.
    throw new DvrecError(`${stopError.message}; finishing failed too (${redact((e as Error).message)}): run dvrec convert ${opts.outDir} after freeing space`, stopError.exitCode, { cause: e });
  }
  observer.phase({ phase: 'done', manifest });
  // The files are finished, but the recording ended because something broke: the exit code must say so.
  if (stopError) throw stopError;
  return manifest;
}

function toJournalTrack(t: TrackInfo): JournalTrack {
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

/** What prepareOutDir made, so that a run which captured nothing can take exactly that away again. */
interface OutDirClaim {
  dir: string;
  /** The topmost directory this run created (`mkdir -p` may create several levels), if any. */
  createdTop: string | undefined;
  /** Whether this run created `.capture/`. */
  createdCaptureDir: boolean;
  /** Where an unfinished recording found in the directory was moved (--force), if one was. */
  setAside?: string;
}

/** Creates the output directory (private) and refuses to clobber an unfinished recording. */
async function prepareOutDir(dir: string, force: boolean): Promise<OutDirClaim> {
  let createdTop: string | undefined;
  try {
    createdTop = await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    await fsp.access(dir, fsConstants.W_OK);
  } catch (e) {
    throw new DvrecError(`cannot write to ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, ExitCode.OUTPUT);
  }
  let setAside: string | undefined;
  if (hasUnfinishedRecording(dir)) {
    if (!force) throw new DvrecError(`${dir} holds an unfinished recording (${JOURNAL_FILE}); run dvrec convert ${dir}, or use --force to move it aside`, ExitCode.OUTPUT);
    // A new recording never finishes another one's captures as its own (leftover-capture.ts).
    try {
      setAside = setAsideUnfinished(dir);
    } catch (e) {
      throw new DvrecError(`cannot move the unfinished recording in ${dir} aside: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; run dvrec convert ${dir} first`, ExitCode.OUTPUT);
    }
  }
  const claim: OutDirClaim = { dir, createdTop, createdCaptureDir: !existsSync(join(dir, CAPTURE_DIR)), ...(setAside ? { setAside } : {}) };
  try {
    await ensureCaptureDir(dir);
    await fsp.writeFile(join(dir, CAPTURE_DIR, RESERVE_FILE), Buffer.alloc(RESERVE_BYTES), { mode: 0o600 });
  } catch (e) {
    await fsp.rm(join(dir, CAPTURE_DIR, RESERVE_FILE), { force: true }).catch(() => undefined);
    releaseOutDir(claim);
    throw new DvrecError(`cannot write to ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (is the disk full?)`, ExitCode.OUTPUT);
  }
  return claim;
}

/**
 * Removes what prepareOutDir created, for a run that captured nothing: `.capture/` and the directories
 * `mkdir -p` made, innermost first, each only while it is empty (rmdir, never a recursive delete). A
 * directory that existed before, or holds anything this run did not put there, is left alone.
 */
function releaseOutDir(claim: OutDirClaim): void {
  rmSync(join(claim.dir, CAPTURE_DIR, RESERVE_FILE), { force: true });
  if (claim.createdCaptureDir) {
    try {
      rmdirSync(join(claim.dir, CAPTURE_DIR));
    } catch {
      return; // not empty: something else is in there; keep everything
    }
  }
  if (claim.createdTop === undefined) return;
  for (let d = claim.dir; ; d = dirname(d)) {
    try {
      rmdirSync(d);
    } catch {
      return;
    }
    if (d === claim.createdTop || dirname(d) === d) return;
  }
}

/** Bytes the captures hold (their file sizes; pauses are holes and cost nothing on disk). */
function captureBytes(dir: string, router: TrackRouter | undefined): number {
  let total = 0;
  for (const t of router?.tracks.values() ?? []) {
    try {
      total += statSync(capturePath(dir, t.stem)).size;
    } catch {
      /* not created yet */
    }
  }
  return total;
}

function liveStatus(elapsedMs: number, bytesWritten: number, router: TrackRouter | undefined, pool: WorkerPool | undefined): LiveStatus {
  const live = pool?.status();
  return {
    elapsedMs,
    bytesWritten,
    tracks: [...(router?.tracks.values() ?? [])].map((t) => {
      const s = live?.get(t.userId);
      return {
        userId: t.userId,
        displayName: t.displayName,
        speaking: s?.speaking ?? elapsedMs - t.lastVoiceMs < 300,
        activeMs: s?.activeMs ?? 0,
        received: s?.received ?? 0,
        lost: s?.lost ?? 0,
        concealed: s?.concealed ?? 0,
        bytes: s?.bytes ?? 0,
      };
    }),
  };
}

/** One warning line for hostile or undecryptable traffic, so it is visible but never fatal. */
function reportDrops(receiver: Receiver, observer: RecordingObserver): void {
  const c = receiver.counters;
  const parts: string[] = [];
  if (c.malformed) parts.push(`${c.malformed} malformed`);
  if (c.undecryptable) parts.push(`${c.undecryptable} failed transport decryption`);
  if (c.daveUndecryptable) parts.push(`${c.daveUndecryptable} failed DAVE decryption`);
  if (c.unknownSsrc) parts.push(`${c.unknownSsrc} from unknown SSRCs`);
  if (c.rtcpUndecryptable) parts.push(`${c.rtcpUndecryptable} undecryptable RTCP`);
  if (c.replayed) parts.push(`${c.replayed} replayed or duplicated`);
  if (c.badPadding) parts.push(`${c.badPadding} with impossible padding`);
  if (parts.length) observer.warn(`skipped datagrams: ${parts.join(', ')}`);
}
