/**
 * Finding ffmpeg (src/sinks/formats/ffmpeg.ts): the search order --ffmpeg > FFMPEG_PATH > ffmpeg-static > PATH,
 * what each step does with a binary that does not run, and the DVREC_NO_FFMPEG_STATIC switch. The candidates
 * are real executables (tiny shell scripts that answer `-version` like ffmpeg does, or fail) in temp
 * directories; the finder runs them exactly as it runs a real ffmpeg.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { findFfmpeg, NO_FFMPEG_STATIC_ENV, type FfmpegSources } from '../src/sinks/formats/ffmpeg.ts';
import { DvrecError } from '../src/errors.ts';
import { ExitCode, exitCodeOf } from '../src/commands/exit-codes.ts';

const root = mkdtempSync(join(tmpdir(), 'dvrec-ffind-'));

/** An executable named ffmpeg in its own directory; `works` false makes it exit 1 (a broken binary). */
function fake(name: string, works = true, mode = 0o755): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'ffmpeg');
  writeFileSync(path, `#!/bin/sh\n${works ? 'echo "ffmpeg version fake"\nexit 0' : 'exit 1'}\n`);
  chmodSync(path, mode);
  return path;
}

const option = fake('option');
const envBin = fake('env');
const staticBin = fake('static');
const onPath = fake('path');
const empty = join(root, 'empty');
mkdirSync(empty);
const dirOf = (p: string) => p.slice(0, -'/ffmpeg'.length);

/** A stand-in for the ffmpeg-static package that records whether the finder asked it. */
function staticSource(path: string | null): FfmpegSources & { asked: number } {
  const s = { asked: 0, ffmpegStatic: async () => { s.asked++; return path; } };
  return s;
}

test('search order: --ffmpeg, then FFMPEG_PATH, then ffmpeg-static, then PATH', async () => {
  const env = { PATH: [empty, dirOf(onPath)].join(delimiter), FFMPEG_PATH: envBin };
  const src = staticSource(staticBin);
  assert.deepEqual(await findFfmpeg(option, env, src), { path: option, source: 'option' });
  assert.deepEqual(await findFfmpeg(undefined, env, src), { path: envBin, source: 'env' });
  assert.equal(src.asked, 0, 'ffmpeg-static is not consulted while a higher step answers');
  assert.deepEqual(await findFfmpeg(undefined, { PATH: env.PATH }, src), { path: staticBin, source: 'ffmpeg-static' });
  assert.equal(src.asked, 1);
  assert.deepEqual(await findFfmpeg(undefined, { PATH: env.PATH }, staticSource(null)), { path: onPath, source: 'path' });
  assert.equal(await findFfmpeg(undefined, { PATH: empty }, staticSource(null)), null);
  assert.equal(await findFfmpeg(undefined, {}, staticSource(null)), null, 'no PATH at all');
});

test('DVREC_NO_FFMPEG_STATIC=1 skips ffmpeg-static; `false` (embedded encoders only) searches nothing', async () => {
  const src = staticSource(staticBin);
  const env = { PATH: dirOf(onPath), [NO_FFMPEG_STATIC_ENV]: '1' };
  assert.deepEqual(await findFfmpeg(undefined, env, src), { path: onPath, source: 'path' });
  assert.equal(await findFfmpeg(undefined, { PATH: empty, [NO_FFMPEG_STATIC_ENV]: '1' }, src), null);
  assert.equal(src.asked, 0, 'the package was never asked');
  // Any other value leaves the step on.
  assert.deepEqual(await findFfmpeg(undefined, { PATH: empty, [NO_FFMPEG_STATIC_ENV]: '0' }, src), { path: staticBin, source: 'ffmpeg-static' });
  assert.equal(await findFfmpeg(false, { PATH: dirOf(onPath), FFMPEG_PATH: envBin }, src), null);
  assert.equal(src.asked, 1);
});

test('a named binary that does not run is an ENCODER error; a found one that does not run is passed over', async () => {
  const broken = fake('broken', false);
  const isEncoderError = (re: RegExp) => (e: unknown) => e instanceof DvrecError && exitCodeOf(e) === ExitCode.ENCODER && re.test(e.message);
  await assert.rejects(findFfmpeg(broken, { PATH: dirOf(onPath) }, staticSource(null)), isEncoderError(/^--ffmpeg .*not a working ffmpeg/));
  await assert.rejects(findFfmpeg(join(root, 'missing', 'ffmpeg'), {}, staticSource(null)), isEncoderError(/not a working ffmpeg/));
  await assert.rejects(findFfmpeg(undefined, { FFMPEG_PATH: broken, PATH: dirOf(onPath) }, staticSource(null)), isEncoderError(/^FFMPEG_PATH=.*unset it/));
  // ffmpeg-static whose download failed or whose binary does not run: on to PATH.
  assert.deepEqual(await findFfmpeg(undefined, { PATH: dirOf(onPath) }, staticSource(broken)), { path: onPath, source: 'path' });
  // PATH: a file named ffmpeg without execute permission earlier on PATH does not hide a working one later.
  const notExec = fake('noexec', true, 0o644);
  assert.deepEqual(await findFfmpeg(undefined, { PATH: [dirOf(notExec), dirOf(onPath)].join(delimiter) }, staticSource(null)), { path: onPath, source: 'path' });
});
