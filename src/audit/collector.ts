import type { AuditAction, AuditEventRecord, FieldOutcome, FieldRecord, RequestFacts } from './events.js';

/**
 * Collects the field reads and refusals of one subgraph request, grouped by
 * patient and entity. Resolver-side code adds to it synchronously; the
 * Apollo plugin writes it once, when the response is about to leave.
 */
export interface FieldAccess {
  patientId: string | null;
  entityType: string;
  entityId: string | null;
  action: AuditAction;
  field: string;
  outcome: FieldOutcome;
  reason?: string;
}

interface Group {
  patientId: string | null;
  entityType: string;
  entityId: string | null;
  action: AuditAction;
  fields: Map<string, FieldRecord>;
}

/** A stronger outcome replaces a weaker one for the same field of the same row (denied > masked > allowed). */
const STRENGTH: Record<FieldOutcome, number> = { allowed: 0, masked: 1, denied: 2 };

export class AuditCollector {
  readonly #groups = new Map<string, Group>();

  record(access: FieldAccess): void {
    const key = `${access.patientId ?? ''}|${access.entityType}|${access.entityId ?? ''}|${access.action}`;
    let group = this.#groups.get(key);
    if (!group) {
      group = { patientId: access.patientId, entityType: access.entityType, entityId: access.entityId, action: access.action, fields: new Map() };
      this.#groups.set(key, group);
    }
    const existing = group.fields.get(access.field);
    if (!existing || STRENGTH[access.outcome] > STRENGTH[existing.outcome]) {
      group.fields.set(access.field, { field: access.field, outcome: access.outcome, ...(access.reason && { reason: access.reason }) });
    }
  }

  get size(): number {
    return this.#groups.size;
  }

  /** The events to write, with the request's facts and the break-the-glass marks. */
  events(facts: RequestFacts, recordedAt: Date, emergencyGrants: ReadonlyMap<string, string>): AuditEventRecord[] {
    return [...this.#groups.values()].map((group) => {
      const grant = group.patientId ? emergencyGrants.get(group.patientId) ?? null : null;
      return {
        ...facts,
        recordedAt: recordedAt.toISOString(),
        patientId: group.patientId,
        entityType: group.entityType,
        entityId: group.entityId,
        action: group.action,
        fields: [...group.fields.values()],
        emergency: grant !== null,
        emergencyGrantId: grant,
      };
    });
  }
}
