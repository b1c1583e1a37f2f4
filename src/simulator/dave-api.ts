/**
 * The seam between the simulated voice gateway (voice-gateway.ts) and the simulated DAVE group (dave.ts).
 * The voice gateway owns the websocket and sequencing; the DAVE side owns MLS state: the external sender
 * key, the simulated members' real @snazzah/davey sessions, proposals, commits, welcomes and transitions.
 * (index.ts imports only this file's types, so a dave:false run never loads MLS.)
 */
export interface DaveWire {
  /** Sends a JSON voice op (21, 22, 24, ...) to the recorder. */
  json(op: number, d: unknown): void;
  /** Sends a binary DAVE op (25, 27, 29, 30, ...) to the recorder; the gateway prepends its u16 sequence. */
  binary(op: number, payload: Buffer): void;
}

/** Something that happened in the group, for logs, warnings and ground truth. */
export type DaveEvent =
  | { kind: 'transition-executed'; transitionId: number; epoch: bigint; members: string[]; recorderInvolved: boolean; recorderAcked: boolean }
  | { kind: 'sole-member-reset'; userId: string }
  | { kind: 'recorder-commit-dropped'; epoch: bigint }
  | { kind: 'recorder-invalid'; transitionId: number }
  /** A fault armed with {@link DaveServer.injectRecorderFault} was applied to this transition. */
  | { kind: 'recorder-fault-applied'; fault: RecorderDaveFault; transitionId: number }
  | { kind: 'error'; error: Error };

/**
 * Something going wrong between the gateway and the recorder's MLS state (the other members are unaffected):
 *  - 'missed-commit': the next commit announcement (op 29) for the recorder never reaches it; with `execute` false
 *    the transition's op 22 is lost too. The members move to the new epoch, the recorder stays in the old one, and
 *    nothing tells it so: a desynchronised group state that only op 31 (a re-add) repairs.
 *  - 'missed-execute': the recorder gets the next commit (op 29) but never its op 22: it has the new epoch's keys,
 *    but @discordjs/voice keeps the transition pending for good.
 *  - 'bad-welcome': the next welcome (op 30) for the recorder arrives corrupted (the last byte of its encrypted group
 *    info flipped), so the recorder's MLS library rejects it and the recorder must flag it with op 31.
 */
export type RecorderDaveFault = { kind: 'missed-commit'; execute: boolean } | { kind: 'missed-execute' } | { kind: 'bad-welcome' };

export interface DaveServerOptions {
  channelId: string;
  botUserId: string;
  /** Simulated members in the call at the start (each becomes a real MLS member). */
  memberIds: string[];
  /** How long to wait for the recorder's op 23 before executing anyway (Discord: "or after a timeout"). */
  transitionTimeoutMs?: number;
  /**
   * Announce every transition that welcomes the recorder with transition id 0 ("(re)initialization", executed at
   * once: no op 23, no op 22) instead of 1..65535. See Scenario.daveWelcomeIdZero.
   */
  welcomeIdZero?: boolean;
  /** Every group event; errors of group changes are reported ONLY here (nothing throws out of the queue). */
  onEvent?: (event: DaveEvent) => void;
}

/** Counters of the DAVE side, for tests and logs. */
export interface DaveStats {
  /** Transitions executed (each a new epoch or a group (re)creation). */
  transitions: number;
  welcomesSent: number;
  commitsAnnounced: number;
  recorderCommitsDropped: number;
  recorderAckTimeouts: number;
  /** Key packages (op 26) the recorder sent, accepted or not: more than one means its MLS session was re-initialised. */
  recorderKeyPackages: number;
  /** op 31 (invalid commit/welcome) messages from the recorder. */
  recorderInvalidReports: number;
}

/** The DAVE group as the simulated gateway sees it (Simulator.daveStatus()). */
export interface DaveStatus extends DaveStats {
  /** Epoch of the established group (0 while there is none). */
  epoch: bigint;
  /** User ids holding a leaf in the group. */
  members: string[];
  /** The recorder executed its transition into the current group and can decrypt media. */
  recorderReady: boolean;
}

export interface DaveServer {
  /** 1 when DAVE is on (announced in op 4 as dave_protocol_version), 0 when off. */
  readonly protocolVersion: number;
  /**
   * The recorder finished selecting a protocol and got op 4: start bringing it into the group
   * (op 25 external sender, then wait for its op 26 key package...). Called again after a reconnect
   * (new websocket, new wire), which restarts the recorder's membership.
   */
  attachRecorder(recorderUserId: string, wire: DaveWire): void;
  /**
   * The recorder left the call for good (4014 / channel left, not a resumable close): remove it
   * from the group (a new epoch). A resume (op 7 → op 9) keeps the client's DAVE state: call nothing.
   */
  detachRecorder(): void;
  /** A binary frame from the recorder (op 26 key package, 28 commit/welcome). */
  onRecorderBinary(op: number, payload: Buffer): void;
  /** A JSON op from the recorder (23 transition ready, 31 invalid commit/welcome). */
  onRecorderJson(op: number, d: unknown): void;
  /** Arms a fault for the recorder's next commit or welcome (reported through onEvent when applied). */
  injectRecorderFault(fault: RecorderDaveFault): void;
  /** A simulated member joined the call (after op 11): add it to the group (a new epoch). */
  memberJoined(userId: string): Promise<void>;
  /** A simulated member left (op 13): remove it from the group (a new epoch). */
  memberLeft(userId: string): Promise<void>;
  /** True once the recorder has executed the transition into the current group and can decrypt media. */
  readonly recorderReady: boolean;
  /** Current epoch of the established group (0 while unestablished). */
  readonly epoch: bigint;
  /** User ids by leaf index (null = blank leaf). */
  readonly leaves: readonly (string | null)[];
  readonly stats: DaveStats;
  /** The member's DAVE frame for one Opus packet (silence frames pass through unencrypted). */
  encryptOpus(userId: string, opus: Buffer): Buffer;
  /** A frame the recorder's client sent, decrypted by a call member (null when no member can decrypt it). */
  decryptRecorderFrame(frame: Buffer): Buffer | null;
  /**
   * A member's video frame as its client sends it: DAVE-encrypted for the codec (whose headers stay in the clear),
   * or unchanged while the member has no group to encrypt with.
   */
  encryptVideo(userId: string, codec: 'H264' | 'VP8' | 'VP9' | 'AV1', frame: Buffer): Buffer;
  close(): void;
}
