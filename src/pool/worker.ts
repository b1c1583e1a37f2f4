/**
 * A pool worker: owns one Opus decoder instance (native libopus or its WebAssembly build) and the tracks of the
 * users pinned to it, whatever recording each belongs to.
 *
 * It unpacks batches into Track.push(), ticks to release jitter-buffer deadlines and flush pending audio, hands
 * tapped output back to the main thread, and reports status about twice a second. While audio flows, a tick
 * follows each batch (the pool sends one every ~20 ms), so the thread wakes once per batch instead of twice (a
 * wake-up is the largest fixed cost of a thread on a virtual machine: BENCHMARKS.md); a timer ticks only when no
 * batch came for tickMs (silence, or the end of the recording).
 *
 * Clocks: the worker keeps the pool clock (ms since the pool's hrT0, or the batches' `nowMs` in 'packets' mode);
 * each track lives on its recording's clock, `pool clock − spec.t0Ms`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createOpusDecoders } from '../sinks/opus-decoder.ts';
import { Track, type TrackPacket } from '../sinks/track.ts';
import { Mp3Streams } from '../sinks/mp3-stream.ts';
import { TapWriter, type TapConfig } from '../sinks/track-tap.ts';
import { Watermark } from '../sinks/watermark.ts';
import { RECORD_HEADER_BYTES, type FromWorker, type ToWorker, type TrackStatusReport, type WorkerInit } from './protocol.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
/** Native libopus when built, else WebAssembly (see src/sinks/opus-native.ts). */
const decoders = createOpusDecoders();

interface Slot {
  track: Track;
  /** Pool-clock instant of the track's recording t=0. */
  t0Ms: number;
  tap: TapConfig;
  /** A file error was reported: the track takes no more audio (see guard). */
  failed: boolean;
}
const tracks = new Map<number, Slot>();
const hrT0 = BigInt(init.hrT0);
/** Streaming MP3 encoders (tracks of MP3 recordings): fed from the captures on ticks, after the audio work. */
const mp3 = new Mp3Streams(init.mp3Budget, (m) => post(m));
const taps = new TapWriter();
/**
 * In wall mode ticks run `slackMs` behind real time: a packet reaches us up to one batch interval (plus the
 * posting delay) after its arrival, and a gap's deadline must be judged by arrival times, not by when the batch
 * happened to land.
 */
const slackMs = init.tickMs + 15;
let packetsNowMs = -Infinity;
/** Packet-clock time of the last status (clock 'packets' only). */
let lastPacketStatus = 0;

function post(m: FromWorker, transfer?: ArrayBuffer[]): void {
  port.postMessage(m, transfer);
}

/** Milliseconds since the pool's t=0 by the process clock. */
function realMs(): number {
  return Number(process.hrtime.bigint() - hrT0) / 1e6;
}

/** The pool clock as ticks see it. */
function poolNowMs(): number {
  if (init.clock === 'packets') return packetsNowMs;
  return realMs() - slackMs;
}

/**
 * Runs `fn` on a track; a file error is reported once and the track stops taking audio, never the worker.
 * The failed track keeps what it could not write yet: at cleanup it gets one more chance to flush and finish
 * (on a full disk the engine frees its reserve first), so audio captured before the failure is not dropped.
 */
function guard(trackId: number, s: Slot, fn: (t: Track) => void): void {
  if (s.failed) return;
  try {
    fn(s.track);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    s.failed = true;
    post({ type: 'trackError', trackId, code: e.code, message: e.message });
  }
}

/** Last attempt for a failed track (cleanup/close): best effort, errors already reported. */
function lastChance(t: Track, fn: (t: Track) => void): void {
  try {
    fn(t);
  } catch {
    try {
      t.close();
    } catch {
      /* nothing more can be saved */
    }
  }
}

function report(trackId: number, t: Track): TrackStatusReport {
  const r: TrackStatusReport = { trackId, speaking: t.speaking, writtenEnd: t.writtenEnd, ...t.summary() };
  const m = mp3.report(trackId);
  if (m !== undefined) r.mp3 = m;
  return r;
}

function onBatch(buf: ArrayBuffer, len: number, batchNow: number): void {
  const view = new DataView(buf, 0, len);
  const bytes = new Uint8Array(buf, 0, len);
  let o = 0;
  while (o + RECORD_HEADER_BYTES <= len) {
    const trackId = view.getUint32(o, true);
    const ssrc = view.getUint32(o + 4, true);
    const sequence = view.getUint16(o + 8, true);
    const n = view.getUint16(o + 10, true);
    const timestamp = view.getUint32(o + 12, true);
    const arrivalMs = view.getFloat64(o + 16, true);
    const opus = bytes.subarray(o + RECORD_HEADER_BYTES, o + RECORD_HEADER_BYTES + n);
    o += RECORD_HEADER_BYTES + n;
    const s = tracks.get(trackId);
    if (s === undefined) continue;
    const p: TrackPacket = { ssrc, sequence, timestamp, arrivalMs, opus };
    guard(trackId, s, (tr) => tr.push(p));
  }
  if (batchNow > packetsNowMs) packetsNowMs = batchNow;
  if (init.clock === 'wall') {
    // The batch's newest arrival is `batchNow` (pool clock): far behind our clock means batches are queued
    // up (this worker is behind), and the MP3 pump must leave the time to the packets. Every packet stamped up to
    // batchNow has reached us (batches are sent in order), later ones may still be queued: the tracks are advanced
    // no further than batchNow, so that a talk spurt whose first packets come in a backlog is still anchored on its
    // whole priming window, not on the one batch seen so far.
    const behindMs = realMs() - batchNow - BATCH_SLACK_MS;
    onTick(behindMs, Math.min(poolNowMs(), batchNow));
    return;
  }
  tick();
  // Packet-driven clock: the status cadence follows the simulated clock, not the wall.
  if (packetsNowMs - lastPacketStatus >= init.statusMs) {
    lastPacketStatus = packetsNowMs;
    status();
  }
}

/** The pool clock the tracks were last advanced to: what a status may claim is flushed. */
let tickClock = -Infinity;

function tick(now = poolNowMs()): void {
  tickClock = Math.max(tickClock, now);
  const clock = tickClock;
  for (const [id, s] of tracks) {
    const trackNow = clock - s.t0Ms;
    guard(id, s, (tr) => {
      tr.advance(trackNow);
      tr.flushIfDue(trackNow);
    });
  }
  sendTaps();
}

/** Hands what tapped tracks wrote since the last tick to the main thread (one transfer per tick, if any). */
function sendTaps(): void {
  const t = taps.take();
  if (t !== null) post({ type: 'tap', buf: t.buf, len: t.len }, [t.buf]);
}

/**
 * Flushes every track, then reports: so a status also proves how far the captures are durable (a SIGKILL
 * or a dead worker loses at most one status interval of released audio plus what the jitter buffers hold).
 */
function status(): void {
  const out: TrackStatusReport[] = [];
  for (const [id, s] of tracks) {
    guard(id, s, (tr) => tr.flush());
    out.push(report(id, s.track));
  }
  // Flushed up to where the tracks were advanced: behind a backlog that is less than the real clock.
  post({ type: 'status', tracks: out, flushedMs: tickClock });
}

/** A batch is normally at most this old when it lands (the pool sends it once its oldest packet is tickMs old). */
const BATCH_SLACK_MS = init.tickMs + 5;
let lastStatus = performance.now();
let lastTick = -Infinity;

/**
 * Releases deadlines (up to `clock`, default the wall clock minus slack), reports status when due, then lets the
 * MP3 pump use what is left (nothing if late).
 */
function onTick(lateMs: number, clock?: number): void {
  const t = performance.now();
  // Batches can land back to back after a stall: half a tick apart is enough.
  if (t - lastTick >= init.tickMs / 2) {
    lastTick = t;
    tick(clock);
    if (init.clock === 'wall' && t - lastStatus >= init.statusMs) {
      lastStatus = t;
      status();
    }
  }
  // Encoding gets what is left of the tick, and nothing when the tick was late (packets first).
  mp3.pump(lateMs);
  timer.refresh();
}

// The fallback tick: fires only when no batch came for tickMs (or always, in 'packets' mode where batches tick).
const timer: NodeJS.Timeout = setTimeout(() => {
  const lateMs = performance.now() - lastTick - init.tickMs;
  onTick(Math.max(0, lateMs));
}, init.tickMs);

function addTrack(trackId: number, m: Extract<ToWorker, { type: 'add' }>): void {
  if (tracks.has(trackId)) return;
  const { spec } = m;
  try {
    const watermark = new Watermark();
    const slot: Slot = { track: undefined as unknown as Track, t0Ms: spec.t0Ms, tap: spec.tap, failed: false };
    slot.track = new Track({
      capturePath: spec.capturePath,
      packetLogPath: spec.packetLogPath,
      utteranceLogPath: spec.utteranceLogPath,
      wasm: decoders,
      playoutDelayMs: init.playoutDelayMs,
      flushMs: init.flushMs,
      resume: m.resume,
      watermark,
      tap: taps.output(trackId, () => slot.tap),
    });
    tracks.set(trackId, slot);
    if (spec.mp3) mp3.add(trackId, spec.capturePath, spec.mp3, watermark, m.resume !== undefined);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    post({ type: 'trackError', trackId, code: e.code, message: e.message });
  }
}

/** Finishes the given tracks at `endMs` of their recording, reports them, and forgets them. */
function cleanup(requestId: number, trackIds: number[], endMs: number): void {
  const out: TrackStatusReport[] = [];
  for (const id of trackIds) {
    const s = tracks.get(id);
    if (s === undefined) continue;
    if (s.failed) lastChance(s.track, (tr) => tr.finish(endMs));
    else guard(id, s, (tr) => tr.finish(endMs));
    mp3.finish(id, Math.max(0, Math.round(endMs * 48)), !s.failed);
    out.push(report(id, s.track));
    tracks.delete(id);
    mp3.remove(id);
  }
  // The last utterance edges of these tracks go out before the answer, so the main thread has them all.
  sendTaps();
  post({ type: 'cleaned', requestId, tracks: out });
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'batch':
      onBatch(m.buf, m.len, m.nowMs);
      break;
    case 'add':
      addTrack(m.trackId, m);
      break;
    case 'restart': {
      const s = tracks.get(m.trackId);
      if (s) guard(m.trackId, s, (tr) => tr.restartStreams());
      break;
    }
    case 'tap': {
      const s = tracks.get(m.trackId);
      if (s) s.tap = m.tap;
      break;
    }
    case 'cleanup':
      cleanup(m.requestId, m.trackIds, m.endMs);
      break;
    case 'close': {
      clearTimeout(timer);
      for (const [id, s] of tracks) {
        if (s.failed) lastChance(s.track, (tr) => tr.close());
        else guard(id, s, (tr) => tr.close());
      }
      tracks.clear();
      mp3.closeAll();
      post({ type: 'closed' });
      port.close();
      break;
    }
    case 'crash':
      // Uncaught, on purpose: the pool must survive exactly what a bug here would do to it.
      if (init.faultInjection === true) throw new Error(m.message);
      break;
    case 'stall':
      // Blocked, not busy: batches queue up behind it exactly as behind a thread the OS did not run.
      if (init.faultInjection === true) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, m.ms);
      break;
  }
});
