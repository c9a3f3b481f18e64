import type { GraphQLError } from 'graphql';
import type { Principal } from '../auth/index.js';
import type { FieldDecision } from '../policy/index.js';
import { AuditGroup, type AuditCollector, type AuditTarget } from './collector.js';
import type { FieldOutcome } from './events.js';

/**
 * Turns a field decision into audit records: which patient and which
 * entity the field belongs to, and for mutations what is being changed (by
 * field name, never by value). Non-PHI fields are not recorded.
 */
interface Target extends AuditTarget {
  /** For mutations: the names of the input fields being written. */
  fields?: string[];
}

type Input = Record<string, unknown>;

const MUTATIONS: Record<string, (input: Input, principal: Principal) => Target> = {
  updateMyContact: (input, principal) => ({ patientId: stringOf(principal.patientId), entityType: 'Patient', entityId: stringOf(principal.patientId), action: 'update', fields: Object.keys(input) }),
  addClinicalNote: (input) => ({ patientId: stringOf(input['patientId']), entityType: 'ClinicalNote', entityId: null, action: 'create', fields: Object.keys(input) }),
  addCondition: (input) => ({ patientId: stringOf(input['patientId']), entityType: 'Condition', entityId: null, action: 'create', fields: Object.keys(input) }),
  recordPayment: (input) => ({ patientId: null, entityType: 'Invoice', entityId: stringOf(input['invoiceId']), action: 'update', fields: Object.keys(input) }),
  addCareTeamMember: (input) => ({ patientId: null, entityType: 'CareTeam', entityId: stringOf(input['careTeamId']), action: 'update', fields: ['members'] }),
  openEmergencyAccess: (input) => ({ patientId: stringOf(input['patientId']), entityType: 'EmergencyAccess', entityId: null, action: 'create', fields: ['reason', 'minutes'] }),
  // The outcome is a code of the review's decision, not a value of the record: on the record (hash-chained) with the close.
  grantConsent: (input, principal) => ({ patientId: stringOf(principal.patientId), entityType: 'Consent', entityId: null, action: 'create', fields: Object.keys(input) }),
  recordPaperConsent: (input) => ({ patientId: stringOf(input['patientId']), entityType: 'Consent', entityId: null, action: 'create', fields: Object.keys(input) }),
  importConsents: (input) => ({ patientId: stringOf(input['patientId']), entityType: 'Consent', entityId: null, action: 'create', fields: ['resources'] }),
  // The patient is the consent's: known once it is found (the record names the consent).
  revokeConsent: (input) => ({ patientId: null, entityType: 'Consent', entityId: stringOf(input['id']), action: 'update', fields: ['status'] }),
  closeEmergencyReview: (input) => ({ patientId: null, entityType: 'EmergencyReview', entityId: stringOf(input['id']), action: 'update', fields: [reviewOutcome(input['outcome']), 'note'] }),
};

const REVIEW_OUTCOMES: ReadonlySet<unknown> = new Set(['justified', 'notJustified', 'followUp']);

/** `outcome=<code>` for a close's outcome this API knows (anything else was refused by validation before it ran). */
function reviewOutcome(value: unknown): string {
  return REVIEW_OUTCOMES.has(value) ? `outcome=${String(value)}` : 'outcome';
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A record id as the audit trail stores it: every id of this API is a UUID.
 * Anything else a caller sent (a malformed id, half a megabyte of text) is
 * recorded as no id, never passed to the audit insert, which it would make
 * fail (and so withhold every response at the caller's will).
 */
function stringOf(value: unknown): string | null {
  return typeof value === 'string' && UUID.test(value) ? value : null;
}

function targetOf(type: string, field: string, parent: unknown, args: Input, principal: Principal): Target {
  if (type === 'Mutation') {
    const describe = MUTATIONS[field];
    const input = (args['input'] ?? {}) as Input;
    return describe ? describe(input, principal) : { patientId: null, entityType: 'Mutation', entityId: null, action: 'update' };
  }
  // A patient's consents are read through the query field: recorded on that patient's trail.
  if (type === 'Query' && (field === 'myConsents' || field === 'patientConsents')) {
    return { patientId: field === 'myConsents' ? stringOf(principal.patientId) : stringOf(args['patientId']), entityType: 'Consent', entityId: null, action: 'read' };
  }
  const row = (parent ?? {}) as { id?: unknown; patient?: { id?: unknown } };
  if (type === 'Patient') return { patientId: stringOf(row.id), entityType: 'Patient', entityId: stringOf(row.id), action: 'read' };
  const patientId = stringOf(row.patient?.id);
  if (type === 'Address') return { patientId, entityType: 'Patient', entityId: patientId, action: 'read' };
  return { patientId, entityType: type, entityId: stringOf(row.id), action: 'read' };
}

/**
 * The audit hook of one request. Reads are recorded per row: the row's
 * group (patient, entity, action) is worked out on its first PHI field and
 * kept by the row object, so the other fields of a list's rows cost a map
 * lookup each.
 */
export function auditFieldAccess(collector: AuditCollector, principal: Principal) {
  const groupsByRow = new WeakMap<object, { type: string; group: AuditGroup }>();
  // graphql resolves the fields of one object one after the other: the last row's group answers most lookups.
  let last: { parent: object; type: string; group: AuditGroup } | undefined;
  const groupOf = (type: string, field: string, parent: unknown, args: Input): AuditGroup | Target => {
    // Mutations and query fields: each field its own target (the root object is shared by all of them).
    if (type === 'Mutation' || type === 'Query' || parent === null || typeof parent !== 'object') return targetOf(type, field, parent, args, principal);
    if (last?.parent === parent && last.type === type) return last.group;
    const known = groupsByRow.get(parent);
    if (known?.type === type) {
      last = { parent, type, group: known.group };
      return known.group;
    }
    const group = collector.group(targetOf(type, field, parent, args, principal));
    groupsByRow.set(parent, { type, group });
    last = { parent, type, group };
    return group;
  };
  return (decision: FieldDecision, parent: unknown, args: Input, refusal: GraphQLError | null, failure?: string): void => {
    if (!decision.phi) return;
    // A field allowed whose value then could not be shown (failed to decrypt...) comes back here: recorded as `failed`, with its reason.
    const outcome: FieldOutcome = failure ? 'failed' : refusal ? 'denied' : decision.decision.kind === 'mask' ? 'masked' : 'allowed';
    const stated = refusal?.extensions['reason'];
    const reason = failure ?? (refusal ? (typeof stated === 'string' ? stated : 'ROLE_DENIED') : undefined);
    const target = groupOf(decision.type, decision.field, parent, args);
    if (target instanceof AuditGroup) {
      target.add(decision.coordinate, outcome, reason);
      return;
    }
    const group = collector.group(target);
    if (target.fields && target.fields.length > 0) {
      for (const name of target.fields) group.add(`${decision.coordinate}:${name}`, outcome, reason);
    } else {
      group.add(decision.coordinate, outcome, reason);
    }
  };
}
