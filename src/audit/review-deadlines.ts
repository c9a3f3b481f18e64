import { randomUUID } from 'node:crypto';
import type { Database } from '../db/index.js';
import type { Logger } from '../logger.js';
import { alertEvent, logAlerts, type OverdueReviewAlert } from './alerts.js';
import { operationHash, type AuditEventRecord, type RequestFacts } from './events.js';
import { DatabaseAuditStore } from './store.js';

/** The most overdue reviews alerted per run (the rest on the next run). */
const BATCH = 100;

/**
 * Break-the-glass reviews still open past their due time raise an access
 * alert, once each: a warning in the log and an `AccessAlert` event in the
 * audit trail (about the review's patient, so auditors and the patient's
 * accounting find it), written in the transaction that marks the review as
 * alerted (`overdue_alerted_at`): an alert is never lost nor raised twice,
 * by any number of processes. Run on the housekeeping timer (runtime.ts).
 */
export async function alertOverdueReviews(db: Database, logger: Logger, now = new Date()): Promise<number> {
  const facts: RequestFacts = {
    requestId: `housekeeping:${randomUUID()}`,
    subgraph: 'housekeeping',
    subject: 'system:housekeeping',
    roles: [],
    organizationId: null,
    clientName: null,
    clientVersion: null,
    ip: null,
    operationName: 'alertOverdueReviews',
    operationHash: operationHash(''),
    purpose: 'HOPERAT',
  };
  const alerts: OverdueReviewAlert[] = [];
  await db.fork().transactional(async (em) => {
    const rows = await em.execute<{ id: string; grant_id: string; organization_id: string; patient_id: string }[]>(
      `select r."id", r."grant_id", r."organization_id", g."patient_id" from "emergency_review" r join "emergency_access" g on g."id" = r."grant_id"
       where r."status" = 'open' and r."due_at" < ? and r."overdue_alerted_at" is null order by r."due_at" limit ? for update of r skip locked`,
      [now, BATCH],
    );
    if (rows.length === 0) return;
    await em.execute(`update "emergency_review" set "overdue_alerted_at" = ? where "id" in (${rows.map(() => '?').join(', ')})`, [now, ...rows.map((row) => row.id)], 'run');
    const events: AuditEventRecord[] = rows.map((row) => {
      const alert: OverdueReviewAlert = { kind: 'emergency-review-overdue', reviewId: row.id, grantId: row.grant_id };
      alerts.push(alert);
      return { ...alertEvent(alert, { ...facts, organizationId: row.organization_id }, now), patientId: row.patient_id };
    });
    await new DatabaseAuditStore(db).append(events, em);
  });
  logAlerts(logger, alerts, facts);
  return alerts.length;
}
