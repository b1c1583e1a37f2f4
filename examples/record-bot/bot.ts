/**
 * A discord.js bot that records a voice channel with dvrec used as a library: it logs in, joins the channel
 * (not deafened), records every speaker to their own aligned track, prints each talk spurt as it is placed on
 * the recording clock, and stops after DVREC_SECONDS (or on Ctrl-C), printing the manifest's tracks.
 *
 *   DISCORD_TOKEN=... GUILD_ID=... CHANNEL_ID=... node bot.ts
 *
 * DISCORD_API_URL points discord.js at another Discord (dvrec's local simulator in its tests).
 */
import { Client, Events, GatewayIntentBits } from 'discord.js';
import { joinVoiceChannel } from '@discordjs/voice';
import { Recorder, DvrecError, type Sink } from 'dvrec';

const token = process.env.DISCORD_TOKEN ?? '';
const guildId = process.env.GUILD_ID ?? '';
const channelId = process.env.CHANNEL_ID ?? '';
const seconds = Number(process.env.DVREC_SECONDS ?? 10);
const outDir = process.env.OUT_DIR ?? `recordings/${guildId}-${Date.now()}`;

const client = new Client({
  intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildVoiceStates],
  ...(process.env.DISCORD_API_URL ? { rest: { api: process.env.DISCORD_API_URL } } : {}),
});
await client.login(token);
await new Promise<void>((resolve) => (client.isReady() ? resolve() : client.once(Events.ClientReady, () => resolve())));

const guild = await client.guilds.fetch(guildId);
const channel = await guild.channels.fetch(channelId);
if (!channel?.isVoiceBased()) throw new Error(`${channelId} is not a voice channel`);

// A sink sees every user's audio exactly as it goes into their track: here it only counts it.
const heard = new Map<string, number>();
const counter: Sink = {
  audio: ({ userId, pcm }) => heard.set(userId, (heard.get(userId) ?? 0) + pcm.length / 4 / 48),
};

const recorder = new Recorder();
const connection = joinVoiceChannel({ guildId, channelId, adapterCreator: guild.voiceAdapterCreator, selfDeaf: false, selfMute: true });
const recording = recorder.record(connection, { outDir, format: 'wav', channel, sinks: [counter] });
recording.on('warning', (m) => console.error(`warning: ${m}`));
recording.on('utterance', (u) => console.log(`utterance ${u.edge} ${u.userId} ${u.atMs.toFixed(0)} ms`));

try {
  const { startedAt } = await recording.ready;
  console.log(`recording since ${startedAt} into ${outDir}`);
  const stop = (): void => void recording.stop();
  process.once('SIGINT', stop);
  const timer = setTimeout(stop, seconds * 1000);
  const manifest = await recording.finished;
  clearTimeout(timer);
  for (const t of manifest.tracks) {
    console.log(`track ${t.file} ${t.displayName} ${t.utterances?.length ?? 0} utterances, ${Math.round(heard.get(t.userId) ?? 0)} ms heard by the sink`);
  }
  console.log(`manifest ${outDir}/manifest.json`);
} catch (e) {
  console.error(e instanceof DvrecError ? `cannot record (${e.kind}): ${e.message}` : e);
  process.exitCode = 1;
} finally {
  connection.destroy();
  await recorder.close();
  await client.destroy();
}
