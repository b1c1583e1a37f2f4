/**
 * The library's API reference is generated from the TSDoc on what src/index.ts exports (`npm run docs`). TypeDoc
 * runs here with every warning an error: an exported class, member, event, option or field without documentation
 * (or a broken {@link}) fails the suite.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

test('every export of the public API is documented (TypeDoc, warnings as errors)', async () => {
  const typedoc = join(ROOT, 'node_modules', 'typedoc', 'bin', 'typedoc');
  const r = await promisify(execFile)(process.execPath, [typedoc, '--emit', 'none'], { cwd: ROOT }).then(
    (x) => ({ code: 0, out: x.stdout + x.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
  );
  assert.equal(r.code, 0, r.out);
  assert.doesNotMatch(r.out, /warning|error/i, r.out);
});
