/**
 * The replay filter's safety valve: a server whose nonces are not one counter must not lose audio wholesale.
 * (The window itself — repeats, wrap, "too old" — is covered in test/hostile.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplayFilter, TOO_OLD_TRIP } from '../src/receiver/replay-filter.ts';

test('one counter: old replays stay refused, a handful never turns the age check off', () => {
  const f = new ReplayFilter(1024);
  for (let n = 1; n <= 20_000; n++) assert.equal(f.accept(n), true);
  // An attacker's few dozen replays from long ago: refused, and the check stays on.
  for (let n = 1; n <= TOO_OLD_TRIP - 1; n++) assert.equal(f.accept(n), false, `old nonce ${n}`);
  assert.equal(f.ageCheck, true);
  assert.equal(f.accept(19_999), false, 'a repeat inside the window');
});

test('two counters in disjoint ranges (a server numbering per stream): at most TOO_OLD_TRIP datagrams refused, then all pass', () => {
  const f = new ReplayFilter(1024);
  let refused = 0;
  // Stream A counts from 1,000,000, stream B from 5,000, interleaved as a server forwarding two speakers would send.
  for (let k = 0; k < 5_000; k++) {
    assert.equal(f.accept(1_000_000 + k), true, `A ${k}`);
    if (!f.accept(5_000 + k)) refused++;
  }
  assert.equal(f.ageCheck, false, 'the filter noticed that the nonces are not one sequence');
  assert.ok(refused <= TOO_OLD_TRIP, `B lost ${refused} datagrams`);
  // Exact repeats inside the window are still refused.
  assert.equal(f.accept(1_000_000 + 4_999), false);
  // A new key starts with the check on again.
  f.reset();
  assert.equal(f.ageCheck, true);
});
