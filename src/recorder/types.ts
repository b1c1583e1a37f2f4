/** Shapes the library reports (events, status) and the command line renders. */

/** A recorded user's track, as the public API shows it. */
export interface RecordingTrack {
  /** Discord user id. */
  userId: string;
  /** Their user name (the id itself when no `channel` was given, until the API answers). */
  username: string;
  /** Their display name in the guild. */
  displayName: string;
  /** The file name without extension (unique in the recording directory). */
  stem: string;
  /** Recording-clock ms at which the user's first packet arrived. */
  firstArrivalMs: number;
}

/** A talk spurt's edge on the recording clock. */
export interface UtteranceEvent {
  /** Discord user id of the speaker. */
  userId: string;
  /** `start`: the spurt's first voiced sample; `end`: just past its last. */
  edge: 'start' | 'end';
  /** Milliseconds since t=0. */
  atMs: number;
}

/** One user's live figures (in {@link LiveStatus}). */
export interface LiveTrackStatus {
  /** Discord user id. */
  userId: string;
  /** Their display name. */
  displayName: string;
  /** Heard within the last 300 ms. */
  speaking: boolean;
  /** Milliseconds of audio captured so far. */
  activeMs: number;
  /** Packets received. */
  received: number;
  /** Packets the network lost. */
  lost: number;
  /** Frames rebuilt by FEC or PLC. */
  concealed: number;
  /** PCM bytes written to the capture. */
  bytes: number;
}

/** A recording's live figures (the `status` event, about once a second). */
export interface LiveStatus {
  /** Milliseconds since t=0. */
  elapsedMs: number;
  /** Bytes the captures hold on disk. */
  bytesWritten: number;
  /** Per user heard so far. */
  tracks: LiveTrackStatus[];
}

/** Progress of finishing the files after the stop (the `progress` event). */
export interface ConvertProgress {
  /** Per output file: 0..1 done. */
  files: {
    /** File name in the recording directory. */
    file: string;
    /** Fraction done, 0..1. */
    done: number;
  }[];
  /** Estimated milliseconds left, if known. */
  etaMs?: number;
}
