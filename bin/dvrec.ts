#!/usr/bin/env node
// placeholder entry, replaced by the CLI work
console.log('dvrec');
