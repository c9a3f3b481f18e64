import { connect } from 'node:net';
import pg from 'pg';
import { randomBytes } from 'node:crypto';

/**
 * Which real services the tests use: DATABASE_URL / REDIS_URL when set,
 * otherwise PostgreSQL and Redis on their standard local ports when they
 * answer, otherwise the embedded defaults (PGlite, in-process cache).
 * With REQUIRE_SERVICES=1 (set by .ci/run) a missing service fails the run
 * instead of falling back.
 */

const LOCAL_POSTGRES = 'postgres://postgres@127.0.0.1:5432/postgres';
const LOCAL_REDIS = 'redis://127.0.0.1:6379';
const PROBE_TIMEOUT_MS = 1_000;

export interface Services {
  /** Server URL of PostgreSQL (a database per test file is created on it), or undefined for PGlite. */
  postgresUrl: string | undefined;
  redisUrl: string | undefined;
}

/** Whether something answers TCP at the URL's host and port (shared with the benchmarks). */
export function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

let resolved: Promise<Services> | undefined;

export function resolveServices(): Promise<Services> {
  resolved ??= (async () => {
    const required = process.env['REQUIRE_SERVICES'] === '1';
    const postgres = process.env['DATABASE_URL'] || LOCAL_POSTGRES;
    const redis = process.env['REDIS_URL'] || LOCAL_REDIS;
    const [postgresUp, redisUp] = await Promise.all([reachable(postgres), reachable(redis)]);
    if (required && !postgresUp) throw new Error(`REQUIRE_SERVICES=1 but PostgreSQL at ${new URL(postgres).host} is not reachable`);
    if (required && !redisUp) throw new Error(`REQUIRE_SERVICES=1 but Redis at ${new URL(redis).host} is not reachable`);
    return { postgresUrl: postgresUp ? postgres : undefined, redisUrl: redisUp ? redis : undefined };
  })();
  return resolved;
}

/** Creates an empty database on the server for one test file and returns its URL. */
export async function createScratchDatabase(serverUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `phi_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: serverUrl });
      await client.connect();
      try {
        await client.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}
