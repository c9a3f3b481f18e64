import { Migration } from '@mikro-orm/migrations';

/**
 * Break-the-glass review and the notification outbox.
 * - emergency_review: one per emergency grant, opened in the grant's own
 *   transaction (a grant never exists without its review), due after a
 *   deadline, closed by a privacy officer of the patient's organization with
 *   an outcome and a note. `overdue_alerted_at` records that the deadline
 *   alert was raised (once per review).
 * - notification_outbox: messages for the organisation's messaging system to
 *   deliver (here: the patient is told of an emergency access to their
 *   record), written in the same transaction as what they announce. They
 *   hold ids and times, never PHI; the deliverer marks `delivered_at`.
 */
export class Migration20261202010000EmergencyReview extends Migration {
  override up(): void {
    this.addSql(`create table "emergency_review" (
      "id" uuid not null,
      "grant_id" uuid not null,
      "organization_id" uuid not null,
      "opened_at" timestamptz not null,
      "due_at" timestamptz not null,
      "status" text check ("status" in ('open', 'closed')) not null,
      "outcome" text check ("outcome" in ('justified', 'not-justified', 'follow-up')) null,
      "note" text null,
      "reviewer" varchar(255) null,
      "closed_at" timestamptz null,
      "overdue_alerted_at" timestamptz null,
      primary key ("id"))`);
    this.addSql(`alter table "emergency_review" add constraint "emergency_review_grant_id_unique" unique ("grant_id")`);
    this.addSql(`alter table "emergency_review" add constraint "emergency_review_grant_id_foreign" foreign key ("grant_id") references "emergency_access" ("id")`);
    this.addSql(`alter table "emergency_review" add constraint "emergency_review_organization_id_foreign" foreign key ("organization_id") references "organization" ("id")`);
    this.addSql(`alter table "emergency_review" add constraint "emergency_review_closed_check" check (("status" = 'open') = ("outcome" is null and "closed_at" is null and "reviewer" is null))`);
    this.addSql(`create index "emergency_review_organization_id_status_opened_at_index" on "emergency_review" ("organization_id", "status", "opened_at")`);
    this.addSql(`create index "emergency_review_due_index" on "emergency_review" ("due_at") where "status" = 'open'`);
    this.addSql(`create table "notification_outbox" (
      "id" uuid not null,
      "kind" varchar(64) not null,
      "patient_id" uuid not null,
      "payload" jsonb not null,
      "created_at" timestamptz not null,
      "delivered_at" timestamptz null,
      primary key ("id"))`);
    this.addSql(`alter table "notification_outbox" add constraint "notification_outbox_patient_id_foreign" foreign key ("patient_id") references "patient" ("id")`);
    this.addSql(`create index "notification_outbox_pending_index" on "notification_outbox" ("created_at") where "delivered_at" is null`);
  }

  override down(): void {
    this.addSql(`drop table if exists "notification_outbox" cascade`);
    this.addSql(`drop table if exists "emergency_review" cascade`);
  }
}
