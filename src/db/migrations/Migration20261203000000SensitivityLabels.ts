import { Migration } from '@mikro-orm/migrations';

/**
 * Sensitivity labels (src/policy/sensitivity.ts) on the clinical rows whose
 * codes can fall in a sensitive value set, and the categories a
 * break-the-glass reason was given for.
 *
 * Existing rows get null labels: "not derived yet". A null-labelled row is
 * withheld from every request that is not cleared for all categories until
 * the labelling step (`npm run data:label`; outside production it runs at start) has read
 * its codes and labelled it; nothing is shown that a label would withhold.
 */
export class Migration20261203000000SensitivityLabels extends Migration {
  override up(): void {
    for (const table of ['condition', 'medication_request', 'clinical_note', 'claim']) {
      this.addSql(`alter table "${table}" add column "security_labels" text[] null`);
      // Only the codes this API knows (src/policy/sensitivity.ts); the API also withholds a row with any other.
      this.addSql(`alter table "${table}" add constraint "${table}_security_labels_check" check ("security_labels" <@ '{PSY,SUD,HIV,SEX,STD,SDV,ETH,R,V}'::text[])`);
    }
    this.addSql(`alter table "emergency_access" add column "sensitive_categories" text[] not null default '{}'`);
  }
}
