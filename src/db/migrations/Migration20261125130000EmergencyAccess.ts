import { Migration } from '@mikro-orm/migrations';

/** The durable record of break-the-glass grants. */
export class Migration20261125130000EmergencyAccess extends Migration {
  override up(): void {
    this.addSql(`create table "emergency_access" ("id" uuid not null, "subject" varchar(255) not null, "patient_id" uuid not null, "reason" text not null, "granted_at" timestamptz not null, "expires_at" timestamptz not null, primary key ("id"))`);
    this.addSql(`create index "emergency_access_patient_id_index" on "emergency_access" ("patient_id")`);
    this.addSql(`create index "emergency_access_subject_expires_at_index" on "emergency_access" ("subject", "expires_at")`);
    this.addSql(`alter table "emergency_access" add constraint "emergency_access_patient_id_foreign" foreign key ("patient_id") references "patient" ("id")`);
  }

  override down(): void {
    this.addSql(`drop table if exists "emergency_access" cascade`);
  }
}
