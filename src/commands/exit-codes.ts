/**
 * The command line's exit codes (README "Exit codes", man/dvrec.1 EXIT STATUS): one per {@link ErrorKind} of the
 * library's typed errors, plus success. The library itself never exits and never sees these numbers.
 */
import { DvrecError, type ErrorKind } from '../errors.ts';

export const ExitCode = {
  OK: 0,
  /** A bug: an unexpected exception; also a decoder worker that keeps dying. */
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
  /** Discord (or the API URL) could not be reached, or the connection never became ready or did not come back. */
  NETWORK: 8,
  /** The output cannot be written: unwritable directory, disk full, file exists without --force. */
  OUTPUT: 9,
  /** Input for convert is missing or malformed. */
  INPUT: 10,
  /** An encoder cannot be used: one failed to load, or the ffmpeg given with --ffmpeg does not run. */
  ENCODER: 11,
  /** Cancelled before recording started, or a second SIGINT/SIGTERM: the capture is left for `dvrec convert DIR`. */
  INTERRUPTED: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

const BY_KIND: Record<ErrorKind, ExitCode> = {
  usage: ExitCode.USAGE,
  auth: ExitCode.AUTH,
  'not-found': ExitCode.NOT_FOUND,
  permission: ExitCode.PERMISSION,
  'channel-full': ExitCode.CHANNEL_FULL,
  'voice-rejected': ExitCode.VOICE_REJECTED,
  network: ExitCode.NETWORK,
  output: ExitCode.OUTPUT,
  input: ExitCode.INPUT,
  encoder: ExitCode.ENCODER,
  cancelled: ExitCode.INTERRUPTED,
  internal: ExitCode.INTERNAL,
};

/** The exit code for a thrown value: its kind's, or INTERNAL for anything that is not a DvrecError (a bug). */
export function exitCodeOf(e: unknown): ExitCode {
  return e instanceof DvrecError ? BY_KIND[e.kind] : ExitCode.INTERNAL;
}

/** The kind whose exit code is `code` (for a child process's exit status), or undefined. */
export function kindOfExitCode(code: number): ErrorKind | undefined {
  for (const [kind, c] of Object.entries(BY_KIND) as [ErrorKind, ExitCode][]) if (c === code) return kind;
  return undefined;
}
