import { createHash } from 'node:crypto';

/**
 * An audit event: one (request, subgraph, patient, entity, action) with the
 * fields read or refused and their outcomes. It never holds a value: field
 * names, ids, codes and request facts only.
 */
export type FieldOutcome = 'allowed' | 'masked' | 'denied';
export type AuditAction = 'read' | 'create' | 'update' | 'delete';

export interface FieldRecord {
  field: string;
  outcome: FieldOutcome;
  reason?: string;
}

export interface RequestFacts {
  requestId: string;
  subgraph: string;
  subject: string;
  roles: string[];
  organizationId: string | null;
  clientName: string | null;
  clientVersion: string | null;
  ip: string | null;
  operationName: string | null;
  /** SHA-256 of the operation document; the document and its variables are not stored. */
  operationHash: string;
}

export interface AuditEventRecord extends RequestFacts {
  recordedAt: string;
  patientId: string | null;
  entityType: string;
  entityId: string | null;
  action: AuditAction;
  fields: FieldRecord[];
  emergency: boolean;
  emergencyGrantId: string | null;
}

/** The canonical form hashed into the chain: fixed order, no optional keys. */
function canonical(event: AuditEventRecord): string {
  return JSON.stringify([
    new Date(event.recordedAt).toISOString(),
    event.requestId,
    event.subgraph,
    event.subject,
    [...event.roles],
    event.organizationId,
    event.clientName,
    event.clientVersion,
    event.ip,
    event.operationName,
    event.operationHash,
    event.patientId,
    event.entityType,
    event.entityId,
    event.action,
    event.fields.map((field) => [field.field, field.outcome, field.reason ?? null]),
    event.emergency,
    event.emergencyGrantId,
  ]);
}

/** SHA-256 over a batch's events; order-independent (sorted canonical forms). */
export function payloadDigest(events: readonly AuditEventRecord[]): Buffer {
  const hash = createHash('sha256');
  for (const line of events.map(canonical).sort()) hash.update(line).update('\n');
  return hash.digest();
}

export function chainHash(previous: Buffer, digest: Buffer): Buffer {
  return createHash('sha256').update(Buffer.concat([previous, digest])).digest();
}

export function operationHash(document: string): string {
  return createHash('sha256').update(document).digest('hex');
}
