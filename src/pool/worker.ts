/**
 * A pool worker: owns one libopus wasm instance and the tracks of the users pinned to it.
 *
 * It unpacks batches into Track.push(), and ticks to release jitter-buffer deadlines and flush pending audio,
 * and reports status about twice a second. While audio flows, a tick follows each batch (the pool sends one
 * every ~20 ms), so the thread wakes once per batch instead of twice (a wake-up costs ~0.1 ms of CPU on a
 * virtual machine); a timer ticks only when no batch came for tickMs (silence, or the end of the recording).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createOpusDecoders } from '../sinks/opus-decoder.ts';
import { Track, type TrackPacket } from '../sinks/track.ts';
import { capturePath, packetLogPath } from '../sinks/capture-layout.ts';
import { Mp3Streams } from '../sinks/mp3-stream.ts';
import { RECORD_HEADER_BYTES, type FromWorker, type ToWorker, type TrackStatusReport, type WorkerInit } from './protocol.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
/** Native libopus when built, else WebAssembly (see src/sinks/opus-native.ts). */
const wasm = createOpusDecoders();
const tracks = new Map<number, Track>();
const failed = new Set<number>();
const hrT0 = BigInt(init.hrT0);
/** Streaming MP3 encoders (output format mp3 only): fed from the captures on ticks, after the audio work. */
const mp3 = init.mp3 ? new Mp3Streams(init.dir, init.mp3, (m) => post(m)) : null;
/**
 * In wall mode ticks run `slackMs` behind real time: a packet reaches us up to one batch interval (plus the
 * posting delay) after its arrival, and a gap's deadline must be judged by arrival times, not by when the batch
 * happened to land.
 */
const slackMs = init.tickMs + 15;
let packetsNowMs = -Infinity;
/** Packet-clock time of the last status (clock 'packets' only). */
let lastPacketStatus = 0;

function post(m: FromWorker): void {
  port.postMessage(m);
}

/** Milliseconds since t=0 by the process clock. */
function realMs(): number {
  return Number(process.hrtime.bigint() - hrT0) / 1e6;
}

function nowMs(): number {
  if (init.clock === 'packets') return packetsNowMs;
  return realMs() - slackMs;
}

/**
 * Runs `fn` on a track; a file error is reported once and the track stops taking audio, never the worker.
 * The failed track keeps what it could not write yet: at cleanup it gets one more chance to flush and finish
 * (on a full disk the engine frees its reserve first), so audio captured before the failure is not dropped.
 */
function guard(trackId: number, t: Track, fn: (t: Track) => void): void {
  if (failed.has(trackId)) return;
  try {
    fn(t);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    failed.add(trackId);
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
  const m = mp3?.report(trackId);
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
    const t = tracks.get(trackId);
    if (t === undefined) continue;
    const p: TrackPacket = { ssrc, sequence, timestamp, arrivalMs, opus };
    guard(trackId, t, (tr) => tr.push(p));
  }
  if (batchNow > packetsNowMs) packetsNowMs = batchNow;
  if (init.clock === 'wall') {
    // The batch's newest arrival is `batchNow` (recording clock): far behind our clock means batches are queued
    // up (this worker is behind), and the MP3 pump must leave the time to the packets. Every packet stamped up to
    // batchNow has reached us (batches are sent in order), later ones may still be queued: the tracks are advanced
    // no further than batchNow, so that a talk spurt whose first packets come in a backlog is still anchored on its
    // whole priming window, not on the one batch seen so far.
    const behindMs = realMs() - batchNow - BATCH_SLACK_MS;
    onTick(behindMs, Math.min(nowMs(), batchNow));
    return;
  }
  if (init.clock === 'packets') {
    tick();
    // Packet-driven clock: the status cadence follows the simulated clock, not the wall.
    if (packetsNowMs - lastPacketStatus >= init.statusMs) {
      lastPacketStatus = packetsNowMs;
      status();
    }
  }
}

/** The clock the tracks were last advanced to (recording ms): what a status may claim is flushed. */
let tickClock = -Infinity;

function tick(now = nowMs()): void {
  tickClock = Math.max(tickClock, now);
  const clock = tickClock;
  for (const [id, t] of tracks) {
    guard(id, t, (tr) => {
      tr.advance(clock);
      tr.flushIfDue(clock);
    });
  }
}

/**
 * Flushes every track, then reports: so a status also proves how far the captures are durable (a SIGKILL
 * or a dead worker loses at most one status interval of released audio plus what the jitter buffers hold).
 */
function status(): void {
  const out: TrackStatusReport[] = [];
  for (const [id, t] of tracks) {
    guard(id, t, (tr) => tr.flush());
    out.push(report(id, t));
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
  mp3?.pump(lateMs);
  timer.refresh();
}

// The fallback tick: fires only when no batch came for tickMs (or always, in 'packets' mode where batches tick).
const timer: NodeJS.Timeout = setTimeout(() => {
  const lateMs = performance.now() - lastTick - init.tickMs;
  onTick(Math.max(0, lateMs));
}, init.tickMs);

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'batch':
      onBatch(m.buf, m.len, m.nowMs);
      break;
    case 'add': {
      if (tracks.has(m.trackId)) break;
      try {
        const t = new Track({
          capturePath: capturePath(init.dir, m.stem),
          packetLogPath: init.keepOpus ? packetLogPath(init.dir, m.stem) : undefined,
          wasm,
          playoutDelayMs: init.playoutDelayMs,
          flushMs: init.flushMs,
          resume: m.resume,
        });
        tracks.set(m.trackId, t);
        mp3?.add(m.trackId, m.stem, capturePath(init.dir, m.stem), t, m.resume !== undefined);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        post({ type: 'trackError', trackId: m.trackId, code: e.code, message: e.message });
      }
      break;
    }
    case 'cleanup': {
      const out: TrackStatusReport[] = [];
      for (const [id, t] of tracks) {
        if (failed.has(id)) lastChance(t, (tr) => tr.finish(m.endMs));
        else guard(id, t, (tr) => tr.finish(m.endMs));
        mp3?.finish(id, Math.max(0, Math.round(m.endMs * 48)), !failed.has(id));
        out.push(report(id, t));
      }
      post({ type: 'cleaned', tracks: out });
      break;
    }
    case 'close': {
      clearTimeout(timer);
      for (const [id, t] of tracks) {
        if (failed.has(id)) lastChance(t, (tr) => tr.close());
        else guard(id, t, (tr) => tr.close());
      }
      tracks.clear();
      mp3?.closeAll();
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
