/**
 * Decides how dvrec talks: to a person at a terminal (spinners, a live status block), to a log (plain
 * timestamped lines, no escape codes), or to a program (`--json`, one event per line).
 *
 * A person is assumed only when the human-facing stream is a TTY and nothing says otherwise: cron and
 * pipes have no TTY; CI systems set CI; NO_COLOR and TERM=dumb ask for output free of escape codes.
 */
export type OutputMode = 'tty' | 'plain' | 'json';

export function detectOutputMode(opts: { json: boolean; stream: { isTTY?: boolean; columns?: number }; env: NodeJS.ProcessEnv }): OutputMode {
  if (opts.json) return 'json';
  const { env } = opts;
  if (!opts.stream.isTTY) return 'plain';
  // A pseudo-terminal nobody sized (0 columns: `script`, some `docker -t` runs) is not a person's screen,
  // and redrawing in place needs a width (ora divides by it).
  if (!opts.stream.columns) return 'plain';
  if (env.CI !== undefined && env.CI !== '' && env.CI !== 'false' && env.CI !== '0') return 'plain';
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return 'plain';
  if (env.TERM === 'dumb') return 'plain';
  return 'tty';
}
