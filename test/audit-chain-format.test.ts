import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { payloadDigest, type AuditEventRecord } from '../src/audit/index.js';
import { testAuditEvent } from './support/fixtures.js';

/**
 * The payload digest is part of the chain's format: batches already written,
 * `npm run audit:verify` and any outside verifier compute it the same way.
 * Written out here the slow, obvious way, from the format's description.
 */
function documentedDigest(events: readonly AuditEventRecord[]): string {
  const lines = events.map((event) =>
    JSON.stringify([
      new Date(event.recordedAt).toISOString(),
      event.requestId,
      event.subgraph,
      event.subject,
      event.roles,
      event.organizationId,
      event.clientName,
      event.clientVersion,
      event.ip,
      event.operationName,
      event.operationHash,
      // The purpose of use, in events that have one (events written before purposes existed have none).
      // Every role of the token, when the request acted with fewer, after the purpose (null if none).
      ...(event.tokenRoles ? [event.purpose ?? null, event.tokenRoles] : event.purpose ? [event.purpose] : []),
      event.patientId,
      event.entityType,
      event.entityId,
      event.action,
      event.fields.map((field) => [field.field, field.outcome, field.reason ?? null]),
      event.emergency,
      event.emergencyGrantId,
    ]),
  );
  return createHash('sha256')
    .update(lines.sort().map((line) => `${line}\n`).join(''))
    .digest('hex');
}

describe('the audit payload digest', () => {
  it('is SHA-256 over the sorted canonical JSON lines, for batches of one request and of several, in any order', () => {
    const shared = { recordedAt: '2026-01-02T03:04:05Z', roles: ['billing', 'auditor'], organizationId: '3f1c1a52-0000-4000-8000-000000000001', ip: '::1' };
    const events = [
      testAuditEvent('request-b', { ...shared, patientId: 'p2', entityType: 'Patient', entityId: 'p2', fields: [{ field: 'Patient.ssn', outcome: 'masked' }] }),
      testAuditEvent('request-b', { ...shared, patientId: 'p1', entityType: 'Patient', entityId: 'p1', fields: [{ field: 'Patient.mrn', outcome: 'denied', reason: 'MFA_REQUIRED' }] }),
      testAuditEvent('request-a', { ...shared, roles: ['billing'], subject: 'user "quoted" é', action: 'update', emergency: true, emergencyGrantId: 'g1' }),
      testAuditEvent('request-c', { ...shared, purpose: 'HPAYMT', patientId: 'p1', entityType: 'Patient', entityId: 'p1', fields: [{ field: 'Patient.name', outcome: 'allowed' }] }),
      testAuditEvent('request-c', { ...shared, purpose: 'HPAYMT', patientId: 'p2', entityType: 'Patient', entityId: 'p2', fields: [{ field: 'Patient.name', outcome: 'allowed' }] }),
      testAuditEvent('request-d', { ...shared, purpose: 'TREAT', roles: ['clinician'], tokenRoles: ['clinician', 'billing'], patientId: 'p2', entityType: 'Patient', entityId: 'p2' }),
      testAuditEvent('request-b', { ...shared, patientId: null, entityType: 'AccessAlert', fields: [] }),
    ];
    expect(payloadDigest(events).toString('hex')).toBe(documentedDigest(events));
    expect(payloadDigest([...events].reverse()).toString('hex')).toBe(documentedDigest(events));
    const oneRequest = events.filter((event) => event.requestId === 'request-b');
    expect(payloadDigest(oneRequest).toString('hex')).toBe(documentedDigest(oneRequest));
  });

  it('is the same for a batch of thousands of events, hashed in chunks, with field lists shared between events', () => {
    const fields = [{ field: 'Patient.name', outcome: 'allowed' as const }, { field: 'Patient.ssn', outcome: 'masked' as const }];
    const events = Array.from({ length: 3000 }, (_, index) =>
      testAuditEvent('request-big', { patientId: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`, entityType: 'Patient', entityId: `e${index}`, fields: index % 7 === 0 ? [...fields] : fields }),
    );
    expect(payloadDigest(events).toString('hex')).toBe(documentedDigest(events));
  });

  it('changes when any event changes', () => {
    const events = [testAuditEvent('request-a'), testAuditEvent('request-a', { patientId: 'p1' })];
    const digest = payloadDigest(events).toString('hex');
    expect(payloadDigest([events[0] as AuditEventRecord, { ...(events[1] as AuditEventRecord), fields: [{ field: 'Test.field', outcome: 'denied' }] }]).toString('hex')).not.toBe(digest);
    expect(payloadDigest([events[0] as AuditEventRecord, { ...(events[1] as AuditEventRecord), subject: 'someone else' }]).toString('hex')).not.toBe(digest);
    // A purpose added to an event recorded without one, or changed, is another event.
    const withPurpose = payloadDigest([events[0] as AuditEventRecord, { ...(events[1] as AuditEventRecord), purpose: 'TREAT' }]).toString('hex');
    expect(withPurpose).not.toBe(digest);
    expect(payloadDigest([events[0] as AuditEventRecord, { ...(events[1] as AuditEventRecord), purpose: 'HPAYMT' }]).toString('hex')).not.toBe(withPurpose);
  });
});
