/**
 * The one place where a command's outcome becomes an exit status. Expected failures (DvrecError) print
 * `dvrec: <message>` as ONE line on stderr (timestamped in a log, see ui/error-line.ts) and exit with their
 * documented code; anything else is a bug: exit 1 with a one-line message, the stack only when
 * DVREC_DEBUG=1. Everything is redacted.
 */
import { DvrecError, ExitCode, redact } from '../errors.ts';
import { errorLine, oneLine } from '../ui/error-line.ts';
import type { Reporter } from '../ui/reporter.ts';

export { oneLine };

/** Maps any thrown value to its exit code and the line to print (without the `dvrec: ` prefix). */
export function describeFailure(err: unknown, env: NodeJS.ProcessEnv = process.env): { exitCode: number; message: string; stack?: string } {
  if (err instanceof DvrecError) return { exitCode: err.exitCode, message: oneLine(redact(err.message)) };
  const e = err instanceof Error ? err : new Error(String(err));
  const stack = env.DVREC_DEBUG === '1' && e.stack ? redact(e.stack) : undefined;
  const message = oneLine(redact(`internal error: ${e.message || e.name}`)) + (stack ? '' : ' (run with DVREC_DEBUG=1 for details, and please report it)');
  return stack ? { exitCode: ExitCode.INTERNAL, message, stack } : { exitCode: ExitCode.INTERNAL, message };
}

/**
 * Runs a command and exits the process with its status. Exiting explicitly (instead of waiting for the
 * event loop to drain) matters for cron and systemd: a library that leaves a socket or timer open must
 * not turn a finished recording into a job that never ends. stdout/stderr writes to files and pipes are
 * synchronous on POSIX, so nothing printed is lost.
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
  process.exit(code);
}
