/** Shapes the library reports (events, status) and the command line renders. */

/** A recorded user's track, as the public API shows it. */
export interface RecordingTrack {
  userId: string;
  username: string;
  displayName: string;
  /** The file name without extension (unique in the recording directory). */
  stem: string;
  /** Recording-clock ms at which the user's first packet arrived. */
  firstArrivalMs: number;
}

/** A talk spurt's edge on the recording clock. */
export interface UtteranceEvent {
  userId: string;
  edge: 'start' | 'end';
  /** Milliseconds since t=0. */
  atMs: number;
}

export interface LiveTrackStatus {
  userId: string;
  displayName: string;
  speaking: boolean;
  /** Milliseconds of audio captured so far. */
  activeMs: number;
  received: number;
  lost: number;
  concealed: number;
  bytes: number;
}

export interface LiveStatus {
  elapsedMs: number;
  bytesWritten: number;
  tracks: LiveTrackStatus[];
}

export interface ConvertProgress {
  /** Per output file: 0..1 done. */
  files: { file: string; done: number }[];
  /** Estimated milliseconds left, if known. */
  etaMs?: number;
}
