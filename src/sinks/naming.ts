/**
 * File stems for per-user tracks, derived from Discord names that anyone can set to anything.
 *
 * A stem must be safe on every filesystem people record to (ext4, APFS, NTFS, FAT/exFAT, SMB shares):
 *  - no path separators or characters Windows forbids (`< > : " / \ | ? *`), no control characters;
 *  - no `.`/`..`, no leading '-', no leading/trailing dots and spaces (Windows strips them; `..` escapes the directory);
 *  - not a reserved DOS device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9, also with an extension);
 *  - bounded length (most filesystems allow 255 BYTES per name; we keep the name part to 48 UTF-8 bytes so
 *    that "<name>-<id>.opus.pkt" stays far below it);
 *  - Unicode kept where safe (letters in any script, emoji), normalised to NFC so the same name does not
 *    produce two different byte strings on macOS and Linux.
 * The user id is always appended, which makes stems unique within a recording without any bookkeeping.
 * A user id that is not a Discord snowflake (only a hostile or broken server sends one) is replaced by a hash of
 * it: sanitising it could make two ids alike ("a/b" and "a_b"), and ids differing only in letter case or Unicode
 * normalisation would collide on case-insensitive (NTFS, APFS) filesystems; lowercase hex cannot.
 */
import { createHash } from 'node:crypto';

const MAX_NAME_BYTES = 48;
const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])$/i;

/** Makes one name component safe (may return ''). */
export function sanitizeName(name: string): string {
  let s = name.normalize('NFC');
  // Control chars (C0, DEL, C1), Windows-forbidden chars, and Unicode format/separator chars that hide
  // (bidi overrides could make "evil\u202Egnp.wav" display as something else).
  s = s.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}\p{Cn}<>:"/\\|?*]/gu, '_');
  s = s.replace(/\s+/gu, ' ');
  s = s.replace(/_+/g, '_');
  s = truncateUtf8(s, MAX_NAME_BYTES);
  // Trailing/leading dots and spaces: Windows drops them, and only-dots names are "." / "..". A leading '-'
  // would make `rm *` or `ffmpeg -i *` in the directory read the file name as an option.
  s = s.replace(/^[.\s_-]+|[.\s]+$/gu, '');
  if (RESERVED.test(s.split('.')[0] ?? '')) s = `_${s}`;
  return s;
}

/** Cuts to at most `maxBytes` of UTF-8 without splitting a code point (or a surrogate pair). */
function truncateUtf8(s: string, maxBytes: number): string {
  let bytes = 0;
  let out = '';
  for (const ch of s) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (bytes + n > maxBytes) break;
    bytes += n;
    out += ch;
  }
  return out;
}

/**
 * The stem of a user's track files: `<name>-<userId>`, or just the id when nothing of the name survives.
 * Prefers the display name people see in the channel, then the username.
 */
export function trackStem(userId: string, displayName: string | undefined, username: string | undefined): string {
  const id = /^[0-9]{1,20}$/.test(userId) ? userId : `u${createHash('sha256').update(userId, 'utf8').digest('hex').slice(0, 16)}`;
  const name = sanitizeName(displayName ?? '') || sanitizeName(username ?? '');
  return name ? `${name}-${id}` : id;
}
