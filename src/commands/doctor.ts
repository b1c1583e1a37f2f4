/**
 * `dvrec doctor`: what this machine can do, checked by actually loading each part (not by reading
 * package.json): the Node version and its TLS API, the Opus codecs, DAVE, transport crypto, the MP3
 * encoder, and ffmpeg with its encoders. The first thing to run when a recording fails to start.
 *
 * Exit status: 0 when everything needed to record every format (WAV, MP3, FLAC, Opus) works, ENCODER (11)
 * otherwise. ffmpeg is optional (every format has an embedded encoder: LAME and libFLAC), so its absence is
 * reported but does not fail; with an ffmpeg that encodes FLAC, libFLAC is only the fallback.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import tls from 'node:tls';
import { ExitCode } from './exit-codes.ts';
import { findFfmpeg } from '../sinks/formats/ffmpeg.ts';
import { createReporter, type Reporter } from '../ui/reporter.ts';
import { createOpusDecoders } from '../sinks/opus-decoder.ts';
import { loadNativeOpus, nativeOpusUnavailable } from '../sinks/opus-native.ts';

export interface DoctorFlags {
  ffmpeg?: string;
  json?: boolean;
}

export interface Check {
  name: string;
  ok: boolean;
  /** Needed to record some format; optional ones only add features. */
  required: boolean;
  detail: string;
}

const require = createRequire(import.meta.url);

/** The part of libflacjs' API the check uses (the package ships no types for its asm.js build). */
interface LibFlacProbe {
  isReady(): boolean;
  on(event: 'ready', cb: () => void): void;
  create_libflac_encoder(rate: number, ch: number, bps: number, level: number, total: number, verify: boolean, block: number): number;
  init_encoder_stream(enc: number, write: (d: Uint8Array) => void, meta: () => void): number;
  FLAC__stream_encoder_process_interleaved(enc: number, buf: Int32Array, frames: number): boolean;
  FLAC__stream_encoder_finish(enc: number): boolean;
  FLAC__stream_encoder_delete(enc: number): void;
}

/** A package's version; walks up from its entry point when its `exports` hide package.json. */
function version(pkg: string): string {
  try {
    return (require(`${pkg}/package.json`) as { version: string }).version;
  } catch {
    try {
      let dir = dirname(require.resolve(pkg));
      while (dirname(dir) !== dir) {
        const file = join(dir, 'package.json');
        if (existsSync(file)) {
          const json = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
          if (json.name === pkg && json.version) return json.version;
        }
        dir = dirname(dir);
      }
    } catch {
      /* fall through */
    }
    return '?';
  }
}

async function tryLoad(name: string, required: boolean, load: () => Promise<string>): Promise<Check> {
  try {
    return { name, ok: true, required, detail: await load() };
  } catch (e) {
    return { name, ok: false, required, detail: `does not load: ${(e as Error).message.split('\n')[0]}` };
  }
}

export async function runChecks(ffmpegChoice: string | undefined): Promise<Check[]> {
  const checks: Check[] = [];
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  const nodeOk = major > 22 || (major === 22 && minor >= 12);
  checks.push({ name: 'node', ok: nodeOk, required: true, detail: `${process.versions.node}${nodeOk ? '' : ' (dvrec needs 22.12 or newer)'}` });
  checks.push({
    name: 'tls.setDefaultCACertificates',
    ok: typeof tls.setDefaultCACertificates === 'function',
    required: false,
    detail: typeof tls.setDefaultCACertificates === 'function' ? 'present (demo runs in one process)' : 'absent (demo runs the recorder as a child process)',
  });
  checks.push(
    await tryLoad('@discordjs/opus', true, async () => {
      const { OpusEncoder } = ((await import('@discordjs/opus')) as { default: typeof import('@discordjs/opus') }).default;
      const enc = new OpusEncoder(48_000, 2);
      const pcm = Buffer.alloc(960 * 4);
      enc.decode(enc.encode(pcm));
      return `${version('@discordjs/opus')} (native libopus: encode+decode ok)`;
    }),
  );
  checks.push(
    await tryLoad('@evan/opus', true, async () => {
      require.resolve('@evan/opus/package.json');
      return `${version('@evan/opus')} (WebAssembly libopus, FEC decoding: the fallback decoder)`;
    }),
  );
  // The recorder's decoder: dvrec's own addon (native libopus with FEC), built by `npm install` where a compiler
  // is present. Optional: without it the pool decodes with the WebAssembly build (~1.5× the CPU per packet).
  checks.push(
    await tryLoad('native decoder', false, async () => {
      const native = loadNativeOpus();
      if (native === null) throw new Error(`${nativeOpusUnavailable}; using WebAssembly libopus`);
      const dec = native.newDecoder();
      if (dec.conceal(960) === null) throw new Error('decoding a test frame failed');
      const chosen = createOpusDecoders().kind;
      return `${native.version} with FEC (build/Release/dvrec_opus.node)${chosen === 'native' ? ', in use' : `, not in use (DVREC_OPUS=${process.env.DVREC_OPUS})`}`;
    }),
  );
  checks.push(
    await tryLoad('@snazzah/davey', true, async () => {
      const davey = (await import('@snazzah/davey')) as { DAVE_PROTOCOL_VERSION?: number };
      return `${version('@snazzah/davey')} (DAVE protocol ${davey.DAVE_PROTOCOL_VERSION ?? '?'})`;
    }),
  );
  checks.push(
    await tryLoad('sodium-native', true, async () => {
      const name = 'sodium-native'; // a variable specifier: the package ships no type declarations
      await import(name);
      return `${version('sodium-native')} (XChaCha20-Poly1305)`;
    }),
  );
  checks.push(
    await tryLoad('wasm-media-encoders', true, async () => {
      await import('wasm-media-encoders');
      return `${version('wasm-media-encoders')} (MP3 without ffmpeg)`;
    }),
  );
  const flac = await tryLoad('libflacjs', true, async () => {
    // The same build the FLAC encoder loads (sinks/formats/encoders.ts), asked to encode 0.1 s of silence.
    const lib = require('libflacjs/dist/libflac.js') as LibFlacProbe;
    await new Promise<void>((resolve) => (lib.isReady() ? resolve() : lib.on('ready', () => resolve())));
    const enc = lib.create_libflac_encoder(48_000, 2, 16, 5, 4800, false, 0);
    const out: Buffer[] = [];
    const status = lib.init_encoder_stream(enc, (d) => out.push(Buffer.from(d)), () => {});
    const ok = status === 0 && lib.FLAC__stream_encoder_process_interleaved(enc, new Int32Array(9600), 4800);
    lib.FLAC__stream_encoder_finish(enc);
    lib.FLAC__stream_encoder_delete(enc);
    if (!ok || Buffer.concat(out).toString('latin1', 0, 4) !== 'fLaC') throw new Error('encoding a test block failed');
    return `${version('libflacjs')} (FLAC without ffmpeg: encode ok)`;
  });
  checks.push(flac);
  try {
    const ff = await findFfmpeg(ffmpegChoice, process.env);
    if (!ff) {
      checks.push({ name: 'ffmpeg', ok: false, required: false, detail: 'not found (optional: the embedded MP3/FLAC encoders are used)' });
    } else {
      const out = spawnSync(ff.path, ['-hide_banner', '-encoders'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
      const has = (enc: string) => new RegExp(`^\\s*A\\S*\\s+${enc}\\s`, 'm').test(out);
      const encs = ['flac', 'libmp3lame', 'libopus'].filter(has);
      const v = /ffmpeg version (\S+)/.exec(spawnSync(ff.path, ['-version'], { encoding: 'utf8' }).stdout ?? '')?.[1] ?? '?';
      checks.push({ name: 'ffmpeg', ok: has('flac'), required: false, detail: `${v} at ${ff.path} (${ff.source}); encoders: ${encs.join(', ') || 'none useful'}` });
      // FLAC is recorded through ffmpeg when it can: then libFLAC is only the fallback.
      if (has('flac')) flac.required = false;
    }
  } catch (e) {
    checks.push({ name: 'ffmpeg', ok: false, required: false, detail: (e as Error).message });
  }
  return checks;
}

export async function doctorCommand(flags: DoctorFlags, setReporter: (r: Reporter) => void): Promise<number> {
  const reporter = createReporter({ json: flags.json === true });
  setReporter(reporter);
  const checks = await runChecks(flags.ffmpeg);
  const ok = checks.every((c) => c.ok || !c.required);
  if (flags.json) {
    process.stdout.write(JSON.stringify({ event: 'doctor', time: new Date().toISOString(), ok, checks }) + '\n');
  } else {
    for (const c of checks) {
      process.stdout.write(`${c.ok ? 'ok  ' : c.required ? 'FAIL' : 'no  '}  ${c.name.padEnd(30)} ${c.detail}\n`);
    }
    process.stdout.write(ok ? 'dvrec can record here.\n' : 'dvrec cannot record here: fix the FAIL lines above.\n');
  }
  return ok ? ExitCode.OK : ExitCode.ENCODER;
}
