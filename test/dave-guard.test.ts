/**
 * dave-guard.ts, the DAVE failure policy, on its own: a stand-in for @discordjs/voice's DAVESession wrapper whose
 * session fails the members a test names, and a clock the test moves. Each rule is checked from both sides (it
 * fires on its evidence, and not on anything less), together with the bounds: rate limit, back-off, judgement.
 * The same rules against real MLS state, end to end: test/dave-recovery.test.ts and test/receive-edge.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { DaveGuard, JUDGE_FRAMES, LONE_FRAMES, LONE_MS, MIN_GAP_MS, MULTI_FRAMES, OUT_FRAMES, OUT_MS, PENDING_MAX_MS, type DaveWrapper } from '../src/receiver/dave-guard.ts';

/** Failed frames, 20 ms apart, after which a lone member's failures are enough (LONE_MS spans from the first). */
const LONE_TRIGGER = Math.max(LONE_FRAMES, LONE_MS / 20 + 1);

/** A DAVE-looking frame: ciphertext ‖ 8-byte tag ‖ nonce ‖ supplemental size 12 ‖ FA FA. */
const daveFrame = (): Buffer => Buffer.concat([randomBytes(40), randomBytes(9), Buffer.from([12, 0xfa, 0xfa])]);
/** A plain Opus frame (no DAVE trailer). */
const plainFrame = (): Buffer => Buffer.concat([Buffer.from([0x78]), randomBytes(40), Buffer.from([0])]);

class Wrapper implements DaveWrapper {
  protocolVersion = 1;
  lastTransitionId: number | undefined = 0;
  readonly pendingTransitions = new Map<number, number>();
  reinitializing = false;
  /** Transition ids of op 31s sent (recoverFromInvalidTransition, or the event while re-initialising). */
  readonly recovered: number[] = [];
  /** Fresh sessions (each a new key package). */
  reinits = 0;
  /** Members whose frames fail. */
  readonly failing = new Set<string>();
  readonly session = {
    ready: true,
    canPassthrough: (_u: string): boolean => false,
    decrypt: (userId: string, _m: 0, packet: Buffer): Buffer => {
      if (this.failing.has(userId)) throw new Error('Failed to decrypt: DecryptionFailed(NoValidCryptorFound)');
      return packet.subarray(0, 40);
    },
  };

  // As @discordjs/voice 0.19.2: ignored while re-initialising; else op 31 (the event) and a fresh session.
  recoverFromInvalidTransition(transitionId: number): void {
    if (this.reinitializing) return;
    this.reinitializing = true;
    this.emit('invalidateTransition', transitionId);
    this.reinit();
  }

  emit(_event: 'invalidateTransition', transitionId: number): boolean {
    this.recovered.push(transitionId);
    return true;
  }

  reinit(): void {
    this.reinits++;
    this.session.ready = false;
  }

  /** The voice server re-added the recorder (welcome + execute). */
  rejoined(transitionId: number): void {
    this.reinitializing = false;
    this.session.ready = true;
    this.lastTransitionId = transitionId;
  }
}

function setup(opts: { canSignal?: () => boolean } = {}) {
  let now = 0;
  const warnings: string[] = [];
  const w = new Wrapper();
  const guard = new DaveGuard({ wrapper: () => w, canSignal: opts.canSignal ?? (() => true), now: () => now, warn: (m) => warnings.push(m) });
  /** One 20 ms tick: each listed member sends one DAVE frame; returns how many decrypted. */
  const tick = (...users: string[]): number => {
    now += 20;
    return users.filter((u) => guard.decrypt(daveFrame(), u) !== null).length;
  };
  return { w, guard, warnings, tick, advance: (ms: number) => (now += ms) };
}

test('one member failing while another decrypts never re-initialises, however long', () => {
  const { w, guard, tick } = setup();
  w.failing.add('hostile');
  for (let i = 0; i < 3000; i++) assert.equal(tick('hostile', 'good'), 1);
  assert.deepEqual(w.recovered, []);
  assert.equal(guard.recoveries, 0);
});

test('a lone failing member: one recovery after LONE_FRAMES and LONE_MS, then judged; never again', () => {
  const { w, tick, warnings } = setup();
  w.failing.add('hostile');
  for (let i = 0; i < LONE_TRIGGER - 1; i++) tick('hostile');
  assert.deepEqual(w.recovered, [], `no recovery before ${LONE_TRIGGER} frames`);
  tick('hostile');
  assert.deepEqual(w.recovered, [0], 'recovers with transition id 0 (the wrapper would throw instead)');
  assert.match(warnings[0]!, /re-joining the MLS group.*member hostile/);
  // While re-initialising, failures are expected: no evidence, no verdict.
  for (let i = 0; i < 100; i++) tick('hostile');
  w.rejoined(7);
  for (let i = 0; i < JUDGE_FRAMES - 1; i++) tick('hostile');
  assert.equal(warnings.length, 1);
  tick('hostile');
  assert.match(warnings[1]!, /member hostile still fail after the recorder rejoined.*never again a reason/);
  for (let i = 0; i < 15_000; i++) tick('hostile'); // 5 minutes more of it
  assert.deepEqual(w.recovered, [0]);
  assert.equal(warnings.length, 2);
  // Someone else now decrypts fine and the judged member goes on failing: nothing.
  assert.equal(tick('hostile', 'good'), 1);
  assert.deepEqual(w.recovered, [0]);
});

test('a lone member the recovery made decryptable is cleared, but never causes a second lone-sender recovery', () => {
  const { w, tick, advance, warnings } = setup();
  w.failing.add('a');
  for (let i = 0; i < LONE_TRIGGER; i++) tick('a');
  assert.deepEqual(w.recovered, [0]);
  w.rejoined(3);
  w.failing.delete('a');
  assert.equal(tick('a'), 1, 'the recovery helped: the recorder was at fault');
  // The same member fails alone again (a second desynchronisation, or a member alternating good and bad frames).
  w.failing.add('a');
  advance(60_000);
  for (let i = 0; i < LONE_TRIGGER * 20; i++) tick('a');
  assert.deepEqual(w.recovered, [0], 'at most one lone-sender recovery per member');
  assert.equal(warnings.length, 1, 'and not judged either: it decrypted after the recovery');
  // Group evidence still counts for it.
  w.failing.add('b');
  for (let i = 0; i < MULTI_FRAMES; i++) tick('a', 'b');
  assert.deepEqual(w.recovered, [0, 3]);
});

test('a lone failing member faster than real time needs LONE_MS too; another member decrypting restarts the count', () => {
  const { w, tick, advance, guard } = setup();
  w.failing.add('a');
  for (let i = 0; i < LONE_FRAMES * 3; i++) {
    advance(-19); // 1 ms apart
    tick('a');
  }
  assert.deepEqual(w.recovered, [], `${LONE_FRAMES * 3} frames within ${LONE_FRAMES * 3} ms`);
  tick('b'); // b decrypts: a is no longer failing alone, its count restarts
  for (let i = 0; i < LONE_TRIGGER - 1; i++) tick('a');
  assert.deepEqual(w.recovered, [], 'counted again from b\'s frame');
  tick('a');
  assert.deepEqual(w.recovered, [0]);
  assert.equal(guard.recoveries, 1);
});

test('two members failing together with nothing decrypting: the recorder is at fault, recovered at once', () => {
  const { w, tick, warnings } = setup();
  w.lastTransitionId = 12;
  w.failing.add('a').add('b');
  for (let i = 0; i < MULTI_FRAMES - 1; i++) tick('a', 'b');
  assert.deepEqual(w.recovered, []);
  tick('a', 'b');
  assert.deepEqual(w.recovered, [12]);
  assert.match(warnings[0]!, /2 members \(a, b\) all fail/);
  // The re-add fixed it: both decrypt, neither is judged.
  w.rejoined(13);
  w.failing.clear();
  assert.equal(tick('a', 'b'), 2);
  assert.equal(warnings.length, 1);
});

test('two members failing, but a third decrypting in between: no recovery', () => {
  const { w, tick } = setup();
  w.failing.add('a').add('b');
  for (let i = 0; i < 200; i++) tick('a', 'b', ...(i % 4 === 0 ? ['c'] : []));
  assert.deepEqual(w.recovered, []);
});

test('failures during a transition or a re-initialisation, and failing plain frames, are never evidence', () => {
  const { w, guard, tick } = setup();
  w.failing.add('a').add('b');
  w.pendingTransitions.set(5, 1);
  for (let i = 0; i < PENDING_MAX_MS / 20 - 1; i++) tick('a', 'b'); // (longer would be evidence: see below)
  w.pendingTransitions.clear();
  w.reinitializing = true;
  for (let i = 0; i < 500; i++) tick('a', 'b');
  w.reinitializing = false;
  for (let i = 0; i < 500; i++) {
    assert.equal(guard.decrypt(plainFrame(), 'a'), null);
    assert.equal(guard.decrypt(plainFrame(), 'b'), null);
  }
  assert.deepEqual(w.recovered, []);
  // Not in a group yet: DAVE frames are lost, plain frames pass; nothing is evidence for a while (see the last test).
  w.session.ready = false;
  for (let i = 0; i < OUT_MS / 20 - 1; i++) assert.equal(tick('a', 'b'), 0);
  const plain = plainFrame();
  assert.equal(guard.decrypt(plain, 'a'), plain);
  assert.deepEqual(w.recovered, []);
});

test('an op 22 for a transition the recorder never prepared: recovered with that id; a prepared or unsettled one: nothing', async () => {
  const { w, guard, warnings } = setup();
  const settle = () => new Promise<void>((r) => setImmediate(r));
  w.lastTransitionId = 4;
  guard.onExecuteTransition(4); // executed by the wrapper (lastTransitionId matches)
  await settle();
  w.pendingTransitions.set(6, 1);
  guard.onExecuteTransition(5); // another transition is pending: the recorder is mid-change
  await settle();
  w.pendingTransitions.clear();
  w.reinitializing = true;
  guard.onExecuteTransition(5); // re-initialising (e.g. its welcome failed and the wrapper already sent op 31)
  await settle();
  w.reinitializing = false;
  assert.deepEqual(w.recovered, []);
  guard.onExecuteTransition(5);
  await settle();
  assert.deepEqual(w.recovered, [5]);
  assert.match(warnings[0]!, /executed transition 5, which this recorder never prepared/);
});

test('an op 22 while the websocket cannot signal: the recovery waits for it; a later transition supersedes it', async () => {
  let canSignal = false;
  const { w, guard, tick } = setup({ canSignal: () => canSignal });
  const settle = () => new Promise<void>((r) => setImmediate(r));
  w.lastTransitionId = 4;
  guard.onExecuteTransition(5);
  await settle();
  tick('a');
  assert.deepEqual(w.recovered, []);
  canSignal = true;
  tick('a');
  assert.deepEqual(w.recovered, [5], 'recovered at the next frame once it can signal');

  // Evidence superseded: the wrapper executed a newer transition before the recovery could go out.
  const second = setup({ canSignal: () => canSignal });
  canSignal = false;
  second.w.lastTransitionId = 4;
  second.guard.onExecuteTransition(5);
  await settle();
  second.w.lastTransitionId = 6;
  canSignal = true;
  second.tick('a');
  assert.deepEqual(second.w.recovered, []);
});

test('recoveries are rate-limited, and the gap doubles while they do not make anything decrypt', () => {
  const { w, tick, advance } = setup();
  // A new pair each time (members blamed for a recovery are on probation, then judged: see above).
  let pair = 0;
  const burst = (): void => {
    const a = `a${pair}`;
    const b = `b${pair++}`;
    w.failing.add(a).add(b);
    for (let i = 0; i < MULTI_FRAMES; i++) tick(a, b);
  };
  burst();
  assert.equal(w.recovered.length, 1);
  w.rejoined(1);
  burst();
  assert.equal(w.recovered.length, 1, `not again within ${MIN_GAP_MS} ms`);
  advance(MIN_GAP_MS);
  burst();
  assert.equal(w.recovered.length, 2, 'allowed after the gap');
  w.rejoined(2);
  advance(MIN_GAP_MS);
  burst();
  assert.equal(w.recovered.length, 2, 'nothing decrypted since the last one: the gap is now doubled');
  advance(MIN_GAP_MS);
  burst();
  assert.equal(w.recovered.length, 3);
  w.rejoined(3);
  // Something decrypts again: the gap is back to the minimum.
  tick('c');
  advance(MIN_GAP_MS);
  burst();
  assert.equal(w.recovered.length, 4);
});

test('a new wrapper (reconnect) starts from fresh evidence and keeps verdicts', () => {
  let now = 0;
  const warnings: string[] = [];
  let w = new Wrapper();
  const guard = new DaveGuard({ wrapper: () => w, canSignal: () => true, now: () => now, warn: (m) => warnings.push(m) });
  const send = (u: string) => {
    now += 20;
    guard.decrypt(daveFrame(), u);
  };
  w.failing.add('h');
  for (let i = 0; i < LONE_TRIGGER; i++) send('h');
  assert.equal(w.recovered.length, 1);
  w.rejoined(2);
  for (let i = 0; i < JUDGE_FRAMES; i++) send('h');
  assert.equal(warnings.length, 2, 'judged');
  // A reconnect: a new wrapper. The judged member is still judged; evidence from before does not carry over.
  w = new Wrapper();
  w.failing.add('h').add('x');
  now += MIN_GAP_MS;
  for (let i = 0; i < LONE_FRAMES * 2; i++) send('h');
  assert.deepEqual(w.recovered, []);
  for (let i = 0; i < MULTI_FRAMES; i++) send('x');
  assert.deepEqual(w.recovered, [], 'x alone with a judged member is not two members failing');
});

test('out of the group while members\' DAVE frames arrive: asked again after OUT_MS, also while the library is stuck re-initialising', () => {
  const { w, guard, tick, warnings } = setup();
  const trigger = Math.max(OUT_FRAMES, OUT_MS / 20 + 1);
  // Not in a group yet (waiting for a welcome): lost frames, but only a long wait is evidence.
  w.session.ready = false;
  for (let i = 0; i < trigger - 1; i++) assert.equal(tick('a'), 0);
  const plain = plainFrame();
  assert.equal(guard.decrypt(plain, 'a'), plain, 'plain frames pass and do not count');
  assert.deepEqual(w.recovered, []);
  tick('a');
  assert.deepEqual([w.recovered, w.reinits], [[0], 1], 'op 31 and a fresh session');
  assert.match(warnings[0]!, /no MLS group for 3\.0 s/);
  // The re-add's welcome is rejected: the library is re-initialising and ignores it (it would stay out for good).
  assert.equal(w.reinitializing, true);
  for (let i = 0; i < trigger - 1; i++) tick('a', 'b');
  assert.deepEqual(w.recovered, [0], 'not before the rate limit and OUT_MS');
  for (let i = 0; i < MIN_GAP_MS / 20; i++) tick('a');
  assert.deepEqual([w.recovered, w.reinits], [[0, 0], 2], 'asked again despite reinitializing');
  // In a group: the count restarts.
  w.rejoined(9);
  assert.equal(tick('a'), 1);
  w.session.ready = false;
  w.reinitializing = false;
  for (let i = 0; i < trigger - 1; i++) tick('a');
  assert.equal(w.recovered.length, 2);
});

test('a transition left pending for good (its op 22 never came) stops excusing failures after PENDING_MAX_MS', async () => {
  const { w, guard, tick, warnings } = setup();
  // The recorder processed commit 3 but never got its op 22: the wrapper keeps it pending; frames still decrypt.
  w.pendingTransitions.set(3, 1);
  for (let i = 0; i < PENDING_MAX_MS / 20 - 10; i++) assert.equal(tick('a', 'b'), 2);
  // Within PENDING_MAX_MS of it showing up, failures are a transition's cost...
  w.failing.add('a').add('b');
  for (let i = 0; i < MULTI_FRAMES; i++) tick('a', 'b');
  assert.deepEqual(w.recovered, []);
  // ...after that, evidence again: the members moved on and the recorder did not.
  for (let i = 0; i < 10; i++) tick('a', 'b');
  assert.deepEqual(w.recovered, [0]);
  assert.match(warnings[0]!, /2 members/);
  // A fresh transition next to the stale one still excuses failures, and an op 22 is judged on the fresh one.
  const second = setup();
  second.w.pendingTransitions.set(3, 1);
  for (let i = 0; i < PENDING_MAX_MS / 20 + 1; i++) second.tick('a');
  second.w.pendingTransitions.set(4, 1);
  second.w.failing.add('a').add('b');
  for (let i = 0; i < 100; i++) second.tick('a', 'b');
  assert.deepEqual(second.w.recovered, []);
  second.w.pendingTransitions.delete(4);
  second.w.lastTransitionId = 4;
  second.guard.onExecuteTransition(5); // never prepared; only the stale 3 is pending
  await new Promise<void>((r) => setImmediate(r));
  assert.deepEqual(second.w.recovered, [5]);
  void guard;
});
