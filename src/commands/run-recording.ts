/**
 * `dvrec record` and `dvrec demo` as thin users of the library: log in and join here (join.ts), record through the
 * public API (`Recorder.record`), and translate the recording's events into the command's observer (spinners, log
 * lines or JSON events). The exit code is the caller's business (the typed error says which).
 */
import type { Manifest } from '../sinks/capture-layout.ts';
import type { RecordingObserver, RecordOptions, StopReason as CliStopReason } from '../recording-api.ts';
import { Recorder } from '../recorder/recorder.ts';
import type { Recording, RecordingHooks } from '../recorder/recording.ts';
import type { StopReason } from '../recorder/stop-conditions.ts';
import type { PoolTracks } from '../pool/recording-tracks.ts';
import type { ConnectionTap } from '../receiver/connection-tap.ts';
import { redact } from '../errors.ts';
import { loginAndJoin, type Joined } from './join.ts';

/** Test and diagnostics seams of the command's recording (never used in production). */
export interface RunHooks {
  /** The recording's tracks in the worker pool exist (t=0). */
  onPool?: (tracks: PoolTracks) => void;
  /** The connection tap exists (before the first voice event). */
  onSession?: (tap: ConnectionTap) => void;
  /** The pool's workers obey fault injection (PoolTracks.injectWorkerCrash / injectWorkerStall). */
  workerFaults?: boolean;
  /** How long a lost voice connection may take to come back before the recording stops (default 60 s). */
  reconnectTimeoutMs?: number;
  /** The recording handle exists (before t=0). */
  onRecording?: (recording: Recording) => void;
  /** Logged in and joined: the discord.js guild and channel (tests read what Discord said about them). */
  onJoined?: (joined: Joined) => void;
}

/** The command line calls a requested stop what it is: a signal. */
function cliReason(r: StopReason): CliStopReason {
  return r === 'requested' ? 'signal' : r;
}

/**
 * Logs in, joins, records until a stop condition or `stop` aborts, finishes the files, leaves, and returns the
 * manifest. Throws a typed error when the recording cannot start; once recording, trouble stops it cleanly, the
 * captured audio is finished (the `done` phase reports the manifest), and then the error is thrown.
 */
export async function runRecording(opts: RecordOptions, observer: RecordingObserver, stop: AbortSignal, hooks: RunHooks = {}): Promise<Manifest> {
  observer.phase({ phase: 'connecting' });
  const joined = await loginAndJoin({
    token: opts.token, guildId: opts.guildId, channelId: opts.channelId, signal: stop, ...(opts.apiUrl ? { apiUrl: opts.apiUrl } : {}),
  });
  hooks.onJoined?.(joined);
  const recorder = new Recorder(hooks.workerFaults ? { faultInjection: true } : {});
  try {
    const recordingHooks: RecordingHooks = {
      ...(hooks.onPool ? { onPool: hooks.onPool } : {}),
      ...(hooks.onSession ? { onTap: hooks.onSession } : {}),
    };
    // Synchronously after joinVoiceChannel: the tap is in place before the first voice event.
    const recording = recorder.record(
      joined.connection,
      {
        outDir: opts.outDir,
        format: opts.format,
        mono: opts.mono,
        ...(opts.format === 'mp3' ? { bitrateKbps: opts.bitrateKbps } : {}),
        mix: opts.mix,
        ...(opts.ffmpegPath !== undefined ? { ffmpegPath: opts.ffmpegPath } : {}),
        ...(opts.users ? { users: opts.users } : {}),
        ...(opts.durationMs !== undefined ? { durationMs: opts.durationMs } : {}),
        ...(opts.maxSizeBytes !== undefined ? { maxSizeBytes: opts.maxSizeBytes } : {}),
        ...(opts.stopWhenEmptyMs !== undefined ? { stopWhenEmptyMs: opts.stopWhenEmptyMs } : {}),
        channel: joined.channel,
        force: opts.force,
        signal: stop,
        // This process never uses the library's own receiver: keep it off the socket (less work per packet).
        libraryReceiver: 'detach',
        ...(hooks.reconnectTimeoutMs !== undefined ? { reconnectTimeoutMs: hooks.reconnectTimeoutMs } : {}),
        secrets: [opts.token],
      },
      recordingHooks,
    );
    hooks.onRecording?.(recording);
    observer.phase({ phase: 'joining', guildName: joined.guild.name, channelName: joined.channel.name });
    recording.on('ready', ({ startedAt }) => observer.phase({ phase: 'recording', startedAt }));
    recording.on('reconnecting', (reason) => observer.phase({ phase: 'reconnecting', reason }));
    recording.on('reconnected', () => observer.phase({ phase: 'recording', startedAt: new Date(recording.startedAtMs).toISOString() }));
    recording.on('warning', (m) => observer.warn(redact(m)));
    recording.on('status', (s) => observer.status(s));
    recording.on('stopping', (reason) => {
      observer.phase({ phase: 'stopping', reason: cliReason(reason) });
      // Leave the channel now: finishing the files takes a while and needs no connection.
      joined.leave();
    });
    recording.on('progress', (p) => observer.convertProgress(p));
    recording.on('finishing', (tracks) => observer.phase({ phase: 'converting', tracks }));
    recording.on('stopped', (r) => {
      if (r.manifest) observer.phase({ phase: 'done', manifest: r.manifest });
    });
    return await recording.finished;
  } finally {
    joined.leave();
    await recorder.close();
  }
}
