import { Migration } from '@mikro-orm/migrations';

/**
 * Every role of the token, on audit events of requests that acted with
 * fewer of them (the roles that may read for the request's purpose): who the
 * account was stays on the record. Null otherwise, and in older events,
 * whose canonical form in the hash chain is unchanged (src/audit/events.ts).
 * And an index for the events of one break-the-glass grant (its review).
 */
export class Migration20261202020000AuditTokenRoles extends Migration {
  override up(): void {
    this.addSql(`alter table "audit_event" add column "token_roles" text[] null`);
    // The audit of one break-the-glass grant (a privacy officer's review) is found by it.
    this.addSql(`create index "audit_event_emergency_grant_id_index" on "audit_event" ("emergency_grant_id") where "emergency_grant_id" is not null`);
  }
}
