/**
 * The one place where a command's outcome becomes an exit status. Expected failures (DvrecError) print
 * `dvrec: <message>` as ONE line on stderr (timestamped in a log, see ui/error-line.ts) and exit with their
 * documented code; anything else is a bug: exit 1 with a one-line message, the stack only when
 * DVREC_DEBUG=1. Everything is redacted.
 */
import { DvrecError, redact } from '../errors.ts';
import { ExitCode, exitCodeOf } from './exit-codes.ts';
import { errorLine, oneLine } from '../ui/error-line.ts';
import type { Reporter } from '../ui/reporter.ts';

export { oneLine };

/** Maps any thrown value to its exit code and the line to print (without the `dvrec: ` prefix). */
export function describeFailure(err: unknown, env: NodeJS.ProcessEnv = process.env): { exitCode: number; message: string; stack?: string } {
  if (err instanceof DvrecError) return { exitCode: exitCodeOf(err), message: oneLine(redact(err.message)) };
  const e = err instanceof Error ? err : new Error(String(err));
  const stack = env.DVREC_DEBUG === '1' && e.stack ? redact(e.stack) : undefined;
  const message = oneLine(redact(`internal error: ${e.message || e.name}`)) + (stack ? '' : ' (run with DVREC_DEBUG=1 for details, and please report it)');
  return stack ? { exitCode: ExitCode.INTERNAL, message, stack } : { exitCode: ExitCode.INTERNAL, message };
}

/**
 * Runs a command and exits the process with its status. Exiting explicitly (instead of waiting for the
 * event loop to drain) matters for cron and systemd: a library that leaves a socket or timer open must
 * not turn a finished recording into a job that never ends. But a write to a pipe whose reader is slower than
 * us is queued, and an immediate exit cuts it (BENCHMARKS.md, "Measurements behind the code"), so stdout and
 * stderr are drained first, for at most a few seconds (a reader that went away must not
 * keep the process alive).
 */
export async function runCommand(action: (setReporter: (r: Reporter) => void) => Promise<number | void>): Promise<never> {
  let reporter: Reporter | undefined;
  let code: number;
  try {
    code = (await action((r) => (reporter = r))) ?? ExitCode.OK;
  } catch (err) {
    const f = describeFailure(err);
    // The reporter closes what it shows (a spinner is marked failed, --json gets an `error` event); the
    // message itself is printed once, here.
    reporter?.failed(f.message, f.exitCode);
    reporter?.close();
    process.stderr.write(errorLine(f.message, { json: reporter?.mode === 'json' }));
    if (f.stack) process.stderr.write(f.stack + '\n');
    code = f.exitCode;
  }
  reporter?.close();
  await drainStdio(5_000);
  process.exit(code);
}

/** Resolves once everything written to stdout and stderr so far has been handed to the OS, or after `maxMs`. */
function drainStdio(maxMs: number): Promise<void> {
  const drained = (stream: NodeJS.WriteStream) =>
    new Promise<void>((resolve) => {
      // A write callback fires after every earlier write on the stream completed (writes are in order).
      if (stream.writableLength === 0) resolve();
      else stream.write('', () => resolve());
    });
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<void>((resolve) => (timer = setTimeout(resolve, maxMs)));
  return Promise.race([Promise.all([drained(process.stdout), drained(process.stderr)]).then(() => undefined), limit]).finally(() => clearTimeout(timer));
}
