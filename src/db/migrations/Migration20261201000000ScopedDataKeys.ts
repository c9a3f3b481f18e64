import { Migration } from '@mikro-orm/migrations';

/**
 * Data keys per scope: each data key serves one (table, data category),
 * named in `scope` (`patient/ssn`, `clinical_note/clinicalNote`, ...).
 * The scope is also bound into the key's wrapping, so editing this column
 * does not make a key serve other data: the key no longer unwraps.
 * Keys made before this migration keep `scope` null: they are read until
 * `npm run keys:reencrypt` has moved their values to scoped keys.
 */
export class Migration20261201000000ScopedDataKeys extends Migration {
  override up(): void {
    this.addSql(`alter table "data_key" add "scope" text null`);
    this.addSql(`create index "data_key_scope_kek_version_index" on "data_key" ("scope", "kek_version")`);
  }

  override down(): void {
    this.addSql(`drop index "data_key_scope_kek_version_index"`);
    this.addSql(`alter table "data_key" drop column "scope"`);
  }
}
