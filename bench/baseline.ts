/**
 * The baseline: the recorder a user would write with the libraries everyone uses, following the
 * @discordjs/voice receiver example. discord.js logs in, @discordjs/voice joins (with DAVE), and for every user
 * who starts speaking, `receiver.subscribe(userId)` yields their Opus packets, which prism-media's
 * opus.Decoder (native libopus through @discordjs/opus) decodes on the main thread and appends as raw PCM to
 * `<out>/<userId>.pcm`. No reordering, no loss handling, no timing (what these libraries give you).
 *
 * Fairness: it is given every advantage the example allows: subscriptions never end (Manual), so a user's
 * stream is not torn down and re-created between talk spurts; writes go through one buffered WriteStream per
 * user; nothing else runs in the process.
 *
 *   node bench/baseline.ts --guild G --channel C --out DIR --duration SECONDS
 *   env: DISCORD_TOKEN, DVREC_API_URL (simulator REST base), NODE_EXTRA_CA_CERTS (simulator certificate)
 *
 * stdout: one JSON object per line: {event:'ready', wallMs}, then {event:'status', elapsedMs, tracks:[{userId,
 * bytes}]} every second, then {event:'done', wallMs, tracks:[{userId, packets, bytes, firstWallMs}]}.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Events, GatewayIntentBits } from 'discord.js';
import { EndBehaviorType, VoiceConnectionStatus, entersState, joinVoiceChannel, type VoiceConnection } from '@discordjs/voice';
import prism from 'prism-media';

const { values } = parseArgs({
  options: {
    guild: { type: 'string' },
    channel: { type: 'string' },
    out: { type: 'string' },
    duration: { type: 'string' },
  },
});
const guildId = values.guild!;
const channelId = values.channel!;
const outDir = values.out!;
const durationMs = Number(values.duration ?? 30) * 1000;
mkdirSync(outDir, { recursive: true });

const wall = (): number => performance.timeOrigin + performance.now();
const emit = (o: Record<string, unknown>): void => {
  process.stdout.write(JSON.stringify(o) + '\n');
};

interface UserTrack {
  file: WriteStream;
  decoder: prism.opus.Decoder;
  packets: number;
  bytes: number;
  firstWallMs: number;
}
const tracks = new Map<string, UserTrack>();

const client = new Client({
  intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildVoiceStates],
  ...(process.env.DVREC_API_URL ? { rest: { api: process.env.DVREC_API_URL } } : {}),
});

function subscribe(connection: VoiceConnection, userId: string): void {
  if (tracks.has(userId)) return;
  const opusStream = connection.receiver.subscribe(userId, { end: { behavior: EndBehaviorType.Manual } });
  const decoder = new prism.opus.Decoder({ rate: 48_000, channels: 2, frameSize: 960 });
  const file = createWriteStream(join(outDir, `${userId}.pcm`));
  const t: UserTrack = { file, decoder, packets: 0, bytes: 0, firstWallMs: wall() };
  tracks.set(userId, t);
  opusStream.on('data', () => t.packets++);
  decoder.on('data', (pcm: Buffer) => (t.bytes += pcm.length));
  // A corrupt packet makes the decoder emit 'error'; the example would crash: keep going instead.
  decoder.on('error', () => {});
  opusStream.on('error', () => {});
  file.on('error', (e) => process.stderr.write(`baseline: ${userId}: ${e.message}\n`));
  opusStream.pipe(decoder).pipe(file);
}

async function main(): Promise<void> {
  const ready = new Promise<void>((resolve) => client.once(Events.ClientReady, () => resolve()));
  await client.login(process.env.DISCORD_TOKEN);
  await ready;
  const guild = client.guilds.cache.get(guildId);
  if (!guild) throw new Error(`guild ${guildId} not found`);
  const connection = joinVoiceChannel({
    guildId,
    channelId,
    adapterCreator: guild.voiceAdapterCreator,
    selfDeaf: false,
    selfMute: true,
  });
  await entersState(connection, VoiceConnectionStatus.Ready, 30_000);
  const t0 = wall();
  emit({ event: 'ready', wallMs: t0 });
  connection.receiver.speaking.on('start', (userId) => subscribe(connection, userId));
  const status = setInterval(() => {
    emit({ event: 'status', elapsedMs: wall() - t0, tracks: [...tracks].map(([userId, t]) => ({ userId, bytes: t.bytes, packets: t.packets })) });
  }, 1000);
  // Stops after --duration, or at SIGINT/SIGTERM (the bench stops it a fixed time after the simulator's
  // members start speaking, since joining a big DAVE group takes a while).
  await new Promise<void>((r) => {
    const t = setTimeout(r, durationMs);
    const stop = () => {
      clearTimeout(t);
      r();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  const stopWallMs = wall();
  clearInterval(status);
  connection.destroy();
  await Promise.all(
    [...tracks.values()].map(
      (t) =>
        new Promise<void>((resolve) => {
          t.file.on('close', () => resolve());
          t.decoder.unpipe(t.file);
          t.file.end();
        }),
    ),
  );
  emit({
    event: 'done',
    wallMs: stopWallMs,
    t0WallMs: t0,
    tracks: [...tracks].map(([userId, t]) => ({ userId, packets: t.packets, bytes: t.bytes, firstWallMs: t.firstWallMs })),
  });
  await client.destroy();
  process.exit(0);
}

main().catch((e: unknown) => {
  process.stderr.write(`baseline: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
