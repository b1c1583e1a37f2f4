/**
 * Turns bench results into the printed table and BENCHMARKS.md (same figures in both). Targets are checked
 * here and every miss gets its explanation from the measurements themselves (profile figures, per-packet costs).
 */
import type { Machine } from './machine.ts';
import type { DecodeMicro } from './decode-micro.ts';
import type { LongResult } from './long.ts';
import type { StepResult } from './capacity.ts';
import type { BotBenchResult } from './bot.ts';

export interface BenchResults {
  machine: Machine;
  date: string;
  command: string;
  quick: boolean;
  stepSeconds: number;
  dave: boolean;
  micro: DecodeMicro | null;
  long: LongResult | null;
  lameSeconds: number;
  dvrec: StepResult[];
  baseline: StepResult[];
  /** Concurrent recordings in one `dvrec bot` process (bench/bot.ts); absent from older runs. */
  bot?: BotBenchResult | null;
}

const TARGET = {
  speakers: 500,
  cpuPerSpeakerHour: 10,
  rss100: 250,
  wavReadyS: 2,
  mp3TenSpeakerHoursS: 60,
  botGuilds: 50,
  botSpeakersPerGuild: 6,
};

/**
 * Figures that decided how a piece of code is written, measured when it was written (not by a bench run); the
 * code's comments give the reason and point here. Kept in every BENCHMARKS.md the bench writes.
 */
const MEASUREMENTS_BEHIND_THE_CODE = [
  '## Measurements behind the code',
  '',
  "Figures that decided how a piece of code is written, measured when it was written (not by this run); the code's comments give the reason and point here.",
  '',
  '| Where | What was measured | Figure | Decision |',
  '| --- | --- | --- | --- |',
  "| `src/sinks/capture-writer.ts` | Page cache still holding capture data at the stop of 10 tracks × 1 h fed at ~100× real time, left to the kernel's own write-back | 1.5–2.3 GB, 1.3–2.5 s of syncing at the stop | Ask the kernel to start writing back every few MiB (`native/writeback.c`): the stop syncs at most the last few MiB per track |",
  '| `src/receiver/transport-crypto.ts` | `createDecipheriv` given the raw AES key for every datagram, at 200 speakers | ~47 % of the receive thread; 20.5 µs per packet, 5.4 µs with a `KeyObject` made once per session | One `KeyObject` per transport key |',
  '| `src/commands/run.ts` | `process.exit` right after writing the `done` event of a 500-track recording (~0.3 MB) to a slow pipe | cut at 146 KB | Drain stdout and stderr (bounded) before exiting |',
  '',
];

const f = (x: number | null | undefined, d = 1): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d));
const mark = (ok: boolean | null): string => (ok === null ? '' : ok ? '✅' : '❌');

/** Largest passing step of a ladder (steps are run in increasing order after the fixed ones). */
/** The decoder the pool uses on this machine: the native addon when built, else wasm (SIMD when available). */
function poolDecodeUs(u: DecodeMicro): number {
  return u.dvrecNativeUsPerPacket ?? u.wasmSimdUsPerPacket ?? u.wasmUsPerPacket;
}

function capacity(steps: StepResult[]): { n: number; step: StepResult | undefined; firstFail: StepResult | undefined } {
  const ok = steps.filter((s) => s.ok).sort((a, b) => b.speakers - a.speakers);
  const fail = steps.filter((s) => !s.ok).sort((a, b) => a.speakers - b.speakers);
  return { n: ok[0]?.speakers ?? 0, step: ok[0], firstFail: fail[0] };
}

const at = (steps: StepResult[], n: number): StepResult | undefined => steps.find((s) => s.speakers === n);

/**
 * RSS over the steady part of a step: the second half of the samples, excluding the last two (stop and
 * finishing), as a least-squares slope. The first half is warm-up: V8 grows its heap, the JIT settles and every
 * track's jitter buffer, decoder and write buffer get allocated, which over a 45 s step read as "12 MiB/min";
 * endpoints alone would also let one GC swing decide the verdict. A recorder that leaks shows it here.
 */
function rssTrend(s: StepResult | undefined): { from: number; to: number; perMin: number } | null {
  if (!s || s.rssSamples.length < 8) return null;
  const xs = s.rssSamples.slice(Math.floor(s.rssSamples.length / 2), -2);
  if (xs.length < 4) return null;
  const mt = xs.reduce((a, p) => a + p.t, 0) / xs.length;
  const mr = xs.reduce((a, p) => a + p.rssMiB, 0) / xs.length;
  let num = 0;
  let den = 0;
  for (const p of xs) {
    num += (p.t - mt) * (p.rssMiB - mr);
    den += (p.t - mt) ** 2;
  }
  return { from: xs[0]!.rssMiB, to: xs[xs.length - 1]!.rssMiB, perMin: (num / Math.max(1e-9, den)) * 60 };
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(w[i]!)).join(' | ') + ' |';
  return [line(head), '|' + w.map((n) => '-'.repeat(n + 2)).join('|') + '|', ...rows.map(line)].join('\n');
}

function stepRows(steps: StepResult[]): string[][] {
  return [...steps]
    .sort((a, b) => a.speakers - b.speakers || a.seconds - b.seconds)
    .map((s) => {
      const tr = rssTrend(s);
      return [
        String(s.speakers),
        `${s.seconds} s`,
        s.ok ? 'ok' : 'FAIL',
        `${s.received}`,
        `${s.lost}/${s.concealed}${s.missingFrames ? ` (−${s.missingFrames} fr)` : ''}`,
        `${s.droppedBlocks}/${s.sampledBlocks} in ${s.sampledTracks}`,
        `${f(s.lagEarlyMs, 0)} → ${f(s.lagLateMs, 0)}`,
        f(s.cpuPerSpeakerHour, 1),
        f(s.recorderCores, 2),
        f(s.simCores, 2),
        f(s.peakRssMiB, 0),
        tr ? `${f(tr.from, 0)} → ${f(tr.to, 0)}` : '–',
        s.ok ? '' : s.problems.join('; '),
      ];
    });
}

const STEP_HEAD = [
  'speakers', 'length', 'result', 'packets', 'lost/concealed', 'silent blocks (checked)', 'lag ms early → late',
  'CPU-s / speaker-h', 'recorder cores', 'simulator cores', 'peak RSS MiB', 'RSS MiB (steady)', 'why it failed',
];

export function renderReport(r: BenchResults, wallS: number): { table: string; markdown: string } {
  const out: string[] = [];
  const notes: string[] = [];
  const m = r.machine;
  out.push('# dvrec benchmarks', '');
  out.push(
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${m.ramGiB} GiB RAM, ${m.kernel}, Node ${m.node}` +
      `${m.ffmpeg ? `, ${m.ffmpeg}` : ', no ffmpeg'}, Opus decoder: ${m.opusDecoder}  `,
    `Date: ${r.date}  `,
    `Command: \`${r.command}\` (${r.quick ? 'quick run' : 'full run'}, ${f(wallS / 60, 1)} min)`,
    '',
    'Generated by `bench/run.ts`; every figure below is measured in that run on that machine. ' +
      'CPU figures are CPU time (utime + stime from /proc), not wall time, so other load on the box inflates ' +
      'them only through cache and frequency effects.',
    '',
  );

  // ---- summary ----
  const dv = capacity(r.dvrec);
  const bl = capacity(r.baseline);
  const L = r.long;
  const wav = L?.finishes.find((x) => x.variant === 'wav');
  const mp3ff = L?.finishes.find((x) => x.variant === 'mp3-ffmpeg');
  const mp3lame = L?.finishes.find((x) => x.variant === 'mp3-lame');
  const mp3stream = L?.finishes.find((x) => x.variant === 'mp3-stream');
  const st = L?.stream;
  const speakerHours = L ? (L.speakers * L.durationS) / 3600 : 0;
  /** Scale a finish time to 10 speaker-hours (encoding is linear in the audio's length). */
  const to10h = (s: number | undefined) => (s === undefined || !L ? null : s * (10 / speakerHours));
  const summary: string[][] = [];
  const ratio = (a: number | null | undefined, b: number | null | undefined) =>
    a === null || a === undefined || b === null || b === undefined || !b ? '–' : `${f(a / b, 2)}×`;
  if (r.dvrec.length) {
    const d10 = at(r.dvrec, 10);
    const d100 = at(r.dvrec, 100);
    const b10 = at(r.baseline, 10);
    const b100 = at(r.baseline, 100);
    const t100 = rssTrend(d100);
    const tb100 = rssTrend(b100);
    summary.push(
      ['simultaneous speakers, zero dropouts', `${dv.n}`, r.baseline.length ? `${bl.n}` : '–', r.baseline.length ? ratio(dv.n, bl.n) : '–', `≥ ${TARGET.speakers}`, mark(dv.n >= TARGET.speakers)],
      ['CPU-s per speaker-hour @10', f(d10?.cpuPerSpeakerHour), f(b10?.cpuPerSpeakerHour), ratio(d10?.cpuPerSpeakerHour, b10?.cpuPerSpeakerHour), '', ''],
      ['CPU-s per speaker-hour @100', f(d100?.cpuPerSpeakerHour), f(b100?.cpuPerSpeakerHour), ratio(d100?.cpuPerSpeakerHour, b100?.cpuPerSpeakerHour), `≤ ${TARGET.cpuPerSpeakerHour}`, mark(d100 ? d100.cpuPerSpeakerHour <= TARGET.cpuPerSpeakerHour : null)],
      [`CPU-s per speaker-hour @capacity (${dv.n} / ${bl.n})`, f(dv.step?.cpuPerSpeakerHour), f(bl.step?.cpuPerSpeakerHour), ratio(dv.step?.cpuPerSpeakerHour, bl.step?.cpuPerSpeakerHour), '', ''],
      ['peak RSS MiB @10', f(d10?.peakRssMiB, 0), f(b10?.peakRssMiB, 0), ratio(d10?.peakRssMiB, b10?.peakRssMiB), '', ''],
      ['peak RSS MiB @100', f(d100?.peakRssMiB, 0), f(b100?.peakRssMiB, 0), ratio(d100?.peakRssMiB, b100?.peakRssMiB), `< ${TARGET.rss100}`, mark(d100 ? d100.peakRssMiB < TARGET.rss100 : null)],
      [`peak RSS MiB @capacity (${dv.n} / ${bl.n})`, f(dv.step?.peakRssMiB, 0), f(bl.step?.peakRssMiB, 0), ratio(dv.step?.peakRssMiB, bl.step?.peakRssMiB), '', ''],
      ['RSS growth @100, MiB/min (steady part)', f(t100?.perMin, 1), f(tb100?.perMin, 1), '', 'flat', mark(t100 ? t100.perMin < 10 : null) /* shrinking (a major GC returning heap) is not growth */],
    );
  }
  if (L) {
    summary.push(
      [`stop → WAV files ready (${L.speakers} × ${f(L.durationS / 3600, 2)} h)`, `${f(wav?.totalS, 2)} s`, '–', '', `≤ ${TARGET.wavReadyS} s`, mark(wav ? wav.totalS <= TARGET.wavReadyS : null)],
      // What `dvrec record --format mp3` does: encoded while recording, only the tail left at stop. Its stop time
      // depends on the backlog at stop, not on the length, as long as the encoders keep up in real time.
      [
        `stop → MP3 ready, encoded while recording (${f(L.speakers * L.durationS / 3600, 0)} speaker-hours, ${st?.streamedTracks ?? 0}/${L.speakers} streamed)`,
        mp3stream ? `${f(mp3stream.totalS, 2)} s` : '–', '–', '', `≤ ${TARGET.mp3TenSpeakerHoursS} s`,
        mark(mp3stream && st ? mp3stream.totalS <= TARGET.mp3TenSpeakerHoursS && st.streamedTracks === L.speakers : null),
      ],
      ['  MP3 encoding CPU-s per speaker-hour while recording (pool workers)', st ? f(st.encodeCpuPerSpeakerHour, 1) : '–', '–', '', '', ''],
      // For comparison: encoding everything after stop (what `dvrec convert` and the fallback do).
      [`stop → MP3 after stop, ffmpeg (measured on ${f(mp3ff?.encodedSeconds, 0)} s × ${L.speakers})`, mp3ff ? `${f(mp3ff.totalS, 1)} s` : 'no ffmpeg', '–', '', '', ''],
      ['  … scaled to 10 speaker-hours', mp3ff ? `${f(to10h(mp3ff.projectedTotalS), 0)} s` : '–', '–', '', '', ''],
      [`stop → MP3 after stop, embedded LAME (measured on ${f(mp3lame?.encodedSeconds, 0)} s × ${L.speakers})`, mp3lame ? `${f(mp3lame.totalS, 1)} s` : '–', '–', '', '', ''],
      ['  … scaled to 10 speaker-hours', mp3lame ? `${f(to10h(mp3lame.projectedTotalS), 0)} s` : '–', '–', '', '', ''],
      ['sink stack CPU-s per speaker-hour (pool workers: jitter buffer + decode + write)', f(L.workerCpuPerSpeakerHour, 2), '–', '', `≤ ${TARGET.cpuPerSpeakerHour} (whole tree)`, ''],
    );
  }
  const B = r.bot;
  if (B) {
    const d100 = at(r.dvrec, 100);
    summary.push(
      [
        `bot: ${B.guilds} guilds × ${B.speakersPerGuild} speakers in one process, zero dropouts`,
        B.ok ? 'yes' : 'no', '–', '', `≥ ${TARGET.botGuilds} × ${TARGET.botSpeakersPerGuild}`,
        mark(B.ok && B.guilds >= TARGET.botGuilds && B.speakersPerGuild >= TARGET.botSpeakersPerGuild),
      ],
      [`bot: CPU-s per speaker-hour (${B.speakers} speakers; one channel @100: ${f(d100?.cpuPerSpeakerHour)})`, f(B.cpuPerSpeakerHour), '–', '', '', ''],
      [`bot: peak RSS MiB (${B.guilds} recordings; one channel @100: ${f(d100?.peakRssMiB, 0)})`, f(B.peakRssMiB, 0), '–', '', '', ''],
    );
  }
  if (summary.length) {
    out.push('## Summary', '', table(['', 'dvrec', 'baseline', 'dvrec/baseline', 'target', ''], summary), '');
    out.push(
      'The baseline is `bench/baseline.ts`: discord.js + @discordjs/voice `receiver.subscribe(userId)` piped into ' +
        "prism-media's opus.Decoder (native libopus) on the main thread, appending raw PCM per user — what the " +
        '@discordjs/voice examples lead a user to write. It keeps no timing (no silence, no alignment, no loss ' +
        'handling), so it does strictly less work per packet than dvrec.',
      '',
    );
    if (L && mp3ff) {
      out.push(
        `Why MP3 is encoded while recording: after stop, 10 speaker-hours take ${f(to10h(mp3ff.projectedTotalS), 0)} s with ffmpeg's ` +
          `libmp3lame${mp3lame ? ` and ${f(to10h(mp3lame.projectedTotalS), 0)} s with the embedded LAME` : ''} on this box, one job per ` +
          'track and per core: LAME itself is the limit (~110–140× real time per core here), so no after-stop scheme can reach 60 s. ' +
          'Encoded while recording, only the last seconds remain at stop whatever the length, for the CPU shown above.',
        '',
      );
    }
  }

  /** Where one packet's CPU went in a step, by thread (µs per packet), from the recorder's per-thread CPU. */
  function perPacket(step: StepResult | undefined): string {
    if (!step || !step.threadCores) return '';
    const pps = step.speakers * 50;
    const us = (cores: number | undefined): string => f(((cores ?? 0) / pps) * 1e6, 1);
    const tc = step.threadCores;
    return `Per packet at ${step.speakers} speakers: ${us(tc.WorkerThread)} µs in the pool workers (jitter buffer, decode, writes), ` +
      `${us(tc.MainThread)} µs on the main thread (receive, decrypt, route, batch), ${us(tc.V8Worker)} µs in V8’s helper threads (GC). `;
  }

  // ---- micro ----
  if (r.micro) {
    const u = r.micro;
    out.push('## Cost per packet in isolation', '');
    out.push(
      table(
        ['what (one 20 ms stereo 64 kbps Opus packet)', 'CPU µs'],
        [
          ['decode, dvrec’s native libopus addon (the pool’s decoder where built)', u.dvrecNativeUsPerPacket === null ? 'not built' : f(u.dvrecNativeUsPerPacket, 1)],
          ['decode, libopus WebAssembly SIMD (the pool’s fallback)', f(u.wasmSimdUsPerPacket, 1)],
          ['decode, libopus WebAssembly (no SIMD)', f(u.wasmUsPerPacket, 1)],
          ['decode, @discordjs/opus (native libopus, the baseline’s)', f(u.nativeUsPerPacket, 1)],
          ['transport decrypt aes256-gcm, key as Buffer (createDecipheriv per packet)', f(u.gcmBufferKeyUs, 1)],
          ['transport decrypt aes256-gcm, key as KeyObject (dvrec)', f(u.gcmKeyObjectUs, 1)],
        ],
      ),
      '',
      `One speaker-hour is 180,000 packets: at ${f(poolDecodeUs(u), 1)} µs (the pool’s decoder here), decoding alone is ` +
        `${f(poolDecodeUs(u) * 0.18, 1)} CPU-s per speaker-hour; with the WebAssembly fallback it would be ` +
        `${f((u.wasmSimdUsPerPacket ?? u.wasmUsPerPacket) * 0.18, 1)}. The native addon and the WebAssembly build are the same libopus ` +
        '(1.3.1), with the same output for every decoded and FEC-recovered frame; @discordjs/opus is faster still per call ' +
        'but cannot decode FEC, so it cannot repair a lost packet from the next one.',
      '',
    );
  }

  // ---- long ----
  if (L) {
    out.push(`## Long recording: ${L.speakers} speakers × ${f(L.durationS / 60, 0)} min, stop → files`, '');
    out.push(
      `Real Opus (each speaker a 5 s loop of a voiced tone, 64 kbps stereo, FEC on) fed straight into the ` +
        `production WorkerPool with \`clock: 'packets'\` at ${f(L.speedX, 1)}× real time ` +
        `(${L.packets.toLocaleString('en')} packets, ${f(L.captureBytes / 2 ** 30, 2)} GiB of captures, lost ${L.lost}, concealed ${L.concealed}). ` +
        `Page cache not yet on disk at the stop: ${L.dirtyAtStopMiB === null ? 'n/a' : `${f(L.dirtyAtStopMiB, 0)} MiB`} (the captures start ` +
        `writeback about every MiB with the native addon; without it this feed left 1.5–2.3 GB, and syncing that took 1.3–2.5 s of the stop → WAV time).`,
      '',
      table(
        ['', 'value'],
        [
          ['pool worker threads CPU-s per speaker-hour (jitter buffer, decode, concealment, pwrite)', f(L.workerCpuPerSpeakerHour, 2)],
          ['main thread CPU-s per speaker-hour (routing + batching; includes the bench’s packet synthesis)', f(L.mainCpuPerSpeakerHour, 2)],
          ['  of which packet synthesis (measured alone)', f(L.synthCpuPerSpeakerHour, 2)],
          ['other threads (V8 GC/compiler helpers) CPU-s total', f(L.otherCpuS, 1)],
        ],
      ),
      '',
      table(
        ['finish', 'encoder', 'stop → captures cut (s)', 'finish (s)', 'stop → files (s)', 'encoded', 'projected, whole recording (s)', 'output'],
        L.finishes.map((x) => [
          x.variant, x.encoder, f(x.cleanupS, 3), f(x.finishS, 2), f(x.totalS, 2), `${f(x.encodedSeconds, 0)} s × ${L.speakers}`,
          f(x.projectedTotalS, 1), `${f(x.outputBytes / 2 ** 20, 0)} MiB`,
        ]),
      ),
      '',
    );
  }

  // ---- capacity ----
  for (const [name, steps] of [['dvrec record', r.dvrec], ['baseline (discord.js + @discordjs/voice + prism-media)', r.baseline]] as const) {
    if (!steps.length) continue;
    out.push(`## Capacity: ${name}`, '');
    out.push(table(STEP_HEAD, stepRows(steps)), '');
  }
  if (r.dvrec.length || r.baseline.length) {
    out.push(
      `Each step: a simulator process (src/simulator, its own process) whose N members all speak a distinct ` +
        `tone continuously; the recorder in another process (\`dvrec record --json\` with NODE_EXTRA_CA_CERTS / ` +
        `DVREC_API_URL / DISCORD_TOKEN, or bench/baseline.ts), stopped with SIGINT ${r.stepSeconds} s (100 speakers: longer) after the members start. ` +
        `Transport encryption aes256-gcm; DAVE ${r.dave ? 'ON' : 'OFF (the simulator takes ~15 s to bring 100 members into a DAVE group and grows with N; run with --dave to include it)'}. ` +
        'A step passes with zero lost/concealed/undecryptable packets, every member tracked, no silent 20 ms block ' +
        'in the checked tracks (8 per step, decoded, against each member’s tone), and lag (recording clock − audio ' +
        'captured, median over tracks) not growing by more than 500 ms. CPU is the recorder’s whole process tree ' +
        'over the steady part (5 s after the members start to 1 s before stop); RSS is the recorder process (VmRSS, VmHWM).',
      '',
    );
  }

  // ---- bot ----
  if (B) {
    out.push(`## Concurrent recordings in one bot process: ${B.guilds} guilds × ${B.speakersPerGuild} speakers`, '');
    out.push(
      table(
        ['', 'value'],
        [
          ['result', B.ok ? 'ok' : `FAIL: ${B.problems.join('; ')}`],
          ['recordings finished / tracks', `${B.recordings} / ${B.tracks}`],
          ['packets received / lost / concealed / undecryptable', `${B.received} / ${B.lost} / ${B.concealed} / ${B.undecryptable}`],
          ['silent 20 ms blocks (checked tracks)', `${B.droppedBlocks}/${B.sampledBlocks} in ${B.sampledTracks}`],
          ['/record start in every guild at once → last reply (all recording)', `${f(B.startAllS, 1)} s`],
          ['/record stop in every guild at once → last reply (all files finished)', `${f(B.stopAllS, 1)} s`],
          [`CPU-s per speaker-hour, bot process tree (steady ${f(B.windowS, 0)} s)`, f(B.cpuPerSpeakerHour, 1)],
          ['bot cores / simulator cores', `${f(B.botCores, 2)} / ${f(B.simCores, 2)}`],
          ['peak RSS MiB (bot process)', f(B.peakRssMiB, 0)],
        ],
      ),
      '',
      `A simulator process plays ${B.guilds} guilds, each with its own call of ${B.speakersPerGuild} members speaking a distinct tone ` +
        'continuously; one `dvrec bot` process (one Recorder, one worker pool for all guilds) is commanded through the simulated slash ' +
        `commands: /record start in every guild at once, ${B.seconds} s of recording, /record stop in every guild at once. ` +
        `Transport encryption aes256-gcm; DAVE ${r.dave ? 'ON' : 'OFF'}. It passes with every guild's recording finished, every member ` +
        'tracked, zero lost/concealed/undecryptable packets and no silent 20 ms block in the checked tracks (decoded, against each ' +
        'member’s tone). CPU is the bot’s process tree from 5 s after the last guild started to the stop.',
      '',
    );
  }

  // ---- notes on targets ----
  if (r.dvrec.length && dv.n < TARGET.speakers) {
    const fail = dv.firstFail;
    notes.push(
      `**Capacity ${dv.n} < ${TARGET.speakers}.** ` +
        (fail
          ? `At ${fail.speakers} speakers the recorder used ${f(fail.recorderCores, 2)} cores and the simulator ` +
            `${f(fail.simCores, 2)} of the box's ${m.cores} (${fail.problems.join('; ')}). `
          : '') +
        perPacket(fail ?? at(r.dvrec, dv.n)) +
        'Every packet costs dvrec its Opus decode in a pool worker plus, on the main thread, receiving, transport decryption and ' +
        'routing; the simulator needs its own share to encrypt and send, on the same cores.',
    );
  }
  if (r.dvrec.length) {
    const d100 = at(r.dvrec, 100);
    if (d100 && d100.cpuPerSpeakerHour > TARGET.cpuPerSpeakerHour) {
      notes.push(
        `**CPU ${f(d100.cpuPerSpeakerHour)} CPU-s per speaker-hour at 100 speakers > ${TARGET.cpuPerSpeakerHour}.** ` +
          (r.micro ? `Decoding alone costs ${f(poolDecodeUs(r.micro) * 0.18, 1)} CPU-s per speaker-hour with the pool’s decoder. ` : '') +
          perPacket(d100),
      );
    }
    if (d100 && d100.peakRssMiB >= TARGET.rss100) {
      notes.push(
        `**Peak RSS ${f(d100.peakRssMiB, 0)} MiB at 100 speakers ≥ ${TARGET.rss100}.** Most of it is fixed: at 10 speakers the peak is ` +
          `${f(at(r.dvrec, 10)?.peakRssMiB, 0)} MiB (discord.js, @discordjs/voice + davey, and one V8 isolate per pool worker).`,
      );
    }
  }
  if (L && (!mp3stream || !st || mp3stream.totalS > TARGET.mp3TenSpeakerHoursS || st.streamedTracks < L.speakers)) {
    notes.push(
      `**MP3 ready within ${TARGET.mp3TenSpeakerHoursS} s of stop: not shown in this run.** The path that meets it, encoding while ` +
        `recording (src/sinks/mp3-stream.ts), delivered ${st?.streamedTracks ?? 0}/${L.speakers} tracks` +
        `${mp3stream ? ` with ${f(mp3stream.totalS, 1)} s from stop to files` : ''}; the rest fall back to encoding after stop (see the summary's comparison rows).`,
    );
  }
  if (L && wav && wav.totalS > TARGET.wavReadyS) {
    notes.push(`**WAV ready in ${f(wav.totalS, 2)} s > ${TARGET.wavReadyS} s.**`);
  }
  if (r.dvrec.some((s) => s.simCores > 0.9)) {
    notes.push('**The simulator used more than 0.9 of a core in some steps**: there it competes with the recorder for the 2 cores, so those steps understate capacity.');
  }
  if (B && !B.ok) notes.push(`**Bot: ${B.guilds} × ${B.speakersPerGuild} did not pass:** ${B.problems.join('; ')}.`);
  if (notes.length) out.push('## Targets missed, and why', '', ...notes.flatMap((n) => [n, '']));
  out.push(...MEASUREMENTS_BEHIND_THE_CODE);

  const markdown = out.join('\n');
  return { table: markdown, markdown };
}
