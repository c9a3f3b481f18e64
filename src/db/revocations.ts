import type { RevocationStore } from '../cache/index.js';
import type { Database } from './index.js';

/** Token revocations in PostgreSQL (revoked_token), until the token would have expired; the cache holds a copy. */
export class DatabaseRevocationStore implements RevocationStore {
  constructor(private readonly db: Database) {}

  async record(tokenId: string, expiresAt: Date): Promise<void> {
    await this.db
      .fork()
      .execute('insert into "revoked_token" ("jti", "expires_at") values (?, ?) on conflict ("jti") do update set "expires_at" = greatest("revoked_token"."expires_at", excluded."expires_at")', [tokenId, expiresAt], 'run');
  }

  async inForce(): Promise<{ tokenId: string; expiresAt: Date }[]> {
    const rows = await this.db.fork().execute<{ jti: string; expires_at: Date | string }[]>('select "jti", "expires_at" from "revoked_token" where "expires_at" > now()');
    return rows.map((row) => ({ tokenId: row.jti, expiresAt: new Date(row.expires_at) }));
  }
}
