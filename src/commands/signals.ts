/**
 * Stop signals: the first SIGINT/SIGTERM/SIGHUP asks the engine to stop (the AbortSignal), which finishes
 * every file; a second one means "now": dvrec exits at once with ExitCode.INTERRUPTED and leaves the
 * capture directory (journal + raw captures, crash-safe by design) for `dvrec convert DIR`.
 */
import { ExitCode } from './exit-codes.ts';

export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
export type StopSignal = (typeof STOP_SIGNALS)[number];

export interface StopSignals {
  readonly signal: AbortSignal;
  /** Removes the handlers (the default behaviour returns). */
  dispose(): void;
}

export function installStopSignals(handlers: {
  /** First signal: the engine is being asked to stop. */
  onFirst(signal: StopSignal): void;
  /** Second signal: print what is left behind; dvrec exits right after. */
  onSecond(signal: StopSignal): void;
}): StopSignals {
  const controller = new AbortController();
  let count = 0;
  const handler = (signal: StopSignal) => {
    count++;
    if (count === 1) {
      handlers.onFirst(signal);
      controller.abort(signal);
      return;
    }
    try {
      handlers.onSecond(signal);
    } finally {
      process.exit(ExitCode.INTERRUPTED);
    }
  };
  for (const s of STOP_SIGNALS) process.on(s, handler);
  return {
    signal: controller.signal,
    dispose: () => {
      for (const s of STOP_SIGNALS) process.off(s, handler);
    },
  };
}
