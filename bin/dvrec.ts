#!/usr/bin/env node
/**
 * dvrec's entry point: checks the Node version, then parses the command line with the commander program
 * of src/commands/program.ts, which hands the values to a command. Nothing else happens here; each
 * command is imported only when it runs, so `--help` and option errors never load discord.js or a codec.
 */
import { CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const USAGE_EXIT = 2; // ExitCode.USAGE (src/errors.ts), repeated to keep this file free of imports.

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(`dvrec: Node.js 22.12 or newer is required (this is ${process.versions.node})\n`);
  process.exit(1);
}

/** package.json is ../ from bin/dvrec.ts and ../../ from dist/bin/dvrec.js: walk up to it. */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'dvrec' && pkg.version) return pkg.version;
    } catch {
      /* not here */
    }
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

const { buildProgram } = await import('../src/commands/program.ts');
const program = buildProgram(packageVersion());

/**
 * node-pre-gyp (which loads @discordjs/opus) parses process.argv as if it were its own command line:
 * e.g. `--dir X` makes it look for the codec under X and fail. Commander has read argv by now, so the
 * rest of the program (and any codec it loads later) sees a clean one.
 */
program.hook('preAction', () => {
  process.argv.splice(2);
});

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end here with code 0; `dvrec` alone shows help on stderr (commander.help).
    const shown = err.code === 'commander.helpDisplayed' || err.code === 'commander.version';
    process.exit(shown ? 0 : USAGE_EXIT);
  }
  throw err;
}
