/**
 * Finding ffmpeg, and feeding it PCM.
 *
 * Discovery order (first hit wins): `--ffmpeg PATH`, `$FFMPEG_PATH`, the ffmpeg-static package (optional:
 * its install downloads a binary, which fails offline, so it may be absent or hold no binary), `ffmpeg` on
 * PATH. A path the user named explicitly (option or FFMPEG_PATH) that does not run is an error rather than a
 * silent fallback: they asked for that binary. `ffmpegPath: false` disables discovery (embedded encoders only).
 *
 * `DVREC_NO_FFMPEG_STATIC=1` skips the ffmpeg-static step: with PATH and FFMPEG_PATH cleared too, nothing is
 * found, which is how the "without ffmpeg" tests (and a user who wants the embedded encoders or the system
 * ffmpeg over a bundled one) make sure. The ffmpeg-static lookup itself is a parameter of {@link findFfmpeg},
 * so the search order can be tested with fake executables.
 */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { EncoderError } from '../../errors.ts';

export type FfmpegSource = 'option' | 'env' | 'ffmpeg-static' | 'path';

export interface Ffmpeg {
  path: string;
  source: FfmpegSource;
}

/** Where to look: a path (from --ffmpeg), `false` to use no ffmpeg at all, or undefined to search. */
export type FfmpegChoice = string | false | undefined;

function runs(path: string): boolean {
  try {
    const r = spawnSync(path, ['-hide_banner', '-version'], { stdio: 'ignore', timeout: 10_000 });
    return r.status === 0;
  } catch {
    return false;
  }
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The ffmpeg-static package's binary when it is installed and executable, else null. */
async function fromFfmpegStatic(): Promise<string | null> {
  try {
    // A variable specifier keeps tsc from requiring the optional package's types.
    const name = 'ffmpeg-static';
    const mod = (await import(name)) as { default?: unknown };
    const p = mod.default;
    return typeof p === 'string' && existsSync(p) && executable(p) ? p : null;
  } catch {
    return null; // not installed, or its binary download failed
  }
}

function fromPath(env: NodeJS.ProcessEnv): string | null {
  const names = process.platform === 'win32' ? ['ffmpeg.exe', 'ffmpeg'] : ['ffmpeg'];
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    for (const n of names) {
      const p = join(dir, n);
      if (existsSync(p) && executable(p)) return p;
    }
  }
  return null;
}

/** Environment switch that skips the ffmpeg-static package (see the module comment). */
export const NO_FFMPEG_STATIC_ENV = 'DVREC_NO_FFMPEG_STATIC';

/** Where the third step of the search looks; tests pass their own. */
export interface FfmpegSources {
  ffmpegStatic(): Promise<string | null>;
}
const DEFAULT_SOURCES: FfmpegSources = { ffmpegStatic: fromFfmpegStatic };

const cache = new Map<string, Ffmpeg | null>();

/** Finds a working ffmpeg, or null when none is reachable (callers then use embedded encoders). */
export async function findFfmpeg(
  choice: FfmpegChoice,
  env: NodeJS.ProcessEnv = process.env,
  sources: FfmpegSources = DEFAULT_SOURCES,
): Promise<Ffmpeg | null> {
  if (choice === false) return null;
  const skipStatic = env[NO_FFMPEG_STATIC_ENV] === '1';
  // Found binaries are cached per search input (a spawn of `ffmpeg -version` costs ~50 ms); injected sources are not.
  const key = `${choice ?? ''}\0${env.FFMPEG_PATH ?? ''}\0${env.PATH ?? ''}\0${skipStatic}`;
  const cacheable = sources === DEFAULT_SOURCES;
  if (cacheable && cache.has(key)) return cache.get(key)!;
  let found: Ffmpeg | null = null;
  if (choice) {
    if (!runs(choice)) throw new EncoderError(`--ffmpeg ${choice}: not a working ffmpeg executable`);
    found = { path: choice, source: 'option' };
  } else if (env.FFMPEG_PATH) {
    if (!runs(env.FFMPEG_PATH)) {
      throw new EncoderError(`FFMPEG_PATH=${env.FFMPEG_PATH}: not a working ffmpeg executable (unset it to search PATH)`);
    }
    found = { path: env.FFMPEG_PATH, source: 'env' };
  } else {
    const s = skipStatic ? null : await sources.ffmpegStatic();
    if (s && runs(s)) found = { path: s, source: 'ffmpeg-static' };
    else {
      const p = fromPath(env);
      if (p && runs(p)) found = { path: p, source: 'path' };
    }
  }
  if (cacheable) cache.set(key, found);
  return found;
}

/** How to get ffmpeg, for error messages. */
export const FFMPEG_HINT =
  'install ffmpeg (e.g. `apt install ffmpeg`, `brew install ffmpeg`) or pass --ffmpeg PATH / set FFMPEG_PATH';

/**
 * Runs ffmpeg reading raw s16le from stdin. Returns a writer that respects the pipe's backpressure and a
 * `finish()` that resolves once ffmpeg exited 0 (rejects with its last stderr line otherwise).
 */
export function ffmpegPcmEncoder(
  ffmpeg: string,
  input: { sampleRate: number; channels: number },
  outputArgs: string[],
): { write(s: Int16Array): Promise<void>; finish(): Promise<void> } {
  const args = [
    '-hide_banner', '-loglevel', 'error', '-nostats',
    '-f', 's16le', '-ar', String(input.sampleRate), '-ac', String(input.channels), '-i', 'pipe:0',
    ...outputArgs,
  ];
  const child = spawn(ffmpeg, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => { stderr = (stderr + d).slice(-4000); });
  let failure: Error | null = null;
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', (e) => { failure = e; reject(e); });
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else {
        const line = stderr.trim().split('\n').pop() ?? '';
        failure = new EncoderError(`ffmpeg failed (${signal ?? `exit ${code}`}): ${line}`);
        reject(failure);
      }
    });
  });
  exited.catch(() => {}); // observed through write()/finish()
  child.stdin.on('error', () => {}); // EPIPE when ffmpeg dies: reported by `exited`
  return {
    async write(s) {
      if (failure) throw failure;
      const ok = child.stdin.write(new Uint8Array(s.buffer, s.byteOffset, s.byteLength));
      if (!ok) {
        await Promise.race([new Promise((r) => child.stdin.once('drain', r)), exited]);
      }
    },
    async finish() {
      child.stdin.end();
      await exited;
    },
  };
}
