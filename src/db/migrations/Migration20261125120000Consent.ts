import { Migration } from '@mikro-orm/migrations';

/** Consents: sharing with a partner organization, or inclusion in the research cohort. */
export class Migration20261125120000Consent extends Migration {
  override up(): void {
    this.addSql(`create table "consent" ("id" uuid not null, "patient_id" uuid not null, "organization_id" uuid null, "scope" text not null, "status" text not null, "period_start" timestamptz not null, "period_end" timestamptz null, primary key ("id"))`);
    this.addSql(`create index "consent_patient_id_index" on "consent" ("patient_id")`);
    this.addSql(`create index "consent_organization_id_scope_status_index" on "consent" ("organization_id", "scope", "status")`);
    this.addSql(`alter table "consent" add constraint "consent_patient_id_foreign" foreign key ("patient_id") references "patient" ("id")`);
    this.addSql(`alter table "consent" add constraint "consent_organization_id_foreign" foreign key ("organization_id") references "organization" ("id") on delete set null`);
    this.addSql(`alter table "consent" add constraint "consent_scope_check" check ("scope" in ('partner-sharing', 'research'))`);
    this.addSql(`alter table "consent" add constraint "consent_status_check" check ("status" in ('active', 'revoked'))`);
  }

  override down(): void {
    this.addSql(`drop table if exists "consent" cascade`);
  }
}
