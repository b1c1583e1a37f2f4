/**
 * Every expected way dvrec can fail, as a typed error class. The library throws (and rejects with) these; the
 * command line maps each kind to its documented exit code (src/commands/exit-codes.ts, man/dvrec.1 EXIT STATUS).
 * Messages are one line, say what to do, and never contain a registered secret (see {@link Redactor}).
 */

/** What went wrong, as a stable string (the CLI's exit code is chosen by it). */
export type ErrorKind =
  /** Invalid options: unknown option, invalid id, duration, format, size, template. */
  | 'usage'
  /** Discord rejected the token, or no token was given. */
  | 'auth'
  /** Guild or channel unknown to the bot, or the channel is not a voice channel. */
  | 'not-found'
  /** The bot lacks a permission (View Channel, Connect). */
  | 'permission'
  /** The voice channel is full. */
  | 'channel-full'
  /** The voice server refused the session (DAVE required, unknown protocol, bad session, ...). */
  | 'voice-rejected'
  /** Discord could not be reached, the connection never became ready, or it was lost and did not come back. */
  | 'network'
  /** The output cannot be written: unwritable directory, disk full, a recording already there. */
  | 'output'
  /** Input to convert is missing or malformed. */
  | 'input'
  /** An encoder cannot be used (one failed to load, or the ffmpeg given does not run). */
  | 'encoder'
  /** Stopped before it started (a signal or an abort), or stopped at once by a second signal. */
  | 'cancelled'
  /** A part of dvrec failed in a way that is a bug or an exhausted machine (e.g. a decoder worker that keeps dying). */
  | 'internal';

/** Base class: an expected failure with a {@link ErrorKind}. */
export class DvrecError extends Error {
  /** What went wrong (stable; the CLI's exit code is chosen by it). */
  readonly kind: ErrorKind;
  constructor(message: string, kind: ErrorKind, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DvrecError';
    this.kind = kind;
  }
}

/** Invalid options or arguments. */
export class UsageError extends DvrecError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'usage', options);
    this.name = 'UsageError';
  }
}

/** Discord rejected the token (HTTP 401 / gateway close 4004), or there was none. */
export class AuthError extends DvrecError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'auth', options);
    this.name = 'AuthError';
  }
}

/** A guild or channel the bot cannot find, or a channel that is not a voice channel. */
export class NotFoundError extends DvrecError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'not-found', options);
    this.name = 'NotFoundError';
  }
}

/** A permission the bot lacks (HTTP 403, missing permission bits). */
export class PermissionError extends DvrecError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'permission', options);
    this.name = 'PermissionError';
  }
}

/** The voice channel is full. */
export class ChannelFullError extends DvrecError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'channel-full', options);
    this.name = 'ChannelFullError';
  }
}

/** The voice server refused the session; `closeCode` is its voice close code when it closed with one. */
export class VoiceRejectedError extends DvrecError {
  /** The voice gateway close code it refused with (e.g. 4017), when it closed with one. */
  readonly closeCode: number | undefined;
  constructor(message: string, options?: { cause?: unknown; closeCode?: number }) {
    super(message, 'voice-rejected', options);
    this.name = 'VoiceRejectedError';
    this.closeCode = options?.closeCode;
  }
}

/** Discord unreachable, never ready, or lost and not back in time. */
export class ConnectionError extends DvrecError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'network', options);
    this.name = 'ConnectionError';
  }
}

/** The output cannot be written (permissions, disk full, a recording already there). */
export class OutputError extends DvrecError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'output', options);
    this.name = 'OutputError';
  }
}

/** Input for conversion missing or malformed. */
export class InputError extends DvrecError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'input', options);
    this.name = 'InputError';
  }
}

/** An encoder cannot be used. */
export class EncoderError extends DvrecError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'encoder', options);
    this.name = 'EncoderError';
  }
}

/** Stopped before recording started (an abort signal), or at once by a second stop signal. */
export class CancelledError extends DvrecError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'cancelled', options);
    this.name = 'CancelledError';
  }
}

/** A part of dvrec failed unrecoverably (a bug, or an exhausted machine). */
export class InternalError extends DvrecError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'internal', options);
    this.name = 'InternalError';
  }
}

/** Makes an error of `kind` (for errors that cross a thread as data: the kind travels, the class is rebuilt). */
export function errorOfKind(kind: ErrorKind, message: string, options?: { cause?: unknown }): DvrecError {
  switch (kind) {
    case 'usage': return new UsageError(message, options);
    case 'auth': return new AuthError(message, options);
    case 'not-found': return new NotFoundError(message, options);
    case 'permission': return new PermissionError(message, options);
    case 'channel-full': return new ChannelFullError(message, options);
    case 'voice-rejected': return new VoiceRejectedError(message, options);
    case 'network': return new ConnectionError(message, options);
    case 'output': return new OutputError(message, options);
    case 'input': return new InputError(message, options);
    case 'encoder': return new EncoderError(message, options);
    case 'cancelled': return new CancelledError(message, options);
    case 'internal': return new InternalError(message, options);
  }
}

/**
 * Removes secrets (the bot token) from text before it leaves the process: messages, logs, files. One per
 * recording or command; the library never shares one between callers.
 */
export class Redactor {
  readonly #secrets = new Set<string>();

  /** Remembers a secret that must never be printed, logged or written (shorter than 8 characters: ignored). */
  add(secret: string): void {
    if (secret.length >= 8) this.#secrets.add(secret);
  }

  /** Replaces every secret in `text` with `[REDACTED]`. */
  redact(text: string): string {
    let out = text;
    for (const s of this.#secrets) out = out.split(s).join('[REDACTED]');
    return out;
  }
}

/**
 * The command line's redactor: the CLI registers the token it read (src/commands), and everything the process
 * prints goes through it. Library code takes a {@link Redactor} from its caller instead of using this one.
 */
export const cliRedactor = new Redactor();

/** Registers a secret with the command line's redactor. */
export function registerSecret(secret: string): void {
  cliRedactor.add(secret);
}

/** Redacts with the command line's redactor. */
export function redact(text: string): string {
  return cliRedactor.redact(text);
}
