/**
 * Runs the local Discord on its own, for a client in another process (your own bot, `dvrec record`):
 *
 *   npx node src/simulator/serve.ts [scenario.json]
 *
 * Prints one JSON line — apiUrl, gatewayUrl, caCertPath, token, guildId, channelId — and plays the scenario until
 * SIGINT/SIGTERM, then closes (ports freed, the certificate file removed). The client must trust the per-run
 * certificate from its start: NODE_EXTRA_CA_CERTS=<caCertPath> (Node reads it only at start-up). Without a file it
 * plays three members (tones, DAVE on) talking in turns for an hour.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { startSimulator, type Scenario, type SimMember } from './index.ts';

/** Three members taking turns (2 s each, overlapping by 0.5 s) for an hour. */
function defaultScenario(): Scenario {
  const members: SimMember[] = [220, 330, 440].map((hz, i) => ({
    userId: `30000000000000000${i + 1}`,
    username: `member${i + 1}`,
    signal: { kind: 'tone', hz },
    spurts: Array.from({ length: 600 }, (_, k) => ({ atMs: 1000 + k * 6000 + i * 1500, durationMs: 2000 })),
  }));
  return {
    seed: 1,
    guildId: '300000000000000010',
    channelId: '300000000000000011',
    botUserId: '300000000000000012',
    token: `local.${randomBytes(12).toString('hex')}`,
    dave: true,
    members,
  };
}

const file = process.argv[2];
const scenario: Scenario = file ? (JSON.parse(readFileSync(file, 'utf8')) as Scenario) : defaultScenario();
const sim = await startSimulator(scenario);
sim.events.on('warning', (w) => process.stderr.write(`simulator warning: ${w.message}\n`));
process.stdout.write(
  `${JSON.stringify({ apiUrl: sim.apiUrl, gatewayUrl: sim.gatewayUrl, caCertPath: sim.caCertPath, token: scenario.token, guildId: scenario.guildId, channelId: scenario.channelId })}\n`,
);
const stop = (): void => {
  void sim.close().then(() => process.exit(0));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
