/**
 * Replay state per authenticated stream (src/receiver/stream-replay.ts), under every way a server may number the
 * nonces it forwards: one counter per connection, one per stream from random starts, from 0, from 0x80000000.
 * Nothing a legitimate numbering produces is refused; replays, duplicates and old datagrams are, however many;
 * a counter that restarts on a kept SSRC costs nothing; memory stays bounded.
 * (The single window itself — repeats, wrap, "too old" — is covered in test/hostile.test.ts too.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplayFilter } from '../src/receiver/replay-filter.ts';
import { StreamReplayFilters, type RtpPosition } from '../src/receiver/stream-replay.ts';
import { Prng } from '../src/simulator/prng.ts';

/** One forwarded stream as a server sends it: RTP position advancing 20 ms per packet. */
interface Sender {
  ssrc: number;
  sequence: number;
  timestamp: number;
}
const next = (s: Sender): RtpPosition => {
  const p = { sequence: s.sequence, timestamp: s.timestamp };
  s.sequence = (s.sequence + 1) & 0xffff;
  s.timestamp = (s.timestamp + 960) >>> 0;
  return p;
};

interface Datagram {
  ssrc: number;
  nonce: number;
  rtp: RtpPosition;
}

/**
 * `streams` senders each sending `perStream` packets round-robin, numbered as the server would, then shuffled by a
 * network that holds some packets back by up to `reorder` positions.
 */
function call(numbering: 'per-connection' | 'per-stream-random' | 'per-stream-zero' | 'per-stream-high', streams: number, perStream: number, reorder: number, prng: Prng): Datagram[] {
  const senders: Sender[] = Array.from({ length: streams }, (_, i) => ({ ssrc: 1000 + i, sequence: prng.int(0, 65_535), timestamp: prng.u32() }));
  const counters = senders.map(() => (numbering === 'per-stream-random' ? prng.u32() : numbering === 'per-stream-high' ? 0x8000_0000 : 0));
  let connection = 0;
  const out: Datagram[] = [];
  for (let k = 0; k < perStream; k++) {
    senders.forEach((s, i) => {
      const nonce = numbering === 'per-connection' ? connection++ : counters[i]!;
      counters[i] = (counters[i]! + 1) >>> 0;
      out.push({ ssrc: s.ssrc, nonce: nonce >>> 0, rtp: next(s) });
    });
  }
  // Reordering: a packet held back lands up to `reorder` positions later.
  for (let i = out.length - 1; i > 0; i--) {
    if (!prng.chance(0.05)) continue;
    const j = Math.min(out.length - 1, i + prng.int(1, reorder));
    const [held] = out.splice(i, 1);
    out.splice(j, 0, held!);
  }
  return out;
}

for (const numbering of ['per-connection', 'per-stream-random', 'per-stream-zero', 'per-stream-high'] as const) {
  test(`${numbering}: every datagram of 50 reordered streams accepted once; every replay and duplicate refused`, () => {
    const prng = new Prng(0x5eed);
    const f = new StreamReplayFilters({ window: 16_384, maxStreams: 1024 });
    const datagrams = call(numbering, 50, 400, 150, prng);
    for (const d of datagrams) assert.equal(f.accept(d.ssrc, d.nonce, d.rtp), true, `${d.ssrc}/${d.nonce}`);
    // Every one again (network duplicates, replays right after), then old ones from the start of the call.
    for (const d of datagrams.slice(-2000)) assert.equal(f.accept(d.ssrc, d.nonce, d.rtp), false, 'duplicate');
    for (const d of datagrams.slice(0, 2000)) assert.equal(f.accept(d.ssrc, d.nonce, d.rtp), false, 'old replay');
    assert.equal(f.restarts, 0);
  });
}

test('equal nonces from different senders are normal; RTP and RTCP of one sender are separate streams', () => {
  const rtp = new StreamReplayFilters({ window: 1024, maxStreams: 16 });
  const rtcp = new StreamReplayFilters({ window: 1024, maxStreams: 16 });
  for (let n = 0; n < 100; n++) {
    for (const ssrc of [1, 2, 3]) assert.equal(rtp.accept(ssrc, n, { sequence: n, timestamp: n * 960 }), true);
    assert.equal(rtcp.accept(1, n), true, 'the RTCP of sender 1 reuses its RTP nonces');
  }
  assert.equal(rtp.accept(2, 50, { sequence: 50, timestamp: 50 * 960 }), false, 'but a repeat within one stream is a replay');
  assert.equal(rtcp.accept(1, 99), false);
});

test('a counter wrapping from 0xFFFFFFFF to 0 within one stream is an ordinary step', () => {
  const f = new StreamReplayFilters({ window: 1024, maxStreams: 4 });
  const s: Sender = { ssrc: 7, sequence: 65_530, timestamp: 0xffff_f000 };
  const sent: Datagram[] = [];
  for (let n = 0xffff_fff0; sent.length < 40; n = (n + 1) >>> 0) sent.push({ ssrc: 7, nonce: n, rtp: next(s) });
  for (const d of sent) assert.equal(f.accept(d.ssrc, d.nonce, d.rtp), true, `nonce ${d.nonce.toString(16)}`);
  for (const d of sent) assert.equal(f.accept(d.ssrc, d.nonce, d.rtp), false, `replay of ${d.nonce.toString(16)}`);
});

test('600 speakers under one counter per connection: reordering by 300 ms is inside every stream\'s window', () => {
  // 600 × 50 packets/s = 30,000 nonces/s: a packet held back 300 ms is 9,000 nonces behind its stream's newest.
  const prng = new Prng(600);
  const f = new StreamReplayFilters({ window: 16_384, maxStreams: 1024 });
  const datagrams = call('per-connection', 600, 30, 600 * 15, prng);
  let refused = 0;
  for (const d of datagrams) if (!f.accept(d.ssrc, d.nonce, d.rtp)) refused++;
  assert.equal(refused, 0);
  assert.ok(f.bytes <= 1024 * 2048, `${f.bytes} bytes of windows`);
});

test('no valve: old replays stay refused however many arrive, with fresh traffic or without', () => {
  const f = new StreamReplayFilters({ window: 1024, maxStreams: 4 });
  const s: Sender = { ssrc: 9, sequence: 0, timestamp: 0 };
  const sent: Datagram[] = [];
  for (let n = 0; n < 5000; n++) sent.push({ ssrc: 9, nonce: n, rtp: next(s) });
  for (const d of sent) f.accept(d.ssrc, d.nonce, d.rtp);
  // 4,000 replays of old datagrams (the old single window stopped judging age after 64 of them).
  for (const d of sent.slice(0, 4000)) assert.equal(f.accept(d.ssrc, d.nonce, d.rtp), false);
  assert.equal(f.accept(9, 5000, next(s)), true, 'the stream goes on');
});

test('a counter restarted on a kept SSRC (far behind, or reusing nonces) is followed at once; replays stay refused', () => {
  // Before: nonces 5000..6999. The counter restarts at 0 (far behind), 4000 (behind, then runs over the old range)
  // or 6900 (nonces it already used).
  for (const start of [0, 4000, 6900]) {
    const f = new StreamReplayFilters({ window: 1024, maxStreams: 4 });
    const s: Sender = { ssrc: 5, sequence: 100, timestamp: 1_000_000 };
    const before: Datagram[] = [];
    for (let n = 5000; n < 7000; n++) before.push({ ssrc: 5, nonce: n, rtp: next(s) });
    for (const d of before) assert.equal(f.accept(d.ssrc, d.nonce, d.rtp), true);
    // The server rebuilt its forwarding state: same SSRC, the sender's RTP goes on, the counter starts again.
    const after: Datagram[] = [];
    for (let n = 0; n < 2500; n++) after.push({ ssrc: 5, nonce: start + n, rtp: next(s) });
    for (const d of after) assert.equal(f.accept(d.ssrc, d.nonce, d.rtp), true, `restarted at ${start}: nonce ${d.nonce}`);
    assert.equal(f.restarts, 1, 'recognised once');
    // Replays of the new datagrams, and of the old ones the new counter has passed: refused.
    for (const d of after) assert.equal(f.accept(d.ssrc, d.nonce, d.rtp), false, `replay of new ${d.nonce}`);
    const passed = before.filter((d) => d.nonce <= start + 2499);
    for (const d of passed) assert.equal(f.accept(d.ssrc, d.nonce, d.rtp), false, `replay of old ${d.nonce}`);
    assert.equal(passed.length, Math.min(2000, Math.max(0, start + 2500 - 5000)));
    assert.equal(f.restarts, 1);
  }
});

test('a too-old or seen nonce whose RTP position is not ahead is a replay, never a restart', () => {
  const f = new StreamReplayFilters({ window: 1024, maxStreams: 4 });
  const s: Sender = { ssrc: 3, sequence: 65_000, timestamp: 0xffff_0000 };
  const sent: Datagram[] = [];
  for (let n = 10_000; n < 13_000; n++) sent.push({ ssrc: 3, nonce: n, rtp: next(s) });
  for (const d of sent) f.accept(d.ssrc, d.nonce, d.rtp);
  // Same RTP position as the newest (a duplicate), or older: refused, whatever the nonce says.
  const newest = sent.at(-1)!;
  assert.equal(f.accept(3, 5, newest.rtp), false);
  assert.equal(f.accept(3, 12_500, sent[2500]!.rtp), false);
  // Sequence ahead but timestamp not (or the reverse): not a restart either.
  assert.equal(f.accept(3, 5, { sequence: (newest.rtp.sequence + 1) & 0xffff, timestamp: newest.rtp.timestamp }), false);
  assert.equal(f.accept(3, 5, { sequence: newest.rtp.sequence, timestamp: (newest.rtp.timestamp + 960) >>> 0 }), false);
  assert.equal(f.restarts, 0);
});

test('more streams than the cap: bounded, windows recycled, an evicted stream\'s old datagrams still refused', () => {
  const f = new StreamReplayFilters({ window: 16_384, maxStreams: 64, maxTombstones: 256 });
  const alice: Sender = { ssrc: 1, sequence: 0, timestamp: 0 };
  const aliceSent: Datagram[] = [];
  let nonce = 0;
  for (let i = 0; i < 20; i++) {
    const d = { ssrc: 1, nonce: nonce++, rtp: next(alice) };
    aliceSent.push(d);
    assert.equal(f.accept(d.ssrc, d.nonce, d.rtp), true);
  }
  // 200 other streams push alice's window out.
  for (let ssrc = 100; ssrc < 300; ssrc++) f.accept(ssrc, nonce++, { sequence: 0, timestamp: 0 });
  assert.ok(f.streams <= 64 && f.tombstones <= 256, `${f.streams} streams, ${f.tombstones} tombstones`);
  assert.ok(f.bytes <= (64 + 16) * 2048, `${f.bytes} bytes`);
  for (const d of aliceSent) assert.equal(f.accept(d.ssrc, d.nonce, d.rtp), false, `alice's old ${d.nonce} after eviction`);
  assert.equal(f.accept(1, nonce++, next(alice)), true, 'alice goes on');
  // An active stream survives a flood (it is used between newcomers).
  const bob: Sender = { ssrc: 2, sequence: 0, timestamp: 0 };
  for (let ssrc = 1000; ssrc < 5000; ssrc++) {
    f.accept(ssrc, nonce++, { sequence: 0, timestamp: 0 });
    if (ssrc % 8 === 0) assert.equal(f.accept(2, nonce++, next(bob)), true);
  }
  assert.ok(f.streams <= 64 && f.tombstones <= 256);
  f.reset();
  assert.equal(f.streams + f.tombstones, 0, 'a new key forgets everything');
});

test('the window: a slide clears exactly the nonces that fall out, whatever the step', () => {
  const prng = new Prng(0x511de);
  const f = new ReplayFilter(1024);
  const seen = new Set<number>();
  let n = 0;
  for (let i = 0; i < 20_000; i++) {
    n += prng.int(1, 700);
    assert.equal(f.accept(n), true);
    seen.add(n);
    for (const old of seen) if (n - old >= 1024) seen.delete(old);
    assert.equal(f.size, seen.size);
  }
  for (const old of seen) assert.equal(f.judge(old), 'seen');
  assert.equal(f.judge(n - 1024), 'too-old');
});
