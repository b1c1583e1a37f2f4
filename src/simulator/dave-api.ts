/**
 * The seam between the simulated voice gateway (voice-gateway.ts) and the simulated DAVE group (dave.ts).
 * The voice gateway owns the websocket and sequencing; the DAVE side owns MLS state: the external sender
 * key, the simulated members' real @snazzah/davey sessions, proposals, commits, welcomes and transitions.
 */
export interface DaveWire {
  /** Sends a JSON voice op (21, 22, 24, ...) to the recorder. */
  json(op: number, d: unknown): void;
  /** Sends a binary DAVE op (25, 27, 29, 30, ...) to the recorder; the gateway prepends its u16 sequence. */
  binary(op: number, payload: Buffer): void;
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
   * Optional: the recorder left the call for good (4014 / channel left, not a resumable close): remove it
   * from the group (a new epoch). A resume (op 7 → op 9) keeps the client's DAVE state: call nothing.
   */
  detachRecorder?(): void;
  /** A binary frame from the recorder (op 26 key package, 28 commit/welcome). */
  onRecorderBinary(op: number, payload: Buffer): void;
  /** A JSON op from the recorder (23 transition ready, 31 invalid commit/welcome). */
  onRecorderJson(op: number, d: unknown): void;
  /** A simulated member joined the call (after op 11): add it to the group (a new epoch). */
  memberJoined(userId: string): Promise<void>;
  /** A simulated member left (op 13): remove it from the group (a new epoch). */
  memberLeft(userId: string): Promise<void>;
  /** True once the recorder has executed the transition into the current group and can decrypt media. */
  readonly recorderReady: boolean;
  /** The member's DAVE frame for one Opus packet (silence frames pass through unencrypted). */
  encryptOpus(userId: string, opus: Buffer): Buffer;
  close(): void;
}
