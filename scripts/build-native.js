#!/usr/bin/env node
// npm `install` script: builds dvrec's native Opus decoder (binding.gyp) with the node-gyp that npm provides.
// The addon only makes decoding faster; when it cannot be built (no compiler, no Node headers), dvrec uses the
// WebAssembly build of the same libopus, so this script never fails the install. `dvrec doctor` says which is used.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

if (process.env.DVREC_SKIP_NATIVE === '1') process.exit(0);
// npm sets npm_config_node_gyp for lifecycle scripts; `node-gyp` on PATH is the fallback.
const gyp = process.env.npm_config_node_gyp;
const [cmd, args] = gyp && existsSync(gyp) ? [process.execPath, [gyp]] : ['node-gyp', []];
const r = spawnSync(cmd, [...args, 'rebuild', '--jobs', 'max'], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
if (r.status !== 0) {
  const why = r.error ? r.error.message : (r.stderr ?? '').split('\n').filter((l) => /error/i.test(l))[0] ?? `exit ${r.status}`;
  console.warn(`dvrec: the native Opus decoder was not built (${why.trim()}); the WebAssembly decoder will be used`);
}
