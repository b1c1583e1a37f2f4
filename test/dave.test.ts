/**
 * The simulator's DAVE side against the REAL client-side DAVE session that @discordjs/voice 0.19 uses
 * (its exported DAVESession wrapper around @snazzah/davey), without websockets. The small `Recorder`
 * below routes server messages to the wrapper exactly as @discordjs/voice's Networking.onWsPacket /
 * onWsBinary do (dist/index.js), with an asynchronous hop in each direction like a socket.
 * Audio is real Opus from @discordjs/opus; decrypted frames must match byte for byte.
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { DAVESession, EndBehaviorType, Networking, VoiceConnectionStatus, entersState, getVoiceConnection, joinVoiceChannel } from '@discordjs/voice';
import { Client, GatewayIntentBits } from 'discord.js';
import opus from '@discordjs/opus';
import type { DAVESession as DaveySession } from '@snazzah/davey';
import { DaveGroupServer, type DaveEvent } from '../src/simulator/dave.ts';
import type { DaveWire } from '../src/simulator/dave-api.ts';
import { parseKeyPackage } from '../src/simulator/mls-wire.ts';
import { createCertificate } from '../src/simulator/certificate.ts';
import { VoiceServer, type VoiceSession } from '../src/simulator/voice-gateway.ts';
import { startSimulator, trustSimulatorCertificate, type Scenario } from '../src/simulator/index.ts';

const { OpusEncoder } = opus;
const CHANNEL = '1234567890123456789';
const BOT = '1100000000000000001';
const A = '2000000000000000001';
const B = '2000000000000000002';
const C = '2000000000000000003';
const D = '2000000000000000004';
const SILENCE = Buffer.from([0xf8, 0xff, 0xfe]);

/** A real Opus packet of a member-specific tone (48 kHz stereo, 20 ms). */
function opusFrame(hz: number, index: number): Buffer {
  const encoder = new OpusEncoder(48000, 2);
  const pcm = Buffer.alloc(960 * 2 * 2);
  for (let i = 0; i < 960; i++) {
    const t = (index * 960 + i) / 48000;
    const v = Math.round(Math.sin(2 * Math.PI * hz * t) * 12000);
    pcm.writeInt16LE(v, i * 4);
    pcm.writeInt16LE(v, i * 4 + 2);
  }
  return encoder.encode(pcm);
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The recorder: @discordjs/voice's DAVESession wrapper plus the Networking glue, over an async "socket". */
class Recorder {
  readonly dave: DAVESession;
  readonly received: number[] = [];
  readonly sent: number[] = [];
  readonly connectedClients = new Set<string>();
  transitioned = 0;
  readonly #server: DaveGroupServer;
  readonly #coalesce: boolean;
  readonly #uplink: (() => void)[] = [];

  /**
   * @param coalesce deliver what the recorder sends within one tick in ONE later tick (as a TCP read holding two
   *   websocket frames is handled by the server in one go), instead of one tick per message.
   */
  constructor(server: DaveGroupServer, userId = BOT, coalesce = false) {
    this.#server = server;
    this.#coalesce = coalesce;
    this.dave = new DAVESession(1, userId, CHANNEL, {});
    this.dave.on('keyPackage', (kp: Buffer) => this.#toServerBinary(26, kp));
    this.dave.on('invalidateTransition', (id: number) => this.#toServerJson(31, { transition_id: id }));
  }

  /** Networking: op 4 arrives → createDaveSession → reinit (emits the key package). */
  connect(): DaveWire {
    const wire: DaveWire = {
      json: (op, d) => setImmediate(() => this.#onJson(op, d as Record<string, number>)),
      binary: (op, payload) => {
        const copy = Buffer.from(payload);
        setImmediate(() => this.#onBinary(op, copy));
      },
    };
    this.dave.reinit();
    return wire;
  }

  #toServerBinary(op: number, payload: Buffer): void {
    this.sent.push(op);
    this.#up(() => this.#server.onRecorderBinary(op, payload));
  }
  #toServerJson(op: number, d: unknown): void {
    this.sent.push(op);
    this.#up(() => this.#server.onRecorderJson(op, d));
  }
  #up(deliver: () => void): void {
    if (!this.#coalesce) return void setImmediate(deliver);
    if (this.#uplink.push(deliver) === 1) setImmediate(() => this.#uplink.splice(0).forEach((f) => f()));
  }

  // Copied in behaviour from @discordjs/voice 0.19.2 Networking.onWsPacket (state Ready, dave present).
  #onJson(op: number, d: Record<string, number>): void {
    this.received.push(op);
    if (op === 21) {
      if (this.dave.prepareTransition(d as never)) this.#toServerJson(23, { transition_id: d.transition_id });
      if (d.transition_id === 0) this.transitioned++;
    } else if (op === 22) {
      if (this.dave.executeTransition(d.transition_id!)) this.transitioned++;
    } else if (op === 24) this.dave.prepareEpoch(d as never);
  }

  // Copied in behaviour from @discordjs/voice 0.19.2 Networking.onWsBinary.
  #onBinary(op: number, payload: Buffer): void {
    this.received.push(op);
    if (op === 25) this.dave.setExternalSender(payload);
    else if (op === 27) {
      const reply = this.dave.processProposals(payload, this.connectedClients);
      if (reply) this.#toServerBinary(28, reply);
    } else if (op === 29 || op === 30) {
      const { transitionId, success } = op === 29 ? this.dave.processCommit(payload) : this.dave.processWelcome(payload);
      if (success) {
        if (transitionId === 0) this.transitioned++;
        else this.#toServerJson(23, { transition_id: transitionId });
      }
    }
  }

  decrypt(frame: Buffer, userId: string): Buffer | null {
    return this.dave.decrypt(frame, userId);
  }

  /** The underlying @snazzah/davey session (@discordjs/voice types it with a narrower interface). */
  get session(): DaveySession {
    return this.dave.session as unknown as DaveySession;
  }
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Errors the server reported (it never throws out of its queue); checked after each test. */
const errors: Error[] = [];
afterEach(() => {
  const seen = errors.splice(0);
  assert.deepEqual(seen.map((e) => e.message), [], 'the DAVE server reported errors');
});

function newServer(memberIds: string[], events: DaveEvent[] = []) {
  return new DaveGroupServer({
    channelId: CHANNEL,
    botUserId: BOT,
    memberIds,
    onEvent: (e) => {
      events.push(e);
      if (e.kind === 'error') errors.push(e.error);
    },
  });
}

/** Joins a recorder and waits until the transition into the group executed on both sides. */
async function join(server: DaveGroupServer, recorder: Recorder, clients: string[]): Promise<void> {
  for (const id of clients) recorder.connectedClients.add(id);
  const before = recorder.transitioned;
  server.attachRecorder(BOT, recorder.connect());
  await until('recorder ready', () => server.recorderReady && recorder.transitioned > before);
  await server.settled();
}

const HZ: Record<string, number> = { [A]: 220, [B]: 330, [C]: 440, [D]: 550 };

/** Every listed member's real Opus must come out of the recorder's decryptor byte for byte. */
function assertDecryptsAll(server: DaveGroupServer, recorder: Recorder, ids: string[], frames = 5): void {
  for (const id of ids) {
    for (let i = 0; i < frames; i++) {
      const plain = opusFrame(HZ[id]!, i);
      const frame = server.encryptOpus(id, plain);
      assert.notDeepEqual(frame, plain, `member ${id} frame ${i} is not encrypted`);
      assert.equal(frame.readUInt16BE(frame.length - 2), 0xfafa, 'DAVE magic marker');
      const out = recorder.decrypt(frame, id);
      assert.ok(out, `member ${id} frame ${i} did not decrypt`);
      assert.deepEqual(Buffer.from(out), plain, `member ${id} frame ${i} decrypted to different bytes`);
    }
  }
}

/** The gateway's leaf bookkeeping must agree with every real session's own view. */
function assertLeaves(server: DaveGroupServer, recorder: Recorder | null, members: string[]): void {
  for (const id of members) assert.equal(server.memberLeafIndex(id), server.leaves.indexOf(id), `leaf of ${id}`);
  if (recorder) assert.equal(recorder.session.ownLeafIndex, server.leaves.indexOf(BOT), 'recorder leaf');
  const auth = recorder?.session.getEpochAuthenticator();
  for (const id of members) {
    if (auth) assert.deepEqual(server.memberEpochAuthenticator(id), auth, `epoch authenticator of ${id}`);
  }
}

test('external sender package and signed proposals have the layout Discord documents', () => {
  const server = newServer([A]);
  const pkg = server.externalSenderPackage;
  // vec(65-byte uncompressed P-256 key) ‖ u16 basic ‖ vec(identity); 65 needs a 2-byte MLS varint (0x40 0x41).
  assert.deepEqual([...pkg.subarray(0, 3)], [0x40, 65, 0x04]);
  assert.equal(pkg.readUInt16BE(67), 1);
  assert.equal(pkg[69], pkg.length - 70);
  // A key package from the real client carries the bot's snowflake as big-endian u64.
  const recorder = new Recorder(server);
  let kp: Buffer | null = null;
  recorder.dave.on('keyPackage', (b: Buffer) => (kp = b));
  recorder.dave.reinit();
  assert.ok(kp);
  assert.equal(parseKeyPackage(kp).userId, BOT);
  server.close();
});

test('recorder joins via external add + welcome, decrypts every member; frames from before its epoch do not decrypt', async () => {
  const events: DaveEvent[] = [];
  const server = newServer([A, B], events);
  await server.settled();
  assert.equal(server.epoch, 1n, 'members established epoch 1 among themselves');
  // Encrypted before the recorder was in the group: it must never be able to read this.
  const early = server.encryptOpus(A, opusFrame(HZ[A]!, 99));

  const recorder = new Recorder(server);
  await join(server, recorder, [A, B]);
  assert.equal(server.epoch, 2n);
  assert.deepEqual(recorder.received.slice(0, 2), [25, 30], 'op 25 external sender, then op 30 welcome');
  assert.ok(recorder.received.includes(22), 'op 22 execute transition');
  assert.deepEqual(recorder.sent.slice(0, 2), [26, 23], 'recorder sent its key package, then transition ready');
  assertLeaves(server, recorder, [A, B]);
  assert.deepEqual(new Set(recorder.session.getUserIds()), new Set([A, B, BOT]));

  assertDecryptsAll(server, recorder, [A, B]);
  assert.equal(recorder.decrypt(early, A), null, 'a frame from an epoch before the recorder joined decrypted');

  // Tampering with one ciphertext byte must fail authentication.
  const frame = server.encryptOpus(B, opusFrame(HZ[B]!, 7));
  const bad = Buffer.from(frame);
  bad[1]! ^= 0x01;
  assert.equal(recorder.decrypt(bad, B), null, 'tampered frame decrypted');
  // A frame attributed to the wrong sender uses the wrong key.
  assert.equal(recorder.decrypt(frame, A), null, 'frame decrypted with another member key');

  // Silence passes through DAVE untouched on both sides.
  assert.deepEqual(server.encryptOpus(A, SILENCE), SILENCE);
  assert.deepEqual(Buffer.from(recorder.decrypt(SILENCE, A)!), SILENCE);
  assert.equal(server.stats.recorderAckTimeouts, 0);
  server.close();
});

test('a member joins mid-call (op 27 + op 29, new epoch) and a member leaves (another epoch)', async () => {
  const server = newServer([A, B]);
  const recorder = new Recorder(server);
  await join(server, recorder, [A, B]);
  const epoch = server.epoch;

  // In flight while the transition happens: senders keep the old epoch's keys until op 22, and the
  // recorder keeps old keys for a while, so this still decrypts afterwards.
  const inFlight = opusFrame(HZ[A]!, 50);
  const inFlightFrame = server.encryptOpus(A, inFlight);

  // op 11 reaches the recorder before the proposal (the voice gateway's job), then the group changes.
  recorder.connectedClients.add(C);
  const received = recorder.received.length;
  await server.memberJoined(C);
  assert.equal(server.epoch, epoch + 1n);
  await until('op 22 delivered', () => recorder.received.length >= received + 3);
  assert.deepEqual(recorder.received.slice(received), [27, 29, 22], 'proposals, announce commit, execute');
  await until('recorder commit seen', () => server.stats.recorderCommitsDropped === 1);
  assertLeaves(server, recorder, [A, B, C]);
  assert.deepEqual(Buffer.from(recorder.decrypt(inFlightFrame, A)!), inFlight, 'old-epoch frame in flight');
  assertDecryptsAll(server, recorder, [A, B, C]);

  const fromB = server.encryptOpus(B, opusFrame(HZ[B]!, 3));
  recorder.connectedClients.delete(B);
  await server.memberLeft(B);
  assert.equal(server.epoch, epoch + 2n);
  assert.equal(server.leaves[1], null, 'B leaf is blank');
  assertLeaves(server, recorder, [A, C]);
  assert.deepEqual(new Set(recorder.session.getUserIds()), new Set([A, C, BOT]));
  assertDecryptsAll(server, recorder, [A, C]);
  assert.equal(recorder.decrypt(fromB, B), null, 'a removed member still decrypts');

  // D takes the blank leaf B left.
  recorder.connectedClients.add(D);
  await server.memberJoined(D);
  assert.equal(server.leaves.indexOf(D), 1);
  assertLeaves(server, recorder, [A, C, D]);
  assertDecryptsAll(server, recorder, [A, C, D]);
  assert.equal(server.stats.recorderAckTimeouts, 0);
  server.close();
});

test('a DAVE frame decrypts once: the same frame again fails (two receivers sharing one session lose the second copy)', async () => {
  // protocol.md "Truncated synchronization nonce": the decryptor decrypts a given key/nonce one time only. So if a
  // host bot's own receiver (receiver.subscribe) and dvrec decrypt the same datagram with the connection's one
  // session, whichever comes second fails, and through @discordjs/voice's wrapper that failure counts towards its
  // re-initialisation.
  const server = newServer([A, B]);
  const recorder = new Recorder(server);
  await join(server, recorder, [A, B]);
  const plain = opusFrame(HZ[A]!, 1);
  const frame = server.encryptOpus(A, plain);
  const session = recorder.session;
  assert.deepEqual(Buffer.from(session.decrypt(A, 0, frame)), plain);
  assert.throws(() => session.decrypt(A, 0, frame), /DecryptionFailed/, 'the same frame a second time');
  assert.throws(() => session.decrypt(A, 0, Buffer.from(frame)), /DecryptionFailed/, 'a copy of it');
  // Out of order is fine (each nonce once): frames 3, 1, 2 of a sender all decrypt, and none a second time.
  const [f1, f2, f3] = [2, 3, 4].map((i) => server.encryptOpus(A, opusFrame(HZ[A]!, i)));
  for (const f of [f3!, f1!, f2!]) assert.ok(session.decrypt(A, 0, f));
  for (const f of [f1!, f2!, f3!]) assert.throws(() => session.decrypt(A, 0, f), /DecryptionFailed/);
  server.close();
});

test('a frame from another DAVE group does not decrypt', async () => {
  const server = newServer([A, B]);
  const recorder = new Recorder(server);
  await join(server, recorder, [A, B]);
  const other = newServer([A, B]);
  await other.settled();
  const foreign = other.encryptOpus(A, opusFrame(HZ[A]!, 1));
  assert.equal(foreign.readUInt16BE(foreign.length - 2), 0xfafa);
  assert.equal(recorder.decrypt(foreign, A), null);
  server.close();
  other.close();
});

test('recorder reconnect: a new session rejoins, the stale leaf is removed', async () => {
  const server = newServer([A, B]);
  const first = new Recorder(server);
  await join(server, first, [A, B]);
  const second = new Recorder(server);
  await join(server, second, [A, B]);
  assert.equal(server.leaves.filter((u) => u === BOT).length, 1, 'exactly one leaf for the recorder');
  assertLeaves(server, second, [A, B]);
  assert.deepEqual(new Set(second.session.getUserIds()), new Set([A, B, BOT]));
  assertDecryptsAll(server, second, [A, B]);
  // The abandoned session is out of the group: it must not read the new epoch.
  assert.equal(first.decrypt(server.encryptOpus(A, opusFrame(HZ[A]!, 2)), A), null);

  // The recorder leaves for good (4014): removed in a new epoch, members carry on among themselves.
  const epoch = server.epoch;
  server.detachRecorder();
  await server.settled();
  assert.equal(server.epoch, epoch + 1n);
  assert.equal(server.recorderReady, false);
  assert.ok(!server.leaves.includes(BOT));
  assertLeaves(server, null, [A, B]);
  assert.equal(second.decrypt(server.encryptOpus(A, opusFrame(HZ[A]!, 3)), A), null, 'detached recorder still decrypts');
  server.close();
});

test('single member: group created with the recorder; sole member reset when it leaves; re-created on the next join', async () => {
  const events: DaveEvent[] = [];
  const server = newServer([A], events);
  await server.settled();
  assert.equal(server.epoch, 0n, 'one pending member alone has no group');
  assert.deepEqual(server.encryptOpus(A, opusFrame(HZ[A]!, 0)), opusFrame(HZ[A]!, 0), 'not encrypted before the group exists');
  const recorder = new Recorder(server);
  await join(server, recorder, [A]);
  assert.equal(server.epoch, 1n);
  assertLeaves(server, recorder, [A]);
  assertDecryptsAll(server, recorder, [A]);

  const received = recorder.received.length;
  recorder.connectedClients.delete(A);
  await server.memberLeft(A);
  await until('sole member reset', () => recorder.received.length >= received + 2);
  assert.deepEqual(recorder.received.slice(received, received + 2), [24, 21]);
  assert.ok(events.some((e) => e.kind === 'sole-member-reset' && e.userId === BOT));
  assert.equal(server.recorderReady, false);
  await until('new key package', () => recorder.sent.filter((op) => op === 26).length === 2);

  recorder.connectedClients.add(D);
  await server.memberJoined(D);
  await until('recorder ready again', () => server.recorderReady);
  assert.equal(server.epoch, 1n, 'a new group starts at epoch 1');
  assertLeaves(server, recorder, [D]);
  assertDecryptsAll(server, recorder, [D]);
  server.close();
});

test('a welcome the recorder rejects: op 31 and its new key package reach the gateway together, mid-transition; it is re-added', async () => {
  const events: DaveEvent[] = [];
  const server = newServer([A, B], events);
  await server.settled();
  server.injectRecorderFault({ kind: 'bad-welcome' });
  // op 31 and the key package arrive in one read, before the gateway's transition for the bad welcome finished: the
  // leaf it places for the recorder belongs to a session the recorder has already thrown away.
  const recorder = new Recorder(server, BOT, true);
  for (const id of [A, B]) recorder.connectedClients.add(id);
  server.attachRecorder(BOT, recorder.connect());
  await until('re-added', () => server.stats.recorderInvalidReports === 1 && server.recorderReady && recorder.session.ready === true);
  await server.settled();
  assert.ok(events.some((e) => e.kind === 'recorder-fault-applied' && e.fault.kind === 'bad-welcome'));
  assert.deepEqual(recorder.sent.filter((op) => op === 26 || op === 31), [26, 31, 26], 'key package, op 31 + a new one');
  assert.equal(server.leaves.filter((u) => u === BOT).length, 1, 'one leaf for the recorder');
  assertLeaves(server, recorder, [A, B]);
  assertDecryptsAll(server, recorder, [A, B]);
  server.close();
});

test('a missed commit: the members move on without the recorder (op 22 delivered or not); transition id 0 welcomes need no op 23/22', async () => {
  for (const execute of [true, false]) {
    const server = new DaveGroupServer({ channelId: CHANNEL, botUserId: BOT, memberIds: [A, B], welcomeIdZero: true, transitionTimeoutMs: 200, onEvent: (e) => e.kind === 'error' && errors.push(e.error) });
    await server.settled();
    const recorder = new Recorder(server);
    await join(server, recorder, [A, B]);
    assert.equal(recorder.dave.lastTransitionId, 0, 'welcomed with transition id 0');
    assert.ok(!recorder.sent.includes(23), 'nothing to acknowledge');
    assertDecryptsAll(server, recorder, [A, B]);
    server.injectRecorderFault({ kind: 'missed-commit', execute });
    const received = recorder.received.length;
    recorder.connectedClients.add(C);
    await server.memberJoined(C);
    await until('op 22 (or not)', () => recorder.received.length >= received + (execute ? 2 : 1));
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(recorder.received.slice(received), execute ? [27, 22] : [27], 'proposals, then no op 29');
    assert.equal(recorder.dave.lastTransitionId, 0, 'op 22 for an unknown transition is ignored by the wrapper');
    // The members are a new epoch ahead: the recorder decrypts nobody, and the library never notices.
    for (const id of [A, B, C]) assert.equal(recorder.decrypt(server.encryptOpus(id, opusFrame(HZ[id]!, 1)), id), null, `${id} undecryptable`);
    assert.equal(server.stats.recorderAckTimeouts, 1);
    server.close();
  }
});

test('a missed op 22 (the commit arrived): the recorder decrypts the new epoch, but @discordjs/voice keeps the transition pending', async () => {
  const server = new DaveGroupServer({ channelId: CHANNEL, botUserId: BOT, memberIds: [A, B], onEvent: (e) => e.kind === 'error' && errors.push(e.error) });
  await server.settled();
  const recorder = new Recorder(server);
  await join(server, recorder, [A, B]);
  server.injectRecorderFault({ kind: 'missed-execute' });
  const received = recorder.received.length;
  recorder.connectedClients.add(C);
  await server.memberJoined(C);
  await until('commit', () => recorder.received.length >= received + 2);
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(recorder.received.slice(received), [27, 29], 'no op 22');
  const pending = Reflect.get(recorder.dave, 'pendingTransitions') as Map<number, number>;
  assert.equal(pending.size, 1, 'pending for good');
  assert.equal(server.stats.recorderAckTimeouts, 0, 'the recorder acknowledged it');
  assertDecryptsAll(server, recorder, [A, B, C]);
  server.close();
});

test('over the real voice gateway websocket: @discordjs/voice Networking joins under DAVE and follows join/leave', async () => {
  const cert = await createCertificate();
  // @discordjs/voice opens wss:// with no TLS options: trust the per-run certificate in-process.
  tls.setDefaultCACertificates([...tls.getCACertificates('default'), cert.certPem]);
  const grant = { token: 'voice-token', sessionId: 'sess-1', userId: BOT, serverId: '3000000000000000001' };
  const inCall = [A, B];
  const voice = new VoiceServer({
    certPem: cert.certPem,
    keyPem: cert.keyPem,
    modes: ['aead_aes256_gcm_rtpsize'],
    daveProtocolVersion: 1,
    grantFor: (t) => (t === grant.token ? grant : null),
    allocateSsrc: () => 4242,
    connectedUserIds: () => [...inCall],
  });
  await voice.listen();
  const server = newServer(inCall);
  let session: VoiceSession | null = null;
  // The glue the simulator's orchestrator needs: op 4 sent → attachRecorder; DAVE ops from the recorder → server.
  voice.on('session-ready', (s) => {
    session = s;
    server.attachRecorder(s.grant.userId, { json: (op, d) => s.send(op, d), binary: (op, p) => s.sendBinary(op, p) });
  });
  voice.on('dave-binary', (_s, op, p) => server.onRecorderBinary(op, p));
  voice.on('dave-json', (_s, op, d) => server.onRecorderJson(op, d));

  const networking = new Networking(
    { endpoint: voice.endpoint, serverId: grant.serverId, userId: BOT, sessionId: grant.sessionId, token: grant.token, channelId: CHANNEL },
    { debug: false, daveEncryption: true },
  );
  const clientErrors: Error[] = [];
  networking.on('error', (e: Error) => clientErrors.push(e));
  let transitions = 0;
  networking.on('transitioned', () => transitions++);
  const dave = () => (networking.state as { dave?: DAVESession }).dave!;
  try {
    await until('Ready under DAVE', () => networking.state.code === 4 && server.recorderReady && transitions > 0, 10_000);
    const decryptor = { decrypt: (f: Buffer, id: string) => dave().decrypt(f, id), get session() { return dave().session as unknown as DaveySession; } };
    assertDecryptsAll(server, decryptor as unknown as Recorder, [A, B]);

    // Member joins: op 11 first (the recorder refuses adds for users it was not told about), then the epoch.
    inCall.push(C);
    session!.send(11, { user_ids: [C] });
    await server.memberJoined(C);
    await until('transition executed on the client', () => transitions >= 2);
    assertDecryptsAll(server, decryptor as unknown as Recorder, [A, B, C]);

    inCall.splice(inCall.indexOf(B), 1);
    session!.send(13, { user_id: B });
    await server.memberLeft(B);
    await until('transition executed on the client', () => transitions >= 3);
    assertDecryptsAll(server, decryptor as unknown as Recorder, [A, C]);
    assert.equal(dave().decrypt(Buffer.from(SILENCE), A)!.length, 3);
    assert.deepEqual(clientErrors, []);
    assert.equal(server.stats.recorderAckTimeouts, 0, 'the client acknowledged every transition (op 23)');
  } finally {
    networking.destroy();
    server.close();
    await voice.close();
    await cert.dispose();
  }
});

/** Energy of `hz` in interleaved stereo s16 PCM (Goertzel on the left channel). */
function toneEnergy(pcm: Buffer, hz: number): number {
  const n = pcm.length / 4;
  const k = 2 * Math.cos((2 * Math.PI * hz) / 48000);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const s0 = pcm.readInt16LE(i * 4) + k * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return s1 * s1 + s2 * s2 - k * s1 * s2;
}

test('end to end: discord.js + @discordjs/voice reach Ready under DAVE via the simulator and hear each member (join and leave mid-call)', async () => {
  const scenario: Scenario = {
    seed: 7,
    guildId: '5000000000000000001',
    channelId: CHANNEL,
    botUserId: BOT,
    token: 'dave.e2e.token',
    dave: true,
    members: [
      { userId: A, username: 'a', signal: { kind: 'tone', hz: 300 }, spurts: [{ atMs: 200, durationMs: 1400 }] },
      { userId: B, username: 'b', signal: { kind: 'tone', hz: 500 }, spurts: [{ atMs: 300, durationMs: 1000 }], leaveAtMs: 1800 },
      { userId: C, username: 'c', signal: { kind: 'tone', hz: 700 }, joinAtMs: 900, spurts: [{ atMs: 1600, durationMs: 1000 }] },
    ],
  };
  const toneOf: Record<string, number> = { [A]: 300, [B]: 500, [C]: 700 };
  const sim = await startSimulator(scenario);
  const warnings: string[] = [];
  sim.events.on('warning', (w: { message: string }) => warnings.push(w.message));
  trustSimulatorCertificate(sim);
  const client = new Client({ intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildVoiceStates], rest: { api: sim.apiUrl } });
  try {
    const ready = new Promise((resolve) => client.once('clientReady', resolve));
    await client.login(scenario.token);
    await ready;
    const guild = client.guilds.cache.get(scenario.guildId)!;
    const connection = joinVoiceChannel({ guildId: guild.id, channelId: CHANNEL, adapterCreator: guild.voiceAdapterCreator, selfDeaf: false });
    await entersState(connection, VoiceConnectionStatus.Ready, 10_000);
    const networking = (connection.state as unknown as { networking: Networking }).networking;
    const dave = (networking.state as { dave?: DAVESession }).dave;
    assert.ok(dave, 'the client negotiated DAVE');

    const heard: Record<string, { packets: number; right: number }> = {};
    connection.receiver.speaking.on('start', (userId) => {
      if (heard[userId]) return;
      const stats = (heard[userId] = { packets: 0, right: 0 });
      const decoder = new OpusEncoder(48000, 2); // one decoder per stream: Opus decoders carry state
      const stream = connection.receiver.subscribe(userId, { end: { behavior: EndBehaviorType.Manual } });
      stream.on('data', (opusPacket: Buffer) => {
        stats.packets++;
        if (opusPacket.length <= 3) return; // silence frames
        const pcm = decoder.decode(opusPacket);
        const mine = toneEnergy(pcm, toneOf[userId]!);
        const others = Object.entries(toneOf).filter(([u]) => u !== userId).map(([, hz]) => toneEnergy(pcm, hz));
        if (mine > 10 * Math.max(...others)) stats.right++;
      });
    });
    // Each spurt is durationMs / 20 audio packets plus 5 silence frames.
    const expected = (id: string) => scenario.members.find((m) => m.userId === id)!.spurts.reduce((n, sp) => n + sp.durationMs / 20 + 5, 0);
    await until('all spurts played', () => sim.truth().members.every((m) => m.packetsSent + m.packetsLost >= expected(m.userId)), 10_000);
    await new Promise((r) => setTimeout(r, 400));

    const session = dave.session as unknown as DaveySession;
    for (const m of sim.truth().members) {
      const got = heard[m.userId];
      assert.ok(got, `nothing heard from ${m.userId}`);
      // Nothing is lost across the join and the leave: members switch keys only at op 22 execute, after the recorder
      // acknowledged the commit, and the recorder keeps the previous epoch's keys for frames in flight.
      assert.equal(m.packetsLost, 0);
      assert.equal(got.packets, m.packetsSent, `${m.userId}: ${got.packets} of ${m.packetsSent} packets (audio + silence frames)`);
      assert.equal(got.right, m.audioPacketsSent, `${m.userId}: ${got.right} of ${m.audioPacketsSent} audio packets decoded as its own tone`);
    }
    assert.ok((session.getDecryptionStats(A, 0)?.successes ?? 0) > 0, 'frames really went through DAVE decryption');
    assert.deepEqual(new Set(session.getUserIds()), new Set([A, C, BOT]), 'B left the group, C joined');
    assert.deepEqual(warnings, []);
  } finally {
    getVoiceConnection(scenario.guildId)?.destroy();
    await client.destroy();
    await sim.close();
  }
});

/** discord.js + @discordjs/voice joined to a DAVE scenario through the simulator, with the simulator's warnings. */
async function joinThroughSimulator(scenario: Scenario) {
  const sim = await startSimulator(scenario);
  const warnings: string[] = [];
  sim.events.on('warning', (w) => warnings.push(w.message));
  trustSimulatorCertificate(sim);
  const client = new Client({ intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildVoiceStates], rest: { api: sim.apiUrl } });
  const ready = new Promise((resolve) => client.once('clientReady', resolve));
  await client.login(scenario.token);
  await ready;
  const guild = client.guilds.cache.get(scenario.guildId)!;
  const connection = joinVoiceChannel({ guildId: guild.id, channelId: scenario.channelId, adapterCreator: guild.voiceAdapterCreator, selfDeaf: false });
  await entersState(connection, VoiceConnectionStatus.Ready, 10_000);
  await until('recorder in the DAVE group', () => sim.daveStatus()!.recorderReady, 10_000);
  /** The voice websocket of the current Networking (to speak to the gateway as the client would). */
  const voiceWs = () => ((connection.state as unknown as { networking: Networking }).networking.state as { ws: any }).ws;
  const close = async () => {
    connection.destroy();
    await client.destroy();
    await sim.close();
  };
  return { sim, client, connection, warnings, voiceWs, close };
}

const daveScenario = (extra: Partial<Scenario> = {}): Scenario => ({
  seed: 8,
  guildId: '5000000000000000001',
  channelId: CHANNEL,
  botUserId: BOT,
  token: 'dave.e2e.token',
  dave: true,
  members: [
    { userId: A, username: 'a', signal: { kind: 'tone', hz: 300 }, spurts: [{ atMs: 100, durationMs: 30_000 }] },
    { userId: B, username: 'b', signal: { kind: 'tone', hz: 500 }, spurts: [{ atMs: 200, durationMs: 30_000 }] },
  ],
  ...extra,
});

test('DAVE trouble becomes simulator warnings: a rejected key package, op 31 from the recorder, the recorder left out of the group', async () => {
  const run = await joinThroughSimulator(daveScenario({ daveJoinTimeoutMs: 400 }));
  const { sim, warnings } = run;
  try {
    assert.deepEqual(warnings, [], 'a clean join warns about nothing');
    // A key package the gateway cannot accept (as a broken client might send).
    run.voiceWs().sendBinaryMessage(26, Buffer.from('not an MLS key package'));
    await until('key package warning', () => warnings.some((w) => /key package rejected/.test(w)));
    assert.equal(sim.daveStatus()!.recorderKeyPackages, 2);
    assert.equal(sim.daveStatus()!.recorderReady, true, 'a rejected key package changes nothing');
    // op 31 without the new key package a real client sends next: the gateway removes the recorder's stale leaf
    // and waits for one that never comes.
    const epoch = sim.daveStatus()!.epoch;
    run.voiceWs().sendPacket({ op: 31, d: { transition_id: 4242 } });
    await until('op 31 warning', () => warnings.some((w) => /op 31, transition 4242/.test(w)));
    await until('recorder removed', () => !sim.daveStatus()!.members.includes(BOT));
    assert.equal(sim.daveStatus()!.epoch, epoch + 1n, 'a new epoch without the recorder');
    await until('not-in-group warning', () => warnings.some((w) => /not in the MLS group 400 ms after/.test(w)), 3000);
    assert.equal(warnings.length, 3, warnings.join('\n'));
  } finally {
    await run.close();
  }
});

test('the bot leaving the call (4014 kick, disconnect, move, voice leave) leaves the DAVE group: the remaining members go on in a new epoch', async () => {
  const OTHER = '1234567890123456790';
  const run = await joinThroughSimulator(daveScenario({ extraChannels: [{ id: OTHER, type: 2, name: 'Elsewhere' }] }));
  const { sim, connection, warnings } = run;
  const transitions: { epoch: bigint; recorderInGroup: boolean }[] = [];
  sim.events.on('dave-transition', (e) => transitions.push(e));
  const leaves = async (label: string, leave: () => void): Promise<void> => {
    const before = sim.daveStatus()!;
    assert.ok(before.members.includes(BOT) && before.recorderReady, `${label}: the recorder starts in the group`);
    transitions.length = 0;
    leave();
    await until(`${label}: recorder removed`, () => !sim.daveStatus()!.members.includes(BOT));
    const after = sim.daveStatus()!;
    assert.equal(after.epoch, before.epoch + 1n, `${label}: the remaining members moved to a new epoch`);
    assert.deepEqual(new Set(after.members), new Set([A, B]), `${label}: the members stay in the group`);
    assert.equal(after.recorderReady, false);
    assert.deepEqual(transitions.map((t) => [t.epoch, t.recorderInGroup]), [[after.epoch, false]], `${label}: one transition, without the recorder`);
  };
  const rejoin = async (): Promise<void> => {
    connection.rejoin({ channelId: CHANNEL, selfDeaf: false, selfMute: false });
    await entersState(connection, VoiceConnectionStatus.Ready, 10_000);
    await until('recorder back in the group', () => sim.daveStatus()!.recorderReady, 10_000);
  };
  try {
    await leaves('disconnect-bot', () => sim.inject({ atMs: 0, kind: 'disconnect-bot' }));
    await rejoin();
    await leaves('voice close 4014', () => sim.inject({ atMs: 0, kind: 'voice-close', code: 4014 }));
    await rejoin();
    await leaves('move-bot', () => sim.inject({ atMs: 0, kind: 'move-bot', channelId: OTHER }));
    await rejoin();
    await leaves('voice leave (op 4, no channel)', () => connection.disconnect());
    assert.deepEqual(warnings, []);
  } finally {
    await run.close();
  }
});
