import { Migration } from '@mikro-orm/migrations';

/** Six years (HIPAA's documentation retention), in days, counting leap days. */
export const DEFAULT_AUDIT_RETENTION_DAYS = 2192;
const ZERO_HASH = `'\\x${'00'.repeat(32)}'::bytea`;

/**
 * The audit trail: events, hash-chained batches and the chain head. The
 * database itself keeps it append-only: triggers refuse any UPDATE of an
 * event or batch, any DELETE of rows still within retention, TRUNCATE, and
 * any change of the chain head other than moving it forward (retention may
 * only grow). This holds for every role, the table owner's included.
 */
export class Migration20261125150000AuditTrail extends Migration {
  override up(): void {
    this.addSql(`create table "audit_batch" ("sequence" bigint primary key, "recorded_at" timestamptz not null, "event_count" int not null, "payload_digest" bytea not null, "previous_hash" bytea not null, "hash" bytea not null)`);
    this.addSql(`create table "audit_chain" ("id" smallint primary key, "sequence" bigint not null, "hash" bytea not null, "checkpoint_sequence" bigint not null, "checkpoint_previous_hash" bytea not null, "retention_days" int not null)`);
    this.addSql(`insert into "audit_chain" ("id", "sequence", "hash", "checkpoint_sequence", "checkpoint_previous_hash", "retention_days") values (1, 0, ${ZERO_HASH}, 1, ${ZERO_HASH}, ${DEFAULT_AUDIT_RETENTION_DAYS})`);
    this.addSql(`create table "audit_event" ("id" bigserial primary key, "batch_sequence" bigint not null, "recorded_at" timestamptz not null, "request_id" varchar(255) not null, "subgraph" varchar(255) not null, "subject" varchar(255) not null, "roles" text[] not null, "organization_id" uuid null, "client_name" varchar(255) null, "client_version" varchar(255) null, "ip" varchar(255) null, "operation_name" varchar(255) null, "operation_hash" varchar(255) not null, "patient_id" uuid null, "entity_type" varchar(255) not null, "entity_id" varchar(255) null, "action" text not null, "fields" jsonb not null, "emergency" boolean not null, "emergency_grant_id" uuid null)`);
    this.addSql(`create index "audit_event_batch_sequence_index" on "audit_event" ("batch_sequence")`);
    this.addSql(`create index "audit_event_patient_id_recorded_at_index" on "audit_event" ("patient_id", "recorded_at")`);
    this.addSql(`create index "audit_event_subject_recorded_at_index" on "audit_event" ("subject", "recorded_at")`);
    this.addSql(`create index "audit_event_recorded_at_index" on "audit_event" ("recorded_at")`);
    this.addSql(`alter table "audit_event" add constraint "audit_event_action_check" check ("action" in ('read', 'create', 'update', 'delete'))`);

    this.addSql(`create or replace function phi_graph_audit_append_only() returns trigger language plpgsql as $$
      declare
        horizon timestamptz;
      begin
        if tg_op = 'TRUNCATE' then
          raise exception 'the audit trail is append-only: TRUNCATE of % refused', tg_table_name using errcode = '42501';
        end if;
        if tg_op = 'UPDATE' then
          raise exception 'the audit trail is append-only: UPDATE of % refused', tg_table_name using errcode = '42501';
        end if;
        select now() - make_interval(days => retention_days) into horizon from audit_chain where id = 1;
        if old.recorded_at >= horizon then
          raise exception 'the audit trail is append-only: % row is within retention', tg_table_name using errcode = '42501';
        end if;
        return old;
      end $$`);
    for (const table of ['audit_event', 'audit_batch']) {
      this.addSql(`create trigger "${table}_append_only" before update or delete on "${table}" for each row execute function phi_graph_audit_append_only()`);
      this.addSql(`create trigger "${table}_no_truncate" before truncate on "${table}" for each statement execute function phi_graph_audit_append_only()`);
    }
    this.addSql(`create or replace function phi_graph_audit_chain_forward_only() returns trigger language plpgsql as $$
      begin
        if tg_op <> 'UPDATE' then
          raise exception 'the audit chain head cannot be %', lower(tg_op) using errcode = '42501';
        end if;
        if new.id <> old.id or new.sequence < old.sequence or new.checkpoint_sequence < old.checkpoint_sequence or new.retention_days < old.retention_days then
          raise exception 'the audit chain head only moves forward, and retention only grows' using errcode = '42501';
        end if;
        return new;
      end $$`);
    this.addSql(`create trigger "audit_chain_forward_only" before update or delete on "audit_chain" for each row execute function phi_graph_audit_chain_forward_only()`);
    this.addSql(`create trigger "audit_chain_no_truncate" before truncate on "audit_chain" for each statement execute function phi_graph_audit_chain_forward_only()`);
  }

  override down(): void {
    throw new Error('The audit trail is not removed by a migration.');
  }
}
