/**
 * dvrec as a library: record Discord voice channels from inside your own discord.js bot.
 *
 * ```ts
 * import { joinVoiceChannel } from '@discordjs/voice';
 * import { Recorder } from 'dvrec';
 *
 * const recorder = new Recorder();            // one per process: its decoder threads serve every recording
 * const connection = joinVoiceChannel({ guildId, channelId, adapterCreator: guild.voiceAdapterCreator, selfDeaf: false });
 * const recording = recorder.record(connection, { outDir: `recordings/${guildId}`, format: 'mp3', channel });
 * await recording.ready;                      // receiving now (t=0)
 * for await (const e of recording.listenTo(userId, { format: 'pcm-16k' })) { ... }   // a live per-user stream
 * const manifest = await recording.stop();    // one aligned track per user, and manifest.json
 * ```
 *
 * Everything here is typed and documented; nothing installs signal handlers, exits the process, prints, or keeps
 * process-wide state. Failures are typed errors ({@link DvrecError} subclasses).
 *
 * @packageDocumentation
 */

export { Recorder, record, type RecorderOptions } from './recorder/recorder.ts';
export {
  Recording,
  type RecordingEvents,
  type RecordingState,
  type RecordingResult,
} from './recorder/recording.ts';
export type { RecordingOptions } from './recorder/options.ts';
export type { StopReason } from './recorder/stop-conditions.ts';
export type { Sink, SinkAudio, SinkOpus, SinkUtterance, SinkTrack } from './recorder/sinks.ts';
export { UserAudioStream, type ListenFormat, type ListenOptions, type UserAudioEvent, type UserAudioStreamEvents } from './recorder/user-streams.ts';
export type { RecordingTrack, UtteranceEvent, LiveStatus, LiveTrackStatus, ConvertProgress } from './recorder/types.ts';
export type { RtcpPacket } from './sinks/types.ts';
export type {
  AudioFormat, Manifest, ManifestTrack, ReceiverDrops, Utterance, Pause, Note,
} from './sinks/capture-layout.ts';
export { finishRecording } from './sinks/finalize.ts';
export {
  DvrecError,
  UsageError,
  AuthError,
  NotFoundError,
  PermissionError,
  ChannelFullError,
  VoiceRejectedError,
  ConnectionError,
  OutputError,
  InputError,
  EncoderError,
  CancelledError,
  InternalError,
  type ErrorKind,
} from './errors.ts';
