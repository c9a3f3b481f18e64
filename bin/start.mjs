#!/usr/bin/env node
// `npm start`: the compiled build (dist/main.js) in production, or wherever tsx is not installed
// (`npm ci --omit=dev`); the TypeScript sources through tsx in development. Arguments pass through.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const built = `${root}dist/main.js`;
const args = process.argv.slice(2);

function hasTsx() {
  try {
    createRequire(import.meta.url).resolve('tsx');
    return true;
  } catch {
    return false;
  }
}

if (process.env.NODE_ENV === 'production' || !hasTsx()) {
  if (!existsSync(built)) {
    console.error(`phi-graph: ${built} is missing: run npm run build first (production runs the compiled build).`);
    process.exit(1);
  }
  await import(built);
} else {
  // Development: the explorer bundle is made once if missing (esbuild, under a second).
  if (!existsSync(`${root}dist/explorer/explorer.js`)) spawnSync(process.execPath, [`${root}scripts/build-explorer.mjs`], { stdio: 'inherit' });
  // tsx as a loader of this same Node (not its CLI): the supervisor's children inherit it through execArgv.
  const child = spawn(process.execPath, ['--import', 'tsx', `${root}src/main.ts`, ...args], { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
