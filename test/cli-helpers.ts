/**
 * Runs the real CLI (`node bin/dvrec.ts ...`) as a child process, the way cron or a shell would: stdin
 * closed, stdout and stderr pipes (so no TTY). Shared by the CLI test files.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../bin/dvrec.ts', import.meta.url));
export const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A clean environment: no token, no API URL, no colour forcing, no CI, inherited PATH/HOME. */
export function baseEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'HOME', 'TMPDIR', 'LANG']) if (process.env[k] !== undefined) env[k] = process.env[k];
  env.TERM = 'xterm-256color'; // a terminal type that would allow colour: the pipe alone must prevent it
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

export function startCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: opts.env ?? baseEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function collect(child: ChildProcess, timeoutMs = 60_000): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`dvrec did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return collect(startCli(args, opts), opts.timeoutMs);
}

/** The error line of a run without a TTY: `<local timestamp> dvrec: <message>` (see src/ui/error-line.ts). */
export const PLAIN_ERROR = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d dvrec: /;

/** The `dvrec: ...` error lines of a plain-mode stderr, without their timestamps. */
export function errorLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => PLAIN_ERROR.test(l))
    .map((l) => l.replace(/^\S+ \S+ /, ''));
}

/**
 * An HTTP server that accepts connections and never answers: pointed at by DVREC_API_URL, it keeps dvrec
 * in its "connecting" phase for as long as the test likes (a Discord that does not respond).
 */
export async function silentServer(): Promise<{ url: string; connections(): number; close(): Promise<void> }> {
  const sockets = new Set<import('node:net').Socket>();
  let n = 0;
  const server: Server = createServer((s) => {
    n++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/api`,
    connections: () => n,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Any ANSI/VT escape sequence (CSI, OSC, single-character escapes). */
// eslint-disable-next-line no-control-regex
export const ANSI = /\u001b[[\]()#;?]*|\u009b/;

/**
 * A TCP listener that counts connections: pointed at by DVREC_API_URL, it proves that a command which
 * failed validation never tried to reach Discord.
 */
export async function connectionCounter(): Promise<{ url: string; count(): number; close(): Promise<void> }> {
  let n = 0;
  const server: Server = createServer((s) => {
    n++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/api`,
    count: () => n,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Waits until `predicate(text so far)` holds for the child's stdout (e.g. a JSON "recording" event), or stderr. */
export function waitForOutput(child: ChildProcess, predicate: (stdout: string) => boolean, timeoutMs = 30_000, stream: 'stdout' | 'stderr' = 'stdout'): Promise<void> {
  let seen = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for output; got: ${seen}`)), timeoutMs);
    const onData = (d: Buffer | string) => {
      seen += d.toString();
      if (predicate(seen)) {
        clearTimeout(timer);
        child[stream]!.off('data', onData);
        resolve();
      }
    };
    child[stream]!.on('data', onData);
    child.on('close', () => {
      clearTimeout(timer);
      if (!predicate(seen)) reject(new Error(`dvrec exited before the expected output; got: ${seen}`));
    });
  });
}
