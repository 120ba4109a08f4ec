#!/usr/bin/env node
// Entry point of the `medmask` command. Runs the compiled CLI from dist/ (built by `npm install` /
// `npm ci` through the "prepare" script).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('medmask: dist/ is missing; run `npm run build` (npm ci / npm install do it for you)\n');
  process.exit(6);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2));
