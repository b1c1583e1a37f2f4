/**
 * dvrec exits explicitly (cron must not wait on a library's stray timer), but a pipe whose reader is slower than
 * dvrec queues writes: the `done` event of a 500-track recording (~0.3 MB of manifest) was cut at 146 KB. The
 * runner drains stdout before exiting; this checks it with a reader that starts late.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RUN = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'src', 'commands', 'run.ts');

test('a command that prints 2 MiB and returns exits with all of it delivered to a slow pipe', async () => {
  const script = `
    import { runCommand } from ${JSON.stringify(RUN)};
    await runCommand(async () => {
      const line = JSON.stringify({ event: 'done', manifest: { tracks: Array.from({ length: 20000 }, (_, i) => ({ i, pad: 'x'.repeat(80) })) } }) + '\\n';
      process.stdout.write(line);
      return 0;
    });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  child.stdout.pause();
  // Let the child finish writing and reach its exit while nobody reads.
  await new Promise((r) => setTimeout(r, 700));
  const chunks: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => chunks.push(d));
  child.stdout.resume();
  const code = await new Promise<number | null | 'timeout'>((r) => {
    const t = setTimeout(() => (child.kill('SIGKILL'), r('timeout')), 30_000);
    child.once('close', (c) => (clearTimeout(t), r(c)));
  });
  assert.equal(code, 0);
  const text = Buffer.concat(chunks).toString('utf8');
  assert.ok(text.length > 2_000_000, `received ${text.length} bytes`);
  const done = JSON.parse(text.trim()) as { manifest: { tracks: unknown[] } };
  assert.equal(done.manifest.tracks.length, 20000);
});
