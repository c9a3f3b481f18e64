import { Migration } from '@mikro-orm/migrations';

/**
 * Break-the-glass reviews are kept as written, in the database itself (for
 * every role, the owner's included, as the audit trail is): a review is
 * never deleted nor truncated; what identifies it (grant, organization,
 * when it opened, when it is due) never changes; it closes once (open to
 * closed, with outcome, note, reviewer and time all set) and a closed one
 * never changes again; the mark that its overdue alert was raised is set
 * once. A closed review holds all four facts of its closing, an open one
 * none.
 */
export class Migration20261202030000EmergencyReviewGuard extends Migration {
  override up(): void {
    this.addSql(`alter table "emergency_review" drop constraint "emergency_review_closed_check"`);
    this.addSql(`alter table "emergency_review" add constraint "emergency_review_closed_check" check (("status" = 'open' and "outcome" is null and "note" is null and "reviewer" is null and "closed_at" is null) or ("status" = 'closed' and "outcome" is not null and "note" is not null and "reviewer" is not null and "closed_at" is not null))`);
    this.addSql(`create or replace function phi_graph_emergency_review_guard() returns trigger language plpgsql as $$
      begin
        if tg_op in ('DELETE', 'TRUNCATE') then
          raise exception 'emergency reviews are kept: % of % refused', tg_op, tg_table_name using errcode = '42501';
        end if;
        if (new."id", new."grant_id", new."organization_id", new."opened_at", new."due_at") is distinct from (old."id", old."grant_id", old."organization_id", old."opened_at", old."due_at") then
          raise exception 'what identifies an emergency review does not change' using errcode = '42501';
        end if;
        if old."status" = 'closed' and (new."status", new."outcome", new."note", new."reviewer", new."closed_at") is distinct from (old."status", old."outcome", old."note", old."reviewer", old."closed_at") then
          raise exception 'a closed emergency review does not change' using errcode = '42501';
        end if;
        if old."overdue_alerted_at" is not null and new."overdue_alerted_at" is distinct from old."overdue_alerted_at" then
          raise exception 'an overdue alert is raised once' using errcode = '42501';
        end if;
        return new;
      end $$`);
    this.addSql(`create trigger "emergency_review_guard" before update or delete on "emergency_review" for each row execute function phi_graph_emergency_review_guard()`);
    this.addSql(`create trigger "emergency_review_no_truncate" before truncate on "emergency_review" for each statement execute function phi_graph_emergency_review_guard()`);
  }
}
