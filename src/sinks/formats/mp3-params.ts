/**
 * MP3 constants shared by the after-stop encoder (encoders.ts) and the streaming encoder the pool workers run
 * while recording (../mp3-stream.ts). Kept apart so a pool worker does not load ffmpeg/Ogg/FLAC code.
 */

/** MP3 bitrates LAME accepts in CBR mode. */
export const MP3_BITRATES = [8, 16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320] as const;

export type Mp3Bitrate = (typeof MP3_BITRATES)[number];

/** Default MP3 bitrate: 128 kbps CBR stereo is transparent for speech and what Craig-style recorders ship. */
export const DEFAULT_MP3_BITRATE_KBPS = 128;

/**
 * MP3 codec delay with LAME: 576 samples of encoder delay + 529 of decoder (filterbank) delay. ffmpeg writes
 * a LAME/Info tag that lets gapless decoders remove it; this embedded LAME build writes none, so every decoder
 * would play the track 1105 samples (23 ms) late. To keep tracks aligned to t=0, that many samples are dropped
 * from the start of the input instead (the first 23 ms after the connection became ready: in practice silence).
 * The decoded length is then the recording's length rounded up to the next 1152-sample MP3 frame.
 */
export const LAME_TOTAL_DELAY = 1105;
