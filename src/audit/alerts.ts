import type { Cache } from '../cache/index.js';
import type { Logger } from '../logger.js';
import type { AuditEventRecord, FieldRecord, RequestFacts } from './events.js';

/**
 * Watching access: per-principal counters in the cache (Redis in
 * production), per hour: distinct patients read, fields refused, SSN reads.
 * Crossing a threshold records an alert in the audit trail and logs a
 * warning (subject, counter, count; no PHI). Break-the-glass always alerts,
 * and so does every change of who is on a care team (it changes who sees
 * which patients), accepted or refused (raised by the mutation itself,
 * through the request's collector).
 */
export interface AlertThresholds {
  distinctPatientsPerHour: number;
  deniedFieldsPerHour: number;
  ssnReadsPerHour: number;
}

export const DEFAULT_ALERT_THRESHOLDS: AlertThresholds = { distinctPatientsPerHour: 200, deniedFieldsPerHour: 100, ssnReadsPerHour: 50 };
const HOUR_SECONDS = 3600;
const SSN_FIELD = 'Patient.ssn';

/** An hourly counter crossed its threshold, or break the glass (count and threshold 1). */
export interface CountAlert {
  kind: 'distinct-patients-per-hour' | 'denied-fields-per-hour' | 'ssn-reads-per-hour' | 'emergency-access';
  count: number;
  threshold: number;
}

/** Why a care-team change was refused: the practitioner is the caller's own, or the caller's token carries a care-team role. */
export type CareTeamRefusal = 'SELF_GRANT' | 'SEPARATION_OF_DUTIES';

/** A practitioner was added to a care team (`care-team-change`), or an attempt was refused (`care-team-change-refused`). Ids only. */
export type CareTeamAlert =
  | { kind: 'care-team-change'; careTeamId: string; practitionerId: string }
  | { kind: 'care-team-change-refused'; careTeamId: string; practitionerId: string; refusal: CareTeamRefusal };

/** A break-the-glass review still open past its due time (raised once per review by the housekeeping timer). Ids only. */
export interface OverdueReviewAlert {
  kind: 'emergency-review-overdue';
  reviewId: string;
  grantId: string;
}

export type Alert = CountAlert | CareTeamAlert | OverdueReviewAlert;
export type AlertKind = Alert['kind'];

function hourBucket(now: Date): string {
  return now.toISOString().slice(0, 13);
}

/** What one request's events did to the principal's hourly counters: the alerts raised, and how many distinct patients it has read this hour. */
export interface AccessWatch {
  alerts: Alert[];
  /** Distinct patients whose data the principal read this hour, this request included. */
  patients: number;
  /** Of them, read under break-the-glass grants. */
  emergencyPatients: number;
}

/** Updates the counters with one request's events and returns the alerts it raises. */
export async function watchAccess(cache: Cache, events: readonly AuditEventRecord[], thresholds: AlertThresholds, now = new Date()): Promise<AccessWatch> {
  const subject = events[0]?.subject;
  if (!subject) return { alerts: [], patients: 0, emergencyPatients: 0 };
  const bucket = `access-watch:${subject}:${hourBucket(now)}`;
  const alerts: Alert[] = [];
  const patients = [...new Set(events.filter((event) => event.action === 'read' && event.patientId).map((event) => event.patientId as string))];
  const denied = events.reduce((sum, event) => sum + event.fields.filter((field) => field.outcome === 'denied').length, 0);
  const ssnReads = events.reduce((sum, event) => sum + event.fields.filter((field) => field.field === SSN_FIELD && field.outcome !== 'denied').length, 0);

  let readPatients = 0;
  let emergencyPatients = 0;
  const underGrants = [...new Set(events.filter((event) => event.action === 'read' && event.emergency && event.patientId).map((event) => event.patientId as string))];
  if (underGrants.length > 0) emergencyPatients = (await cache.addToSet(`${bucket}:emergency-patients`, underGrants, HOUR_SECONDS)).size;
  if (patients.length > 0) {
    const { added, size: after } = await cache.addToSet(`${bucket}:patients`, patients, HOUR_SECONDS);
    readPatients = after;
    const before = after - added;
    if (before < thresholds.distinctPatientsPerHour && after >= thresholds.distinctPatientsPerHour) {
      alerts.push({ kind: 'distinct-patients-per-hour', count: after, threshold: thresholds.distinctPatientsPerHour });
    }
  }
  for (const [kind, amount, threshold] of [
    ['denied-fields-per-hour', denied, thresholds.deniedFieldsPerHour],
    ['ssn-reads-per-hour', ssnReads, thresholds.ssnReadsPerHour],
  ] as const) {
    if (amount === 0) continue;
    const count = await cache.increment(`${bucket}:${kind}`, HOUR_SECONDS, amount);
    if (count - amount < threshold && count >= threshold) alerts.push({ kind, count, threshold });
  }
  if (events.some((event) => event.emergency || (event.entityType === 'EmergencyAccess' && event.action === 'create'))) {
    alerts.push({ kind: 'emergency-access', count: 1, threshold: 1 });
  }
  return { alerts, patients: readPatients, emergencyPatients };
}

/**
 * What the alert's record says, as its field's outcome and reason: a
 * counter's count/threshold; a care-team change's team and practitioner ids
 * (`careTeam=<id> practitioner=<id>`), a refused one as denied, with why.
 */
function alertRecord(alert: Alert): FieldRecord {
  const field = `alert:${alert.kind}`;
  switch (alert.kind) {
    case 'distinct-patients-per-hour':
    case 'denied-fields-per-hour':
    case 'ssn-reads-per-hour':
    case 'emergency-access':
      return { field, outcome: 'allowed', reason: `${alert.count}/${alert.threshold}` };
    case 'care-team-change':
      return { field, outcome: 'allowed', reason: `careTeam=${alert.careTeamId} practitioner=${alert.practitionerId}` };
    case 'care-team-change-refused':
      return { field, outcome: 'denied', reason: `${alert.refusal} careTeam=${alert.careTeamId} practitioner=${alert.practitionerId}` };
    case 'emergency-review-overdue':
      return { field, outcome: 'allowed', reason: `review=${alert.reviewId} grant=${alert.grantId}` };
  }
}

/** An alert as an audit event of its own (entity AccessAlert), so it is chained and exported like any other. */
export function alertEvent(alert: Alert, facts: RequestFacts, recordedAt: Date): AuditEventRecord {
  return {
    ...facts,
    recordedAt: recordedAt.toISOString(),
    patientId: null,
    entityType: 'AccessAlert',
    entityId: null,
    action: 'read',
    fields: [alertRecord(alert)],
    emergency: alert.kind === 'emergency-access',
    emergencyGrantId: null,
  };
}

/** What a log line says of an alert besides its kind: ids and counts, never a value. */
function alertDetails(alert: Alert): Record<string, string | number> {
  switch (alert.kind) {
    case 'distinct-patients-per-hour':
    case 'denied-fields-per-hour':
    case 'ssn-reads-per-hour':
    case 'emergency-access':
      return { count: alert.count, threshold: alert.threshold };
    case 'care-team-change':
      return { careTeamId: alert.careTeamId, practitionerId: alert.practitionerId };
    case 'care-team-change-refused':
      return { careTeamId: alert.careTeamId, practitionerId: alert.practitionerId, refusal: alert.refusal };
    case 'emergency-review-overdue':
      return { reviewId: alert.reviewId, grantId: alert.grantId };
  }
}

export function logAlerts(logger: Logger, alerts: readonly Alert[], facts: RequestFacts): void {
  for (const alert of alerts) {
    logger.warn({ event: 'access-alert', alert: alert.kind, ...alertDetails(alert), subject: facts.subject, requestId: facts.requestId }, 'access alert');
  }
}
