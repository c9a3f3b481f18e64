import { Migration } from '@mikro-orm/migrations';

/**
 * Field encryption, step 1 (schema): PHI columns become bytea, keeping
 * their values as UTF-8 plaintext with crypto_version = 0; blind-index
 * columns and the data_key table appear. Step 2 is a data migration run by
 * the application (db/encryption.ts, `npm run data:encrypt`, and on start
 * outside production): it encrypts rows in batches and sets
 * crypto_version = 1, so it is resumable and idempotent.
 */
export class Migration20261125140000FieldEncryption extends Migration {
  override up(): void {
    this.addSql(`create table "data_key" ("id" serial primary key, "kek_version" int not null, "wrapped" bytea not null, "created_at" timestamptz not null)`);
    this.addSql(`create index "data_key_kek_version_index" on "data_key" ("kek_version")`);

    this.addSql(`alter table "patient" add "name" bytea null, add "mrn_index" bytea null, add "ssn_index" bytea null, add "email_index" bytea null, add "crypto_version" smallint not null default 0`);
    this.addSql(`update "patient" set "name" = convert_to(json_build_object('given', to_json("given_names"), 'family', "family_name")::text, 'UTF8')`);
    this.addSql(`alter table "patient" alter column "name" set not null`);
    this.addSql(`alter table "patient" drop column "given_names", drop column "family_name"`);
    this.addSql(`alter table "patient" drop constraint "patient_mrn_unique"`);
    this.addSql(`alter table "patient" alter column "mrn" type bytea using convert_to("mrn", 'UTF8')`);
    this.addSql(`alter table "patient" alter column "birth_date" type bytea using convert_to(to_char("birth_date", 'YYYY-MM-DD'), 'UTF8')`);
    this.addSql(`alter table "patient" alter column "ssn" type bytea using convert_to("ssn", 'UTF8')`);
    this.addSql(`alter table "patient" alter column "address_lines" type bytea using convert_to(to_json("address_lines")::text, 'UTF8')`);
    for (const column of ['city', 'state', 'postal_code', 'phone', 'email']) {
      this.addSql(`alter table "patient" alter column "${column}" type bytea using convert_to("${column}", 'UTF8')`);
    }
    this.addSql(`alter table "patient" add constraint "patient_mrn_index_unique" unique ("mrn_index")`);
    this.addSql(`create index "patient_ssn_index_index" on "patient" ("ssn_index")`);
    this.addSql(`create index "patient_email_index_index" on "patient" ("email_index")`);

    const plain: [string, string][] = [
      ['coverage', 'member_id'],
      ['observation', 'value'],
      ['condition', 'code'],
      ['condition', 'display'],
      ['clinical_note', 'text'],
    ];
    for (const table of new Set(plain.map(([name]) => name).concat('claim'))) {
      this.addSql(`alter table "${table}" add "crypto_version" smallint not null default 0`);
    }
    for (const [table, column] of plain) {
      this.addSql(`alter table "${table}" alter column "${column}" type bytea using convert_to("${column}", 'UTF8')`);
    }
    this.addSql(`alter table "claim" alter column "diagnosis_codes" type bytea using convert_to(to_json("diagnosis_codes")::text, 'UTF8')`);
  }

  override down(): void {
    throw new Error('Field encryption cannot be rolled back by a migration: decrypt with the key ring first.');
  }
}
