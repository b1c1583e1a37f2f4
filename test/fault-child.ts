/**
 * Runs one recording against the simulator in a CHILD process (see recordInChild in fault-fixtures.ts), prints the
 * outcome as one JSON line and exits explicitly, as the CLI does.
 *
 * Why a child: when Discord becomes unreachable, @discordjs/ws keeps retrying the main gateway every 500 ms even
 * after Client.destroy() (a shard destroyed during its reconnect pause reconnects anyway). The CLI exits with
 * process.exit() and is not affected; in a test file's own process the loop would keep it alive forever.
 *
 * argv[2]: JSON {@link ChildSpec}.
 */
import type { Scenario } from '../src/simulator/scenario.ts';
import { DvrecError } from '../src/errors.ts';
import { ExitCode, exitCodeOf } from '../src/commands/exit-codes.ts';
import { recordScenario, type ChildRun, type ChildSpec } from './fault-fixtures.ts';

const spec = JSON.parse(process.argv[2]!) as ChildSpec;
let downAtMs: number | undefined;
const run = await recordScenario(spec.scenario as Scenario, {
  ...spec.options,
  hooks: { ...(spec.reconnectTimeoutMs !== undefined ? { reconnectTimeoutMs: spec.reconnectTimeoutMs } : {}) },
  onSimulator: (sim) => {
    const after = spec.discordDownAfterMs;
    if (after === undefined) return;
    // Every Discord endpoint goes away at once (REST, gateway, voice websocket, voice UDP): a network outage.
    sim.events.once('session-start', () => setTimeout(() => {
      downAtMs = performance.timeOrigin + performance.now();
      void sim.close();
    }, after));
  },
});
const e = run.error;
const out: ChildRun = {
  ...(run.manifest ? { manifest: run.manifest } : {}),
  ...(e !== undefined ? { error: { message: e instanceof Error ? e.message : String(e), ...(e instanceof DvrecError ? { exitCode: exitCodeOf(e) } : {}) } } : {}),
  truth: run.truth,
  dir: run.dir,
  phases: run.phases,
  warnings: run.warnings,
  startedAtMs: run.startedAtMs,
  ...(downAtMs !== undefined ? { downAtMs } : {}),
};
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(0);
