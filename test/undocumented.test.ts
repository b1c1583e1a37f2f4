/**
 * What Discord does not document, recorded end to end under every variant the simulator models (README "What
 * Discord does not document, and how dvrec copes"): the real discord.js + @discordjs/voice + dvrec engine records the
 * simulator, and the decoded tracks are compared with its ground truth.
 *
 * One short call per variant exercises the usual cases together: four members (one joins late, one leaves and
 * rejoins with a new SSRC), a lossy network (loss, a burst, reordering, byte-identical duplicates, jitter), a 4015
 * resume, a voice-server move (a new key: every counter starts again), hostile datagrams including replays of
 * members' audio, RTCP sender reports from every active sender, and one member with its camera on and a screen
 * share (video, RTX and video RTCP on the same socket). It runs under each transport nonce numbering (one counter
 * per connection; one per forwarded stream from random starts, from 0, from 0x80000000), with DAVE on and off.
 *
 * Asserted against the truth: each member only in its own track, onsets within 20 ms, equal lengths, silent pauses,
 * no dropout except inside a run of more than two missing packets (what Opus concealment cannot restore), where
 * missing is lost by the network or refused by DAVE (a wire tap shows which; never more than a few), every packet
 * that arrived delivered once, every replay and network duplicate refused (exactly those), every RTCP datagram
 * counted and handed to the sink, every video datagram counted and none decoded, and every datagram accounted for.
 * The simulator's numbering is checked on the wire too (equal nonces across senders, where streams start).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Fault, GroundTruth, NonceNumbering, Scenario, SpurtTruth } from '../src/simulator/scenario.ts';
import { HOSTILE_KINDS } from '../src/simulator/hostile.ts';
import type { PoolTracks } from '../src/pool/recording-tracks.ts';
import type { Recording } from '../src/recorder/recording.ts';
import { classifyDatagram } from '../src/receiver/rtp.ts';
import { BLOCK, TONE_PEAK, msToSample, onsetMs, rms, scenario, toneAmplitude } from './record-fixtures.ts';
import { cleanupDirs, member, recordScenario, type Run } from './fault-fixtures.ts';

after(cleanupDirs);

/**
 * Tones on 50 Hz bins (exact for 20 ms Goertzel blocks), no two in a small integer ratio or closer than 300 Hz, and
 * among those whose cached Opus loop decodes at full level from any frame with a fresh decoder (a stream's first
 * packet is a mid-loop frame: e.g. 1250 Hz from frame 25 rises 32 ms late, which would read as a late onset).
 */
const HZ = [350, 650, 1000, 1600];
/**
 * Lost packets in a row after which some audio is really missing: the track rebuilds a gap's first frame by Opus
 * PLC and its last from the next packet's in-band FEC, and in between PLC fades (below the 10 % mark from its second
 * frame on); gaps over 100 ms are written as silence (src/sinks/track.ts).
 */
const CONCEALED_RUN = 2;
const DURATION_MS = 4300;
const HOSTILE_PER_BURST = HOSTILE_KINDS.length * 10;
/** Two bursts per voice session: the second can replay members' audio captured since the first. */
const HOSTILE_AT = [600, 1200, 3000, 3500];
const ofKind = (kind: string): number =>
  HOSTILE_AT.length * Array.from({ length: HOSTILE_PER_BURST }, (_, i) => HOSTILE_KINDS[i % HOSTILE_KINDS.length]).filter((k) => k === kind).length;

function call(nonces: NonceNumbering, dave: boolean): Scenario {
  // Talk spurts start at least 250 ms after the session does, and those after the voice-server move 800 ms after the
  // last change of the DAVE group (the rejoin, once the recorder re-joined it on the new server), so that what is
  // measured is the receive path, not how fast a loaded machine runs MLS (test/faults.test.ts measures speech
  // across group changes).
  const members = [
    member(1, HZ[0]!, [[300, 1000], [2550, 1250]], { video: { camera: [{ atMs: 400, durationMs: 3200 }], screen: [{ atMs: 800, durationMs: 1900 }] } }),
    member(2, HZ[1]!, [[450, 650], [2600, 1000]]),
    member(3, HZ[2]!, [[750, 600], [2750, 900]], { joinAtMs: 500 }),
    member(4, HZ[3]!, [[250, 400], [2500, 1000]], { leaveAtMs: 800, rejoinAtMs: 1700 }),
  ];
  const faults: Fault[] = [
    ...HOSTILE_AT.map((atMs): Fault => ({ atMs, kind: 'hostile', count: HOSTILE_PER_BURST })),
    // Members 1 and 3 speak across the resume; nobody speaks across the move (its outage is silence by design,
    // test/faults.test.ts measures it), but everyone speaks after it, under the new key's fresh counters.
    { atMs: 1000, kind: 'voice-close', code: 4015 },
    { atMs: 1500, kind: 'voice-server-move' },
  ];
  return scenario(members, {
    seed: 41,
    dave,
    nonces,
    senderReports: true,
    impairments: { loss: 0.02, burst: { probability: 0.01, length: 3 }, reorder: 0.05, duplicate: 0.05, jitterMs: 15 },
    faults,
  });
}

interface Figures {
  /** Every check that failed (the test asserts there is none). */
  problems: string[];
  /** Onset − truth, ms. */
  rawOnsetErrorsMs: number[];
  /** The same, less what missing leading packets excuse (what the ±20 ms bound applies to). */
  onsetErrorsMs: number[];
  dropouts: number;
  allowedDropouts: number;
  speechBlocks: number;
  where: string[];
}

/**
 * Packets of a spurt that never became audio, by position: lost by the network (the truth says which), or arrived
 * but refused by DAVE (the wire tap saw them authenticated, the pool never got them).
 */
type Missing = (s: SpurtTruth) => number[];

/** Missing packets whose audio concealment cannot really restore: all but the first of a run longer than {@link CONCEALED_RUN}. */
function unconcealable(lost: number[]): Set<number> {
  const out = new Set<number>();
  for (let i = 0; i < lost.length; ) {
    let j = i;
    while (j + 1 < lost.length && lost[j + 1] === lost[j]! + 1) j++;
    if (j - i + 1 > CONCEALED_RUN) for (let n = lost[i]! + 1; n <= lost[j]!; n++) out.add(n);
    i = j + 1;
  }
  return out;
}

/** Packets missing at a spurt's very start (the recording cannot know sound began before the first packet it got). */
function leading(missing: number[]): number {
  let n = 0;
  while (missing[n] === n) n++;
  return n;
}

/**
 * The checks of test/record.test.ts, with the truth's own loss positions: tone identity, onsets, equal lengths,
 * silent pauses, and dropouts (a 20 ms block inside a spurt where the member's tone is below 10 % of its level)
 * only where a run of lost packets was longer than concealment restores. Collects every failure with the figures
 * (so a run on a broken receiver still measures how broken), for the caller to assert.
 */
function checkTracks(run: Run, hzOf: Map<string, number>, missingOf: Missing): Figures {
  const m = run.manifest!;
  const { truth, pcm, startedAtMs } = run;
  const f: Figures = { problems: [], rawOnsetErrorsMs: [], onsetErrorsMs: [], dropouts: 0, allowedDropouts: 0, speechBlocks: 0, where: [] };
  const check = (ok: boolean, what: string): boolean => {
    if (!ok) f.problems.push(what);
    return ok;
  };
  const lengths = [...pcm.values()].map((x) => x.length);
  for (const len of lengths) check(Math.abs(len - msToSample(m.durationMs)) <= BLOCK, `track length ${len} vs ${m.durationMs} ms`);
  check(Math.max(...lengths) - Math.min(...lengths) <= BLOCK, `equal lengths: ${lengths}`);
  for (const mt of truth.members) {
    const hz = hzOf.get(mt.userId)!;
    const x = pcm.get(mt.userId);
    if (!check(x !== undefined, `a track for ${mt.userId}`) || !x) continue;
    const spurts = mt.spurts.filter((s) => s.packetsSent > 0);
    const speech: [number, number][] = [];
    for (const s of spurts) {
      const startMs = s.onsetWallMs - startedAtMs;
      const endMs = s.endWallMs - startedAtMs;
      if (endMs > m.durationMs - 100) continue;
      // Searched up to the spurt's end, so that a late onset is measured, not just missed.
      const onset = onsetMs(x, startMs - 100, endMs);
      if (!check(onset !== null, `${mt.userId}: no sound in the spurt at ${startMs.toFixed(1)} ms`) || onset === null) continue;
      const missing = missingOf(s);
      const err = onset - startMs;
      const slack = 20 * leading(missing);
      f.rawOnsetErrorsMs.push(err);
      f.onsetErrorsMs.push(err - Math.min(Math.max(err, 0), slack));
      check(err >= -20 && err <= 20 + slack, `${mt.userId}: onset ${onset.toFixed(1)} ms vs truth ${startMs.toFixed(1)} ms (${leading(missing)} leading packets missing)`);
      speech.push([startMs, endMs]);
      const gone = unconcealable(missing);
      for (let ms = startMs + 40; ms + 20 <= endMs - 40; ms += 20) {
        f.speechBlocks++;
        const level = toneAmplitude(x, msToSample(ms), BLOCK, hz);
        if (level >= 0.1 * TONE_PEAK) continue;
        // Packet n carries [onset + 20n, onset + 20n + 20); a block touching one of an unconcealable run may lack audio.
        const first = Math.floor((ms - startMs) / 20) - 1;
        const allowed = [first, first + 1, first + 2].some((n) => gone.has(n));
        if (allowed) f.allowedDropouts++;
        else {
          f.dropouts++;
          f.where.push(`${mt.userId.slice(-1)}@${ms.toFixed(0)}ms:${level.toFixed(0)}(packet ${first + 1}; missing ${missing.join(',')})`);
        }
      }
      // Nobody else's tone in this track while this member speaks.
      for (let ms = startMs + 40; ms + 20 <= endMs - 40; ms += 100) {
        for (const [other, ohz] of hzOf) {
          if (other === mt.userId) continue;
          const leak = toneAmplitude(x, msToSample(ms), BLOCK, ohz);
          check(leak < 0.1 * TONE_PEAK, `${mt.userId}: ${ohz} Hz in its track at ${ms.toFixed(0)} ms (${leak.toFixed(0)})`);
        }
      }
    }
    // Pauses are silent: no old audio replayed into them, nobody else's audio.
    for (let ms = 0; ms + 20 <= m.durationMs; ms += 20) {
      if (mt.spurts.some((s) => ms + 20 > s.onsetWallMs - startedAtMs - 140 && ms < s.endWallMs - startedAtMs + 140)) continue;
      const level = rms(x, msToSample(ms), BLOCK);
      check(level < 30, `${mt.userId}: pause at ${ms} ms should be silent, rms ${level.toFixed(1)}`);
    }
  }
  return f;
}

/**
 * Transport nonces of the authenticated audio datagrams as they arrived, per transport key: how the simulator
 * numbered them (equal nonces across senders, where each stream started).
 */
function wireTap(): {
  attach: (s: import('../src/receiver/connection-tap.ts').ConnectionTap) => void;
  collisions: () => number;
  starts: () => number[];
  /** Last packets of video frames, and of those the ones whose payload ends with the DAVE magic. */
  videoFrames: { total: number; dave: number };
  /** RTP sequence numbers of authenticated audio datagrams that arrived, per SSRC. */
  arrived: Map<number, Set<number>>;
} {
  const arrived = new Map<number, Set<number>>();
  let key = 0;
  /** key:nonce → SSRCs that used it. */
  const users = new Map<string, Set<number>>();
  const first = new Map<string, number>();
  const videoFrames = { total: 0, dave: 0 };
  return {
    videoFrames,
    arrived,
    attach: (s) => {
      s.on('cipher', () => key++);
      s.on('datagram', (d) => {
        const c = classifyDatagram(d);
        if (c.kind === 'skip' && c.reason === 'not-audio' && (d[1]! & 0x80) !== 0) {
          // A video frame's last packet: parse its header as if it were audio to open it, and look at its end.
          const h = classifyDatagram(Buffer.concat([d.subarray(0, 1), Buffer.from([0x78]), d.subarray(2)]));
          const plain = h.kind === 'rtp' ? s.cipher?.openRtp(d, h.header) : null;
          if (plain) {
            videoFrames.total++;
            if (plain.length >= 2 && plain[plain.length - 1] === 0xfa && plain[plain.length - 2] === 0xfa) videoFrames.dave++;
          }
          return;
        }
        if (c.kind !== 'rtp' || !s.cipher?.openRtp(d, c.header)) return;
        const ssrc = c.header.ssrc;
        let seqs = arrived.get(ssrc);
        if (!seqs) arrived.set(ssrc, (seqs = new Set()));
        seqs.add(c.header.sequence);
        const nonce = d.readUInt32BE(d.length - 4);
        const k = `${key}:${nonce}`;
        let set = users.get(k);
        if (!set) users.set(k, (set = new Set()));
        set.add(ssrc);
        if (!first.has(`${key}:${ssrc}`)) first.set(`${key}:${ssrc}`, nonce);
      });
    },
    collisions: () => [...users.values()].filter((s) => s.size > 1).length,
    starts: () => [...first.values()],
  };
}

const variants: NonceNumbering[] = ['per-connection', 'per-stream-random', 'per-stream-zero', 'per-stream-high'];
for (const nonces of variants) {
  for (const dave of [true, false]) {
    test(`nonces ${nonces}, DAVE ${dave ? 'on' : 'off'}: every member intact through impairments, faults, replays, sender reports and video`, async (t) => {
      const sc = call(nonces, dave);
      let pool: PoolTracks | undefined;
      let recording: Recording | undefined;
      /** RTP sequence numbers handed to the pool, per SSRC. */
      const delivered = new Map<number, Set<number>>();
      const tapPool = (p: PoolTracks): void => {
        pool = p;
        const onAudio = p.onAudio.bind(p);
        p.onAudio = (a) => {
          let seqs = delivered.get(a.ssrc);
          if (!seqs) delivered.set(a.ssrc, (seqs = new Set()));
          seqs.add(a.sequence);
          onAudio(a);
        };
      };
      const tap = wireTap();
      const simWarnings: string[] = [];
      const transitions: number[] = [];
      const run = await recordScenario(sc, { durationMs: DURATION_MS, hooks: { onPool: tapPool, onSession: (s) => tap.attach(s), onRecording: (r) => (recording = r) },
        onSimulator: (sim) => {
          sim.events.on('warning', (w) => simWarnings.push(w.message));
          sim.events.on('dave-transition', (e) => transitions.push(e.wallMs));
        },
      });
      const m = run.manifest;
      assert.ok(m, String(run.error));
      const truth: GroundTruth = run.truth;
      const hzOf = new Map(sc.members.map((x, i) => [x.userId, HZ[i]!]));
      const d = m.dropped!;
      const duplicatesSent = truth.members.reduce((n, x) => n + x.network.duplicatesSent, 0);
      const rtcpExpected = truth.rtcpSent + ofKind('rtcp-any-type');
      const garbage = ofKind('garbage');
      // Arrived authenticated but never handed to the pool (only DAVE may refuse a first copy).
      const refused = (s: SpurtTruth): number[] => {
        const out: number[] = [];
        const got = tap.arrived.get(s.ssrc);
        const gave = delivered.get(s.ssrc);
        for (let n = 0; n < s.packetsSent + s.packetsLost; n++) {
          const seq = (s.firstSequence + n) & 0xffff;
          if (got?.has(seq) && !gave?.has(seq)) out.push(n);
        }
        return out;
      };
      const undelivered = truth.members.flatMap((x) => x.spurts).reduce((n, s) => n + refused(s).length, 0);
      // Excused like losses only if every one of them is a DAVE failure the tracks counted (then nothing else in the
      // receiver dropped a first copy); otherwise they are missing audio the checks must see.
      const daveOnly = undelivered === m.tracks.reduce((n, tr) => n + tr.packets.undecryptable, 0);
      const missingOf: Missing = (s) => (daveOnly ? [...new Set([...s.lostIndices, ...refused(s)])].sort((a, b) => a - b) : s.lostIndices);
      const undeliveredWhere = truth.members.flatMap((x) => x.spurts.map((s, i) => [x.userId.slice(-1), i, refused(s)] as const))
        .filter(([, , r]) => r.length > 0).map(([u, i, r]) => `member ${u} spurt ${i} packet ${r.join('+')}`);
      // The figures first, so that a failing run still says what happened.
      const f = checkTracks(run, hzOf, missingOf);
      t.diagnostic(
        `${nonces} DAVE ${dave ? 'on' : 'off'}: onset error ${Math.min(...f.rawOnsetErrorsMs).toFixed(1)}..${Math.max(...f.rawOnsetErrorsMs).toFixed(1)} ms ` +
          `(beyond missing leading packets ${Math.min(...f.onsetErrorsMs).toFixed(1)}..${Math.max(...f.onsetErrorsMs).toFixed(1)}) over ${f.onsetErrorsMs.length} spurts; ` +
          `${f.dropouts} dropouts (+${f.allowedDropouts} inside runs of > ${CONCEALED_RUN} lost packets) in ${f.speechBlocks} blocks [${f.where.slice(0, 12).join(' ')}]; ` +
          `replayed ${d.replayed} (sent ${ofKind('replay')} replays + ${duplicatesSent} duplicates); ` +
          `rtcp ${d.rtcp}/${rtcpExpected} (${truth.media.senderReports} audio SRs, ${truth.media.videoRtcp} video), to the sink ${recording?.rtcpPackets}; ` +
          `arrived but not delivered ${undelivered} [${undeliveredWhere.join(', ')}]; video ${(d as { video?: number }).video}/${truth.media.videoRtp} (${truth.media.videoRtx} RTX); lost ${truth.members.map((x) => x.packetsLost).join('/')}; ` +
          `${f.problems.length} problems [${f.problems.slice(0, 4).join('; ')}]; equal nonces across senders ${tap.collisions()}; video frames ${JSON.stringify(tap.videoFrames)}; DAVE transitions at ${transitions.map((w) => (w - run.startedAtMs).toFixed(0)).join(', ')} ms; tracks ${m.tracks.map((x) => JSON.stringify(x.packets)).join(' ')}`,
      );
      assert.deepEqual(f.problems, [], 'tone identity, onsets, lengths and pauses');
      assert.equal(f.dropouts, 0, `dropouts outside unconcealable losses: ${f.where.join(' ')}`);

      // The call happened as scripted.
      assert.deepEqual(truth.faults.map((x) => `${x.kind}:${x.outcome}`).sort(), [
        ...HOSTILE_AT.map(() => 'hostile:sent'), 'voice-close:resumed', 'voice-server-move:moved',
      ].sort());
      assert.equal(m.tracks.length, 4, 'one track per member');
      assert.equal(m.tracks.find((x) => x.userId === sc.members[3]!.userId)!.ssrcs.length, 2, 'the rejoiner has two SSRCs in one track');
      assert.ok(truth.members.reduce((n, x) => n + x.packetsLost, 0) > 5, 'the network lost packets');
      assert.ok(duplicatesSent > 5, 'the network duplicated datagrams');
      if (nonces === 'per-connection') assert.equal(tap.collisions(), 0, 'one counter: no two senders share a nonce under one key');
      else if (nonces !== 'per-stream-random') assert.ok(tap.collisions() > 50, `equal nonces across senders are normal here: ${tap.collisions()}`);
      if (nonces === 'per-stream-high') assert.ok(tap.starts().every((n) => n >= 0x8000_0000 && n < 0x8000_0000 + 1000), `every stream from 0x80000000: ${tap.starts().map((n) => n.toString(16))}`);

      // Replays and network duplicates: refused before DAVE, exactly those.
      assert.equal(d.replayed, ofKind('replay') + duplicatesSent, 'every replay and duplicate refused, nothing else');
      // RTCP: every report counted and handed to the sink, never taken for audio.
      assert.ok(truth.media.senderReports >= 12 && truth.media.videoRtcp >= 4, `reports sent: ${JSON.stringify(truth.media)}`);
      assert.equal(d.rtcp, rtcpExpected, 'every RTCP datagram counted');
      assert.equal(recording?.rtcpPackets, rtcpExpected, 'and handed to the sink');
      // Video: counted (random hostile garbage may look like video too), never decoded.
      assert.ok(truth.media.videoRtp > 500 && truth.media.videoRtx > 5, `video sent: ${JSON.stringify(truth.media)}`);
      // ... DAVE-encrypted as a client sends video frames when DAVE is on (the last packet of a frame ends with the
      // DAVE magic; a member's first frames before its group exists are plain, as on Discord).
      if (dave) assert.ok(tap.videoFrames.dave > 0.9 * tap.videoFrames.total, `video frames under DAVE: ${JSON.stringify(tap.videoFrames)}`);
      else assert.equal(tap.videoFrames.dave, 0);
      assert.deepEqual(simWarnings.filter((w) => /video/.test(w)), [], 'the simulator encrypted every video frame');
      const video = (d as { video?: number }).video ?? -1;
      assert.ok(video >= truth.media.videoRtp && video <= truth.media.videoRtp + garbage, `video counted ${video} of ${truth.media.videoRtp} sent`);
      for (const tr of m.tracks) assert.equal(tr.packets.corrupt, 0, `${tr.userId}: nothing undecodable reached its decoder`);
      // Every authenticated audio datagram that arrived reached the pool (its first copy), but for what DAVE refused:
      // nothing without DAVE, and with it a few at most, each counted as that member's undecryptable. This seed makes
      // two of them every time: a sender's first frame under a new key reordered behind its second (member 4's
      // rejoin, member 1's first spurt after the server move), which @snazzah/davey 0.1.12 refuses (README, "Known
      // limits"); a group change under load may add one or two.
      assert.ok(daveOnly, `every packet that arrived and was not delivered is a DAVE failure: ${undelivered} not delivered`);
      if (dave) assert.ok(undelivered <= 4, `DAVE refused ${undelivered} packets`);
      else assert.equal(undelivered, 0, 'without DAVE every packet that arrived was delivered');
      const sum = Object.entries(d).filter(([k]) => k !== 'datagrams').reduce((a, [, v]) => a + (v as number), 0);
      assert.equal(sum, d.datagrams, 'every datagram in exactly one field of `dropped`');
    });
  }
}
