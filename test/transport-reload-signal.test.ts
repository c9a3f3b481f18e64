import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, readFileSync, renameSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueCertificate, LOOPBACK_NAMES } from '../src/transport/development-certificates.js';
import { createScratchDatabase, resolveServices } from './support/services.js';
import { createTestPki, fingerprintOf, handshake, postTls, until, type TestPki } from './support/tls.js';

/**
 * `npm start` as an operator runs it, with TLS and mutual TLS, renewing its
 * certificate with SIGHUP (file watching off): the supervisor passes the
 * signal on, every process serves the new certificate to new connections,
 * and none of them restarts.
 */

const STARTUP_TIMEOUT_MS = 120_000;

describe('npm start with TLS: SIGHUP', () => {
  let child: ChildProcess;
  let output = '';
  let pki: TestPki;
  let live: { certFile: string; keyFile: string };
  let env: NodeJS.ProcessEnv;
  let cleanup: () => Promise<void> = () => Promise.resolve();
  const ports: Record<string, number> = {};

  beforeAll(async () => {
    const services = await resolveServices();
    const folder = await mkdtemp(join(tmpdir(), 'phi-graph-sighup-'));
    pki = createTestPki(folder);
    live = { certFile: join(folder, 'live.pem'), keyFile: join(folder, 'live.key') };
    copyFileSync(pki.server.certFile, live.certFile);
    copyFileSync(pki.server.keyFile, live.keyFile);
    const scratch = services.postgresUrl ? await createScratchDatabase(services.postgresUrl) : null;
    cleanup = async () => {
      await scratch?.drop();
      await rm(folder, { recursive: true, force: true });
    };
    env = {
      ...process.env,
      NODE_ENV: 'development',
      LOG_LEVEL: 'info',
      DATA_DIR: join(folder, 'data'),
      PORT: '0',
      PATIENT_SUBGRAPH_PORT: '0',
      CLINICAL_SUBGRAPH_PORT: '0',
      BILLING_SUBGRAPH_PORT: '0',
      SEED_PATIENTS: '5',
      PROCESS_HEAP_MB: '384',
      DATABASE_URL: scratch?.url ?? '',
      REDIS_URL: services.redisUrl ?? '',
      REDIS_KEY_PREFIX: `phi-graph-sighup-${process.pid}:`,
      TLS_CERT_FILE: live.certFile,
      TLS_KEY_FILE: live.keyFile,
      TLS_CA_FILE: pki.ca.certFile,
      SUBGRAPH_CLIENT_CA_FILE: pki.ca.certFile,
      GATEWAY_CLIENT_CERT_FILE: pki.gatewayClient.certFile,
      GATEWAY_CLIENT_KEY_FILE: pki.gatewayClient.keyFile,
      // SIGHUP only: the renewal below must not be picked up by the file watch.
      TLS_FILE_POLL_SECONDS: '0',
    };
    // Node itself with tsx as its loader (as bin/start.mjs runs it), so that the signals below reach the supervisor, not a wrapper.
    child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await until('the banner', () => Promise.resolve(output.includes('Ctrl-C stops.') || child.exitCode !== null ? true : undefined), STARTUP_TIMEOUT_MS).catch(() => undefined);
    if (!output.includes('Ctrl-C stops.')) throw new Error(`npm start with TLS did not start:\n${output}`);
    for (const [, name, port] of output.matchAll(/(Gateway|patient|clinical|billing):?\s+https:\/\/127\.0\.0\.1:(\d+)\/graphql/g)) ports[name ?? ''] = Number(port);
  }, STARTUP_TIMEOUT_MS + 30_000);

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await cleanup();
  });

  it('prints an HTTPS gateway and curl with the CA in its banner', () => {
    expect(Object.keys(ports).sort()).toEqual(['Gateway', 'billing', 'clinical', 'patient']);
    expect(output).toContain(`curl -s --cacert ${pki.ca.certFile} https://127.0.0.1:${ports['Gateway']}/graphql`);
  });

  it('serves a renewed certificate from every process after SIGHUP, with no restart, and keeps serving queries', async () => {
    const ca = readFileSync(pki.ca.certFile, 'utf8');
    const client = { ca, cert: readFileSync(pki.gatewayClient.certFile, 'utf8'), key: readFileSync(pki.gatewayClient.keyFile, 'utf8') };
    const original = fingerprintOf(readFileSync(pki.server.certFile, 'utf8'));
    for (const port of Object.values(ports)) expect((await handshake(port, client)).fingerprint).toBe(original);

    const renewed = issueCertificate(pki.ca, pki.folder, { name: 'renewed', ...LOOPBACK_NAMES, usage: 'server' });
    renameSync(renewed.keyFile, live.keyFile);
    renameSync(renewed.certFile, live.certFile);
    const next = fingerprintOf(readFileSync(live.certFile, 'utf8'));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await handshake(ports['Gateway'] ?? 0, client)).fingerprint).toBe(original);

    child.kill('SIGHUP');
    for (const port of Object.values(ports)) await until(`port ${port} to serve the renewed certificate`, async () => ((await handshake(port, client)).fingerprint === next ? true : undefined), 20_000);
    expect(child.exitCode).toBeNull();
    expect(output).not.toContain('"event":"process-exited"');

    const token = await new Promise<string>((resolve, reject) => {
      const minter = spawn('node_modules/.bin/tsx', ['src/auth/token-cli.ts', '--role', 'clinician'], { env });
      let stdout = '';
      minter.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      minter.once('exit', (code) => (code === 0 ? resolve(stdout.trim()) : reject(new Error(`token exited ${code}`))));
    });
    const response = await postTls(`https://127.0.0.1:${ports['Gateway']}/graphql`, '{ patients(first: 2) { edges { node { id conditions(first: 1) { edges { node { id } } } } } } }', { ca, token });
    expect(response.status).toBe(200);
    expect(response.json.errors).toBeUndefined();
    expect(response.fingerprint).toBe(next);
  }, 60_000);

  it('stops cleanly on SIGTERM', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 30_000);
});
