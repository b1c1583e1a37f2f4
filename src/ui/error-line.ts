/**
 * The one line a failed command leaves on stderr: `dvrec: <message>`. In a log (plain mode: no TTY, CI,
 * NO_COLOR, TERM=dumb) every other stderr line starts with a local timestamp, so this one does too: a
 * cron log appended to over weeks must say when each failure happened. At a terminal and with --json
 * (whose `error` event carries its own time) it is the bare `dvrec: <message>`.
 */
import { redact } from '../errors.ts';
import { logTimestamp } from './format.ts';
import { detectOutputMode } from './mode.ts';

/** Collapses a message to one line: cron mail and log scrapers read errors line by line. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** `dvrec: message` (timestamped in plain mode), redacted, one line, with its newline. */
export function errorLine(
  message: string,
  opts: { json: boolean; stream?: { isTTY?: boolean; columns?: number }; env?: NodeJS.ProcessEnv; now?: Date },
): string {
  const mode = detectOutputMode({ json: opts.json, stream: opts.stream ?? process.stderr, env: opts.env ?? process.env });
  const stamp = mode === 'plain' ? `${logTimestamp(opts.now ?? new Date())} ` : '';
  return `${stamp}dvrec: ${oneLine(redact(message))}\n`;
}
