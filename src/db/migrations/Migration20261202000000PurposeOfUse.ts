import { Migration } from '@mikro-orm/migrations';

/**
 * The purpose of use of each audited request (HL7 v3 PurposeOfUse code:
 * TREAT, HPAYMT, ...). Null in events recorded before purposes existed;
 * their canonical form in the hash chain has no purpose, so the chain of
 * older batches verifies as it did (src/audit/events.ts).
 */
export class Migration20261202000000PurposeOfUse extends Migration {
  override up(): void {
    this.addSql(`alter table "audit_event" add column "purpose" varchar(32) null`);
  }
}
