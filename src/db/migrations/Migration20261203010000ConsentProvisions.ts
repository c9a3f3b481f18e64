import { Migration } from '@mikro-orm/migrations';

/**
 * Consents become FHIR R4 Consent provisions (src/policy/consent.ts): a
 * decision (permit or deny), an actor role, purposes of use, sensitivity
 * categories, where the consent came from, who recorded or revoked it and
 * when. A third scope, `treatment`, clears or withholds sensitive
 * categories for a provider organization's treating and billing roles.
 *
 * The existing partner-sharing and research consents keep their meaning,
 * nothing lost: each becomes a permit of its actor role (partner, for
 * TREAT and HPAYMT, the purposes a partner reads for; researcher, for
 * HRESCH) with no sensitive category, marked as migrated; their ids,
 * patients, organizations, statuses and periods stay. A permit's purposes
 * are always listed (never "any"), and only a research consent names no
 * organization.
 */
export class Migration20261203010000ConsentProvisions extends Migration {
  override up(): void {
    this.addSql(`alter table "consent" drop constraint "consent_scope_check"`);
    this.addSql(`alter table "consent" add constraint "consent_scope_check" check ("scope" in ('partner-sharing', 'research', 'treatment'))`);
    this.addSql(`alter table "consent" add column "decision" text not null default 'permit', add column "actor_role" varchar(255) null,
      add column "purposes" text[] not null default '{}', add column "sensitivities" text[] not null default '{}',
      add column "source" text not null default 'patient', add column "recorded_by" varchar(255) null, add column "recorded_at" timestamptz null,
      add column "revoked_at" timestamptz null, add column "revoked_by" varchar(255) null, add column "document_reference" varchar(255) null,
      add column "revocation_reference" varchar(255) null`);
    this.addSql(`alter table "consent" add constraint "consent_decision_check" check ("decision" in ('permit', 'deny'))`);
    this.addSql(`alter table "consent" add constraint "consent_source_check" check ("source" in ('patient', 'paper', 'migrated', 'imported'))`);
    this.addSql(`alter table "consent" add constraint "consent_sensitivities_check" check ("sensitivities" <@ '{PSY,SUD,HIV,SEX,STD,SDV}'::text[])`);
    this.addSql(`update "consent" set "source" = 'migrated',
      "actor_role" = case "scope" when 'partner-sharing' then 'partner' else 'researcher' end,
      "purposes" = case "scope" when 'research' then '{HRESCH}'::text[] else '{TREAT,HPAYMT}'::text[] end`);
    this.addSql(`alter table "consent" add constraint "consent_purposes_check" check (cardinality("purposes") > 0 and "purposes" <@ '{TREAT,ETREAT,HPAYMT,HOPERAT,HRESCH,PUBHLTH,PATRQT,HSYSADMIN}'::text[])`);
    this.addSql(`alter table "consent" add constraint "consent_actor_role_check" check ("actor_role" is null or "actor_role" in ('partner', 'researcher', 'clinician', 'nurse', 'billing'))`);
    // A partner-sharing consent whose organization was deleted (the key set it null) shared with nobody: kept, as revoked.
    this.addSql(`update "consent" set "status" = 'revoked', "revoked_at" = coalesce("revoked_at", now()) where "scope" <> 'research' and "organization_id" is null`);
    // From now on an organization with consents is not deleted from under them (its consents would name nobody).
    this.addSql(`alter table "consent" drop constraint "consent_organization_id_foreign"`);
    this.addSql(`alter table "consent" add constraint "consent_organization_id_foreign" foreign key ("organization_id") references "organization" ("id") on delete restrict`);
    this.addSql(`alter table "consent" add constraint "consent_organization_check" check (("scope" = 'research') = ("organization_id" is null))`);
  }
}
