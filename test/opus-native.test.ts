/**
 * The native Opus decoder (native/opus-fec.c, built by `npm install`) must be a drop-in for the WebAssembly one:
 * the same libopus, so the same PCM sample for sample — for normal decoding, in-band FEC recovery and PLC —
 * from real Opus packets of a known tone. And the pool must actually use it where it is built. The addon's other
 * export, the writeback helper the capture writer uses (native/writeback.c), is checked at the end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OpusWasm, createOpusDecoders, type StreamDecoder } from '../src/sinks/opus-decoder.ts';
import { loadNativeOpus, nativeOpusUnavailable } from '../src/sinks/opus-native.ts';
import { FRAME, encodeTone } from './sink-fixtures.ts';
import { needs } from './strict.ts';
import { addon, nativeAddonUnavailable } from '../src/sinks/native-addon.ts';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';

/** Copies (the decoders return views of a shared buffer). */
function copy(pcm: Uint8Array | null): Uint8Array | null {
  return pcm === null ? null : Uint8Array.from(pcm);
}

function samples(pcm: Uint8Array): Int16Array {
  return new Int16Array(pcm.buffer, pcm.byteOffset, pcm.length / 2);
}

function level(pcm: Uint8Array): number {
  let m = 0;
  for (const v of samples(pcm)) m = Math.max(m, Math.abs(v));
  return m;
}

function maxDiff(a: Uint8Array, b: Uint8Array): number {
  const x = samples(a);
  const y = samples(b);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

/** Decodes a stream with losses the way a track does: PLC for a run, FEC from the packet after the last lost one. */
function decodeWithLosses(dec: StreamDecoder, packets: Buffer[], lost: Set<number>): (Uint8Array | null)[] {
  const out: (Uint8Array | null)[] = [];
  for (let i = 0; i < packets.length; i++) {
    if (lost.has(i)) {
      out.push(lost.has(i + 1) || i + 1 >= packets.length ? copy(dec.conceal(FRAME)) : copy(dec.decodeFec(packets[i + 1]!, FRAME)));
      continue;
    }
    out.push(copy(dec.decode(packets[i]!)));
  }
  return out;
}

test('native Opus decoder: identical PCM to libopus in WebAssembly for decode and FEC recovery', (t) => {
  const native = loadNativeOpus();
  if (needs(t, native !== null, `native Opus decoder ${nativeOpusUnavailable}`)) return;
  const packets = encodeTone(440, 120);
  // Single losses where the next packet carries FEC (LBRR) data: recovered frames must match sample for sample.
  // (Where a packet carries none, libopus falls back to PLC: see the next test.)
  const lost = new Set([10, 30]);
  const a = decodeWithLosses(native!.newDecoder(), packets, lost);
  const b = decodeWithLosses(new OpusWasm().newDecoder(), packets, lost);
  assert.equal(a.length, 120);
  for (let i = 0; i < a.length; i++) {
    assert.ok(a[i] !== null && b[i] !== null, `frame ${i} decoded by both`);
    assert.equal(a[i]!.length, FRAME * 4, `frame ${i}: 20 ms of stereo s16`);
    assert.ok(Buffer.from(a[i]!).equals(Buffer.from(b[i]!)), `frame ${i}${lost.has(i) ? ' (FEC)' : ''} differs between native and wasm`);
  }
  // Not vacuous: the tone is there, and the FEC frame differs from what PLC makes of the same gap.
  assert.ok(level(a[40]!) > 3000, `decoded tone has level (${level(a[40]!)})`);
  const plc = decodeWithLosses(native!.newDecoder(), packets, new Set([...lost, 31]));
  assert.ok(!Buffer.from(plc[30]!).equals(Buffer.from(a[30]!)), 'FEC (frame 30 from packet 31) is not PLC');
});

test('native Opus decoder: PLC conceals a run like the WebAssembly build and re-converges after it', (t) => {
  const native = loadNativeOpus();
  if (needs(t, native !== null, `native Opus decoder ${nativeOpusUnavailable}`)) return;
  const packets = encodeTone(440, 120);
  // A run of two: PLC, then PLC + FEC. PLC is not bit-identical across builds (its pitch search is float code,
  // and a near-tie between two periods can go either way), so: both keep the tone going at a similar level...
  const lost = new Set([55, 56]);
  const a = decodeWithLosses(native!.newDecoder(), packets, lost);
  const b = decodeWithLosses(new OpusWasm().newDecoder(), packets, lost);
  const ratio = level(a[55]!) / level(b[55]!);
  assert.ok(level(a[55]!) > 1000 && ratio > 0.5 && ratio < 2, `PLC levels native ${level(a[55]!)} / wasm ${level(b[55]!)}`);
  // ...and once real packets flow again the two decoders' output converges (the state is re-learnt): within 1 %
  // of full scale a quarter second after the gap, against differences of ~1,500 inside it.
  assert.ok(maxDiff(a[55]!, b[55]!) > 100, 'the concealed frames differ (else this test is the one above)');
  for (let i = 70; i < 120; i++) assert.ok(maxDiff(a[i]!, b[i]!) <= 328, `frame ${i}: ${maxDiff(a[i]!, b[i]!)} apart after the gap`);
});

test('native Opus decoder: rejects what libopus rejects, survives reset and bad input', (t) => {
  const native = loadNativeOpus();
  if (needs(t, native !== null, `native Opus decoder ${nativeOpusUnavailable}`)) return;
  const dec = native!.newDecoder();
  assert.equal(dec.decode(new Uint8Array(0)), null, 'empty packet');
  assert.equal(dec.decode(new Uint8Array(9000)), null, 'oversized packet');
  // A TOC claiming 48 frames of code 3 with no data: libopus says OPUS_INVALID_PACKET.
  assert.equal(dec.decode(Uint8Array.of(0xfb, 0x30)), null, 'malformed packet');
  dec.reset();
  assert.ok(dec.decode(encodeTone(440, 2)[0]!) !== null, 'decodes after reset');
  dec.free();
  assert.throws(() => dec.decode(encodeTone(440, 1)[0]!), /after free/);
});

test('the pool decodes natively where the addon is built (DVREC_OPUS selects; wasm remains the fallback)', (t) => {
  if (needs(t, loadNativeOpus() !== null, `native Opus decoder ${nativeOpusUnavailable}`)) return;
  const saved = process.env.DVREC_OPUS;
  try {
    delete process.env.DVREC_OPUS;
    assert.equal(createOpusDecoders().kind, 'native');
    process.env.DVREC_OPUS = 'wasm';
    assert.equal(createOpusDecoders().kind, 'wasm');
    process.env.DVREC_OPUS = 'native';
    assert.equal(createOpusDecoders().kind, 'native');
  } finally {
    if (saved === undefined) delete process.env.DVREC_OPUS;
    else process.env.DVREC_OPUS = saved;
  }
});

test('native writeback helper: starts writeback of a written range (0), reports a bad fd or range as an errno, never throws', (t) => {
  const a = addon();
  if (needs(t, a !== null, `native addon ${nativeAddonUnavailable}`)) return;
  const dir = mkdtempSync(join(tmpdir(), 'dvrec-wb-'));
  try {
    const fd = openSync(join(dir, 'f'), 'w');
    writeSync(fd, Buffer.alloc(1 << 20, 1));
    assert.equal(a!.startWriteback(fd, 0, 1 << 20), 0);
    assert.equal(a!.startWriteback(fd, -1, 10), osConstants.errno.EINVAL, 'negative offset');
    closeSync(fd);
    assert.equal(a!.startWriteback(fd, 0, 10), osConstants.errno.EBADF, 'closed fd');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
