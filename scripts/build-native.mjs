#!/usr/bin/env node
// Builds the optional native AES-256-GCM addon (native/aead) with node-gyp, against the running Node's
// headers and the OpenSSL Node itself is built with. It runs on `npm install` (the package's install
// script) and never fails the install: without the addon, src/crypto/aes-gcm.ts decrypts with
// node:crypto, which gives the same results. PHI_NATIVE_CRYPTO=off skips the build; CI sets
// REQUIRE_NATIVE_CRYPTO=1 so that a failed build fails the run instead.
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const addon = join(root, 'native', 'aead');
const required = process.env.REQUIRE_NATIVE_CRYPTO === '1';

function done(message, failed = false) {
  console.error(`native AES-GCM addon: ${message}`);
  process.exit(failed && required ? 1 : 0);
}

if (process.env.PHI_NATIVE_CRYPTO === 'off') done('not built (PHI_NATIVE_CRYPTO=off); node:crypto decrypts');

/** npm's own node-gyp (npm sets npm_config_node_gyp for install scripts), else the one npm ships beside it. */
function nodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    candidates.push(createRequire(join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'package.json')).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // no npm beside this node
  }
  // npm's own folder: from npm_execpath (set when npm runs this), else from the npm found on PATH.
  const npmClis = [process.env.npm_execpath, ...(process.env.PATH ?? '').split(delimiter).map((folder) => join(folder, 'npm'))];
  for (const cli of npmClis) {
    try {
      if (cli && existsSync(cli)) candidates.push(join(dirname(dirname(realpathSync(cli))), 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
    } catch {
      // an npm we cannot resolve: look further
    }
  }
  return candidates.find((candidate) => candidate && existsSync(candidate));
}

const hasHeaders = (folder) => existsSync(join(folder, 'include', 'node', 'node_api.h')) && existsSync(join(folder, 'include', 'node', 'openssl', 'evp.h'));

/**
 * Node's headers, never downloaded: npm_config_nodedir when set, else the ones installed beside this node,
 * else node-gyp's own cache for this exact version (filled by an earlier build); undefined when none is there.
 */
function nodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const beside = resolve(dirname(process.execPath), '..');
  if (hasHeaders(beside)) return beside;
  const cacheRoot = process.env.npm_config_devdir ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'node-gyp');
  const cached = join(cacheRoot, process.versions.node);
  return hasHeaders(cached) ? cached : undefined;
}

const gyp = nodeGyp();
if (!gyp) done('not built: node-gyp not found; node:crypto decrypts', true);
const dir = nodeDir();
if (!dir) done(`not built: no headers of Node ${process.versions.node} here (set npm_config_nodedir; nothing is downloaded); node:crypto decrypts`, true);
const args = [gyp, 'rebuild', '--release', `--nodedir=${dir}`];
const result = spawnSync(process.execPath, args, { cwd: addon, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 180_000 });
if (result.status !== 0) {
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
  done(`not built (node-gyp exited ${result.status ?? result.signal}); node:crypto decrypts.\n${output}`, true);
}
done(`built for Node ${process.versions.node} (${join('native', 'aead', 'build', 'Release', 'phi_aead.node')})`);
