/**
 * The one definition of what can become of a datagram on the voice socket. Every datagram the receiver sees is
 * counted under exactly one kind below, so `datagrams` = the sum of all the others (plus what is still held waiting
 * for an op 5, which counts as `unknownSsrc` once written down). The receiver's live counters, the journal's and
 * manifest's `dropped`, the stop warning and the README's hostile-input table all come from this table.
 */

/** How a kind is reported in the one-line summary at the stop (`null`: routine traffic, never listed). */
interface KindInfo {
  /** What the kind means (the manifest's documentation). */
  doc: string;
  /** Phrase for the stop warning: `N <phrase>`; null for expected traffic. */
  warn: string | null;
}

/** Every outcome of a datagram, in the order a datagram meets them on its way (rtp.ts → ... → dave-guard.ts). */
export const DROP_KINDS = {
  audio: { doc: 'Delivered as audio to a track.', warn: null },
  rtcp: { doc: 'RTCP (reports about the streams, not audio), authenticated and handed to the sinks.', warn: null },
  control: { doc: 'Keepalive echoes and IP discovery replies.', warn: null },
  malformed: { doc: 'Too short, not RTP version 2, CSRC list or header extension overrunning the datagram.', warn: 'malformed' },
  notAudio: { doc: 'RTP with a payload type other than Opus, and not video.', warn: null },
  video: { doc: "RTP of members' cameras and screen shares (and their RTX): never decrypted, never decoded.", warn: null },
  noKey: { doc: 'Arrived while no transport key was valid (before op 4, during a reconnect).', warn: null },
  badAuth: { doc: 'Transport authentication failed: forged, corrupted, wrong key.', warn: 'failed transport decryption' },
  badPadding: { doc: 'Authenticated, but its padding count overran the payload.', warn: 'with impossible padding' },
  replayed: { doc: 'Authenticated, but its transport nonce was already seen or is older than its stream\'s replay window.', warn: 'replayed or duplicated' },
  unknownSsrc: { doc: 'Authenticated, but no op 5 named its SSRC\'s user in time.', warn: 'from unknown SSRCs' },
  filtered: { doc: 'From a user not being recorded (the users filter, or while paused).', warn: null },
  daveUndecryptable: { doc: 'DAVE (end-to-end) decryption failed (a transition, a sender the recorder has no key for, a bad frame).', warn: 'failed DAVE decryption' },
  rtcpBadAuth: { doc: 'RTCP whose transport authentication failed.', warn: 'undecryptable RTCP' },
} as const satisfies Record<string, KindInfo>;

/** One outcome of a datagram. */
export type DropKind = keyof typeof DROP_KINDS;

/**
 * Datagrams by outcome: the receiver's counters, and the `dropped` section of the journal and manifest.
 * `datagrams` = the sum of every other field.
 */
export type ReceiverDrops = {
  /** Every datagram that arrived on the voice socket. */
  datagrams: number;
} & Record<DropKind, number>;

const KINDS = Object.keys(DROP_KINDS) as DropKind[];

/** All zero. */
export function emptyDrops(): ReceiverDrops {
  const d = { datagrams: 0 } as ReceiverDrops;
  for (const k of KINDS) d[k] = 0;
  return d;
}

/** The sum of the outcomes (equals `datagrams` when every datagram was counted once). */
export function accountedDrops(d: ReceiverDrops): number {
  let n = 0;
  for (const k of KINDS) n += d[k];
  return n;
}

/**
 * One line of what was skipped as hostile, broken or undecryptable (for a warning at the stop), or '' when nothing
 * was. Routine traffic (RTCP, keepalive echoes, video, users not recorded) is not listed.
 */
export function dropSummary(d: ReceiverDrops): string {
  const parts: string[] = [];
  for (const k of KINDS) {
    const phrase: string | null = DROP_KINDS[k].warn;
    if (phrase !== null && d[k] > 0) parts.push(`${d[k]} ${phrase}`);
  }
  return parts.join(', ');
}
