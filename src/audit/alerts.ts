import type { Cache } from '../cache/index.js';
import type { Logger } from '../logger.js';
import type { AuditEventRecord, RequestFacts } from './events.js';

/**
 * Watching access: per-principal counters in the cache (Redis in
 * production), per hour: distinct patients read, fields refused, SSN reads.
 * Crossing a threshold records an alert in the audit trail and logs a
 * warning (subject, counter, count; no PHI). Break-the-glass always alerts.
 */
export interface AlertThresholds {
  distinctPatientsPerHour: number;
  deniedFieldsPerHour: number;
  ssnReadsPerHour: number;
}

export const DEFAULT_ALERT_THRESHOLDS: AlertThresholds = { distinctPatientsPerHour: 200, deniedFieldsPerHour: 100, ssnReadsPerHour: 50 };
const HOUR_SECONDS = 3600;
const SSN_FIELD = 'Patient.ssn';

export type AlertKind = 'distinct-patients-per-hour' | 'denied-fields-per-hour' | 'ssn-reads-per-hour' | 'emergency-access';

export interface Alert {
  kind: AlertKind;
  count: number;
  threshold: number;
}

function hourBucket(now: Date): string {
  return now.toISOString().slice(0, 13);
}

/** Updates the counters with one request's events and returns the alerts it raises. */
export async function watchAccess(cache: Cache, events: readonly AuditEventRecord[], thresholds: AlertThresholds, now = new Date()): Promise<Alert[]> {
  const subject = events[0]?.subject;
  if (!subject) return [];
  const bucket = `access-watch:${subject}:${hourBucket(now)}`;
  const alerts: Alert[] = [];
  const patients = [...new Set(events.filter((event) => event.action === 'read' && event.patientId).map((event) => event.patientId as string))];
  const denied = events.reduce((sum, event) => sum + event.fields.filter((field) => field.outcome === 'denied').length, 0);
  const ssnReads = events.reduce((sum, event) => sum + event.fields.filter((field) => field.field === SSN_FIELD && field.outcome !== 'denied').length, 0);

  if (patients.length > 0) {
    const { added, size: after } = await cache.addToSet(`${bucket}:patients`, patients, HOUR_SECONDS);
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
  return alerts;
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
    fields: [{ field: `alert:${alert.kind}`, outcome: 'allowed', reason: `${alert.count}/${alert.threshold}` }],
    emergency: alert.kind === 'emergency-access',
    emergencyGrantId: null,
  };
}

export function logAlerts(logger: Logger, alerts: readonly Alert[], facts: RequestFacts): void {
  for (const alert of alerts) {
    logger.warn({ event: 'access-alert', alert: alert.kind, count: alert.count, threshold: alert.threshold, subject: facts.subject, requestId: facts.requestId }, 'access alert');
  }
}
