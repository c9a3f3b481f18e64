import { parseArgs } from 'node:util';
import { decodeJwt } from 'jose';
import { loadConfig } from '../config.js';
import { openCache, revocationList } from '../cache/index.js';
import { openDatabase } from '../db/index.js';
import { DatabaseRevocationStore } from '../db/revocations.js';
import { describeError } from '../errors.js';

/**
 * `npm run token:revoke -- --token <jwt>` or `-- --jti <id> --until <ISO date-time>`
 * Puts a token id on the revocation list, in PostgreSQL and in Redis, until
 * the token would have expired; every gateway and subgraph then answers it
 * with 401. Needs DATABASE_URL and REDIS_URL.
 */
const USAGE = 'usage: npm run token:revoke -- --token <jwt> | --jti <id> --until <ISO date-time>';
const SECONDS = 1000;

try {
  const { values } = parseArgs({ options: { token: { type: 'string' }, jti: { type: 'string' }, until: { type: 'string' } }, strict: true });
  let jti = values.jti;
  let expiresAt = values.until ? Date.parse(values.until) : Number.NaN;
  if (values.token) {
    const claims = decodeJwt(values.token);
    jti = claims.jti;
    expiresAt = (claims.exp ?? 0) * SECONDS;
  }
  if (!jti || Number.isNaN(expiresAt)) throw new Error(`a token, or a jti with --until, is required\n${USAGE}`);
  const config = loadConfig();
  if (!config.database.url) throw new Error('DATABASE_URL is required: a revocation is kept in PostgreSQL (the embedded database belongs to the running server)');
  if (!config.redisUrl) throw new Error('REDIS_URL is required: without Redis, each server process keeps its own copy of the revocations (restart it to read them again)');
  const remaining = Math.ceil((expiresAt - Date.now()) / SECONDS);
  if (remaining <= 0) {
    console.log(`Token ${jti} has already expired; nothing to revoke.`);
  } else {
    const cache = await openCache(config.redisUrl, config.redisKeyPrefix, config.transport.redis);
    const db = await openDatabase({ url: config.database.url, dataDir: config.database.dataDir });
    try {
      await revocationList(cache, new DatabaseRevocationStore(db)).revoke(jti, new Date(expiresAt));
    } finally {
      await cache.close();
      await db.close();
    }
    console.log(`Token ${jti} is revoked for the ${remaining} s it had left.`);
  }
} catch (error) {
  console.error(`token:revoke: ${describeError(error)}`);
  process.exit(1);
}
