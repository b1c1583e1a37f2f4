import { redact } from '../errors.ts';

/**
 * The only way the UI writes. Human messages go to stderr (they are diagnostics: a script reading stdout
 * must not have to skip them); results and JSON events go to stdout. Everything is redacted.
 */
export class Output {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;

  constructor(stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream) {
    this.stdout = stdout;
    this.stderr = stderr;
  }

  /** A line for a person, on stderr. */
  log(line: string): void {
    this.stderr.write(redact(line) + '\n');
  }

  /** A result line, on stdout. */
  result(line: string): void {
    this.stdout.write(redact(line) + '\n');
  }

  /** One JSON event, on stdout. Redacted after serialisation, so no field can carry the token. */
  event(value: Record<string, unknown>): void {
    this.stdout.write(redact(JSON.stringify(value)) + '\n');
  }
}
