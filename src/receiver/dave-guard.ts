/**
 * Stage 4 of the receive path: DAVE (end-to-end) decryption, with dvrec's own failure policy: a failed frame is
 * judged per sender, and the recorder's MLS session is re-initialised only on evidence that the RECORDER's state is
 * at fault, never because one member's frames fail while others decrypt.
 *
 * Why not @discordjs/voice's `DAVESession.decrypt` (0.19.2, dist/index.mjs): it counts consecutive failures across
 * ALL senders, so one member sending bad frames while nobody else speaks makes it re-initialise (op 31, a new key
 * package: everyone's audio lost until the group is rebuilt); and past its tolerance it recovers only
 * `if (this.lastTransitionId)`, so after a transition with id 0 it throws on every failure and never recovers
 * (openclaw/openclaw#81518). This module decrypts through the wrapper's underlying @snazzah/davey session with the
 * same preconditions the wrapper checks, never touches the wrapper's counter, and recovers with the wrapper's own
 * `recoverFromInvalidTransition(id)` (op 31 + reinit + a new key package), which works whatever the id.
 *
 * A failure is evidence only when it is a DAVE frame (trailer FA FA) that fails while the recorder is settled in
 * a group: session ready, no transition pending (for less than {@link PENDING_MAX_MS}), not re-initialising. Failures during a transition are lost frames
 * (protocol.md "Commit Handling": senders switch keys at op 22), and a plain Opus frame that fails comes from a
 * sender that is not encrypting (not yet welcomed, or a downgrade), which says nothing about the recorder.
 *
 * The recorder's state is judged broken, and re-initialised, on any of:
 *  - a missed transition: the voice server executes (op 22) a transition the recorder never prepared while it is
 *    settled in a group (it missed that commit or welcome: the members moved on without it);
 *  - several senders: {@link MULTI_SENDERS} or more members each with {@link MULTI_FRAMES} failed DAVE frames and
 *    no DAVE frame from anyone decrypting since;
 *  - a lone sender: one member's DAVE frames all failing for {@link LONE_FRAMES} frames and {@link LONE_MS} with
 *    nobody's decrypting since. Ambiguous (a broken recorder, or a hostile or broken member alone): if the member
 *    is at fault, recovering costs the others only what they say during the re-add (nobody else was speaking);
 *    if the recorder is, waiting costs the speaker everything until someone else speaks. So it recovers, but at
 *    most once per member and recording.
 *  - out of the group: no MLS group for {@link OUT_MS} while members' DAVE frames keep arriving
 *    ({@link OUT_FRAMES}): a welcome that never came, or one rejected while re-initialising, which
 *    @discordjs/voice 0.19.2 then ignores (`recoverFromInvalidTransition` returns at once while `reinitializing`),
 *    leaving the recorder out for the rest of the call. The normal wait for a welcome is one transition (the voice
 *    server's ready timeout is ~2 s); asking again early only replaces a pending member's key package.
 * The members blamed for a recovery are on probation: if their frames still fail once the recorder is back in a
 * group ({@link JUDGE_FRAMES}), they are judged, and their failures are never evidence again for this recording.
 * Recoveries are rate-limited: at least {@link MIN_GAP_MS} apart, the gap doubling (to {@link MAX_GAP_MS}) while
 * recoveries follow each other without a single frame decrypting in between. Each is reported with its reason.
 *
 * Note (protocol.md "Truncated synchronization nonce"; checked with @snazzah/davey 0.1.12): a DAVE decryptor
 * decrypts a given key/nonce once; decrypting the same frame a second time fails (NoValidCryptorFound). Whoever
 * else decrypts the same frames with the same session (e.g. a host bot's `receiver.subscribe()`) makes the second
 * attempt fail.
 */
import { isSilenceFrame, looksLikeDaveFrame, type DaveFrameDecryptor } from './dave.ts';

/** @snazzah/davey's `MediaType.AUDIO` (a const enum in its typings). */
const MEDIA_AUDIO = 0;

/** Members failing together that make the recorder's state the suspect. */
export const MULTI_SENDERS = 2;
/** Failed DAVE frames each of them must have sent (100 ms of audio) with nobody decrypting since. */
export const MULTI_FRAMES = 5;
/** A lone member's failed DAVE frames (1 s of audio) with nobody decrypting since... */
export const LONE_FRAMES = 50;
/** ...spread over at least this long. */
export const LONE_MS = 1000;
/** Failed DAVE frames after a recovery that judge a blamed member (the recorder being back in a group). */
export const JUDGE_FRAMES = 10;
/** DAVE frames lost for want of a group... */
export const OUT_FRAMES = 50;
/** ...over at least this long, before asking to be added again. */
export const OUT_MS = 3000;
/**
 * A transition still pending after this long is taken to be one whose op 22 never came (the voice server executes
 * within its ready timeout, about two seconds: protocol.md "Member Remove"). @snazzah/davey decrypts with the new
 * epoch's keys from the commit on, so nothing is lost then; but the wrapper keeps it pending for good, which would
 * make every later failure look like part of a transition.
 */
export const PENDING_MAX_MS = 5000;
/** Smallest gap between two recoveries; doubled while recoveries do not make anything decrypt. */
export const MIN_GAP_MS = 3000;
export const MAX_GAP_MS = 300_000;

/** The part of the @snazzah/davey session (`DAVESession`) used here. */
export interface DaveySession {
  readonly ready: boolean;
  decrypt(userId: string, mediaType: 0, packet: Buffer): Buffer;
  canPassthrough(userId: string): boolean;
}

/**
 * The parts of @discordjs/voice 0.19.2's `DAVESession` wrapper (`connection.state.networking.state.dave`) that the
 * guard reads, and the one method it calls. `pendingTransitions` is private in the library's typings: read only.
 */
export interface DaveWrapper {
  readonly session: DaveySession | undefined;
  readonly protocolVersion: number;
  readonly lastTransitionId?: number | undefined;
  readonly pendingTransitions: ReadonlyMap<number, number>;
  readonly reinitializing: boolean;
  recoverFromInvalidTransition(transitionId: number): void;
  /** What recoverFromInvalidTransition does once `reinitializing` is set: a fresh session and key package... */
  reinit(): void;
  /** ...after the event on which Networking sends op 31 (Networking.onDaveInvalidateTransition). */
  emit(event: 'invalidateTransition', transitionId: number): boolean;
}

export interface DaveGuardOptions {
  /** The connection's current wrapper (a new one after every reconnect); undefined without DAVE. */
  wrapper: () => DaveWrapper | undefined;
  /** True while op 31 and a key package can be sent (the voice websocket is Ready). */
  canSignal: () => boolean;
  /** Milliseconds on any monotonic clock. */
  now: () => number;
  /** One line per recovery or verdict. */
  warn: (message: string) => void;
}

type Verdict = 'ok' | 'probation' | 'judged';

interface Sender {
  verdict: Verdict;
  /** Failed DAVE frames since the last frame that decrypted from anyone (valid while `mark` is current). */
  failed: number;
  firstFailedAtMs: number;
  mark: number;
  /** On probation: failed DAVE frames since the recorder was settled again after the recovery. */
  probationFailed: number;
  /** A lone-sender recovery was made on this member's account (allowed once per recording). */
  loneUsed: boolean;
}

/** Hard cap on per-user state (the SSRC map's own cap is larger; beyond it, the oldest entries go). */
const MAX_SENDERS = 4096;

export class DaveGuard implements DaveFrameDecryptor {
  readonly #opts: DaveGuardOptions;
  readonly #senders = new Map<string, Sender>();
  #wrapper: DaveWrapper | undefined;
  /** Bumped by every frame that decrypts and by every recovery: evidence counted before it is stale. */
  #mark = 0;
  /** Members (verdict ok) with MULTI_FRAMES failures under the current mark, in the order they got there. */
  #failing: string[] = [];
  #failingMark = 0;
  /** A transition the voice server executed that the recorder never prepared (waiting for a recovery slot)... */
  #missedTransition: number | null = null;
  /** ...noticed while the wrapper's last executed transition was this one (a later one supersedes the evidence). */
  #missedAfter: number | undefined;
  #lastRecoveryAtMs = -Infinity;
  #nextRecoveryAtMs = -Infinity;
  #gapMs = MIN_GAP_MS;
  /** A recovery happened and nothing has decrypted since. */
  #recoveredWithoutSuccess = false;
  /** Pending transitions of the current wrapper, and since when the guard has seen each pending. */
  readonly #pendingSeen = new Map<number, number>();
  /** DAVE frames lost while the recorder had no group, and since when (reset by being in a group). */
  #outFrames = 0;
  #outSinceMs = 0;
  /** Recoveries requested so far. */
  recoveries = 0;

  constructor(opts: DaveGuardOptions) {
    this.#opts = opts;
  }

  decrypt(frame: Buffer, userId: string): Buffer | null {
    if (isSilenceFrame(frame)) return frame;
    const w = this.#current();
    const session = w?.session;
    // The wrapper's own preconditions (DAVESession.decrypt): no group yet, or a sender allowed to pass through.
    if (!w || !session || !session.ready || (w.protocolVersion === 0 && !session.canPassthrough(userId))) {
      if (!looksLikeDaveFrame(frame)) return frame;
      if (w && session && !session.ready) this.#outOfGroup(w);
      return null;
    }
    this.#outFrames = 0;
    // Noted on every frame while a transition is pending, so that its age is known when it matters.
    if (w.pendingTransitions.size > 0) this.#inTransition(w, this.#opts.now());
    if (this.#missedTransition !== null) this.#recoverMissed(w);
    const isDave = looksLikeDaveFrame(frame);
    let out: Buffer;
    try {
      out = session.decrypt(userId, MEDIA_AUDIO, frame);
    } catch {
      if (isDave) this.#failed(w, userId);
      return null;
    }
    // Returned unchanged but still a DAVE frame: ciphertext must never reach the Opus decoder.
    if (out === frame && isDave) return null;
    if (isDave) this.#decrypted(userId);
    return out;
  }

  /**
   * op 22 Execute Transition arrived. Called after @discordjs/voice's own handler has run (see voice-session.ts),
   * it is checked once the current event is over, so the order of websocket listeners does not matter.
   */
  onExecuteTransition(transitionId: number): void {
    const w = this.#current();
    setImmediate(() => {
      if (!w || w !== this.#current() || w.lastTransitionId === transitionId) return;
      if (!this.#settled(w, this.#opts.now())) return; // a welcome, a transition or a re-initialisation in progress
      this.#missedTransition = transitionId;
      this.#missedAfter = w.lastTransitionId;
      this.#recoverMissed(w);
    });
  }

  #recoverMissed(w: DaveWrapper): void {
    const id = this.#missedTransition!;
    // Re-initialising, or a later transition executed since: the recorder's state was renewed another way.
    if (w.reinitializing || w.lastTransitionId !== this.#missedAfter) {
      this.#missedTransition = null;
      return;
    }
    this.#tryRecover(w, id, `the voice server executed transition ${id}, which this recorder never prepared (a missed commit or welcome)`, []);
  }

  /** The wrapper now in use; a new one (reconnect) starts with fresh evidence (verdicts on members are kept). */
  #current(): DaveWrapper | undefined {
    const w = this.#opts.wrapper();
    if (w !== this.#wrapper) {
      this.#wrapper = w;
      this.#mark++;
      this.#outFrames = 0;
      this.#pendingSeen.clear();
      this.#missedTransition = null;
      for (const s of this.#senders.values()) if (s.verdict === 'probation') s.verdict = 'ok';
    }
    return w;
  }

  #sender(userId: string): Sender {
    let s = this.#senders.get(userId);
    if (!s) {
      if (this.#senders.size >= MAX_SENDERS) this.#senders.delete(this.#senders.keys().next().value!);
      s = { verdict: 'ok', failed: 0, firstFailedAtMs: 0, mark: -1, probationFailed: 0, loneUsed: false };
      this.#senders.set(userId, s);
    }
    return s;
  }

  #decrypted(userId: string): void {
    this.#mark++;
    if (this.#recoveredWithoutSuccess) {
      // The last recovery worked: the back-off is over.
      this.#recoveredWithoutSuccess = false;
      this.#gapMs = MIN_GAP_MS;
      this.#nextRecoveryAtMs = Math.min(this.#nextRecoveryAtMs, this.#lastRecoveryAtMs + MIN_GAP_MS);
    }
    const s = this.#senders.get(userId);
    if (s?.verdict === 'probation') s.verdict = 'ok'; // the recovery made it decryptable: the recorder was at fault
  }

  #failed(w: DaveWrapper, userId: string): void {
    const now = this.#opts.now();
    // During a transition or a re-initialisation frames are expected to fail: lost, not evidence.
    if (this.#inTransition(w, now) || w.reinitializing) return;
    const s = this.#sender(userId);
    if (s.verdict === 'judged') return;
    if (s.verdict === 'probation') {
      if (++s.probationFailed >= JUDGE_FRAMES) {
        s.verdict = 'judged';
        this.#opts.warn(`DAVE: frames from member ${userId} still fail after the recorder rejoined the MLS group: treating that member's frames as bad (counted as lost, never again a reason to re-initialise)`);
      }
      return;
    }
    if (s.mark !== this.#mark) {
      s.mark = this.#mark;
      s.failed = 0;
      s.firstFailedAtMs = now;
    }
    if (++s.failed === MULTI_FRAMES) {
      if (this.#failingMark !== this.#mark) {
        this.#failingMark = this.#mark;
        this.#failing = [];
      }
      this.#failing.push(userId);
    }
    if (!this.#mayRecover(w, now)) return;
    const failing = this.#failingMark === this.#mark ? this.#failing.filter((id) => this.#senders.get(id)?.verdict === 'ok') : [];
    if (failing.length >= MULTI_SENDERS) {
      this.#tryRecover(w, w.lastTransitionId ?? 0, `DAVE frames of ${failing.length} members (${failing.join(', ')}) all fail and none has decrypted since: the recorder's group state is out of date`, failing);
    } else if (!s.loneUsed && s.failed >= LONE_FRAMES && now - s.firstFailedAtMs >= LONE_MS) {
      s.loneUsed = true;
      this.#tryRecover(w, w.lastTransitionId ?? 0, `every DAVE frame of member ${userId} has failed for ${((now - s.firstFailedAtMs) / 1000).toFixed(1)} s with nobody else decrypting: assuming the recorder's group state is at fault (once per member)`, [userId]);
    }
  }

  /** Bookkeeping of a recovery about to be made: rate limit, fresh evidence, blamed members on probation. */
  #recovering(now: number, reason: string, blamed: string[]): void {
    this.#gapMs = this.#recoveredWithoutSuccess ? Math.min(this.#gapMs * 2, MAX_GAP_MS) : MIN_GAP_MS;
    this.#lastRecoveryAtMs = now;
    this.#nextRecoveryAtMs = now + this.#gapMs;
    this.#recoveredWithoutSuccess = true;
    this.#missedTransition = null;
    this.#mark++;
    for (const id of blamed) {
      const s = this.#sender(id);
      s.verdict = 'probation';
      s.probationFailed = 0;
    }
    this.recoveries++;
    this.#opts.warn(`DAVE: re-joining the MLS group (op 31, new key package): ${reason}`);
  }

  #mayRecover(w: DaveWrapper, now: number): boolean {
    return now >= this.#nextRecoveryAtMs && this.#settled(w, now) && this.#opts.canSignal();
  }

  /** In a group, no transition in flight, not re-initialising: a failure now is evidence, not a transition's cost. */
  #settled(w: DaveWrapper, now: number): boolean {
    return w.session?.ready === true && !this.#inTransition(w, now) && !w.reinitializing;
  }

  /** Whether a transition is in flight: pending, and for less than PENDING_MAX_MS. */
  #inTransition(w: DaveWrapper, now: number): boolean {
    const pending = w.pendingTransitions;
    if (pending.size === 0) {
      this.#pendingSeen.clear();
      return false;
    }
    let fresh = false;
    for (const id of pending.keys()) {
      let since = this.#pendingSeen.get(id);
      if (since === undefined) this.#pendingSeen.set(id, (since = now));
      if (now - since < PENDING_MAX_MS) fresh = true;
    }
    if (this.#pendingSeen.size > pending.size) for (const id of [...this.#pendingSeen.keys()]) if (!pending.has(id)) this.#pendingSeen.delete(id);
    return fresh;
  }

  /** A DAVE frame lost because the recorder has no group. */
  #outOfGroup(w: DaveWrapper): void {
    const now = this.#opts.now();
    if (this.#outFrames++ === 0) this.#outSinceMs = now;
    if (this.#outFrames < OUT_FRAMES || now - this.#outSinceMs < OUT_MS) return;
    if (now < this.#nextRecoveryAtMs || !this.#opts.canSignal()) return;
    const reason = `no MLS group for ${((now - this.#outSinceMs) / 1000).toFixed(1)} s while members' DAVE frames arrive (a welcome lost or rejected): asking to be added again`;
    this.#recovering(now, reason, []);
    this.#outFrames = 0;
    const id = w.lastTransitionId ?? 0;
    try {
      if (!w.reinitializing) {
        w.recoverFromInvalidTransition(id);
      } else {
        // The library ignores further failures while re-initialising: do what it would have done.
        w.emit('invalidateTransition', id);
        w.reinit();
      }
    } catch (e) {
      this.#opts.warn(`DAVE: re-initialising the MLS session failed: ${(e as Error).message}`);
    }
  }

  /** Re-initialises the recorder's MLS state if the rate limit and the connection allow it now. */
  #tryRecover(w: DaveWrapper, transitionId: number, reason: string, blamed: string[]): void {
    const now = this.#opts.now();
    if (!this.#mayRecover(w, now)) return;
    this.#recovering(now, reason, blamed);
    try {
      w.recoverFromInvalidTransition(transitionId);
    } catch (e) {
      this.#opts.warn(`DAVE: re-initialising the MLS session failed: ${(e as Error).message}`);
    }
  }
}
