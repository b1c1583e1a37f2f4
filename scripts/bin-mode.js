#!/usr/bin/env node
// Runs after every build: makes package.json's bin files executable. tsc writes dist/ files 0644, and npm sets a
// bin's mode only when it links it (not for the package's own bin in its own checkout, where dist/ is built by
// `prepare` after npm looked): without this, `npx --no-install dvrec` in a fresh clone failed with
// "dvrec: Permission denied" on some installs and not others.
import { chmodSync, readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
for (const file of Object.values(pkg.bin ?? {})) chmodSync(new URL(`../${file}`, import.meta.url), 0o755);
