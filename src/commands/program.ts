/**
 * dvrec's command line as a commander program: every command, option, help text and example. It lives
 * here rather than in bin/dvrec.ts so tests can read the real option list (the manual must document each
 * one) and parse a documented command line (the cron example) without running it.
 *
 * Nothing heavy is imported: each action loads its command only when it runs, so `--help` and option
 * errors never load discord.js or a codec.
 */
import { Command, Option } from 'commander';
import { errorLine } from '../ui/error-line.ts';
import type { ConvertFlags } from './convert.ts';
import type { DemoFlags } from './demo.ts';
import type { DoctorFlags } from './doctor.ts';
import type { RecordFlags } from './record.ts';
import type { BotFlags } from './bot.ts';

/** What each command does with the values commander collected (the real ones by default; tests substitute). */
export interface Actions {
  record(opts: Record<string, unknown>): Promise<void>;
  convert(inputs: string[], opts: Record<string, unknown>): Promise<void>;
  demo(opts: Record<string, unknown>): Promise<void>;
  doctor(opts: Record<string, unknown>): Promise<void>;
  /** Optional so that callers substituting the other actions need not know it. */
  bot?(opts: Record<string, unknown>): Promise<void>;
}

/** Loads the shared runner (exit codes, one-line errors, redaction) only when a command runs. */
async function runner() {
  return (await import('./run.ts')).runCommand;
}

export const defaultActions: Actions = {
  async record(opts) {
    const { recordCommand } = await import('./record.ts');
    await (await runner())((set) => recordCommand(opts as RecordFlags, set));
  },
  async convert(inputs, opts) {
    const { convertCommand } = await import('./convert.ts');
    await (await runner())((set) => convertCommand(inputs, opts as ConvertFlags, set));
  },
  async demo(opts) {
    const { demoCommand } = await import('./demo.ts');
    await (await runner())((set) => demoCommand(opts as DemoFlags, set));
  },
  async doctor(opts) {
    const { doctorCommand } = await import('./doctor.ts');
    await (await runner())((set) => doctorCommand(opts as DoctorFlags, set));
  },
  async bot(opts) {
    const { botCommand } = await import('./bot.ts');
    await (await runner())((set) => botCommand(opts as BotFlags, set));
  },
};

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function buildProgram(version: string, actions: Actions = defaultActions): Command {
  const program = new Command('dvrec')
    .description('Record every speaker of a Discord voice channel to one aligned track per user.')
    .version(version, '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'show help')
    .helpCommand('help [command]', 'show help for a command')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      // One line, `dvrec: ` prefixed (and timestamped in a log) like every other error; commander adds
      // "error: " and a newline hint.
      outputError: (str, write) => write(errorLine(str.replace(/^error: /, ''), { json: process.argv.includes('--json') })),
    })
    .addHelpText(
      'after',
      `
Examples:
  dvrec demo                                   record the built-in local channel (no token needed)
  DISCORD_TOKEN=... dvrec record --guild 1234567890123456789 --channel 2345678901234567890
  dvrec record --guild G --channel C --format mp3 --duration 1h30m --stop-when-empty
  dvrec convert recordings/G-C-2026-11-03T20-00-00   finish a recording that was killed
  dvrec doctor                                 check codecs, DAVE and ffmpeg on this machine
  DISCORD_TOKEN=... dvrec bot                  a bot people command with /record start, /record stop
  dvrec demo --bot                             the bot on the built-in local Discord

Environment: DISCORD_TOKEN, DVREC_API_URL, FFMPEG_PATH, DVREC_NO_FFMPEG_STATIC=1, DVREC_OPUS=native|wasm, CI, NO_COLOR, TERM=dumb, DVREC_DEBUG=1 (see the manual).
Exit codes: 0 ok, 1 internal, 2 usage, 3 auth, 4 not found, 5 permission, 6 channel full,
7 voice rejected, 8 network, 9 output, 10 input, 11 encoder, 130 interrupted.  See: man dvrec`,
    );

  program
    .command('record')
    .description('join a voice channel and record one track per speaker')
    .option('--guild <id>', 'server (guild) id')
    .option('--channel <id>', 'voice channel id')
    .option('-o, --out <dir>', 'output directory; may use {guild} {channel} {date} {time} {datetime}', 'recordings/{guild}-{channel}-{datetime}')
    .addOption(new Option('-f, --format <format>', 'wav, mp3, flac or opus').default('wav'))
    .option('--mono', 'write mono tracks (captures are stereo)')
    .option('--bitrate <kbps>', 'MP3 bitrate in kbps (default 128)')
    .option('--mix', 'also write mix.<ext>: everyone mixed into one track')
    .option('-d, --duration <time>', 'stop after this long: 20 (seconds), 90s, 45m, 1h30m')
    .option('--max-size <size>', 'stop once the captures hold this much: 500M, 2G')
    .option('--stop-when-empty [after]', 'stop once no human is in the channel (for 30s by default)')
    .option('--users <ids>', 'record only these user ids (comma-separated; repeatable)', collect)
    .option('--ffmpeg <path>', 'ffmpeg executable to use (else FFMPEG_PATH, ffmpeg-static, PATH)')
    .option('--force', 'record into a directory that already holds a recording')
    .option('--json', 'print one JSON event per line on stdout')
    .option('--token-file <file>', 'read the bot token from FILE (else DISCORD_TOKEN)')
    .option('--api-url <url>', 'Discord REST base, e.g. a local test server (else DVREC_API_URL)')
    .addHelpText(
      'after',
      `
The bot token comes from DISCORD_TOKEN or --token-file; it is never printed.
Ctrl-C (SIGINT), SIGTERM or SIGHUP stops and finishes the files (exit 0); a second one
quits at once (exit 130) and leaves a capture that \`dvrec convert DIR\` finishes.
A signal before the recording has started cancels it (exit 130; nothing is left behind).

Examples:
  export DISCORD_TOKEN=...   # or: --token-file ~/.config/dvrec/token
  dvrec record --guild 1234567890123456789 --channel 2345678901234567890
  dvrec record --guild G --channel C --format mp3 --bitrate 192 --mix --duration 2h
  dvrec record --guild G --channel C --stop-when-empty 5m --out 'podcast/{date}'
  dvrec record --guild G --channel C --users 345678901234567890,456789012345678901
  dvrec record --guild G --channel C --duration 1h --json > events.jsonl`,
    )
    .action((opts: Record<string, unknown>) => actions.record(opts));

  program
    .command('convert')
    .description('finish a recording directory, or convert raw s16le PCM files')
    .argument('<input...>', 'recording directory (with capture.json) or raw .pcm file(s)')
    .option('-f, --format <format>', 'raw input: wav, mp3, flac or opus (default wav)')
    .option('--rate <hz>', 'raw input: sample rate (default 48000)')
    .option('--channels <n>', 'raw input: interleaved channels, 1 to 8 (default 2)')
    .option('--mono', 'raw input: downmix to one channel')
    .option('--bitrate <kbps>', 'raw input: MP3 bitrate in kbps (default 128)')
    .option('-o, --out <file>', 'output file (one raw input only; default: next to the input)')
    .option('--force', 'overwrite existing output files')
    .option('--ffmpeg <path>', 'ffmpeg executable to use')
    .option('--json', 'print one JSON event per line on stdout')
    .addHelpText(
      'after',
      `
A recording directory is finished as it was recorded (format, --mono, --mix are in its
capture.json); the options marked "raw input" are for .pcm files.

Examples:
  dvrec convert recordings/1234-5678-2026-11-03T20-00-00     finish a killed recording
  dvrec convert --rate 48000 --channels 2 --format flac capture.pcm
  dvrec convert -o talk.mp3 --format mp3 --bitrate 96 talk.pcm`,
    )
    .action((inputs: string[], opts: Record<string, unknown>) => actions.convert(inputs, opts));

  program
    .command('demo')
    .description('record the built-in local Discord (no token, no network) and keep the files')
    .option('-o, --out <dir>', 'output directory (template like record --out; default recordings/demo-{datetime}, with --bot recordings/demo-bot-{datetime})')
    .option('--seconds <n>', 'how long to record (default 8)')
    .option('--bot', 'run the recording bot instead: simulated members type /record start, note and stop')
    .addOption(new Option('-f, --format <format>', 'wav, mp3, flac or opus').default('wav'))
    .option('--json', 'print one JSON event per line on stdout')
    .addHelpText(
      'after',
      `
Starts a simulated Discord in this process (REST, gateway, TLS voice gateway, encrypted RTP,
DAVE) with four members speaking distinct tones, records it with the real recorder and
prints where the files are.

Examples:
  dvrec demo
  dvrec demo --seconds 20 --format mp3 --out /tmp/dvrec-demo
  dvrec demo --bot`,
    )
    .action((opts: Record<string, unknown>) => actions.demo(opts));

  program
    .command('bot')
    .description('run a recording bot people command from Discord (/record, /autorecord)')
    .option('-o, --out <dir>', 'output directory template: {guild} {channel} {date} {time} {datetime}', 'recordings/{guild}-{channel}-{datetime}')
    .addOption(new Option('-f, --format <format>', 'format when /record start names none, and of autorecordings').default('wav'))
    .option('--dev-guild <id>', 'register the commands in this server only (instant; for testing)')
    .option('--config <file>', 'configuration file: manager roles, autorecord rules (default dvrec-bot.json)')
    .option('--state-dir <dir>', 'where the bot keeps what it must finish after a crash (default .dvrec-bot)')
    .option('--manager-role <id>', 'role whose members may start and stop recordings (repeatable)', collect)
    .option('--empty-grace <time>', 'autorecord: stop once the channel was empty this long (default 30s)')
    .option('--shards <auto|n>', 'run this many gateway shards, one process each (auto: as Discord recommends)')
    .option('--shard-ids <ids>', 'run only these shards (0-3 or 0,2), with --shard-count: to split the bot across machines')
    .option('--shard-count <n>', 'the total number of shards, with --shard-ids')
    .option('--json', 'print one JSON event per line on stdout')
    .option('--token-file <file>', 'read the bot token from FILE (else DISCORD_TOKEN)')
    .option('--api-url <url>', 'Discord REST base, e.g. a local test server (else DVREC_API_URL)')
    .addHelpText(
      'after',
      `
Slash commands: /record start [channel] [format] [mix], /record stop, /record status,
/record note <text>, /autorecord on|off [channel] [min-members].
Members with Manage Server, or a --manager-role, may start and stop; everyone else is refused.
While recording, the voice channel status reads "🔴 Recording" (or the bot's nickname gets a
🔴 prefix where it may not set the status); it is restored afterwards, also after a crash.
The first SIGINT/SIGTERM/SIGHUP stops every recording and finishes the files (exit 0).

Examples:
  export DISCORD_TOKEN=...
  dvrec bot --out 'recordings/{guild}/{datetime}' --manager-role 345678901234567890
  dvrec bot --dev-guild 1234567890123456789 --config /etc/dvrec/bot.json --state-dir /var/lib/dvrec
  dvrec bot --shards auto                           one process per shard on this machine
  dvrec bot --shard-ids 0-3 --shard-count 8         this machine: shards 0 to 3 of 8`,
    )
    .action((opts: Record<string, unknown>) => (actions.bot ?? defaultActions.bot!)(opts));

  program
    .command('doctor')
    .description('check Node, codecs, DAVE, encryption and ffmpeg on this machine')
    .option('--ffmpeg <path>', 'ffmpeg executable to check')
    .option('--json', 'print the result as one JSON object')
    .addHelpText('after', `\nExample:\n  dvrec doctor`)
    .action((opts: Record<string, unknown>) => actions.doctor(opts));

  return program;
}
