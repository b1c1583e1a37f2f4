/**
 * The contract between the `record` / `demo` commands (src/commands) and the recording engine
 * (src/recording.ts: receiver → pool → sinks → formats). Commands parse and validate options, own the
 * terminal/log output, and map errors to exit codes; the engine does the work and reports through events.
 */
import type { AudioFormat, Manifest } from './sinks/capture-layout.ts';

export interface RecordOptions {
  /** Bot token. Registered with errors.registerSecret() by the command before anything else. */
  token: string;
  /** REST base in discord.js `rest.api` form, e.g. `http://127.0.0.1:8080/api`; undefined = Discord. */
  apiUrl?: string;
  guildId: string;
  channelId: string;
  /** Output directory (template already expanded); created if missing. */
  outDir: string;
  format: AudioFormat;
  mono: boolean;
  /** MP3 bitrate in kbps. */
  bitrateKbps: number;
  mix: boolean;
  /** Explicit ffmpeg path from --ffmpeg. */
  ffmpegPath?: string;
  /** Stop after this long (ms), measured from t=0. */
  durationMs?: number;
  /** Stop once the captures hold this many bytes. */
  maxSizeBytes?: number;
  /** Stop once no human other than the bot has been in the channel for this long (ms). */
  stopWhenEmptyMs?: number;
  /** Record only these user ids (others are ignored entirely). */
  users?: ReadonlySet<string>;
  /** Overwrite existing finished files in outDir. */
  force: boolean;
}

export type RecordingPhase =
  | { phase: 'connecting' }
  | { phase: 'joining'; guildName: string; channelName: string }
  | { phase: 'recording'; startedAt: string }
  | { phase: 'reconnecting'; reason: string }
  | { phase: 'stopping'; reason: StopReason }
  | { phase: 'converting'; tracks: number }
  | { phase: 'done'; manifest: Manifest };

export type StopReason = 'duration' | 'signal' | 'max-size' | 'empty-channel' | 'disconnected' | 'error';

export type { LiveTrackStatus, LiveStatus, ConvertProgress } from './recorder/types.ts';
import type { LiveStatus, ConvertProgress } from './recorder/types.ts';

/** How the engine reports to the command (which renders spinners, log lines or JSON events). */
export interface RecordingObserver {
  phase(p: RecordingPhase): void;
  /** About once a second while recording. */
  status(s: LiveStatus): void;
  convertProgress(p: ConvertProgress): void;
  /** Non-fatal trouble worth a log line (reconnect, dropped hostile packets, ...). */
  warn(message: string): void;
}
