/**
 * The Ogg page writer (src/sinks/formats/ogg.ts) against RFC 3533, read back by the independent parser in
 * test/decoders.ts (capture pattern, CRC, sequence, continuation flags): every page's granule is that of the
 * last packet completed on it (-1 only when none completes), a packet larger than a page continues correctly,
 * and the last packet sits on the end-of-stream page with the final granule (what end trimming needs).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OggWriter } from '../src/sinks/formats/ogg.ts';
import { parseOgg } from './decoders.ts';

async function writeStream(packets: { size: number; granule: bigint }[], finalGranule: bigint): Promise<Buffer> {
  const path = join(mkdtempSync(join(tmpdir(), 'dvrec-ogg-')), 's.ogg');
  const fh = await fsp.open(path, 'w');
  const ogg = new OggWriter(fh, 1234);
  await ogg.packet(Buffer.from('head'), 0n, { flush: true });
  for (const [i, p] of packets.entries()) await ogg.packet(Buffer.alloc(p.size, i & 0xff), p.granule);
  await ogg.end(finalGranule);
  await fh.close();
  return readFileSync(path);
}

/** The granule each page must carry, from which packets complete on it. */
function expectedGranules(pages: { completed: number }[], granules: bigint[]): bigint[] {
  let done = 0;
  return pages.map((p) => {
    done += p.completed;
    return p.completed ? granules[done - 1]! : -1n;
  });
}

test('a page cut inside a large packet carries the granule of the last packet completed on it', async () => {
  // 10 small packets, then one of 140 000 bytes (550 segments: it spans three pages), then small ones again.
  const packets = [
    ...Array.from({ length: 10 }, (_, i) => ({ size: 100, granule: BigInt((i + 1) * 960) })),
    { size: 140_000, granule: 11n * 960n },
    ...Array.from({ length: 5 }, (_, i) => ({ size: 100, granule: BigInt((12 + i) * 960) })),
  ];
  const final = 16n * 960n - 500n; // end trimming: the last packet is cut short
  const { pages, packets: read } = parseOgg(await writeStream(packets, final));
  assert.equal(read.length, 1 + packets.length, 'every packet read back whole');
  assert.deepEqual(read.slice(1).map((p) => p.length), packets.map((p) => p.size));
  const granules = [0n, ...packets.map((p) => p.granule)];
  granules[granules.length - 1] = final;
  assert.deepEqual(pages.map((p) => p.granule), expectedGranules(pages, granules));
  // The page where the big packet starts also completes the 10 small ones: not -1 (the old bug).
  const startPage = pages.findIndex((p) => p.segments.length === 255);
  assert.ok(startPage > 0 && pages[startPage]!.completed === 10, JSON.stringify(pages.map((p) => [p.completed, p.segments.length])));
  assert.equal(pages[startPage]!.granule, 10n * 960n);
  assert.ok(pages.some((p) => p.completed === 0 && p.granule === -1n), 'a page inside the packet has no granule');
  assert.equal(pages[startPage + 1]!.flags & 1, 1, 'the next page continues the packet');
});

test('the last packet is on the end-of-stream page, with the final granule; no empty EOS page', async () => {
  // 84 packets of 200 bytes: a page is full (4 KiB) every 21 packets, so right after the last one.
  for (const count of [84, 60, 1]) {
    const packets = Array.from({ length: count }, (_, i) => ({ size: 200, granule: BigInt((i + 1) * 960) }));
    const final = BigInt(count * 960 - 123);
    const { pages } = parseOgg(await writeStream(packets, final));
    const last = pages.at(-1)!;
    assert.equal(last.flags & 4, 4, 'EOS flag');
    assert.ok(last.completed >= 1, `${count}: the EOS page holds the last packet (${last.completed} packets)`);
    assert.equal(last.granule, final);
    assert.equal(pages.filter((p) => p.flags & 4).length, 1);
    const granules = [0n, ...packets.map((p) => p.granule)];
    granules[granules.length - 1] = final;
    assert.deepEqual(pages.map((p) => p.granule), expectedGranules(pages, granules));
  }
});
