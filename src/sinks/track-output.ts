/**
 * What a track produces, as one interface for every consumer: the capture writer (the files) implements it, and
 * so does the tap that hands the same output to the main thread for custom sinks and per-user streams. A sink
 * therefore sees exactly what goes into the track's file.
 *
 * Invariants the track guarantees to every output (positions are 48 kHz sample frames since the recording's t=0):
 *  - `audio` positions of one track only increase and never overlap: the track trims anything that would land
 *    on audio already written. A gap between two chunks is silence (a pause, or a loss longer than concealment).
 *  - `audio` is s16le interleaved stereo, and may be a view into decoder memory: copy it before the call returns.
 *  - `utterance` edges alternate start, end, start, end...; an end is never before its start.
 */
export interface TrackOutput {
  /** PCM placed at `position` (decoded, or concealed by FEC/PLC). */
  audio(position: number, pcm: Uint8Array): void;
  /** One Opus packet as received (after decryption), whose first sample lands at `position`. */
  opus(position: number, packet: Uint8Array): void;
  /**
   * A talk spurt began at `position` (its first voiced sample), or ended at `position` (just past its last voiced
   * sample: the sender's closing silence frames, a pause the track could not bridge, or the stop).
   */
  utterance(edge: 'start' | 'end', position: number): void;
}
