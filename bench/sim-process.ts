/**
 * The simulator in its own process, so that its CPU is measured apart from the recorder's and it can use a
 * core of its own (it must not be the bottleneck). Driven by the bench over the IPC channel of
 * child_process.fork():
 *
 *   parent → { type: 'start', scenario }      child → { type: 'ready', apiUrl, caCertPath }
 *                                             child → { type: 'session-start', wallMs }
 *   parent → { type: 'truth' }                child → { type: 'truth', truth }
 *   parent → { type: 'interact', id, req }     child → { type: 'interacted', id, content | error }
 *   parent → { type: 'close' }                child closes the simulator and exits
 */
import { startSimulator, type Simulator } from '../src/simulator/index.ts';
import type { GroundTruth, Scenario } from '../src/simulator/scenario.ts';
import type { InteractRequest } from '../src/simulator/app.ts';

export type ToSim =
  | { type: 'start'; scenario: Scenario }
  | { type: 'truth' }
  | { type: 'close' }
  /** A member types a slash command (the bot bench); answered with 'interacted' and the same id. */
  | { type: 'interact'; id: number; req: InteractRequest };
export type FromSim =
  | { type: 'ready'; apiUrl: string; caCertPath: string }
  | { type: 'session-start'; wallMs: number }
  | { type: 'warning'; message: string }
  | { type: 'truth'; truth: GroundTruth }
  | { type: 'error'; message: string }
  | { type: 'interacted'; id: number; content?: string; error?: string };

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
        case 'interact': {
          const id = m.id;
          try {
            const r = await sim!.interact(m.req).content;
            send({ type: 'interacted', id, content: r.content });
          } catch (e) {
            send({ type: 'interacted', id, error: e instanceof Error ? e.message : String(e) });
          }
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
