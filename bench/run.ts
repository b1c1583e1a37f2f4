/**
 * `npm run bench`: dvrec's benchmark. Not part of the tests; stops by itself.
 *
 *   node bench/run.ts [--quick] [--only long,micro,capacity,baseline] [--steps 50,100,200]
 *                     [--seconds N] [--dave] [--long-seconds N] [--mp3-seconds N] [--lame-seconds N] [--no-write] [--no-wait] [--profile DIR]
 *
 * Parts:
 *   micro     decode cost per packet in isolation (wasm libopus vs native), CPU time
 *   long      1 h × 10 speakers of real Opus fed straight to the WorkerPool (clock: 'packets'); stop → files
 *             for WAV, MP3 (ffmpeg) and MP3 (embedded LAME); the sink stack's CPU per speaker-hour
 *   capacity  the real `dvrec record` against the simulator (separate processes), N members speaking at once,
 *             stepped up until it breaks; CPU/speaker-hour, peak RSS, RSS over time, simulator CPU
 *   baseline  the same steps for bench/baseline.ts (discord.js + @discordjs/voice + prism-media)
 *   bot       concurrent recordings in one `dvrec bot` process: 50 guilds × 6 speakers (bench/bot.ts)
 *
 * Full run ≈ 15 min on a 2-core box, --quick ≈ 3–4 min. Prints a table and writes BENCHMARKS.md.
 */
import { execSync } from 'node:child_process';
import { writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machine } from './machine.ts';
import { decodeMicro, type DecodeMicro } from './decode-micro.ts';
import { runLong, type LongResult } from './long.ts';
import { runStep, type RecorderKind, type StepResult } from './capacity.ts';
import { renderReport, type BenchResults } from './report.ts';
import { runBotBench } from './bot.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    steps: { type: 'string' },
    seconds: { type: 'string' },
    dave: { type: 'boolean', default: false },
    'long-seconds': { type: 'string' },
    'lame-seconds': { type: 'string' },
    'mp3-seconds': { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    'no-wait': { type: 'boolean', default: false },
    profile: { type: 'string' },
    'bot-guilds': { type: 'string' },
    'bot-speakers': { type: 'string' },
    'bot-seconds': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(
    [
      'usage: node bench/run.ts [--quick] [--only long,micro,capacity,baseline,bot] [--steps 50,100,...]',
      '                         [--bot-guilds N] [--bot-speakers N] [--bot-seconds N]',
      '                         [--seconds N] [--dave] [--long-seconds N] [--mp3-seconds N] [--lame-seconds N] [--no-write] [--profile DIR]',
      '  --quick          ~3-4 min: 10 min x 10 speakers, shorter capacity steps',
      '  --only PARTS     run only these parts (comma-separated)',
      '  --steps LIST     capacity ladder (speakers); stops at the first failing step',
      '  --seconds N      length of each capacity step (after the members start speaking)',
      '  --dave           capacity steps with DAVE end-to-end encryption (the simulator needs long to set up big groups)',
      '  --long-seconds N length of the long recording (default 3600)',
      '  --mp3-seconds N  how much of each track ffmpeg encodes to MP3 (default 1800; time scaled to the full length)',
      '  --lame-seconds N how much of each track the embedded LAME encodes (default 300; scaled likewise)',
      '  --no-write       print only, leave BENCHMARKS.md alone',
      '  --no-wait        do not wait for a running `node --test` before heavy parts',
      '  --profile DIR    write V8 CPU profiles of the dvrec process (all threads) of each capacity step to DIR',
      '  --bot-guilds N, --bot-speakers N, --bot-seconds N   the bot part: guilds, speakers per guild (50, 6), length',
      '',
    ].join('\n'),
  );
  process.exit(0);
}

const quick = values.quick;
const parts = new Set((values.only ?? 'micro,long,capacity,baseline,bot').split(',').map((s) => s.trim()));
const longSeconds = Number(values['long-seconds'] ?? (quick ? 600 : 3600));
// Encoding MP3 after stop runs at ~40–70× real time on 2 cores: encoding all 10 speaker-hours would take
// most of the 15-minute budget, so by default part of each track is encoded and the time scaled (linear).
const mp3Seconds = Math.min(longSeconds, Number(values['mp3-seconds'] ?? (quick ? 300 : 1800)));
const lameSeconds = Math.min(longSeconds, Number(values['lame-seconds'] ?? (quick ? 60 : 300)));
const stepSeconds = Number(values.seconds ?? (quick ? 12 : 25));
const ladder = (values.steps ?? (quick ? '100,250,500' : '50,100,200,300,400,500,700,1000')).split(',').map(Number);
const workDir = join(tmpdir(), `dvrec-bench-${process.pid}`);
const command = `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`;

const log = (line: string): void => {
  process.stderr.write(line + '\n');
};

/** Avoid fighting the lead's test suite for the 2 cores: wait (a while) while `node --test` runs. */
async function waitForQuietBox(): Promise<void> {
  if (values['no-wait']) return;
  for (let i = 0; i < 60; i++) {
    let busy = '';
    try {
      // "[t]": the shell running pgrep has this pattern in its own command line, and must not match it.
      busy = execSync('pgrep -f "node --tes[t]"', { encoding: 'utf8' }).trim();
    } catch {
      busy = '';
    }
    if (!busy) return;
    if (i === 0) log('  (a test run is in progress: waiting for it, up to 5 min)');
    await new Promise((r) => setTimeout(r, 5000));
  }
}

async function ladderRun(kind: RecorderKind): Promise<StepResult[]> {
  const results: StepResult[] = [];
  const one = async (n: number, seconds: number): Promise<StepResult> => {
    await waitForQuietBox();
    log(`  ${kind}: ${n} speakers, ${seconds} s`);
    const r = await runStep({
      kind,
      speakers: n,
      seconds,
      dave: values.dave,
      workDir,
      sampleTracks: 8,
      log,
      ...(values.profile && kind === 'dvrec' ? { profileDir: join(values.profile, `dvrec-${n}`) } : {}),
    });
    log(
      `    → ${r.ok ? 'OK' : 'FAIL'}  cpu ${r.cpuPerSpeakerHour.toFixed(1)} s/speaker-h  recorder ${r.recorderCores.toFixed(2)} cores  sim ${r.simCores.toFixed(2)} cores  peak RSS ${r.peakRssMiB.toFixed(0)} MiB` +
        (r.ok ? '' : `  (${r.problems.join('; ')})`),
    );
    results.push(r);
    return r;
  };
  // The fixed points (10 and 100 speakers) first, the 100 step longer so RSS over time means something: 150 s,
  // so the slope is taken over its second half (report.ts rssTrend), after the ~30–60 s of warm-up growth that
  // a 45 s step reported as 12 MiB/min.
  await one(10, stepSeconds);
  const r100 = ladder.includes(100) || !quick ? await one(100, quick ? stepSeconds : Math.max(stepSeconds, 150)) : null;
  let lastOk = r100?.ok ? 100 : 10;
  let failedAt: number | null = r100 && !r100.ok ? 100 : null;
  for (const n of ladder) {
    if (n === 100 || n === 10) continue;
    if (failedAt !== null && n > failedAt) break;
    const r = await one(n, stepSeconds);
    if (r.ok) lastOk = Math.max(lastOk, n);
    else {
      failedAt = n;
      break;
    }
  }
  // One refinement between the last good step and the first failure (full runs only).
  if (!quick && failedAt !== null && failedAt - lastOk > 50) {
    const mid = Math.round((lastOk + failedAt) / 2 / 10) * 10;
    const r = await one(mid, stepSeconds);
    if (r.ok) lastOk = mid;
  }
  return results;
}

async function main(): Promise<void> {
  const started = Date.now();
  const results: BenchResults = {
    machine: machine(),
    date: new Date().toISOString(),
    command,
    quick,
    stepSeconds,
    dave: values.dave,
    micro: null as DecodeMicro | null,
    long: null as LongResult | null,
    lameSeconds,
    dvrec: [],
    baseline: [],
    bot: null,
  };
  log(`dvrec bench${quick ? ' (quick)' : ''}: ${[...parts].join(', ')}; work dir ${workDir}`);
  try {
    if (parts.has('micro')) {
      log('micro: decode cost per packet');
      results.micro = decodeMicro(quick ? 4 : 12);
    }
    if (parts.has('long')) {
      await waitForQuietBox();
      log(`long: ${longSeconds} s × 10 speakers through the WorkerPool (clock: packets)`);
      results.long = await runLong({
        speakers: 10,
        durationS: longSeconds,
        lameSeconds,
        ffmpegSeconds: mp3Seconds,
        dir: join(workDir, 'long'),
        mp3Ffmpeg: true,
        mp3Lame: true,
        log,
      });
    }
    if (parts.has('capacity')) {
      log('capacity: dvrec record');
      results.dvrec = await ladderRun('dvrec');
    }
    if (parts.has('baseline')) {
      log('capacity: baseline (discord.js + @discordjs/voice + prism-media)');
      results.baseline = await ladderRun('baseline');
    }
    if (parts.has('bot')) {
      await waitForQuietBox();
      const guilds = Number(values['bot-guilds'] ?? 50);
      const speakersPerGuild = Number(values['bot-speakers'] ?? 6);
      const seconds = Number(values['bot-seconds'] ?? (quick ? 30 : 60));
      log(`bot: ${guilds} guilds × ${speakersPerGuild} speakers in one dvrec bot process, ${seconds} s`);
      const b = await runBotBench({ guilds, speakersPerGuild, seconds, dave: values.dave, workDir, sampleTracks: 24, log });
      log(`    → ${b.ok ? 'OK' : 'FAIL'}  cpu ${b.cpuPerSpeakerHour.toFixed(1)} s/speaker-h  bot ${b.botCores.toFixed(2)} cores  sim ${b.simCores.toFixed(2)} cores  peak RSS ${b.peakRssMiB.toFixed(0)} MiB${b.ok ? '' : `  (${b.problems.join('; ')})`}`);
      results.bot = b;
    }
  } finally {
    if (process.env.DVREC_BENCH_KEEP) log(`kept ${workDir} (DVREC_BENCH_KEEP)`);
    else rmSync(workDir, { recursive: true, force: true });
  }
  const wallS = (Date.now() - started) / 1000;
  const { table, markdown } = renderReport(results, wallS);
  process.stdout.write(table + '\n');
  if (!values['no-write']) {
    writeFileSync(join(ROOT, 'BENCHMARKS.md'), markdown);
    log(`wrote BENCHMARKS.md (${wallS.toFixed(0)} s)`);
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
