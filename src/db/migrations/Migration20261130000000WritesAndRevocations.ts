import { Migration } from '@mikro-orm/migrations';

/**
 * Idempotency keys of mutations, and token revocations kept in the
 * database.
 * - idempotency_key: a mutation sent with an `Idempotency-Key` is applied
 *   once per (subject, key); the row is written in the mutation's own
 *   transaction, with what was asked (a digest of the operation and its
 *   input, never the values) and the id of what it wrote, so a retry
 *   answers the first result. Kept 24 hours.
 * - revoked_token: a revoked token id until the token would have expired.
 *   The cache (Redis) holds a copy; an empty cache (flushed, restarted)
 *   is filled again from here, so no revoked token comes back to life.
 */
export class Migration20261130000000WritesAndRevocations extends Migration {
  override up(): void {
    this.addSql(`create table "idempotency_key" (
      "subject" text not null,
      "key" text not null,
      "coordinate" text not null,
      "request_digest" bytea not null,
      "result_id" text null,
      "created_at" timestamptz not null default now(),
      primary key ("subject", "key"))`);
    this.addSql(`create index "idempotency_key_created_at_index" on "idempotency_key" ("created_at")`);
    this.addSql(`create table "revoked_token" (
      "jti" text not null primary key,
      "expires_at" timestamptz not null,
      "revoked_at" timestamptz not null default now())`);
    this.addSql(`create index "revoked_token_expires_at_index" on "revoked_token" ("expires_at")`);
  }

  override down(): void {
    this.addSql(`drop table "revoked_token"`);
    this.addSql(`drop table "idempotency_key"`);
  }
}
