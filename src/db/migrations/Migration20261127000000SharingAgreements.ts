import { Migration } from '@mikro-orm/migrations';

/**
 * Sharing agreements: the data categories each partner organization is
 * granted (a pharmacy, a payer, a care-coordination service each get a
 * different set). A partner token reads, of its role's decisions, only the
 * categories of its organization; an organization without any (every one
 * that existed before this migration) grants nothing, so existing partner
 * organizations read nothing until an agreement is recorded for them.
 */
export class Migration20261127000000SharingAgreements extends Migration {
  override up(): void {
    this.addSql(`alter table "organization" add column "shared_categories" text[] not null default '{}'`);
  }

  override down(): void {
    this.addSql(`alter table "organization" drop column "shared_categories"`);
  }
}
