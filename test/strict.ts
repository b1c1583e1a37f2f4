/**
 * Skips that depend on the machine (no ffmpeg, no prlimit, no permission to mount a tmpfs, running as root) are
 * honest on a developer's box, but on CI they would let a required check vanish while the run stays green.
 * `.ci/run` sets DVREC_TEST_STRICT=1: there, a missing tool fails the test instead of skipping it.
 */
import type { TestContext } from 'node:test';

export const STRICT = process.env.DVREC_TEST_STRICT === '1';

/**
 * Skips the test with `reason`, or fails it under DVREC_TEST_STRICT=1. Returns true when the caller must return.
 * Use in the body: `if (needs(t, hasFfmpeg(), 'no ffmpeg to decode MP3')) return;`
 */
export function needs(t: TestContext, available: boolean, reason: string): boolean {
  if (available) return false;
  if (STRICT) throw new Error(`required on CI (DVREC_TEST_STRICT=1): ${reason}`);
  t.skip(reason);
  return true;
}
