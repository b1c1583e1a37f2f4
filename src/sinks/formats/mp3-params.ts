/**
 * MP3 parameters, the one source for CLI validation (commands/options.ts, convert-raw.ts), both encoders
 * (encoders.ts after stop, ../mp3-stream.ts while recording), and the lists in the README and the man page
 * (test/mp3.test.ts compares them). Kept apart so a pool worker does not load ffmpeg/Ogg/FLAC code.
 *
 * What is allowed is what BOTH encoders produce exactly as asked, so a recording can always be finished with or
 * without ffmpeg: the Layer III bitrates of the MPEG version a sample rate belongs to (ISO 11172-3, 13818-3, and
 * MPEG-2.5, which LAME caps at 64 kbps), intersected with the CBR bitrates the embedded LAME build
 * (wasm-media-encoders 0.7) accepts — it has no 56 and no 144.
 */

/** Sample rates an MP3 can hold, by MPEG version. */
const MPEG1_RATES = [32_000, 44_100, 48_000];
const MPEG2_RATES = [16_000, 22_050, 24_000];
const MPEG25_RATES = [8_000, 11_025, 12_000];
export const MP3_SAMPLE_RATES: readonly number[] = [...MPEG25_RATES, ...MPEG2_RATES, ...MPEG1_RATES];

/** Layer III bitrate tables (kbps). */
const MPEG1_L3 = [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
const MPEG2_L3 = [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
/** LAME encodes MPEG-2.5 at 64 kbps at most (it clamps higher requests). */
const MPEG25_MAX = 64;

/** The CBR bitrates wasm-media-encoders 0.7 accepts (its `Mp3CbrValues`); configure() throws for others. */
const EMBEDDED_LAME_CBR = [8, 16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320] as const;

/** A bitrate the embedded LAME takes, as its typings spell it. */
export type Mp3Bitrate = (typeof EMBEDDED_LAME_CBR)[number];

/** The bitrates (kbps) dvrec encodes at `rate` Hz; empty when an MP3 cannot hold that rate. */
export function mp3BitratesAt(rate: number): readonly number[] {
  const table = MPEG1_RATES.includes(rate) ? MPEG1_L3
    : MPEG2_RATES.includes(rate) ? MPEG2_L3
    : MPEG25_RATES.includes(rate) ? MPEG2_L3.filter((b) => b <= MPEG25_MAX)
    : [];
  return table.filter((b) => (EMBEDDED_LAME_CBR as readonly number[]).includes(b));
}

/** The bitrates of a recording (48 kHz): what `--bitrate` accepts for `record`. */
export const MP3_BITRATES: readonly number[] = mp3BitratesAt(48_000);

/** Default MP3 bitrate: 128 kbps CBR stereo is transparent for speech and what Craig-style recorders ship. */
export const DEFAULT_MP3_BITRATE_KBPS = 128;

/** The default at `rate`: 128 kbps, or the highest the rate's MPEG version allows when that is lower. */
export function defaultMp3BitrateAt(rate: number): number {
  const list = mp3BitratesAt(rate);
  return list.includes(DEFAULT_MP3_BITRATE_KBPS) ? DEFAULT_MP3_BITRATE_KBPS : (list.at(-1) ?? DEFAULT_MP3_BITRATE_KBPS);
}

/**
 * The allowed bitrate nearest to `kbps` from above (else the highest): for a journal written by an older dvrec
 * that accepted 56 kbps, so its recording is still finished (at 64) rather than refused.
 */
export function nearestMp3Bitrate(kbps: number, rate: number): number {
  const list = mp3BitratesAt(rate);
  return list.find((b) => b >= kbps) ?? list.at(-1) ?? DEFAULT_MP3_BITRATE_KBPS;
}

/** The list as documented: "32, 40, …, 320" (the README and the man page hold exactly this). */
export function formatBitrates(list: readonly number[]): string {
  return list.join(', ');
}

/**
 * LAME's encoder delay in samples, at every sample rate (ENCDELAY in LAME's encoder.h): the first input sample
 * comes out of a decoder this many samples — plus the decoder's own {@link MP3_DECODER_DELAY} — into the
 * stream. Written into the LAME tag (mp3-info-tag.ts) so that gapless decoders cut it exactly.
 */
export const LAME_ENCODER_DELAY = 576;

/** The Layer III synthesis filterbank delay every decoder adds (528 + 1 samples; what ffmpeg and mpg123 assume). */
export const MP3_DECODER_DELAY = 529;
