/**
 * The per-user sink stack (jitter buffer → clock → concealment → capture writer), driven in-process with a
 * simulated clock and REAL Opus packets of known tones; the capture files are read back and checked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JitterBuffer, seqDiff, type JitterPacket } from '../src/sinks/jitter-buffer.ts';
import { StreamClock } from '../src/sinks/clock.ts';
import { OpusWasm } from '../src/sinks/opus-decoder.ts';
import { CaptureWriter, WRITEBACK_BYTES, WRITEBACK_MAX_BYTES } from '../src/sinks/capture-writer.ts';
import { Track } from '../src/sinks/track.ts';
import type { AudioPacket } from '../src/sinks/types.ts';
import { opusHasFec } from '../src/sinks/opus-fec.ts';
import {
  FRAME,
  SILENCE_FRAME,
  TONE_AMPLITUDE,
  buildStream,
  dropouts,
  encodeSignal,
  encodeTone,
  network,
  onset,
  peak,
  prng,
  readCaptureLeft,
  toneLevel,
} from './sink-fixtures.ts';

const wasm = new OpusWasm();
const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'dvrec-sinks-'));
  dirs.push(d);
  return d;
}
test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function jp(sequence: number, arrivalMs: number, timestamp = sequence * FRAME): JitterPacket {
  return { sequence: sequence & 0xffff, timestamp: timestamp >>> 0, arrivalMs, opus: new Uint8Array([sequence & 0xff]) };
}

function drainAll(jb: JitterBuffer, now: number, drain = false): { seq: number; lost: number; resync: boolean }[] {
  const out = [];
  let r;
  while ((r = jb.pop(now, drain)) !== null) out.push({ seq: r.packet.sequence, lost: r.lost, resync: r.resync });
  return out;
}

/** Feeds packets (sorted by arrival) into a track, ticking every 10 ms like a worker, then finishes it. */
function runTrack(path: string, packets: AudioPacket[], endMs: number, opts: { keepOpus?: string } = {}) {
  const t = new Track({ capturePath: path, packetLogPath: opts.keepOpus, wasm });
  let tick = 0;
  for (const p of packets) {
    while (tick + 10 <= p.arrivalMs) {
      tick += 10;
      t.advance(tick);
      t.flushIfDue(tick);
    }
    t.push(p);
  }
  return t.finish(endMs);
}

test('serial-number arithmetic: wraparound is ordinary', () => {
  assert.equal(seqDiff(0, 65535), 1);
  assert.equal(seqDiff(65535, 0), -1);
  assert.equal(seqDiff(5, 65530), 11);
  assert.equal(seqDiff(100, 100), 0);
  assert.equal(seqDiff(32767, 0), 32767);
});

test('jitter buffer: in-order release across 65535→0, reordering, duplicates, late, gaps', () => {
  const jb = new JitterBuffer({ playoutDelayMs: 60 });
  // Priming: the first packet is held for the playout window; one reordered ahead of it still gets in.
  jb.push(jp(65533, 0));
  assert.deepEqual(drainAll(jb, 10), []);
  jb.push(jp(65532, 15));
  jb.push(jp(65534, 20));
  assert.deepEqual(drainAll(jb, 59), []);
  assert.deepEqual(
    drainAll(jb, 60).map((r) => r.seq),
    [65532, 65533, 65534],
  );
  // Across the wrap, in order: released at once.
  jb.push(jp(65535, 80));
  jb.push(jp(0, 100));
  assert.deepEqual(drainAll(jb, 100).map((r) => [r.seq, r.lost]), [[65535, 0], [0, 0]]);
  // Reorder: 2 before 1 → 1 is waited for and fills the gap.
  jb.push(jp(2, 140));
  assert.deepEqual(drainAll(jb, 150), []);
  jb.push(jp(1, 160));
  assert.deepEqual(drainAll(jb, 160).map((r) => [r.seq, r.lost]), [[1, 0], [2, 0]]);
  // Duplicate of a released packet, and of a buffered one.
  assert.equal(jb.push(jp(2, 165)), false);
  jb.push(jp(4, 180));
  assert.equal(jb.push(jp(4, 181)), false);
  assert.equal(jb.counters.duplicate, 2);
  // Gap: 3 never comes → after 60 ms 4 is released with lost = 1.
  assert.deepEqual(drainAll(jb, 239), []);
  assert.deepEqual(drainAll(jb, 240).map((r) => [r.seq, r.lost]), [[4, 1]]);
  assert.equal(jb.counters.lost, 1);
  // 3 arriving now is late.
  assert.equal(jb.push(jp(3, 250)), false);
  assert.equal(jb.counters.late, 1);
  // A run of 3 lost.
  jb.push(jp(8, 300));
  assert.deepEqual(drainAll(jb, 360).map((r) => [r.seq, r.lost]), [[8, 3]]);
  assert.equal(jb.counters.lost, 4);
});

test('jitter buffer: a long timestamp jump primes a new spurt and is flagged for re-anchoring', () => {
  const jb = new JitterBuffer({ playoutDelayMs: 60 });
  jb.push(jp(10, 0, 0));
  assert.equal(drainAll(jb, 60)[0]!.resync, true);
  jb.push(jp(11, 80, 960));
  assert.deepEqual(drainAll(jb, 80), [{ seq: 11, lost: 0, resync: false }]);
  // 5 s pause: sequence continues, timestamp jumps.
  jb.push(jp(12, 5080, 960 + 240_000));
  assert.deepEqual(drainAll(jb, 5100), []);
  jb.push(jp(13, 5100, 960 + 240_960));
  assert.deepEqual(drainAll(jb, 5140), [
    { seq: 12, lost: 0, resync: true },
    { seq: 13, lost: 0, resync: false },
  ]);
  // A short pause (300 ms) is not a resync: positions follow timestamps.
  jb.push(jp(14, 5440, 960 + 240_960 + 960 + 14_400));
  assert.deepEqual(drainAll(jb, 5440), [{ seq: 14, lost: 0, resync: false }]);
});

test('jitter buffer: a packet far ahead forces the gap; a confirmed sequence restart starts over', () => {
  const jb = new JitterBuffer({ playoutDelayMs: 60, capacity: 16 });
  jb.push(jp(100, 0));
  drainAll(jb, 60);
  jb.push(jp(102, 70)); // gap at 101, held
  jb.push(jp(130, 71)); // 28 ahead of 102 with capacity 16: 102 must go now
  assert.deepEqual(drainAll(jb, 71).map((r) => [r.seq, r.lost]), [[102, 1]]);
  assert.deepEqual(drainAll(jb, 131).map((r) => [r.seq, r.lost]), [[130, 27]]);
  // Sequence restart (sender re-initialised): three consecutive packets far away.
  jb.push(jp(40_000, 200, 5_000_000));
  jb.push(jp(40_001, 220, 5_000_960));
  assert.deepEqual(drainAll(jb, 225), []);
  jb.push(jp(40_002, 240, 5_001_920));
  const r = drainAll(jb, 400);
  assert.deepEqual(r.map((x) => x.seq), [40_000, 40_001, 40_002]);
  assert.equal(r[0]!.resync, true);
  assert.equal(jb.counters.lost, 28, 'a restart is not counted as loss');
});

test('clock: pauses come out exact from timestamps; drift never accumulates over an hour', () => {
  const c = new StreamClock();
  // A packet arriving at 520 ms carries the 20 ms that started at 500 ms.
  c.anchorOn([{ timestamp: 1000, arrivalMs: 520 }], 1000, 0);
  assert.equal(c.position(1000, 520), 24_000);
  // A 300 ms pause, arriving 17 ms late: position from the timestamp alone.
  assert.equal(c.position(1000 + 960 + 14_400, 520 + 20 + 300 + 17), 24_000 + 960 + 14_400);
  // 32-bit timestamp wrap.
  const w = new StreamClock();
  w.anchorOn([{ timestamp: 0xffff_fc40, arrivalMs: 0 }], 0xffff_fc40, 0);
  const p0 = w.position(0xffff_fc40, 0);
  assert.equal(w.position(0x0000_0000, 20) - p0, 960);

  // A sender clock 200 ppm fast or slow (12 ms a minute), continuous speech for an hour, 0–30 ms of jitter, and
  // every minute 2 s of congestion (+60 ms) that must not be taken for drift. Driven as the track drives it:
  // each packet's audio is stretched by slewStep() samples and the anchor shifted by as much.
  const hour = (ppm: number, seed: number, congestedStart = false) => {
    const rnd = prng(seed);
    const d = new StreamClock();
    const rate = 1 + ppm * 1e-6;
    const errs: number[] = [];
    let maxStep = 0;
    let slewedAfterWarmup = 0;
    let ts = 12345;
    for (let i = 0; i < 180_000; i++) {
      const trueMs = (i * 20) / rate; // when the frame was really spoken on our clock
      const congestion = (i + (congestedStart ? 0 : 1500)) % 3000 < 100 ? 60 : 0;
      const arrival = trueMs + 20 + 30 * rnd() + congestion; // sent when the frame is complete, plus delay
      if (i === 0) d.anchorOn([{ timestamp: ts, arrivalMs: arrival }], ts, 0);
      const pos = d.position(ts, arrival);
      const step = d.slewStep(960);
      d.shift(step);
      maxStep = Math.max(maxStep, Math.abs(step));
      errs.push(Math.abs(pos / 48 - trueMs));
      if (i === 1500) slewedAfterWarmup = d.slewedSamples;
      ts = (ts + 960) >>> 0;
    }
    // From 30 s on: the first anchor rests on one packet (up to 30 ms late, or 90 ms in congestion) and is
    // refined from there.
    const maxErr = errs.slice(1500).reduce((a, b) => Math.max(a, b), 0);
    return { errs, maxErr, maxStep, jumps: d.driftCorrections, slewed: d.slewedSamples - slewedAfterWarmup };
  };
  for (const ppm of [200, -200]) {
    const r = hour(ppm, 7);
    assert.equal(r.jumps, 0, `${ppm} ppm: corrected smoothly, never by a jump`);
    assert.ok(r.maxStep <= 5, `${ppm} ppm: at most 5 samples per 960 (${r.maxStep})`);
    assert.ok(r.maxErr < 5, `${ppm} ppm: position error stays under 5 ms over the hour, max ${r.maxErr.toFixed(2)} ms`);
    // The drift over the hour (~720 ms) was corrected, and not much more.
    const drift = 3600 * 48_000 * Math.abs(ppm) * 1e-6;
    assert.ok(Math.abs(r.slewed - drift) < 0.05 * drift, `${ppm} ppm: slewed ${r.slewed} samples for ${drift.toFixed(0)} of drift`);
  }
  const still = hour(0, 8);
  assert.equal(still.slewed, 0, 'no drift: jitter and congestion bursts are not corrected');
  assert.ok(still.maxErr < 3, `no drift: max error ${still.maxErr.toFixed(2)} ms`);
  // Anchored on a congested packet (60 ms late): back within 5 ms in under 30 s, never by a jump.
  const late = hour(-150, 9, true);
  assert.ok(late.errs[0]! > 55, `starts off by ${late.errs[0]!.toFixed(1)} ms`);
  assert.ok(late.maxErr < 5, `within 5 ms after 30 s: ${late.maxErr.toFixed(2)} ms`);
  assert.equal(late.jumps, 0);
});

test('opus decoder: FEC recovers a lost frame, PLC conceals, normal decode reproduces the tone', () => {
  const pkts = encodeTone(440, 30);
  const dec = wasm.newDecoder();
  const level = (pcm: Uint8Array | null): number => {
    assert.ok(pcm !== null);
    const v = new Int16Array(pcm.slice().buffer);
    const left = new Int16Array(v.length / 2);
    for (let i = 0; i < left.length; i++) left[i] = v[i * 2]!;
    return toneLevel(left, 0, left.length, 440);
  };
  for (let i = 0; i < 10; i++) dec.decode(pkts[i]!);
  const normal = level(dec.decode(pkts[10]!));
  assert.ok(normal > TONE_AMPLITUDE * 0.7, `decoded tone ${normal}`);
  // Packet 11 lost: recover it from packet 12's FEC, then decode 12.
  const fec = dec.decodeFec(pkts[12]!, 960);
  assert.equal(fec!.length, 960 * 4, 'FEC yields exactly the missing 20 ms');
  assert.ok(level(fec) > TONE_AMPLITUDE * 0.5, `FEC frame carries the tone: ${level(fec)}`);
  dec.decode(pkts[12]!);
  const plc = dec.conceal(960);
  assert.equal(plc!.length, 960 * 4, 'PLC yields exactly 20 ms');
  assert.equal(dec.decode(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff])), null, 'garbage is rejected, not thrown');
  dec.free();
});

test('capture writer: positional, holes are silence, 0600, packet log records, exact final length', () => {
  const d = tmp();
  const path = join(d, 'a.wav');
  const log = join(d, 'a.opus.pkt');
  const w = new CaptureWriter(path, { packetLogPath: log, flushMs: 250 });
  const frame = new Uint8Array(960 * 4).fill(1);
  w.write(4800, frame, 0);
  w.write(5760, frame, 10); // contiguous: coalesced
  w.logPacket(4800, new Uint8Array([9, 8, 7]), 0);
  w.flushIfDue(100);
  assert.equal(statSync(path).size, 44, 'nothing flushed before flushMs');
  w.flushIfDue(250);
  assert.equal(statSync(path).size, 44 + 6720 * 4, 'flushed after flushMs, one coalesced write');
  w.write(48_000, frame, 300);
  w.flush();
  assert.equal(statSync(path).size, 44 + (48_000 + 960) * 4);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(log).mode & 0o777, 0o600);
  w.finish(24_000); // 0.5 s: audio beyond is cut
  const buf = readFileSync(path);
  assert.equal(buf.length, 44 + 24_000 * 4);
  assert.equal(buf.toString('ascii', 0, 4), 'RIFF');
  assert.equal(buf.readUInt32LE(40), 24_000 * 4);
  assert.equal(peak(readCaptureLeft(path).left, 0, 4800), 0);
  assert.equal(buf[44 + 4800 * 4], 1);
  assert.equal(buf[44 + 6720 * 4], 0);
  assert.deepEqual([...readFileSync(log)], [0xc0, 0x12, 0, 0, 3, 0, 9, 8, 7]);
  // Reopening continues without truncating (a replaced worker).
  const w2 = new CaptureWriter(path, { resume: true });
  assert.equal(w2.writtenEnd, 24_000);
  w2.close();
  assert.equal(statSync(path).size, 44 + 24_000 * 4);
});

test('capture writer: writeback is started as the capture grows, over everything written, at most 1.5 MiB behind, at varying sizes', () => {
  const d = tmp();
  const calls: { offset: number; length: number }[] = [];
  const w = new CaptureWriter(join(d, 'wb.wav'), { startWriteback: (_fd, offset, length) => calls.push({ offset, length }) });
  const frame = new Uint8Array(960 * 4).fill(3);
  const frames = 3000; // 60 s of audio, 11.5 MB
  let maxBehind = 0;
  for (let i = 0; i < frames; i++) {
    w.write(i * 960, frame, i * 20);
    w.flushIfDue(i * 20);
    const started = calls.reduce((n, c) => n + c.length, 0);
    // What was written and not yet handed to writeback (the pending buffer is not written yet: not counted).
    maxBehind = Math.max(maxBehind, statSync(join(d, 'wb.wav')).size - 44 - started);
  }
  w.close();
  assert.ok(calls.length >= 2, `${calls.length} writeback calls`);
  let next = 44;
  for (const c of calls) {
    assert.equal(c.offset, next, 'ranges follow each other without gaps or overlap');
    assert.ok(c.length >= WRITEBACK_BYTES / 2 && c.length <= WRITEBACK_MAX_BYTES + 64 * 1024, `range of ${c.length} bytes`);
    next = c.offset + c.length;
  }
  assert.ok(maxBehind <= WRITEBACK_MAX_BYTES, `at most ${maxBehind} bytes written and not yet handed to writeback`);
  // Sizes vary, so tracks that started together do not all start writeback in the same instant.
  assert.ok(new Set(calls.map((c) => c.length)).size > 1, 'range sizes vary');
  // Without the hook (no addon), nothing is attempted and the capture is the same.
  const w2 = new CaptureWriter(join(d, 'plain.wav'), { startWriteback: null });
  for (let i = 0; i < frames; i++) w2.write(i * 960, frame, i * 20);
  w2.close();
  assert.ok(readFileSync(join(d, 'plain.wav')).equals(readFileSync(join(d, 'wb.wav'))));
});

test('track: tone at the right place across seq wraparound, exact silence in pauses, exact length', () => {
  const d = tmp();
  const path = join(d, 'u.wav');
  const a = encodeTone(440, 50);
  const b = encodeTone(440, 25);
  const c = encodeTone(440, 25);
  // Spurt 1 at 1.000 s; then 5 silence frames; a 2 s pause (re-anchor); spurt 2; a 300 ms pause; spurt 3.
  const spurt2Ts = 55 * FRAME + 96_000;
  const spurt3Ts = spurt2Ts + 25 * FRAME + 14_400;
  const pkts = buildStream({
    userId: 'u',
    ssrc: 1,
    firstSeq: 65_500,
    firstTs: 4_294_900_000,
    startMs: 1000,
    spurts: [
      { tsOffset: 0, packets: [...a, ...Array(5).fill(SILENCE_FRAME)] },
      { tsOffset: spurt2Ts, packets: b },
      { tsOffset: spurt3Ts, packets: c },
    ],
  });
  const arrived = network(pkts, { jitterMs: 10, seed: 3 });
  const endMs = 6000;
  const s = runTrack(path, arrived, endMs);
  const { left, dataBytes } = readCaptureLeft(path);
  assert.equal(dataBytes, endMs * 48 * 4, 'length = endMs exactly');
  assert.equal(s.received, pkts.length);
  assert.equal(s.lost + s.late + s.duplicate, 0);
  assert.equal(peak(left, 0, 48_000 - FRAME), 0, 'exact silence before the first packet');
  const on1 = onset(left, 440);
  assert.ok(Math.abs(on1 - 48_000) <= FRAME, `spurt 1 onset ${on1} ≈ 48000`);
  const end1 = 48_000 + 55 * FRAME;
  assert.equal(peak(left, end1 + FRAME, 48_000 + spurt2Ts - FRAME), 0, 'exact silence in the 2 s pause');
  const on2 = onset(left, 440, end1 + FRAME);
  assert.ok(Math.abs(on2 - (48_000 + spurt2Ts)) <= FRAME, `spurt 2 onset ${on2} ≈ ${48_000 + spurt2Ts}`);
  // The 300 ms pause is inside the timestamp-continuous sequence: it comes out exact.
  const end2 = on2 + 25 * FRAME;
  assert.equal(peak(left, end2 + FRAME, end2 + 14_400 - FRAME), 0, 'exact silence in the 300 ms pause');
  const on3 = onset(left, 440, end2 + FRAME);
  assert.equal(on3 - on2, 25 * FRAME + 14_400, 'pause length exact to the sample');
  assert.equal(peak(left, on3 + 26 * FRAME, left.length), 0, 'silence to the end');
  assert.ok(Math.abs((s.startOffsetMs ?? -1) - 1000) <= 20, `startOffsetMs ${s.startOffsetMs}`);
  // Every frame written; a drift correction (clock.ts) may have resampled a frame by a sample or two.
  assert.ok(Math.abs(s.activeMs - (55 + 25 + 25) * 20) <= 0.1, `activeMs ${s.activeMs}`);
});

test('track: single losses are concealed with FEC; no dropouts', () => {
  const d = tmp();
  const path = join(d, 'u.wav');
  const tone = encodeTone(440, 150);
  const pkts = buildStream({ userId: 'u', ssrc: 9, firstSeq: 100, firstTs: 0, startMs: 500, spurts: [{ tsOffset: 0, packets: tone }] });
  const drop = new Set([20, 41, 60, 61, 90, 120]);
  const s = runTrack(path, network(pkts, { dropIndices: drop }), 4000);
  assert.equal(s.lost, 6);
  assert.equal(s.concealed, 6, 'every short gap concealed (FEC for singles, PLC+FEC for the pair)');
  const { left } = readCaptureLeft(path);
  const start = onset(left, 440);
  const r = dropouts(left, start + FRAME, start + 148 * FRAME);
  assert.equal(r.bad, 0, `dropouts ${r.bad}/${r.blocks}`);
  assert.equal(s.activeMs, 150 * 20);
});

/** Left channel of interleaved s16le stereo PCM. */
function leftOf(pcm: Uint8Array): Int16Array {
  const v = new Int16Array(pcm.slice().buffer);
  const out = new Int16Array(v.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = v[i * 2]!;
  return out;
}
function sqErr(a: Int16Array, b: Int16Array): number {
  let e = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) e += (a[i]! - b[i]!) ** 2;
  return e;
}
/** First sample from `from` whose magnitude exceeds 1000 (the record tests' onset). */
function firstLoud(x: Int16Array, from = 0): number {
  for (let i = from; i < x.length; i++) if (Math.abs(x[i]!) > 1000) return i;
  return -1;
}

test('opusHasFec reads the LBRR flag exactly when libopus can use FEC (so FEC and PLC are counted right)', () => {
  const check = (pkts: Buffer[]): { agree: number; withFec: number } => {
    let agree = 0;
    let withFec = 0;
    for (let k = 1; k < pkts.length; k++) {
      // Two decoders in the state "frame k−1 lost": FEC from packet k vs plain PLC. Equal output = no FEC used.
      const a = wasm.newDecoder();
      const b = wasm.newDecoder();
      for (let j = Math.max(0, k - 8); j < k - 1; j++) {
        a.decode(pkts[j]!);
        b.decode(pkts[j]!);
      }
      const fec = Buffer.from(a.decodeFec(pkts[k]!, FRAME)!);
      const plc = Buffer.from(b.conceal(FRAME)!);
      a.free();
      b.free();
      const used = !fec.equals(plc);
      if (used === opusHasFec(pkts[k]!)) agree++;
      if (used) withFec++;
    }
    return { agree, withFec };
  };
  const voiced = encodeTone(440, 120);
  const r = check(voiced);
  assert.equal(r.agree, 119, 'agrees with libopus on every packet');
  assert.ok(r.withFec > 20 && r.withFec < 119, `both kinds present: ${r.withFec} of 119 with FEC`);
  assert.equal(opusHasFec(SILENCE_FRAME), false, 'CELT-only');
  assert.equal(opusHasFec(new Uint8Array(0)), false);
  assert.equal(opusHasFec(new Uint8Array([0xff, 0xff, 0xff])), false, 'malformed');
});

test('track: FEC beats PLC when the signal changes inside the lost frame; FEC and PLC are counted apart', () => {
  // A voiced tone that steps from 440 to 660 Hz exactly where the lost frame begins: PLC can only continue
  // the 440 Hz it heard, the next packet's FEC carries the 660 Hz that was really there.
  const voiced = (stepAt: number) => {
    let phase = 0;
    return encodeSignal(80, (n) => {
      phase += (2 * Math.PI * (n < stepAt ? 440 : 660)) / 48_000;
      return TONE_AMPLITUDE * (0.75 + 0.25 * Math.sin((2 * Math.PI * 7 * n) / 48_000)) * Math.sin(phase);
    });
  };
  let k = -1;
  let tone: Buffer[] = [];
  for (let j = 40; j < 60 && k < 0; j++) {
    tone = voiced(j * FRAME);
    if (opusHasFec(tone[j + 1]!)) k = j;
  }
  assert.ok(k > 0, 'some step position leaves FEC in the packet after it');
  const d = tmp();
  const path = join(d, 'u.wav');
  const pkts = buildStream({ userId: 'u', ssrc: 4, firstSeq: 1, firstTs: 0, startMs: 400, spurts: [{ tsOffset: 0, packets: tone }] });
  const s = runTrack(path, network(pkts, { dropIndices: new Set([k]) }), 3000);
  assert.equal(s.lost, 1);
  assert.equal(s.concealed, 1);
  assert.equal(s.fec, 1, 'rebuilt from FEC, counted as such');
  // The truth: the stream decoded without loss. PLC: what concealment alone would have written.
  const ref = wasm.newDecoder();
  const plc = wasm.newDecoder();
  let truth: Int16Array = new Int16Array(0);
  for (let i = 0; i <= k; i++) {
    const pcm = leftOf(ref.decode(tone[i]!)!);
    if (i === k) truth = pcm;
    else plc.decode(tone[i]!);
  }
  const concealed = leftOf(plc.conceal(FRAME)!);
  ref.free();
  plc.free();
  const startPos = Math.round(s.startOffsetMs! * 48);
  const got = readCaptureLeft(path).left.subarray(startPos + k * FRAME, startPos + (k + 1) * FRAME);
  const eTrack = sqErr(got, truth);
  const ePlc = sqErr(concealed, truth);
  const level = (x: Int16Array, hz: number) => toneLevel(x, 0, x.length, hz);
  console.log(`# lost frame ${k}: error energy FEC ${eTrack.toExponential(2)} vs PLC ${ePlc.toExponential(2)}; 660 Hz level truth ${level(truth, 660).toFixed(0)} FEC ${level(got, 660).toFixed(0)} PLC ${level(concealed, 660).toFixed(0)}`);
  assert.ok(eTrack < 0.25 * ePlc, `FEC error ${eTrack.toExponential(2)} well below PLC's ${ePlc.toExponential(2)}`);
  assert.ok(level(got, 660) > 0.5 * level(truth, 660), 'the new frequency is there');
  assert.ok(level(concealed, 660) < 0.5 * level(truth, 660), 'PLC alone would not have it (the test can tell them apart)');
});

test('track: the lost first packet of a talk spurt is rebuilt from the next packet\'s FEC, after long and short pauses', () => {
  // One continuous encoder, as a client's: spurt 2 and 3 continue its packets after pauses.
  const enc = encodeTone(440, 200);
  const fecAt = (i: number) => opusHasFec(enc[i]!);
  const pick = (from: number) => {
    for (let i = from; i < from + 40; i++) if (fecAt(i) && fecAt(i + 1)) return i;
    throw new Error('no FEC-carrying pair');
  };
  const b = pick(50); // spurt 2 starts at frame b (its packet b+1 carries b's FEC, b carries b−1's)
  const c = pick(b + 50);
  const sil = Array<Buffer>(5).fill(SILENCE_FRAME);
  const two = 55 * FRAME + 96_000; // a 2 s pause: re-anchored
  const three = two + (c - b + 5) * FRAME + 14_400; // a 300 ms pause: same anchor
  const build = () =>
    buildStream({
      userId: 'u', ssrc: 6, firstSeq: 65_000, firstTs: 77, startMs: 300,
      spurts: [
        { tsOffset: 0, packets: [...enc.slice(0, 50), ...sil] },
        { tsOffset: two, packets: [...enc.slice(b, c), ...sil] },
        { tsOffset: three, packets: enc.slice(c, c + 40) },
      ],
    });
  const pkts = build();
  const first2 = 55;
  const first3 = 55 + (c - b) + 5;
  const run = (drop: number[]) => {
    const path = join(tmp(), 'u.wav');
    const s = runTrack(path, network(pkts, { dropIndices: new Set(drop) }), 5000);
    return { s, left: readCaptureLeft(path).left };
  };
  // Where each spurt's first sample belongs: its sender time plus the fixture's 2 ms network delay.
  const at2 = (300 + 2) * 48 + two;
  const at3 = (300 + 2) * 48 + three;
  const end1 = (300 + 2) * 48 + 55 * FRAME;
  const ref = run([]);
  assert.ok(Math.abs(firstLoud(ref.left, end1) - at2) <= 480, 'reference: spurt 2 where it belongs');
  const lossy = run([first2, first3]);
  assert.equal(lossy.s.lost, 2);
  assert.equal(lossy.s.fec, 2, 'both first frames rebuilt from FEC');
  assert.equal(lossy.s.concealed, 2);
  // Unrecovered, each would start a whole frame (960 samples) late.
  const on2 = firstLoud(lossy.left, end1);
  const on3 = firstLoud(lossy.left, at3 - 4 * FRAME);
  assert.ok(Math.abs(on2 - at2) <= 240, `spurt 2 starts on time after a 2 s pause: ${on2} vs ${at2}`);
  assert.ok(Math.abs(on3 - at3) <= 240, `spurt 3 starts on time after a 300 ms pause: ${on3} vs ${at3}`);

  // The previous spurt's last silence frame lost instead: spurt 2's first packet carries FEC of the last frame
  // before the pause (the encoder kept going), which must not be played in front of spurt 2.
  assert.ok(fecAt(b), 'the stale FEC is there to be misused');
  const tail = run([first2 - 1]);
  assert.equal(tail.s.lost, 1);
  assert.equal(tail.s.fec, 0);
  assert.equal(tail.s.concealed, 0);
  assert.equal(peak(tail.left, end1, at2), 0, 'silence up to spurt 2');
  assert.ok(firstLoud(tail.left, end1) >= at2);
});

test('track: a packet libopus cannot decode is counted as corrupt and concealed in its place, not left as a hole', () => {
  const d = tmp();
  const path = join(d, 'u.wav');
  const tone = encodeTone(440, 100);
  const pkts = buildStream({ userId: 'u', ssrc: 3, firstSeq: 10, firstTs: 0, startMs: 500, spurts: [{ tsOffset: 0, packets: tone }] });
  pkts[40] = { ...pkts[40]!, opus: new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff]) }; // 63 frames: invalid
  pkts[70] = { ...pkts[70]!, opus: new Uint8Array(0) }; // empty payload (what the pool hands on for an oversize one)
  const s = runTrack(path, network(pkts, {}), 3000);
  assert.equal(s.received, 100);
  assert.equal(s.corrupt, 2);
  assert.equal(s.lost, 0);
  assert.equal(s.undecryptable, 0, 'a decode failure is not a decryption failure');
  assert.equal(s.concealed, 2, 'each corrupt packet replaced by a frame of PLC');
  assert.equal(s.fec, 0);
  const { left } = readCaptureLeft(path);
  const start = onset(left, 440);
  const r = dropouts(left, start + FRAME, start + 99 * FRAME);
  assert.equal(r.bad, 0, `no 20 ms hole where the corrupt packets were: ${r.bad}/${r.blocks}`);
  assert.equal(s.activeMs, 100 * 20);
});

test('track: 5% loss + 10% reorder + 30 ms jitter + duplicates → < 1% dropout blocks', () => {
  const d = tmp();
  const path = join(d, 'u.wav');
  const tone = encodeTone(440, 1500); // 30 s
  const pkts = buildStream({ userId: 'u', ssrc: 5, firstSeq: 65_000, firstTs: 123, startMs: 200, spurts: [{ tsOffset: 0, packets: tone }] });
  const arrived = network(pkts, { loss: 0.05, reorder: 0.1, jitterMs: 30, duplicate: 0.02, seed: 42 });
  const s = runTrack(path, arrived, 31_000);
  const { left } = readCaptureLeft(path);
  const start = onset(left, 440);
  assert.ok(Math.abs(start - 200 * 48) <= 2 * FRAME, `onset ${start}`);
  const r = dropouts(left, start + FRAME, start + 1498 * FRAME);
  console.log(`# 5% loss/10% reorder/30 ms jitter: lost ${s.lost} late ${s.late} dup ${s.duplicate} concealed ${s.concealed}; dropout blocks ${r.bad}/${r.blocks}, weak ${r.weak}`);
  assert.ok(s.lost > 40, `loss happened: ${s.lost}`);
  assert.ok(s.duplicate > 10, `duplicates counted: ${s.duplicate}`);
  assert.ok(s.concealed >= s.lost * 0.9, `concealed ${s.concealed} of lost ${s.lost} (+late ${s.late})`);
  assert.ok(r.bad / r.blocks < 0.01, `dropouts ${r.bad}/${r.blocks}`);
});

test('track: a new SSRC for the same user (rejoin) continues in the same file at the right place', () => {
  const d = tmp();
  const path = join(d, 'u.wav');
  const first = buildStream({ userId: 'u', ssrc: 111, firstSeq: 7, firstTs: 999, startMs: 300, spurts: [{ tsOffset: 0, packets: encodeTone(440, 50) }] });
  const second = buildStream({ userId: 'u', ssrc: 222, firstSeq: 40_000, firstTs: 3_000_000_000, startMs: 2500, spurts: [{ tsOffset: 0, packets: encodeTone(660, 50) }] });
  const s = runTrack(path, network([...first, ...second], { jitterMs: 20, seed: 9 }), 4000, { keepOpus: join(d, 'u.opus.pkt') });
  const { left } = readCaptureLeft(path);
  assert.deepEqual(s.ssrcs, [111, 222]);
  assert.ok(Math.abs(onset(left, 440) - 300 * 48) <= FRAME);
  const on2 = onset(left, 660);
  assert.ok(Math.abs(on2 - 2500 * 48) <= FRAME, `second SSRC onset ${on2} ≈ ${2500 * 48}`);
  assert.equal(peak(left, 300 * 48 + 51 * FRAME, 2500 * 48 - FRAME), 0, 'silence between');
  // Packet log: one record per decoded packet, positions on the recording clock.
  const log = readFileSync(join(d, 'u.opus.pkt'));
  let n = 0;
  let lastPos = -1;
  for (let o = 0; o < log.length; n++) {
    const pos = log.readUInt32LE(o);
    assert.ok(pos > lastPos);
    lastPos = pos;
    o += 6 + log.readUInt16LE(o + 4);
  }
  assert.equal(n, 100);
});

test('track: a spurt whose first packets were stamped late (a receiving thread busy with a burst) is placed by its on-time packets', () => {
  // The receiving thread stamps arrival. When hundreds of members start at once it works through a burst: the
  // first packets of a stream are stamped up to 70 ms late, the lateness shrinking as it catches up (5 ms per
  // packet here, gone after 280 ms). The anchor must come from the packets after the burst, not from the first
  // few (a 60 ms window would place this spurt 50 ms late and then resample it back for seconds).
  const d = tmp();
  const spec = { userId: 'u', ssrc: 5, firstSeq: 100, firstTs: 123_456, startMs: 1000, spurts: [{ tsOffset: 0, packets: encodeTone(440, 100) }] };
  const onTime = buildStream(spec);
  const busy = onTime.map((p, i) => ({ ...p, arrivalMs: p.arrivalMs + Math.max(0, 70 - 5 * i) }));
  runTrack(join(d, 'a.wav'), onTime, 4000);
  const s = runTrack(join(d, 'b.wav'), busy, 4000);
  const a = readCaptureLeft(join(d, 'a.wav')).left;
  const b = readCaptureLeft(join(d, 'b.wav')).left;
  const onA = onset(a, 440);
  const onB = onset(b, 440);
  assert.ok(Math.abs(onA - 48_000) <= FRAME, `reference onset ${onA} ≈ 48000`);
  assert.ok(Math.abs(onB - onA) <= 48, `onset with a busy start ${onB} vs ${onA} (samples)`);
  // Same anchor, so nothing to correct afterwards: the audio is the same sample for sample.
  assert.ok(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)), 'identical audio');
  assert.equal(s.received, 100);
});
