import { Migration } from '@mikro-orm/migrations';

/**
 * Grouped audit events: one audit_event row may carry the events of many
 * patients that one request read alike (same entity type, action, fields
 * and outcomes, emergency mark), as two parallel arrays: patient_ids[i] and
 * entity_ids[i] are event i of the row. A thousand-row list writes a
 * handful of rows instead of a thousand. Rows written before (patient_id and
 * entity_id, no arrays) are left as they are: a migration never edits an
 * audit row. Readers see one event per (row, position) either way
 * (auditEntries() in src/audit/events.ts); the GIN index answers "who read
 * this patient" for grouped rows, the existing btree index for the others.
 */
export class Migration20261126000000AuditEventGroups extends Migration {
  override up(): void {
    this.addSql(`alter table "audit_event" add column "patient_ids" uuid[] null, add column "entity_ids" text[] null`);
    this.addSql(`create index "audit_event_patient_ids_index" on "audit_event" using gin ("patient_ids")`);
  }

  override down(): void {
    throw new Error('The audit trail is not removed by a migration.');
  }
}
