/**
 * The simulator in its own process, so that its CPU is measured apart from the recorder's and it can use a
 * core of its own (it must not be the bottleneck). Driven by the bench over the IPC channel of
 * child_process.fork():
 *
 *   parent → { type: 'start', scenario }      child → { type: 'ready', apiUrl, caCertPath }
 *                                             child → { type: 'session-start', wallMs }
 *   parent → { type: 'truth' }                child → { type: 'truth', truth }
 *   parent → { type: 'close' }                child closes the simulator and exits
 */
import { startSimulator, type Simulator } from '../src/simulator/index.ts';
import type { GroundTruth, Scenario } from '../src/simulator/scenario.ts';

export type ToSim = { type: 'start'; scenario: Scenario } | { type: 'truth' } | { type: 'close' };
export type FromSim =
  | { type: 'ready'; apiUrl: string; caCertPath: string }
  | { type: 'session-start'; wallMs: number }
  | { type: 'warning'; message: string }
  | { type: 'truth'; truth: GroundTruth }
  | { type: 'error'; message: string };

const send = (m: FromSim): void => {
  process.send?.(m);
};

let sim: Simulator | null = null;
let warnings = 0;

process.on('message', (m: ToSim) => {
  void (async () => {
    try {
      switch (m.type) {
        case 'start': {
          sim = await startSimulator(m.scenario);
          sim.events.on('session-start', (e) => send({ type: 'session-start', wallMs: e.wallMs }));
          sim.events.on('warning', (e) => {
            // A handful is enough to see what went wrong; hundreds would flood the IPC channel.
            if (++warnings <= 5) send({ type: 'warning', message: e.message });
          });
          send({ type: 'ready', apiUrl: sim.apiUrl, caCertPath: sim.caCertPath });
          break;
        }
        case 'truth':
          if (sim) send({ type: 'truth', truth: sim.truth() });
          break;
        case 'close':
          await sim?.close();
          process.exit(0);
      }
    } catch (e) {
      send({ type: 'error', message: e instanceof Error ? e.message : String(e) });
    }
  })();
});
// The parent going away must not leave a simulator running.
process.on('disconnect', () => {
  void (sim?.close() ?? Promise.resolve()).finally(() => process.exit(0));
});
