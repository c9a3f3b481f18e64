import type { Alert } from './alerts.js';
import type { AuditAction, AuditEventRecord, FieldOutcome, FieldRecord, RequestFacts } from './events.js';

/**
 * Collects the field reads and refusals of one subgraph request, grouped by
 * patient and entity. Resolver-side code adds to it synchronously; the
 * Apollo plugin writes it once, when the response is about to leave.
 */
/** What a group of records is about: one patient, entity and action. */
export interface AuditTarget {
  patientId: string | null;
  entityType: string;
  entityId: string | null;
  action: AuditAction;
}

/** A stronger outcome replaces a weaker one for the same field of the same row (denied > failed > masked > allowed). */
const STRENGTH: Record<FieldOutcome, number> = { allowed: 0, masked: 1, withheld: 1, failed: 2, denied: 3 };

/**
 * Records without a reason are shared, one per (field, outcome): a list of a
 * thousand rows holds eleven of them, not eleven thousand, and their
 * canonical form is serialized once (events.ts).
 */
const SHARED_RECORDS = new Map<string, Map<FieldOutcome, FieldRecord>>();

function fieldRecord(field: string, outcome: FieldOutcome, reason: string | undefined): FieldRecord {
  if (reason) return { field, outcome, reason };
  let byOutcome = SHARED_RECORDS.get(field);
  if (!byOutcome) {
    byOutcome = new Map();
    SHARED_RECORDS.set(field, byOutcome);
  }
  let record = byOutcome.get(outcome);
  if (!record) {
    record = Object.freeze({ field, outcome });
    byOutcome.set(outcome, record);
  }
  return record;
}

/** The records of one (patient, entity, action): each field once, with its strongest outcome. */
export class AuditGroup {
  readonly fields = new Map<string, FieldRecord>();

  constructor(readonly target: AuditTarget) {}

  add(field: string, outcome: FieldOutcome, reason?: string): void {
    const existing = this.fields.get(field);
    if (existing && STRENGTH[outcome] <= STRENGTH[existing.outcome]) return;
    this.fields.set(field, fieldRecord(field, outcome, reason));
  }
}

/** Groups by action, entity type, patient and entity id: nested maps keyed by the rows' own strings (no key is built per row). */
type GroupIndex = Map<string, Map<string, Map<string, Map<string, AuditGroup>>>>;

function child<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}

/**
 * One list object per distinct sequence of field records in a request, so
 * a thousand rows read with the same fields and outcomes share one list,
 * and its canonical form (events.ts) is made once, not per row.
 */
class FieldListInterner {
  readonly #root: ListNode = { next: new Map() };

  of(fields: ReadonlyMap<string, FieldRecord>): FieldRecord[] {
    let node = this.#root;
    for (const record of fields.values()) node = child(node.next, record, (): ListNode => ({ next: new Map() }));
    node.list ??= [...fields.values()];
    return node.list;
  }
}

interface ListNode {
  next: Map<FieldRecord, ListNode>;
  list?: FieldRecord[];
}

export class AuditCollector {
  /** In the order they were made (the order events are written in). */
  readonly #groups = new Set<AuditGroup>();
  readonly #index: GroupIndex = new Map();
  readonly #alerts: Alert[] = [];
  readonly #written: AuditEventRecord[] = [];

  /** Events a mutation wrote in its own transaction, once it committed: the access watch counts them with the rest. */
  get written(): readonly AuditEventRecord[] {
    return this.#written;
  }

  recordWritten(events: readonly AuditEventRecord[]): void {
    this.#written.push(...events);
  }

  /** Alerts raised by the request's own code (a care-team change); the audit plugin logs and records them once the request's events are on record. */
  get alerts(): readonly Alert[] {
    return this.#alerts;
  }

  raise(alert: Alert): void {
    this.#alerts.push(alert);
  }

  /** The group of this target, made on first use. */
  group(target: AuditTarget): AuditGroup {
    const byType = child(this.#index, target.action, () => new Map<string, Map<string, Map<string, AuditGroup>>>());
    const byPatient = child(byType, target.entityType, () => new Map<string, Map<string, AuditGroup>>());
    const byEntity = child(byPatient, target.patientId ?? '', () => new Map<string, AuditGroup>());
    const entityKey = target.entityId ?? '';
    let group = byEntity.get(entityKey);
    if (!group) {
      group = new AuditGroup({ patientId: target.patientId, entityType: target.entityType, entityId: target.entityId, action: target.action });
      byEntity.set(entityKey, group);
      this.#groups.add(group);
    }
    return group;
  }

  get size(): number {
    return this.#groups.size;
  }

  /**
   * Takes the groups of writes (create, update, delete) out of the request's
   * collection: a mutation writes them in its own transaction, beside its
   * rows (src/subgraphs/writes.ts), so the audit plugin does not again.
   */
  takeWrites(): AuditGroup[] {
    const taken: AuditGroup[] = [];
    for (const group of this.#groups) {
      const { target } = group;
      if (target.action === 'read') continue;
      taken.push(group);
      this.#groups.delete(group);
      this.#index.get(target.action)?.get(target.entityType)?.get(target.patientId ?? '')?.delete(target.entityId ?? '');
    }
    return taken;
  }

  /**
   * Write groups that are still here when the response leaves were never
   * committed (input refused, nothing found, a transaction rolled back):
   * they are recorded as denied attempts, never as writes.
   */
  markUnwritten(reason = 'NOT_WRITTEN'): void {
    for (const group of this.#groups.values()) {
      if (group.target.action === 'read') continue;
      for (const field of [...group.fields.keys()]) group.add(field, 'denied', reason);
    }
  }

  /** Groups taken out and not written after all, back in (markUnwritten then records them as attempts). */
  restore(groups: readonly AuditGroup[]): void {
    for (const group of groups) {
      const { target } = group;
      const mine = this.group(target);
      for (const [field, record] of group.fields) mine.add(field, record.outcome, record.reason);
    }
  }

  /**
   * The events to write, with the request's facts and the break-the-glass
   * marks. Properties are listed, not spread from `facts`: V8 turns a spread
   * followed by more properties into a slow object, 20 µs each, 20 ms for a
   * thousand-row list.
   */
  events(facts: RequestFacts, recordedAt: Date, emergencyGrants: ReadonlyMap<string, string>, groups: Iterable<AuditGroup> = this.#groups.values()): AuditEventRecord[] {
    const at = recordedAt.toISOString();
    const lists = new FieldListInterner();
    const { requestId, subgraph, subject, roles, organizationId, clientName, clientVersion, ip, operationName, operationHash, purpose = null, tokenRoles = null } = facts;
    return [...groups].map(({ target, fields }) => {
      const grant = target.patientId ? emergencyGrants.get(target.patientId) ?? null : null;
      return {
        requestId,
        subgraph,
        subject,
        roles,
        organizationId,
        clientName,
        clientVersion,
        ip,
        operationName,
        operationHash,
        purpose,
        tokenRoles,
        recordedAt: at,
        patientId: target.patientId,
        entityType: target.entityType,
        entityId: target.entityId,
        action: target.action,
        fields: lists.of(fields),
        emergency: grant !== null,
        emergencyGrantId: grant,
      };
    });
  }
}
