/**
 * Every way dvrec can fail, each with its own documented exit code (see man/dvrec.1, EXIT STATUS).
 * Messages are one line, say what to do, and never contain the token (see redact()).
 */
export const ExitCode = {
  OK: 0,
  /** A bug: an unexpected exception. */
  INTERNAL: 1,
  /** Bad command line: unknown option, invalid id, duration, format, size. */
  USAGE: 2,
  /** Discord rejected the token (HTTP 401 / gateway close 4004), or no token was given. */
  AUTH: 3,
  /** Guild or channel unknown to the bot, or the channel is not a voice channel. */
  NOT_FOUND: 4,
  /** The bot lacks View Channel or Connect (HTTP 403 / missing permission bits). */
  PERMISSION: 5,
  /** The voice channel is full (user limit reached). */
  CHANNEL_FULL: 6,
  /** The voice server refused the session: DAVE required (4017), unknown protocol, bad session... */
  VOICE_REJECTED: 7,
  /** Discord (or the API URL) could not be reached, or the connection never became ready. */
  NETWORK: 8,
  /** The output cannot be written: unwritable directory, disk full, file exists without --force. */
  OUTPUT: 9,
  /** Input for convert is missing or malformed. */
  INPUT: 10,
  /** An encoder cannot be used: one failed to load, or the ffmpeg given with --ffmpeg does not run. */
  ENCODER: 11,
  /** A second SIGINT/SIGTERM: stopped at once; the capture is left for `dvrec convert DIR`. */
  INTERRUPTED: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An expected failure: printed as one line `dvrec: <message>` and mapped to its exit code. */
export class DvrecError extends Error {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DvrecError';
    this.exitCode = exitCode;
  }
}

const secrets = new Set<string>();

/** Registers a secret (the bot token) that must never be printed, logged or written. */
export function registerSecret(secret: string): void {
  if (secret.length >= 8) secrets.add(secret);
}

/** Replaces every registered secret in `text` with `[REDACTED]`. Apply to anything that leaves the process. */
export function redact(text: string): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('[REDACTED]');
  return out;
}
