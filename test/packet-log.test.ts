/**
 * The Opus packet log of `--format opus` captures (capture-layout.ts): positions are sample frames on the
 * recording clock, and a recording may run past 2^32 of them (24.8 hours at 48 kHz). Written by the real
 * CaptureWriter, read back by the finisher's reader (readPacketLog), including across a worker restart
 * (a resumed writer appends) and a log in the original layout (no epoch records), and a torn last record.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaptureWriter } from '../src/sinks/capture-writer.ts';
import { readPacketLog } from '../src/sinks/formats/ogg-opus.ts';

const G = 2 ** 32;

async function readAll(path: string): Promise<{ position: number; packet: number[] }[]> {
  const out: { position: number; packet: number[] }[] = [];
  for await (const r of readPacketLog(path)) out.push({ position: r.position, packet: [...r.packet] });
  return out;
}

test('packet positions past 2^32 samples (24.8 h) survive the log, also after a resumed writer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dvrec-pktlog-'));
  const log = join(dir, 'a.opus.pkt');
  const first = [0, 960, G - 960, G, G + 960 * 1000];
  const w = new CaptureWriter(join(dir, 'a.wav'), { packetLogPath: log });
  first.forEach((pos, i) => w.logPacket(pos, Uint8Array.of(0xf8, i, 0xfe), 0));
  w.close();
  // A replaced worker continues the same capture; its writer has seen no epoch record.
  const second = [G + 960 * 1001, 2 * G + 3, 5 * G + 7];
  const r = new CaptureWriter(join(dir, 'a.wav'), { packetLogPath: log, resume: true });
  second.forEach((pos, i) => r.logPacket(pos, Uint8Array.of(0xf8, 10 + i, 0xfe), 0));
  r.close();
  appendFileSync(log, Buffer.from([1, 2, 3, 4, 200, 0, 9])); // a torn record from a crash
  const got = await readAll(log);
  assert.deepEqual(got.map((x) => x.position), [...first, ...second]);
  assert.deepEqual(got.map((x) => x.packet[1]), [0, 1, 2, 3, 4, 10, 11, 12]);
});

test('a log in the original layout (positions below 2^32, no epoch records) reads as before', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dvrec-pktlog-'));
  const log = join(dir, 'old.opus.pkt');
  const recs = [[5, [0xf8, 1, 2]], [G - 1, [0xf8, 3]]] as const;
  writeFileSync(log, Buffer.concat(recs.map(([pos, p]) => {
    const h = Buffer.alloc(6);
    h.writeUInt32LE(pos, 0);
    h.writeUInt16LE(p.length, 4);
    return Buffer.concat([h, Buffer.from(p)]);
  })));
  assert.deepEqual(await readAll(log), recs.map(([position, p]) => ({ position, packet: [...p] })));
});
