/**
 * What dvrec does when Discord's voice server closes the voice websocket: one table, code → action.
 *
 * Discord's meaning of each code is quoted from discord-api-docs, topics/opcodes-and-status-codes.md ("Voice Close
 * Event Codes"; 4017 since the DAVE change of 2026-03). What @discordjs/voice 0.19.2 does on its own, before dvrec
 * sees the close (dist/index.mjs `Networking.onWsClose`, `VoiceConnection.onNetworkingClose`):
 *   - 4015 or < 4000 while the session is Ready: it resumes (op 7) on a new websocket;
 *   - 4014: it goes to Disconnected and does nothing more;
 *   - anything else (and 4015 / < 4000 before Ready or during a resume): it sends a new op 4 join to the main
 *     gateway at once ("rejoin"), for ever: `rejoinAttempts` is only counted, never bounded.
 * So the library alone can loop (4017 → rejoin → 4017 …; 4021 rate limited → rejoin → 4021 …). dvrec bounds every
 * recovery with {@link RecoveryBudget} and ends the session itself where Discord says "should not reconnect".
 *
 * Actions:
 *   - `resume`: the library resumes; the recording goes on on the same timeline.
 *   - `rejoin`: the library rejoins with a fresh voice session (new SSRC mapping, key, DAVE group); the recording
 *     goes on on the same timeline.
 *   - `end`: the session is over. Before t=0 it is a refusal (exit 7). After t=0 the recording stops cleanly (files
 *     finished, manifest written) and exits with `exit`: 'stopped' (0: the call is over for us — kicked, channel
 *     deleted) or 'rejected' (7, VOICE_REJECTED: Discord refused to go on serving the session).
 */

export type CloseAction = 'resume' | 'rejoin' | 'end';

export interface ClosePolicy {
  code: number;
  /** Discord's meaning, short (used in messages). */
  meaning: string;
  action: CloseAction;
  /** For `end` after t=0: a clean stop (exit 0) or a refusal (exit 7). */
  exit: 'stopped' | 'rejected';
  /**
   * For `end` after t=0: wait this long for the session to come back on its own before ending (4022 "voice server
   * changed": Discord names the new server in a VOICE_SERVER_UPDATE; the library connects to it without dvrec
   * asking for anything). 0: end at once.
   */
  graceMs: number;
}

/** 4022: how long a terminated call may take to come back on a new voice server before the recording ends. */
export const CALL_TERMINATED_GRACE_MS = 5000;

/**
 * Discord's documented voice close codes (discord-api-docs, "Voice Close Event Codes"), with dvrec's action.
 * "Should not reconnect" in Discord's text → `end`; "Try resuming" → `resume`; no advice → `rejoin` (a fresh
 * session; bounded), except the protocol refusals a new session would only repeat (4012, 4016, 4017) → `end`.
 */
const TABLE: Record<number, Omit<ClosePolicy, 'code'>> = {
  // "You sent an invalid opcode." / "…invalid payload…" / "…payload before identifying…" / "…more than one
  // identify…": the library's own protocol slips; a fresh session starts clean.
  4001: { meaning: 'unknown opcode', action: 'rejoin', exit: 'rejected', graceMs: 0 },
  4002: { meaning: 'failed to decode payload', action: 'rejoin', exit: 'rejected', graceMs: 0 },
  4003: { meaning: 'not authenticated', action: 'rejoin', exit: 'rejected', graceMs: 0 },
  // "The token you sent in your identify payload is incorrect." — the VOICE token (VOICE_SERVER_UPDATE), not the
  // bot's: a rejoin gets a new one.
  4004: { meaning: 'voice authentication failed', action: 'rejoin', exit: 'rejected', graceMs: 0 },
  4005: { meaning: 'already authenticated', action: 'rejoin', exit: 'rejected', graceMs: 0 },
  // "Your session is no longer valid." Seen when a channel empties; a resume would be refused, a new session works.
  4006: { meaning: 'session no longer valid', action: 'rejoin', exit: 'rejected', graceMs: 0 },
  // "Your session has timed out."
  4009: { meaning: 'session timed out', action: 'rejoin', exit: 'rejected', graceMs: 0 },
  // "We can't find the server you're trying to connect to."
  4011: { meaning: 'voice server not found', action: 'rejoin', exit: 'rejected', graceMs: 0 },
  // "We didn't recognize the protocol you sent." A new session would send the same.
  4012: { meaning: 'unknown protocol', action: 'end', exit: 'rejected', graceMs: 0 },
  // "Disconnect individual client (you were kicked, the main gateway session was dropped, etc.). Should not reconnect."
  4014: { meaning: 'disconnected (kicked, moved out, or the channel was deleted)', action: 'end', exit: 'stopped', graceMs: 0 },
  // "The server crashed. Our bad! Try resuming."
  4015: { meaning: 'voice server crashed', action: 'resume', exit: 'rejected', graceMs: 0 },
  // "We didn't recognize your encryption."
  4016: { meaning: 'unknown encryption mode', action: 'end', exit: 'rejected', graceMs: 0 },
  // "This channel requires a client supporting E2EE via the DAVE Protocol." dvrec always offers DAVE; a channel
  // that still refuses it will refuse a new session too.
  4017: { meaning: 'end-to-end encryption (DAVE) is required', action: 'end', exit: 'rejected', graceMs: 0 },
  // "You sent a malformed request." No advice; a fresh session starts clean (bounded like every rejoin).
  4020: { meaning: 'bad request', action: 'rejoin', exit: 'rejected', graceMs: 0 },
  // "Disconnect due to rate limit exceeded. Should not reconnect."
  4021: { meaning: 'rate limited (Discord asks not to reconnect)', action: 'end', exit: 'rejected', graceMs: 0 },
  // "Disconnect all clients due to call terminated (channel deleted, voice server changed, etc.). Should not
  // reconnect." After a server change Discord names the new server itself; dvrec only waits for that.
  4022: { meaning: 'call terminated (channel deleted or voice server changed)', action: 'end', exit: 'stopped', graceMs: CALL_TERMINATED_GRACE_MS },
};

/** The policy for a close code. Codes below 4000 (the websocket itself dropped) resume; unknown 4xxx rejoin. */
export function closePolicy(code: number): ClosePolicy {
  const known = TABLE[code];
  if (known) return { code, ...known };
  if (code < 4000) return { code, meaning: `websocket closed (${code})`, action: 'resume', exit: 'rejected', graceMs: 0 };
  // Undocumented: assume nothing that loses audio — try a fresh session, bounded.
  return { code, meaning: `undocumented close code ${code}`, action: 'rejoin', exit: 'rejected', graceMs: 0 };
}

/** Every documented code, for the README table and the tests. */
export function documentedCloseCodes(): ClosePolicy[] {
  return Object.keys(TABLE).map((c) => closePolicy(Number(c)));
}

/** Closes that may be recovered from (resumed or rejoined) within {@link RECOVERY_WINDOW_MS}; one more ends the session. */
export const RECOVERY_LIMIT = 5;
export const RECOVERY_WINDOW_MS = 60_000;

/**
 * Bounds recoveries: a code that keeps coming back (the library would resume or rejoin for ever) ends the session
 * after {@link RECOVERY_LIMIT} recoveries within {@link RECOVERY_WINDOW_MS}. A close now and then over hours never
 * reaches the limit.
 */
export class RecoveryBudget {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #times: number[] = [];

  constructor(limit = RECOVERY_LIMIT, windowMs = RECOVERY_WINDOW_MS) {
    this.#limit = limit;
    this.#windowMs = windowMs;
  }

  /** Counts a close at `nowMs`; false when it is one too many (the session must end). */
  take(nowMs: number): boolean {
    while (this.#times.length > 0 && nowMs - this.#times[0]! > this.#windowMs) this.#times.shift();
    this.#times.push(nowMs);
    return this.#times.length <= this.#limit;
  }

  /** Closes counted within the window (after the last take). */
  get count(): number {
    return this.#times.length;
  }

  get windowMs(): number {
    return this.#windowMs;
  }
}
