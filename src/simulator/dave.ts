/**
 * The DAVE side of the local Discord: the voice gateway's role as MLS delivery service and external
 * sender, plus the simulated call members, each a REAL MLS member (a @snazzah/davey DAVESession).
 *
 * It follows Discord's DAVE protocol description (github.com/discord/dave-protocol, protocol.md):
 * - "External Sender": the gateway owns a P-256 key and sends its ExternalSender to members (op 25)
 *   before any group is negotiated or a member is added.
 * - "Initial Group Creation": members create a local one-member group once they know the external
 *   sender; the first commit (from any pending member) for the gateway's add proposals establishes
 *   the group; new members get op 30 Welcome.
 * - "Member Add" / "Member Remove" / "Proposal Handling": the gateway signs external Add/Remove proposals,
 *   broadcasts them to group members (op 27), every member commits (op 28), and "Commit Ordering":
 *   the gateway broadcasts the FIRST commit it receives (op 29). Our simulated members live in this
 *   process, so their commit always arrives first; the recorder's competing commit is inspected and dropped.
 * - "Commit Handling": members answer op 23 ready-for-transition; once all are ready (or after a
 *   timeout) the gateway sends op 22 execute, and only then do senders switch to the new epoch's keys.
 *   davey switches a session's sender key as soon as it merges a commit, so simulated members merge
 *   commits/welcomes at execute time: until then they keep sending with the previous epoch's keys,
 *   exactly like a real client (receivers keep old keys for up to 10 s for frames in flight).
 * - "Sole member reset": when one member is left in an established group it gets op 24 (epoch 1)
 *   and op 21 (transition 0), and the group becomes unestablished again.
 * - "Recovery from Invalid Commit or Welcome": op 31 → remove the flagging member, re-add it with the
 *   new key package it sends. An op 31 or a new key package that arrives while the transition welcoming the
 *   recorder is still in flight makes the leaf it is being given stale at once (the client has thrown that
 *   state away), so the next round replaces it.
 * - Transition ids: 1..65535 for commits, 0 for "(re)initialization, execute immediately" (op 21). Which id Discord
 *   gives the transition that welcomes a member is undocumented; with `welcomeIdZero` the recorder's welcomes
 *   carry 0 and execute at once (no op 23/op 22), the variant that leaves @discordjs/voice 0.19.2 with
 *   lastTransitionId 0.
 * - Recorder faults (`injectRecorderFault`): a commit announcement or its op 22 lost on the way to the recorder,
 *   or a corrupted welcome; the rest of the group carries on as it would on Discord.
 *
 * The client side this must satisfy is @discordjs/voice 0.19.2 (dist/index.js: DAVESession wrapper,
 * Networking.onWsPacket / onWsBinary), which drives a @snazzah/davey session.
 *
 * All group changes run one at a time through a queue and are computed by `#reconcile`, which compares
 * who SHOULD be in the group (members in the call + the recorder once it sent a key package) with the
 * leaves the gateway knows, and performs one commit round per difference.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import davey from '@snazzah/davey';
import type { DAVESession as DaveySession } from '@snazzah/davey';
import type { DaveEvent, DaveServer, DaveServerOptions, DaveStats, DaveWire, RecorderDaveFault } from './dave-api.ts';
import {
  CIPHERSUITE_P256,
  CONTENT_COMMIT,
  ExternalSenderKey,
  addProposal,
  groupIdFor,
  parseKeyPackage,
  parsePublicMessageHeader,
  proposalsPayload,
  removeProposal,
  vec,
  withTransitionId,
} from './mls-wire.ts';

/** DAVE protocol version this server speaks (davey supports exactly 1). */
export const DAVE_VERSION = 1;
/** Opus silence frame: passes through DAVE unencrypted (protocol.md "Silence Packets"). */
const SILENCE_FRAME = Buffer.from([0xf8, 0xff, 0xfe]);
/** DAVE voice opcodes (protocol.md "Voice Gateway Opcodes"). */
const OP = {
  prepareTransition: 21,
  executeTransition: 22,
  readyForTransition: 23,
  prepareEpoch: 24,
  externalSender: 25,
  keyPackage: 26,
  proposals: 27,
  commitWelcome: 28,
  announceCommit: 29,
  welcome: 30,
  invalidCommitWelcome: 31,
} as const;
/** `ProposalsOperationType.APPEND` (a const enum in davey's typings, inlined at runtime). */
const APPEND = 0;

export type { DaveEvent } from './dave-api.ts';
/** Options of {@link DaveGroupServer} (see dave-api.ts). */
export type DaveGroupServerOptions = DaveServerOptions;

/** A simulated member: a real davey session. `leaf` is null while it only has its own pending group. */
interface SimMember {
  userId: string;
  session: DaveySession;
}

/** The recorder as the gateway sees it. */
interface RecorderState {
  userId: string;
  wire: DaveWire | null;
  /** The latest key package it sent (op 26), not yet used in a welcome. */
  keyPackage: Buffer | null;
  /** Its current leaf belongs to a session it has since thrown away (reconnect, op 31, new key package). */
  stale: boolean;
}

interface PendingAck {
  transitionId: number;
  resolve: (acked: boolean) => void;
  timer: NodeJS.Timeout;
}

/**
 * Discord's voice gateway DAVE role plus the simulated members' MLS sessions.
 *
 * @example
 * const dave = new DaveGroupServer({ channelId, botUserId, memberIds: ['111', '222'] });
 * // voice gateway, after sending op 4 { dave_protocol_version: dave.protocolVersion }:
 * dave.attachRecorder(botUserId, { json: (op, d) => ..., binary: (op, payload) => ... });
 * // ... route the recorder's binary ops 26/28 to onRecorderBinary, JSON ops 23/31 to onRecorderJson.
 * const frame = dave.encryptOpus('111', opus); // then transport-encrypt and send over UDP
 */
export class DaveGroupServer implements DaveServer {
  readonly protocolVersion = DAVE_VERSION;
  readonly channelId: string;
  readonly botUserId: string;
  readonly #externalSender = new ExternalSenderKey();
  readonly #timeoutMs: number;
  readonly #welcomeIdZero: boolean;
  readonly #onEvent: ((event: DaveEvent) => void) | undefined;

  /** Members in the call, in join order (Map keeps insertion order: the first is the preferred committer). */
  readonly #sims = new Map<string, SimMember>();
  #recorder: RecorderState | null = null;

  /** The gateway's view of the group (protocol.md "Delivery Service"): established?, epoch, leaf → user. */
  #established = false;
  #epoch = 0n;
  #leaves: (string | null)[] = [];

  #nextTransitionId = 1;
  #pendingAck: PendingAck | null = null;
  #queue: Promise<void> = Promise.resolve();
  #recorderReady = false;
  #closed = false;
  /** Faults armed for the recorder's next commit/welcome, applied in order of arming. */
  readonly #recorderFaults: RecorderDaveFault[] = [];
  /** +1 per op 31 or accepted key package from the recorder: each means it threw its MLS state away. */
  #recorderResets = 0;

  /** The last failure of a group change (also reported through `onEvent`). */
  lastError: Error | null = null;
  /** Counters, for tests and logs. */
  readonly stats: DaveStats = {
    transitions: 0, welcomesSent: 0, commitsAnnounced: 0, recorderCommitsDropped: 0, recorderAckTimeouts: 0, recorderKeyPackages: 0,
    recorderInvalidReports: 0,
  };

  constructor(options: DaveGroupServerOptions) {
    this.channelId = options.channelId;
    this.botUserId = options.botUserId;
    this.#timeoutMs = options.transitionTimeoutMs ?? 2000;
    this.#welcomeIdZero = options.welcomeIdZero ?? false;
    this.#onEvent = options.onEvent;
    groupIdFor(this.channelId); // validates the snowflake early (DAVE parses ids as u64)
    for (const id of options.memberIds) this.#addSim(id);
    this.#kick();
  }

  get recorderReady(): boolean {
    return this.#recorderReady;
  }

  /** Current epoch of the established group (0 while unestablished). */
  get epoch(): bigint {
    return this.#epoch;
  }

  /** User ids by leaf index (null = blank leaf), as the gateway tracks them. */
  get leaves(): readonly (string | null)[] {
    return this.#leaves;
  }

  /** The op 25 payload (the gateway's ExternalSender). */
  get externalSenderPackage(): Buffer {
    return this.#externalSender.packageBytes();
  }

  /** Resolves once every queued group change has executed. */
  settled(): Promise<void> {
    return this.#queue;
  }

  /**
   * The member's MLS epoch authenticator (equal for every member of the same epoch of the same group:
   * protocol.md "Epoch Authenticator"), for tests that compare the recorder's view with the members'.
   */
  memberEpochAuthenticator(userId: string): Buffer | null {
    return this.#sims.get(userId)?.session.getEpochAuthenticator() ?? null;
  }

  /** The simulated member's own leaf index (from its davey session), for consistency checks. */
  memberLeafIndex(userId: string): number | null {
    return this.#sims.get(userId)?.session.ownLeafIndex ?? null;
  }

  attachRecorder(recorderUserId: string, wire: DaveWire): void {
    // A fresh voice connection means a fresh client session: whatever leaf the old one held is stale
    // and is removed (protocol.md "Member Remove": on disconnect, or before re-adding with a new key package).
    // (A previous recorder with another user id is neither a member nor the recorder any more: #reconcile
    // removes its leaf.)
    this.#recorder = { userId: recorderUserId, wire, keyPackage: null, stale: this.#leaves.includes(recorderUserId) };
    this.#recorderReady = false;
    this.#settleAck(false);
    this.#send(() => wire.binary(OP.externalSender, this.#externalSender.packageBytes()));
    this.#kick();
  }

  /**
   * The recorder left the call for good (4014, channel left): its leaf is removed in a new epoch, as the
   * gateway does for any member that disconnects (protocol.md "Member Remove"). A resume (op 7) is NOT a
   * detach: the client keeps its DAVE state, and the sequenced wire survives the socket.
   */
  detachRecorder(): void {
    if (!this.#recorder) return;
    this.#recorder.wire = null;
    this.#recorder.keyPackage = null;
    this.#recorderReady = false;
    this.#settleAck(false);
    this.#kick();
  }

  onRecorderBinary(op: number, payload: Buffer): void {
    const recorder = this.#recorder;
    if (!recorder || this.#closed) return;
    if (op === OP.keyPackage) {
      this.stats.recorderKeyPackages++;
      // protocol.md "Key Packages: Validation": basic credential holding the authenticated user's id.
      let summary;
      try {
        summary = parseKeyPackage(payload);
      } catch (error) {
        this.#emit({ kind: 'error', error: new Error(`recorder key package rejected: ${(error as Error).message}`) });
        return;
      }
      if (summary.userId !== recorder.userId || summary.cipherSuite !== CIPHERSUITE_P256) {
        this.#emit({ kind: 'error', error: new Error(`recorder key package for user ${summary.userId} / suite ${summary.cipherSuite} rejected`) });
        return;
      }
      recorder.keyPackage = Buffer.from(payload);
      this.#recorderResets++;
      // A member that sends a new key package has reset its MLS state: its current leaf is stale.
      if (this.#leaves.includes(recorder.userId)) recorder.stale = true;
      this.#recorderReady = false;
      this.#kick();
    } else if (op === OP.commitWelcome) {
      // Every member commits the proposals it receives; the gateway broadcasts only the first commit per
      // epoch (protocol.md "Commit Ordering"). Ours always wins, so the recorder's is checked and dropped.
      try {
        const header = parsePublicMessageHeader(payload);
        if (header.contentType === CONTENT_COMMIT) {
          this.stats.recorderCommitsDropped++;
          this.#emit({ kind: 'recorder-commit-dropped', epoch: header.epoch });
        }
      } catch (error) {
        this.#emit({ kind: 'error', error: new Error(`recorder op 28 unparsable: ${(error as Error).message}`) });
      }
    }
  }

  onRecorderJson(op: number, d: unknown): void {
    const recorder = this.#recorder;
    if (!recorder || this.#closed) return;
    const transitionId = typeof d === 'object' && d !== null ? (d as { transition_id?: unknown }).transition_id : undefined;
    if (op === OP.readyForTransition) {
      if (this.#pendingAck && transitionId === this.#pendingAck.transitionId) this.#settleAck(true);
    } else if (op === OP.invalidCommitWelcome) {
      // The recorder could not process a commit/welcome: remove it and re-add it with the new key package
      // it is about to send (the @discordjs/voice wrapper reinitialises and emits one).
      this.stats.recorderInvalidReports++;
      this.#recorderResets++;
      this.#emit({ kind: 'recorder-invalid', transitionId: Number(transitionId) });
      if (this.#leaves.includes(recorder.userId)) recorder.stale = true;
      this.#recorderReady = false;
      if (this.#pendingAck && transitionId === this.#pendingAck.transitionId) this.#settleAck(false);
      this.#kick();
    }
  }

  injectRecorderFault(fault: RecorderDaveFault): void {
    this.#recorderFaults.push(fault);
  }

  memberJoined(userId: string): Promise<void> {
    if (!this.#sims.has(userId)) this.#addSim(userId);
    return this.#enqueue();
  }

  memberLeft(userId: string): Promise<void> {
    const sim = this.#sims.get(userId);
    if (sim) {
      this.#sims.delete(userId);
      // Its leaf stays in #leaves until the removal commit executes; its session is gone now.
      sim.session.reset();
    }
    return this.#enqueue();
  }

  encryptOpus(userId: string, opus: Buffer): Buffer {
    if (opus.equals(SILENCE_FRAME)) return opus;
    const sim = this.#sims.get(userId);
    // Like @discordjs/voice's DAVESession.encrypt: a member without an established group sends plain Opus
    // (receivers drop it as unencrypted, which is what happens on Discord before a member is welcomed).
    if (!sim || !sim.session.ready) return opus;
    return sim.session.encryptOpus(opus);
  }

  decryptRecorderFrame(frame: Buffer): Buffer | null {
    const recorder = this.#recorder;
    if (!recorder) return null;
    for (const sim of this.#sims.values()) {
      if (!sim.session.ready) continue;
      try {
        return sim.session.decrypt(recorder.userId, 0 /* MediaType.AUDIO */, frame);
      } catch {
        return null;
      }
    }
    return null;
  }

  encryptVideo(userId: string, codec: 'H264' | 'VP8' | 'VP9' | 'AV1', frame: Buffer): Buffer {
    const sim = this.#sims.get(userId);
    if (!sim || !sim.session.ready) return frame;
    const codecs = { H264: davey.Codec.H264, VP8: davey.Codec.VP8, VP9: davey.Codec.VP9, AV1: davey.Codec.AV1 };
    return sim.session.encrypt(davey.MediaType.VIDEO, codecs[codec], frame);
  }

  close(): void {
    this.#closed = true;
    this.#settleAck(false);
    for (const sim of this.#sims.values()) sim.session.reset();
    this.#sims.clear();
    this.#recorder = null;
  }

  // ---------------------------------------------------------------------------------------------

  #emit(event: DaveEvent): void {
    try {
      this.#onEvent?.(event);
    } catch {
      // A listener's failure must not wedge the group state machine.
    }
  }

  #send(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      // A closed socket must not break the group state machine; the gateway reconnects via attachRecorder.
      this.#emit({ kind: 'error', error: error as Error });
    }
  }

  #addSim(userId: string): void {
    const session = new davey.DAVESession(DAVE_VERSION, userId, this.channelId);
    // Knowing the external sender, the member creates its local pending group (protocol.md "Initial Group Creation").
    session.setExternalSender(this.#externalSender.packageBytes());
    this.#sims.set(userId, { userId, session });
  }

  /**
   * Queues a reconcile. The returned promise rejects if that group change failed (memberJoined/memberLeft
   * callers see it); the internal chain never rejects, so one failure does not wedge later changes.
   */
  #enqueue(): Promise<void> {
    const run = this.#queue.then(async () => {
      // Each round changes the group once; repeat until it matches who is in the call.
      for (let round = 0; round < 8 && !this.#closed; round++) {
        if (!(await this.#reconcile())) break;
      }
    });
    this.#queue = run.catch((error: unknown) => {
      this.lastError = error instanceof Error ? error : new Error(String(error));
      this.#emit({ kind: 'error', error: this.lastError });
    });
    return run;
  }

  /** Queues a reconcile nobody awaits (errors are reported through onEvent / lastError). */
  #kick(): void {
    this.#enqueue().catch(() => {});
  }

  #nextTransition(): number {
    const id = this.#nextTransitionId;
    // Transition id 0 means "(re)initialisation, execute immediately"; commit transitions are 1..65535.
    this.#nextTransitionId = id >= 0xffff ? 1 : id + 1;
    return id;
  }

  /** The users the gateway considers in the media session, for davey's recognizedUserIds check. */
  #callUserIds(): string[] {
    const ids = [...this.#sims.keys()];
    if (this.#recorder) ids.push(this.#recorder.userId);
    return ids;
  }

  /** The recorder if it is ready to be added: attached and holding an unused key package. */
  #recorderToAdd(): RecorderState | null {
    const r = this.#recorder;
    if (!r || !r.wire || !r.keyPackage) return null;
    if (this.#leaves.includes(r.userId) && !r.stale) return null;
    return r;
  }

  /** Performs at most one commit round. Returns true if the group changed (another round may be due). */
  async #reconcile(): Promise<boolean> {
    if (!this.#established) return this.#createGroup();

    const recorder = this.#recorder;
    const removeLeaves: number[] = [];
    this.#leaves.forEach((userId, leaf) => {
      if (userId === null) return;
      const isRecorder = recorder !== null && userId === recorder.userId;
      const wanted = isRecorder ? !recorder.stale && recorder.wire !== null : this.#sims.has(userId);
      if (!wanted) removeLeaves.push(leaf);
    });
    const remaining = this.#leaves.filter((u, leaf): u is string => u !== null && !removeLeaves.includes(leaf));
    const recorderAdd = this.#recorderToAdd();
    const simAdds = [...this.#sims.values()].filter((s) => !this.#leaves.includes(s.userId));
    if (removeLeaves.length === 0 && !recorderAdd && simAdds.length === 0) return false;

    const committer = remaining.map((u) => this.#sims.get(u)).find((s): s is SimMember => s !== undefined);
    const addsCount = simAdds.length + (recorderAdd ? 1 : 0);
    if (!committer || (remaining.length === 1 && addsCount === 0)) {
      this.#soleMemberReset(remaining[0] ?? null);
      return true;
    }

    // Removes first, then adds: the order RFC 9420 §12.3 applies them in, so freed leaves are reused.
    const messages = [
      ...removeLeaves.map((leaf) => this.#externalSender.proposalMessage(this.channelId, this.#epoch, removeProposal(leaf))),
      ...simAdds.map((s) => this.#externalSender.proposalMessage(this.channelId, this.#epoch, addProposal(s.session.getSerializedKeyPackage()))),
      ...(recorderAdd ? [this.#externalSender.proposalMessage(this.channelId, this.#epoch, addProposal(recorderAdd.keyPackage!))] : []),
    ];
    const recorderStays = recorder !== null && remaining.includes(recorder.userId) && recorder.wire !== null;
    // The commit references the proposals by hash, so every member that must process it has to cache them first.
    if (recorderStays) this.#send(() => recorder!.wire!.binary(OP.proposals, proposalsPayload(messages)));

    const { commit, welcome } = committer.session.processProposals(APPEND, vec(...messages), this.#callUserIds());
    if (!commit) throw new Error('committer produced no commit for pending proposals');
    // The other members get the same op 27: they cache the proposals (the winning commit refers to them by
    // reference) and produce their own commits, which lose to the committer's (protocol.md "Commit Ordering").
    for (const userId of remaining) {
      const sim = this.#sims.get(userId);
      if (sim && sim !== committer) {
        // MLS work is synchronous native code: let the media clock run between members.
        await yieldToEventLoop();
        if (this.#closed) return false;
        sim.session.processProposals(APPEND, vec(...messages), this.#callUserIds());
      }
    }
    if (addsCount > 0 && !welcome) throw new Error('committer produced no welcome for added members');

    const transitionId = recorderAdd && this.#welcomeIdZero ? 0 : this.#nextTransition();
    const recorderInvolved = recorderStays || recorderAdd !== null;
    // Transition 0 executes on receipt: nobody acknowledges it and no op 22 follows.
    const expectsAck = recorderInvolved && transitionId !== 0;
    const resetsBefore = this.#recorderResets;
    const usedKeyPackage = recorderAdd?.keyPackage ?? null;
    const ack = expectsAck ? this.#expectAck(transitionId) : Promise.resolve(recorderInvolved);
    let executeLost = false;
    if (recorderStays) {
      this.stats.commitsAnnounced++;
      const missed = this.#takeRecorderFault('missed-commit');
      const missedExecute = missed ? null : this.#takeRecorderFault('missed-execute');
      if (missed) {
        // Lost on the way: the recorder never learns of this epoch (and, with execute false, of its op 22).
        executeLost = !missed.execute;
        this.#emit({ kind: 'recorder-fault-applied', fault: missed, transitionId });
      } else {
        this.#send(() => recorder!.wire!.binary(OP.announceCommit, withTransitionId(transitionId, commit)));
      }
      if (missedExecute) {
        executeLost = true;
        this.#emit({ kind: 'recorder-fault-applied', fault: missedExecute, transitionId });
      }
    }
    if (recorderAdd) this.#sendWelcome(recorderAdd, transitionId, welcome!);
    const acked = await ack;
    if (this.#closed) return false;
    if (expectsAck && !executeLost) this.#send(() => this.#recorder?.wire?.json(OP.executeTransition, { transition_id: transitionId }));

    // Execute: members merge and from now on send with the new epoch's keys.
    // (Members executing a few milliseconds apart is what happens on Discord too.)
    for (const userId of remaining) {
      const sim = this.#sims.get(userId);
      if (sim) sim.session.processCommit(commit);
      await yieldToEventLoop();
      if (this.#closed) return false;
    }
    for (const sim of simAdds) {
      if (this.#sims.get(sim.userId) === sim) sim.session.processWelcome(welcome!);
      await yieldToEventLoop();
      if (this.#closed) return false;
    }

    for (const leaf of removeLeaves) this.#leaves[leaf] = null;
    while (this.#leaves.length > 0 && this.#leaves[this.#leaves.length - 1] === null) this.#leaves.pop();
    for (const userId of [...simAdds.map((s) => s.userId), ...(recorderAdd ? [recorderAdd.userId] : [])]) {
      this.#placeLeaf(userId);
    }
    if (recorderAdd) this.#recorderAdded(recorderAdd, usedKeyPackage, resetsBefore);
    this.#epoch = committer.session.epoch ?? this.#epoch + 1n;
    this.#finishTransition(transitionId, recorderInvolved, acked);
    return true;
  }

  /**
   * No established group: the first simulated member (with its local one-member group) commits add proposals
   * for everyone else who is pending; the result is epoch 1 (protocol.md "Initial Group Creation").
   */
  async #createGroup(): Promise<boolean> {
    const sims = [...this.#sims.values()];
    const committer = sims[0];
    const recorderAdd = this.#recorderToAdd();
    const simAdds = sims.slice(1);
    if (!committer || (simAdds.length === 0 && !recorderAdd)) return false;

    const messages = [
      ...simAdds.map((s) => this.#externalSender.proposalMessage(this.channelId, 0n, addProposal(s.session.getSerializedKeyPackage()))),
      ...(recorderAdd ? [this.#externalSender.proposalMessage(this.channelId, 0n, addProposal(recorderAdd.keyPackage!))] : []),
    ];
    const { commit, welcome } = committer.session.processProposals(APPEND, vec(...messages), this.#callUserIds());
    if (!commit || !welcome) throw new Error('group creator produced no commit/welcome');

    const transitionId = recorderAdd && this.#welcomeIdZero ? 0 : this.#nextTransition();
    const resetsBefore = this.#recorderResets;
    const usedKeyPackage = recorderAdd?.keyPackage ?? null;
    let acked = false;
    if (recorderAdd) {
      const expectsAck = transitionId !== 0;
      const ack = expectsAck ? this.#expectAck(transitionId) : Promise.resolve(true);
      this.#sendWelcome(recorderAdd, transitionId, welcome);
      acked = await ack;
      if (this.#closed) return false;
      if (expectsAck) this.#send(() => this.#recorder?.wire?.json(OP.executeTransition, { transition_id: transitionId }));
    }
    // The creator receives its own commit back (davey merges its pending commit); the others are welcomed.
    if (this.#sims.get(committer.userId) === committer) committer.session.processCommit(commit);
    for (const sim of simAdds) {
      if (this.#sims.get(sim.userId) === sim) sim.session.processWelcome(welcome);
      await yieldToEventLoop();
      if (this.#closed) return false;
    }
    this.#leaves = [committer.userId, ...simAdds.map((s) => s.userId), ...(recorderAdd ? [recorderAdd.userId] : [])];
    if (recorderAdd) this.#recorderAdded(recorderAdd, usedKeyPackage, resetsBefore);
    this.#established = true;
    this.#epoch = committer.session.epoch ?? 1n;
    this.#finishTransition(transitionId, recorderAdd !== null, acked);
    return true;
  }

  /**
   * One member left in an established group: it gets op 24 (epoch 1) + op 21 (transition 0) and starts
   * over with a new local group; the gateway forgets the group (protocol.md "Sole member reset").
   */
  #soleMemberReset(userId: string | null): void {
    const recorder = this.#recorder;
    if (userId !== null && recorder && userId === recorder.userId && recorder.wire) {
      const wire = recorder.wire;
      this.#send(() => wire.json(OP.prepareEpoch, { protocol_version: DAVE_VERSION, epoch: 1 }));
      this.#send(() => wire.json(OP.prepareTransition, { protocol_version: DAVE_VERSION, transition_id: 0 }));
      // The client reinitialises and sends a fresh key package (op 26), which makes it pending again.
      recorder.keyPackage = null;
      recorder.stale = false;
      this.#recorderReady = false;
    } else if (userId !== null) {
      const sim = this.#sims.get(userId);
      // reinit keeps the external sender and recreates the local pending group.
      sim?.session.reinit(DAVE_VERSION, sim.userId, this.channelId);
    }
    if (recorder && recorder.stale) recorder.stale = false;
    this.#established = false;
    this.#epoch = 0n;
    this.#leaves = [];
    if (userId !== null) this.#emit({ kind: 'sole-member-reset', userId });
  }

  /** Sends the recorder its welcome (op 30), corrupted if a 'bad-welcome' fault is armed. */
  #sendWelcome(recorder: RecorderState, transitionId: number, welcome: Buffer): void {
    this.stats.welcomesSent++;
    let bytes = welcome;
    const bad = this.#takeRecorderFault('bad-welcome');
    if (bad) {
      // The last byte belongs to the AEAD tag of the encrypted GroupInfo (RFC 9420 §12.4.3.1): decryption fails.
      bytes = Buffer.from(welcome);
      bytes[bytes.length - 1]! ^= 0xff;
      this.#emit({ kind: 'recorder-fault-applied', fault: bad, transitionId });
    }
    this.#send(() => recorder.wire!.binary(OP.welcome, withTransitionId(transitionId, bytes)));
  }

  /**
   * The recorder now holds the leaf its key package was welcomed into. If it reset its MLS state while the
   * transition was in flight (op 31 for a welcome it could not process, or a newer key package), that leaf is
   * already stale: it is removed next round, and a newer key package is kept for the re-add.
   */
  #recorderAdded(recorder: RecorderState, usedKeyPackage: Buffer | null, resetsBefore: number): void {
    if (recorder.keyPackage === usedKeyPackage) recorder.keyPackage = null;
    recorder.stale = this.#recorderResets !== resetsBefore;
  }

  #takeRecorderFault<K extends RecorderDaveFault['kind']>(kind: K): Extract<RecorderDaveFault, { kind: K }> | null {
    const i = this.#recorderFaults.findIndex((f) => f.kind === kind);
    if (i < 0) return null;
    return this.#recorderFaults.splice(i, 1)[0] as Extract<RecorderDaveFault, { kind: K }>;
  }

  /** New leaves take the leftmost blank leaf, else extend the tree (RFC 9420 §12.1.1 / §7.7). */
  #placeLeaf(userId: string): void {
    const blank = this.#leaves.indexOf(null);
    if (blank >= 0) this.#leaves[blank] = userId;
    else this.#leaves.push(userId);
  }

  #expectAck(transitionId: number): Promise<boolean> {
    this.#settleAck(false);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.stats.recorderAckTimeouts++;
        this.#settleAck(false);
      }, this.#timeoutMs);
      this.#pendingAck = { transitionId, resolve, timer };
    });
  }

  #settleAck(acked: boolean): void {
    const pending = this.#pendingAck;
    if (!pending) return;
    this.#pendingAck = null;
    clearTimeout(pending.timer);
    pending.resolve(acked);
  }

  #finishTransition(transitionId: number, recorderInvolved: boolean, recorderAcked: boolean): void {
    this.stats.transitions++;
    const recorder = this.#recorder;
    this.#recorderReady = recorder !== null && this.#leaves.includes(recorder.userId) && !recorder.stale;
    this.#emit({
      kind: 'transition-executed',
      transitionId,
      epoch: this.#epoch,
      members: this.#leaves.filter((u): u is string => u !== null),
      recorderInvolved,
      recorderAcked,
    });
  }
}
