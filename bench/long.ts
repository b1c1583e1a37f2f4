/**
 * Part 1 of the bench: a long recording (default 1 hour × 10 speakers) fed straight into the production sink
 * stack (WorkerPool with `clock: 'packets'`) faster than real time, then stopped and finished.
 *
 * Measures:
 *  - the sink stack's cost floor: CPU seconds of the pool's worker threads (jitter buffer, Opus decode,
 *    concealment, positional capture writes) per speaker-hour, and of the main thread (routing + batching,
 *    plus this file's packet synthesis, reported separately);
 *  - time from stop to finished files: pool.cleanup (flush + cut every capture) + finishRecording, for WAV,
 *    MP3 via ffmpeg (when present) and MP3 via the embedded LAME (WebAssembly).
 *
 * MP3 encoded while recording (src/sinks/mp3-stream.ts) gets its own feed afterwards (`mp3Stream`): a second
 * WorkerPool with `mp3` on, fed no faster than its background encoders keep up (the feed waits while any
 * track's encoder is more than STREAM_LAG_S behind what was fed, as a real-time recording would never be
 * ahead of them by more than that when the encoders have the CPU), then stopped: stop → MP3 ready is
 * pool.cleanup (which encodes each track's tail and finalises) + finishRecording (renames into place). Its
 * worker CPU minus the first feed's, per speaker-hour, is what encoding while recording costs.
 *
 * One feed serves all three after-stop finishes: before the WAV finish (which turns the captures into the tracks in
 * place), every capture is hard-linked into one directory per MP3 variant. The MP3 finishers only read
 * their captures, so each sees exactly the bytes `record` would have left.
 *
 * The audio is real Opus: every speaker has its own 5 s loop of a voiced tone (vibrato + syllable envelope)
 * encoded by @discordjs/opus the way Discord clients send (48 kHz stereo, 20 ms, 64 kbps, in-band FEC on).
 * Speakers talk continuously (the worst case for decoding); arrival times carry 0–8 ms of seeded jitter.
 */
import { mkdirSync, linkSync, readdirSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as yieldLoop, setTimeout as sleep } from 'node:timers/promises';
import { WorkerPool } from '../src/pool/pool.ts';
import { PoolTracks, type PoolTracksOptions } from '../src/pool/recording-tracks.ts';
import { CAPTURE_DIR, JOURNAL_FILE, writeJsonAtomic, type AudioFormat, type Journal } from '../src/sinks/capture-layout.ts';
import { finishRecording } from '../src/sinks/finalize.ts';
import type { StreamedMp3 } from '../src/sinks/mp3-stream.ts';
import { findFfmpeg } from '../src/sinks/formats/ffmpeg.ts';
import { threadCpuByName } from './proc.ts';
import { opusLoop } from '../src/simulator/opus-cache.ts';

/** Samples per 20 ms frame (RTP timestamp step). */
const FRAME = 960;
/** The streamed feed may run at most this far ahead of the slowest track's encoder (seconds of audio). */
const STREAM_LAG_S = 5;

export interface LongOptions {
  speakers: number;
  durationS: number;
  dir: string;
  /** Which finishes to time. */
  mp3Ffmpeg: boolean;
  mp3Lame: boolean;
  /** Seconds of each track the embedded LAME encodes (it is slow); its time is scaled to the full length. */
  lameSeconds?: number;
  /** Same for the ffmpeg MP3 finish (default: everything). */
  ffmpegSeconds?: number;
  /** Also time MP3 encoded while recording (a second, throttled feed). Default true. */
  mp3Stream?: boolean;
  log: (line: string) => void;
}

export interface FinishTiming {
  variant: 'wav' | 'mp3-ffmpeg' | 'mp3-lame' | 'mp3-stream';
  /** Stop → every capture flushed and cut (pool.cleanup), seconds. Shared by all variants (one stop). */
  cleanupS: number;
  /** finishRecording() alone, seconds. */
  finishS: number;
  /** cleanupS + finishS: what a user waits after stop. */
  totalS: number;
  encoder: string;
  outputBytes: number;
  /** Seconds of each track this finish encoded (less than the recording for the embedded LAME). */
  encodedSeconds: number;
  /** cleanupS + finishS scaled to the whole recording (= totalS when everything was encoded). */
  projectedTotalS: number;
}

export interface LongResult {
  speakers: number;
  durationS: number;
  packets: number;
  feedWallS: number;
  /** × real time the stack ran at while fed as fast as it would take (speaker-seconds / wall / speakers). */
  speedX: number;
  workerCpuS: number;
  mainCpuS: number;
  otherCpuS: number;
  /** Pool worker CPU s per speaker-hour (decode + jitter buffer + write). */
  workerCpuPerSpeakerHour: number;
  /** Main thread CPU s per speaker-hour (includes the synthetic feed; see synthCpuPerSpeakerHour). */
  mainCpuPerSpeakerHour: number;
  /** Cost of just generating the packets here (measured with no pool), per speaker-hour. */
  synthCpuPerSpeakerHour: number;
  captureBytes: number;
  /**
   * Dirty + writeback page cache at the stop (/proc/meminfo, MiB): what the WAV finish's syncs have to write out.
   * The captures start writeback about every MiB (src/sinks/capture-writer.ts); without that, this feed left 1.5–2.3 GB.
   */
  dirtyAtStopMiB: number | null;
  lost: number;
  concealed: number;
  finishes: FinishTiming[];
  /** MP3 encoded while recording (absent with mp3Stream: false). */
  stream?: StreamResult;
}

export interface StreamResult {
  /** Wall seconds of the throttled feed, and the × real time it reached (bounded by the encoders). */
  feedWallS: number;
  speedX: number;
  /** Worker CPU s per speaker-hour with streaming on, and the encoding's share (minus the plain feed's). */
  workerCpuPerSpeakerHour: number;
  encodeCpuPerSpeakerHour: number;
  /** Seconds of audio per track not yet encoded at stop (max over tracks), from the last progress report. */
  backlogAtStopS: number;
  /** Worker CPU seconds spent in cleanup (the tails + finalise + capture cut). */
  cleanupCpuS: number;
  /** Tracks that ended streamed (vs fallback). */
  streamedTracks: number;
  /** Peak RSS of the bench process during the streamed feed (MiB). */
  peakRssMiB: number;
}

/**
 * Each speaker's 5 s loop of real Opus: the simulator's own voiced tone and encoder settings (VoIP, voice, FEC on,
 * 64 kbps stereo), so the long run decodes what the capacity run's members send. A non-integer pitch gives the
 * 5 s loop (src/simulator/opus-cache.ts).
 */
export function encodeLoop(freq: number): Buffer[] {
  return opusLoop({ kind: 'tone', hz: freq + 0.5, amplitude: 0.25 });
}

interface Feeder {
  userIds: string[];
  /** Calls `emit` for every packet of second `s` (all speakers, in arrival order). */
  second(s: number, emit: (p: { userId: string; ssrc: number; sequence: number; timestamp: number; arrivalMs: number; opus: Uint8Array }) => void): void;
}

function makeFeeder(speakers: number): Feeder {
  const loops = Array.from({ length: speakers }, (_, i) => encodeLoop(220 + 37 * i));
  const userIds = Array.from({ length: speakers }, (_, i) => String(200000000000000000n + BigInt(i)));
  const ssrcs = userIds.map((_, i) => (0x10000 + i * 7919) >>> 0);
  const seq0 = userIds.map((_, i) => (i * 12345) & 0xffff);
  const ts0 = userIds.map((_, i) => (i * 987654321) >>> 0);
  const startMs = 500; // everyone starts speaking 0.5 s after t=0
  // Seeded jitter so arrivals are not perfectly regular (LCG: cheap and deterministic).
  let rnd = 12345;
  const jitter = () => {
    rnd = (Math.imul(rnd, 1103515245) + 12345) >>> 0;
    return (rnd / 2 ** 32) * 8;
  };
  const batch: { k: number; i: number; at: number }[] = [];
  return {
    userIds,
    second(s, emit) {
      batch.length = 0;
      for (let f = 0; f < 50; f++) {
        const k = s * 50 + f;
        for (let i = 0; i < speakers; i++) batch.push({ k, i, at: startMs + (k + 1) * 20 + jitter() });
      }
      batch.sort((a, b) => a.at - b.at);
      for (const { k, i, at } of batch) {
        emit({
          userId: userIds[i]!,
          ssrc: ssrcs[i]!,
          sequence: (seq0[i]! + k) & 0xffff,
          timestamp: (ts0[i]! + k * FRAME) >>> 0,
          arrivalMs: at,
          opus: loops[i]![k % loops[i]!.length]!,
        });
      }
    },
  };
}

function cpuSplit(): { worker: number; main: number; other: number } {
  const m = threadCpuByName();
  let worker = 0;
  let main = 0;
  let other = 0;
  for (const [name, s] of m) {
    if (name === 'WorkerThread') worker += s;
    else if (name === 'MainThread') main += s;
    else other += s;
  }
  return { worker, main, other };
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    const st = statSync(p);
    if (st.isFile()) n += st.size;
  }
  return n;
}

function journalFor(format: AudioFormat, userIds: string[], stats: Map<string, { lost: number; received: number; concealed: number; late: number; duplicate: number; undecryptable: number; startOffsetMs: number | null; ssrcs: number[] }>, startedAtMs: number, durationMs: number): Journal {
  return {
    version: 1,
    guildId: '100000000000000001',
    channelId: '100000000000000002',
    startedAt: new Date(startedAtMs).toISOString(),
    startedAtMs,
    flushedMs: durationMs,
    format,
    mono: false,
    bitrateKbps: 128,
    mix: false,
    tracks: userIds.map((userId, i) => {
      const s = stats.get(userId)!;
      return {
        userId,
        username: `speaker${i}`,
        displayName: `Speaker ${i}`,
        stem: `speaker${i}`,
        ssrcs: s.ssrcs,
        startOffsetMs: s.startOffsetMs,
        packets: { received: s.received, lost: s.lost, concealed: s.concealed, late: s.late, duplicate: s.duplicate, undecryptable: s.undecryptable },
      };
    }),
    endedAt: new Date(startedAtMs + durationMs).toISOString(),
    durationMs,
  };
}

/** Dirty + Writeback from /proc/meminfo (MiB), or null where there is none. */
function pageCacheDirtyMiB(): number | null {
  try {
    const m = readFileSync('/proc/meminfo', 'utf8');
    const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(m)?.[1] ?? NaN);
    const v = (kb('Dirty') + kb('Writeback')) / 1024;
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** Runs part 1. */
export async function runLong(o: LongOptions): Promise<LongResult> {
  rmSync(o.dir, { recursive: true, force: true });
  const wavDir = join(o.dir, 'wav');
  mkdirSync(wavDir, { recursive: true });
  const feeder = makeFeeder(o.speakers);

  // What generating the packets costs on its own (so the main thread's routing cost can be told apart).
  const synthSeconds = Math.min(o.durationS, 120);
  const c0 = cpuSplit().main;
  let sink = 0;
  for (let s = 0; s < synthSeconds; s++) feeder.second(s, (p) => (sink += p.opus.length));
  const synthCpu = cpuSplit().main - c0;
  const synthCpuPerSpeakerHour = synthCpu / ((o.speakers * synthSeconds) / 3600);

  const pool = soloPool({ dir: wavDir, keepOpus: false });
  feeder.userIds.forEach((u, i) => pool.addTrack(u, `speaker${i}`));
  const received = () => {
    let n = 0;
    for (const s of pool.status().values()) n += s.received;
    return n;
  };
  // Keep at most this many packets in flight to the workers (≈ 20 s of audio), so memory stays bounded
  // however much faster than real time the feed is.
  const maxInFlight = o.speakers * 50 * 20;
  const startedAtMs = Date.now();
  const cpu0 = cpuSplit();
  const t0 = performance.now();
  let sent = 0;
  let lastLog = t0;
  for (let s = 0; s < o.durationS; s++) {
    feeder.second(s, (p) => {
      pool.onAudio(p);
      sent++;
    });
    await yieldLoop(); // lets the pool's batch timer and the workers' status messages through
    while (sent - received() > maxInFlight) await sleep(5);
    if (performance.now() - lastLog > 15_000) {
      lastLog = performance.now();
      o.log(`  long: fed ${s + 1}/${o.durationS} s of audio × ${o.speakers} speakers (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }
  }
  // The stack has caught up when every packet sent has been taken in by a worker (status ≈ every 500 ms).
  while (received() < sent) await sleep(20);
  const feedWallS = (performance.now() - t0) / 1000;
  const cpu1 = cpuSplit();
  const hours = (o.speakers * o.durationS) / 3600;

  // ---- stop ----
  const endMs = 500 + o.durationS * 1000 + 500;
  const dirtyAtStopMiB = pageCacheDirtyMiB();
  const tStop = performance.now();
  const stats = await pool.cleanup(endMs);
  const cleanupS = (performance.now() - tStop) / 1000;
  await pool.close();
  let lost = 0;
  let concealed = 0;
  for (const s of stats.values()) {
    lost += s.lost;
    concealed += s.concealed;
  }
  const captureBytes = dirBytes(join(wavDir, CAPTURE_DIR));

  // Hard-link the captures for the MP3 variants before the WAV finish turns them into tracks in place.
  const ff = await findFfmpeg(undefined);
  type Variant = { variant: FinishTiming['variant']; dir: string; format: AudioFormat; ffmpegPath: string | false; lengthMs: number };
  const variants: Variant[] = [];
  if (o.mp3Ffmpeg && ff) {
    const lengthMs = Math.min(endMs, (o.ffmpegSeconds ?? o.durationS + 1) * 1000);
    variants.push({ variant: 'mp3-ffmpeg', dir: join(o.dir, 'mp3-ffmpeg'), format: 'mp3', ffmpegPath: ff.path, lengthMs });
  }
  if (o.mp3Lame) {
    const lengthMs = Math.min(endMs, (o.lameSeconds ?? o.durationS) * 1000);
    variants.push({ variant: 'mp3-lame', dir: join(o.dir, 'mp3-lame'), format: 'mp3', ffmpegPath: false, lengthMs });
  }
  for (const v of variants) {
    mkdirSync(join(v.dir, CAPTURE_DIR), { recursive: true });
    for (const f of readdirSync(join(wavDir, CAPTURE_DIR))) linkSync(join(wavDir, CAPTURE_DIR, f), join(v.dir, CAPTURE_DIR, f));
    // A shorter journal length makes the finisher encode only the start of each capture.
    writeJsonAtomic(join(v.dir, JOURNAL_FILE), journalFor(v.format, feeder.userIds, stats, startedAtMs, v.lengthMs));
  }

  const finishes: FinishTiming[] = [];
  const finish = async (variant: FinishTiming['variant'], dir: string, format: AudioFormat, ffmpegPath: string | false, lengthMs: number) => {
    // The engine writes its final journal at stop too (a small atomic JSON write): not what is timed here.
    if (!existsSync(join(dir, JOURNAL_FILE))) writeJsonAtomic(join(dir, JOURNAL_FILE), journalFor(format, feeder.userIds, stats, startedAtMs, lengthMs));
    const t = performance.now();
    const encoder = format === 'wav' ? 'wav-in-place' : ffmpegPath === false ? 'lame-wasm' : 'ffmpeg';
    await finishRecording(dir, { force: false, ffmpegPath });
    const finishS = (performance.now() - t) / 1000;
    const scale = endMs / lengthMs;
    finishes.push({
      variant, cleanupS, finishS, totalS: cleanupS + finishS, encoder, outputBytes: dirBytes(dir),
      encodedSeconds: lengthMs / 1000, projectedTotalS: cleanupS + finishS * scale,
    });
    o.log(`  long: ${variant} finished ${(lengthMs / 1000).toFixed(0)} s × ${o.speakers} tracks in ${finishS.toFixed(2)} s (cleanup ${cleanupS.toFixed(2)} s)`);
  };
  // WAV first, right at stop, as `record` does.
  await finish('wav', wavDir, 'wav', false, endMs);
  for (const v of variants) {
    await finish(v.variant, v.dir, v.format, v.ffmpegPath, v.lengthMs);
    rmSync(v.dir, { recursive: true, force: true }); // free the disk before the next variant
  }
  const stream = o.mp3Stream === false ? undefined : await runStreamed(o, feeder, (cpu1.worker - cpu0.worker) / hours, finishes);
  rmSync(o.dir, { recursive: true, force: true });
  void sink;

  return {
    speakers: o.speakers,
    durationS: o.durationS,
    packets: sent,
    feedWallS,
    speedX: o.durationS / feedWallS,
    dirtyAtStopMiB,
    workerCpuS: cpu1.worker - cpu0.worker,
    mainCpuS: cpu1.main - cpu0.main,
    otherCpuS: cpu1.other - cpu0.other,
    workerCpuPerSpeakerHour: (cpu1.worker - cpu0.worker) / hours,
    mainCpuPerSpeakerHour: (cpu1.main - cpu0.main) / hours,
    synthCpuPerSpeakerHour,
    captureBytes,
    lost,
    concealed,
    finishes,
    ...(stream ? { stream } : {}),
  };
}

/** One recording's tracks on a pool of its own, driven by the packets' clock (fed faster than real time). */
function soloPool(opts: PoolTracksOptions): PoolTracks & { close(): Promise<void> } {
  const pool = new WorkerPool({ clock: 'packets' });
  const tracks = new PoolTracks(pool, opts);
  return Object.assign(tracks, {
    close: async () => {
      tracks.detach();
      await pool.close();
    },
  });
}

/** The MP3-while-recording feed: same speakers and packets, a pool with `mp3` on, throttled to the encoders. */
async function runStreamed(o: LongOptions, feeder: Feeder, plainWorkerCpuPerSpeakerHour: number, finishes: FinishTiming[]): Promise<StreamResult> {
  const dir = join(o.dir, 'mp3-stream');
  mkdirSync(dir, { recursive: true });
  const pool = soloPool({ dir, keepOpus: false, mp3: { bitrateKbps: 128, mono: false } });
  feeder.userIds.forEach((u, i) => pool.addTrack(u, `speaker${i}`));
  const minEncodedS = () => {
    let min = Infinity;
    for (const s of pool.status().values()) min = Math.min(min, (s.mp3EncodedFrames ?? 0) / 48_000);
    return min;
  };
  const startedAtMs = Date.now();
  const cpu0 = cpuSplit();
  const t0 = performance.now();
  let peakRss = 0;
  let lastLog = t0;
  let throttle = true;
  for (let s = 0; s < o.durationS; s++) {
    feeder.second(s, (p) => pool.onAudio(p));
    await yieldLoop();
    // Audio starts at 0.5 s; the encoders trail the watermark (≤ ~2 s behind the clock in pauses).
    // A stream that fell back stops progressing: stop throttling then (it is reported at stop) rather than hang.
    let waitedMs = 0;
    while (throttle && s + 1.5 - minEncodedS() > STREAM_LAG_S) {
      await sleep(5);
      waitedMs += 5;
      if (waitedMs > 20_000) {
        throttle = false;
        o.log('  long: mp3-stream: an encoder made no progress for 20 s; feeding unthrottled');
      }
    }
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    if (performance.now() - lastLog > 15_000) {
      lastLog = performance.now();
      o.log(`  long: mp3-stream fed ${s + 1}/${o.durationS} s (${((performance.now() - t0) / 1000).toFixed(0)} s), encoded ≥ ${minEncodedS().toFixed(0)} s`);
    }
  }
  const feedWallS = (performance.now() - t0) / 1000;
  const cpu1 = cpuSplit();
  const hours = (o.speakers * o.durationS) / 3600;
  const backlogAtStopS = 0.5 + o.durationS - minEncodedS();

  // ---- stop ----
  const endMs = 500 + o.durationS * 1000 + 500;
  const tStop = performance.now();
  const stats = await pool.cleanup(endMs);
  const cleanupS = (performance.now() - tStop) / 1000;
  const cpu2 = cpuSplit();
  await pool.close();
  const streamed: StreamedMp3[] = [];
  feeder.userIds.forEach((u, i) => {
    const m = stats.get(u)?.mp3;
    if (m?.state === 'done') streamed.push({ stem: `speaker${i}`, path: m.path, frames: m.frames, bitrateKbps: m.bitrateKbps, mono: m.mono });
    else o.log(`  long: mp3-stream speaker${i} fell back: ${JSON.stringify(m)}`);
  });
  writeJsonAtomic(join(dir, JOURNAL_FILE), journalFor('mp3', feeder.userIds, stats, startedAtMs, endMs));
  const t = performance.now();
  await finishRecording(dir, { force: false, ffmpegPath: false, streamedMp3: streamed });
  const finishS = (performance.now() - t) / 1000;
  finishes.push({
    variant: 'mp3-stream', cleanupS, finishS, totalS: cleanupS + finishS, encoder: streamed.length === o.speakers ? 'lame-wasm-stream' : 'lame-wasm-stream (some after stop)',
    outputBytes: dirBytes(dir), encodedSeconds: endMs / 1000, projectedTotalS: cleanupS + finishS,
  });
  const workerCpuPerSpeakerHour = (cpu1.worker - cpu0.worker) / hours;
  const r: StreamResult = {
    feedWallS,
    speedX: o.durationS / feedWallS,
    workerCpuPerSpeakerHour,
    encodeCpuPerSpeakerHour: workerCpuPerSpeakerHour - plainWorkerCpuPerSpeakerHour,
    backlogAtStopS,
    cleanupCpuS: cpu2.worker - cpu1.worker,
    streamedTracks: streamed.length,
    peakRssMiB: peakRss / 2 ** 20,
  };
  o.log(
    `  long: mp3-stream fed ${o.durationS} s × ${o.speakers} at ${r.speedX.toFixed(1)}× real time; backlog at stop ${r.backlogAtStopS.toFixed(1)} s; ` +
      `stop → MP3 ready ${(cleanupS + finishS).toFixed(2)} s (cleanup incl. tails ${cleanupS.toFixed(2)} s, finish ${finishS.toFixed(2)} s); ` +
      `workers ${workerCpuPerSpeakerHour.toFixed(1)} CPU-s/speaker-h (encoding ${r.encodeCpuPerSpeakerHour.toFixed(1)}); ` +
      `tail CPU ${r.cleanupCpuS.toFixed(2)} s; ${streamed.length}/${o.speakers} streamed; peak RSS ${r.peakRssMiB.toFixed(0)} MiB`,
  );
  rmSync(dir, { recursive: true, force: true });
  return r;
}
