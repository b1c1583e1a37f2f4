/**
 * ID3v2.4 tags for the MP3s dvrec encodes itself (LAME in WebAssembly, while recording or after stop), so a
 * track says whose it is in any player or editor, as ffmpeg's `-metadata` does on the ffmpeg path.
 *
 * Why by hand: the tag has to be written into space reserved at the start of a file that is streamed for
 * hours before the names are final (the finisher writes it at the stop), and tag libraries (node-id3 …)
 * rewrite the whole file to prepend one. The layout is small and fixed (ID3v2.4.0 main structure, §3–4):
 *   "ID3" 04 00 flags=00 size(4 bytes, 7 bits each) ‖ frames ‖ zero padding
 *   frame: id(4) size(4, 7 bits each) flags(2) ‖ body;  text body: 03 (UTF-8) ‖ text
 *   COMM body: 03 ‖ language "eng" ‖ empty description 00 ‖ text
 * Players skip the whole tag by its size, so the audio that follows is untouched.
 */

/** Bytes reserved for the tag at the start of every dvrec-encoded MP3: enough for names of any length Discord allows. */
export const ID3_RESERVED_BYTES = 4096;

const HEADER = 10;

function syncsafe(n: number): Buffer {
  return Buffer.from([(n >>> 21) & 0x7f, (n >>> 14) & 0x7f, (n >>> 7) & 0x7f, n & 0x7f]);
}

function frame(id: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(id, 'latin1'), syncsafe(body.length), Buffer.alloc(2), body]);
}

/** Cuts a UTF-8 string to at most `max` bytes without splitting a character. */
function clip(text: string, max: number): Buffer {
  let b = Buffer.from(text, 'utf8');
  if (b.length <= max) return b;
  let end = max;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  b = b.subarray(0, end);
  return b;
}

/** Values longer than this are clipped (Discord names are ≤ 32 characters: this only bounds hostile input). */
const MAX_VALUE_BYTES = 1000;

/**
 * An ID3v2.4 tag of exactly `size` bytes (frames, then padding) from `{ title, artist, comment }` (the keys the
 * finisher passes to every format); other keys are ignored. `{}` gives a valid tag that is all padding: the
 * placeholder a streamed file starts with.
 */
export function id3v2Tag(tags: Readonly<Record<string, string>>, size = ID3_RESERVED_BYTES): Buffer {
  const frames: Buffer[] = [];
  const text = (v: string) => Buffer.concat([Buffer.of(3), clip(v, MAX_VALUE_BYTES)]);
  if (tags.title) frames.push(frame('TIT2', text(tags.title)));
  if (tags.artist) frames.push(frame('TPE1', text(tags.artist)));
  if (tags.comment) frames.push(frame('COMM', Buffer.concat([Buffer.of(3), Buffer.from('eng', 'latin1'), Buffer.of(0), clip(tags.comment, MAX_VALUE_BYTES)])));
  const body = Buffer.concat(frames);
  if (HEADER + body.length > size) throw new RangeError(`ID3 tag of ${HEADER + body.length} bytes does not fit in ${size}`);
  const out = Buffer.alloc(size);
  out.write('ID3', 0, 'latin1');
  out[3] = 4; // v2.4.0
  syncsafe(size - HEADER).copy(out, 6);
  body.copy(out, HEADER);
  return out;
}
