import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { issueCertificate, type Authority, type IssuedCertificate } from '../../src/transport/development-certificates.js';

/**
 * PostgreSQL and Redis servers of a test's own, speaking TLS only, with
 * certificates from the test's CA: a PostgreSQL cluster made with initdb
 * (`ssl=on`, plaintext refused by pg_hba.conf) and a `redis-server` with
 * only a `--tls-port`. Both stop with the test. Null when the server
 * programs are not installed (REQUIRE_SERVICES=1 makes that a failure).
 */

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const started = Date.now();
  const { connect } = await import('node:net');
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (!alive()) throw new Error(`the server for port ${port} exited`);
    if (Date.now() - started > timeoutMs) throw new Error(`nothing listened on port ${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function postgresBinaries(): string | null {
  try {
    const bin = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    if (existsSync(join(bin, 'initdb'))) return bin;
  } catch {
    // no pg_config: Debian keeps the server under /usr/lib/postgresql/<version>/bin
  }
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const version of versions) if (existsSync(join(root, version, 'bin', 'initdb'))) return join(root, version, 'bin');
  return null;
}

export interface TlsPostgres {
  port: number;
  /** The server's certificate names `localhost` only (not 127.0.0.1): verify-full holds for one host name and not the other. */
  certificate: IssuedCertificate;
  url(parameters: string, host?: string): string;
  stop(): Promise<void>;
}

/** PostgreSQL refuses to run as root: as root, the cluster is made and run as the `postgres` user. */
function asServerUser(command: string, args: readonly string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [command, [...args]];
  return ['runuser', ['-u', 'postgres', '--', command, ...args]];
}

export async function startTlsPostgres(folder: string, ca: Authority): Promise<TlsPostgres | null> {
  const bin = postgresBinaries();
  if (!bin) return null;
  const root = process.getuid?.() === 0;
  const home = join(folder, 'postgres');
  const data = join(home, 'data');
  const certificate = issueCertificate(ca, home, { name: 'postgres-server', commonName: 'localhost', dnsNames: ['localhost'], usage: 'server' });
  chmodSync(folder, 0o755);
  chmodSync(home, 0o755);
  if (root) {
    const ids = execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim();
    const group = execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim();
    for (const path of [home, certificate.certFile, certificate.keyFile]) chownSync(path, Number(ids), Number(group));
  }
  const run = (command: string, args: readonly string[]) => {
    const [program, list] = asServerUser(join(bin, command), args);
    execFileSync(program, list, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
  };
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '--no-instructions']);
  const hba = ['local all all trust', 'hostssl all all 127.0.0.1/32 trust', 'hostssl all all ::1/128 trust', 'hostnossl all all 0.0.0.0/0 reject', 'hostnossl all all ::/0 reject'];
  writeFileSync(join(data, 'pg_hba.conf'), `${hba.join('\n')}\n`);
  const port = await freePort();
  const options = [
    `-p ${port}`,
    `-k ${home}`,
    "-c listen_addresses='localhost'",
    '-c ssl=on',
    `-c ssl_cert_file=${certificate.certFile}`,
    `-c ssl_key_file=${certificate.keyFile}`,
    '-c fsync=off',
    '-c max_connections=60',
  ].join(' ');
  run('pg_ctl', ['-D', data, '-o', options, '-l', join(home, 'server.log'), '-w', '-t', '30', 'start']);
  return {
    port,
    certificate,
    url: (parameters, host = 'localhost') => `postgres://postgres@${host}:${port}/postgres${parameters ? `?${parameters}` : ''}`,
    stop() {
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // already gone
      }
      return Promise.resolve();
    },
  };
}

export interface TlsRedis {
  port: number;
  url: string;
  stop(): Promise<void>;
}

/** A redis-server with TLS only (no plaintext port), asking clients for a certificate from `ca` (tls-auth-clients yes). */
export async function startTlsRedis(folder: string, ca: Authority): Promise<TlsRedis | null> {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    return null;
  }
  // Names localhost only, not 127.0.0.1 (as the PostgreSQL server's): a client must check the name it connected to.
  const certificate = issueCertificate(ca, folder, { name: 'redis-server', dnsNames: ['localhost'], usage: 'server' });
  const port = await freePort();
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '-::1', '--tls-cert-file', certificate.certFile, '--tls-key-file', certificate.keyFile, '--tls-ca-cert-file', ca.certFile, '--tls-auth-clients', 'yes', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitForPort(port, 10_000, () => child.exitCode === null);
  return {
    port,
    url: `rediss://localhost:${port}`,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
