import type { Database } from '../db/index.js';
import { isPurposeOfUse, PURPOSES_OF_USE } from '../auth/index.js';
import { auditEntries, auditEventFromRow, auditEventId, type AuditAction, type FieldRecord, type StoredAuditEvent } from './events.js';

/**
 * Export of the audit trail for an accounting of disclosures (HIPAA
 * §164.528) or a SIEM feed: every event with recorded_at in [from, to), in
 * (row id, position) order, read in pages by keyset (after the last event
 * read), so memory stays one page whatever the range. Two line formats:
 *
 * - `ndjson`: one event per line, camelCase keys as stored (fields as an array).
 * - `fhir`: one FHIR R4 AuditEvent resource per line (the bulk-data NDJSON convention).
 *
 * Events carry no PHI values (field names, ids, codes and request facts
 * only), and neither does the export.
 *
 * Consistency: the ids of the range are fixed when the export starts (its
 * first and last id), so rows written while it runs do not join it. An event
 * is stamped before its batch commits, so export ranges that end a few
 * seconds in the past: an in-flight batch can still land inside a range
 * whose end is "now".
 */

export type AuditExportFormat = 'ndjson' | 'fhir';
export const AUDIT_EXPORT_FORMATS: readonly AuditExportFormat[] = ['ndjson', 'fhir'];

/** An exported event is the event as stored. */
export type ExportedAuditEvent = StoredAuditEvent;

export interface AuditExportRange {
  /** Inclusive. */
  from: Date;
  /** Exclusive. */
  to: Date;
  /** Rows per query; 1,000 by default. */
  pageSize?: number;
}

export const DEFAULT_EXPORT_PAGE_SIZE = 1_000;
const MAX_EXPORT_PAGE_SIZE = 10_000;

/**
 * Every event with recorded_at in [from, to), in (row id, position) order,
 * one page per query. The id bounds of the range are read first (through
 * the recorded_at index), then each page is a primary-key range scan
 * starting at the last row of the page before (a row of grouped events can
 * span pages).
 */
export async function* exportAuditEvents(db: Database, range: AuditExportRange): AsyncGenerator<ExportedAuditEvent, void, undefined> {
  const { from, to } = range;
  if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) throw new RangeError('the export range needs valid dates');
  if (from.getTime() >= to.getTime()) return;
  const pageSize = Math.trunc(range.pageSize ?? DEFAULT_EXPORT_PAGE_SIZE);
  if (!(pageSize >= 1 && pageSize <= MAX_EXPORT_PAGE_SIZE)) throw new RangeError(`the page size must be 1 to ${MAX_EXPORT_PAGE_SIZE}`);
  const fromIso = from.toISOString();
  const toIso = to.toISOString();
  const em = db.fork();
  const [bounds] = await em.execute<{ first: string | number | null; last: string | number | null }[]>(
    'select min("id") as "first", max("id") as "last" from "audit_event" where "recorded_at" >= ?::timestamptz and "recorded_at" < ?::timestamptz',
    [fromIso, toIso],
  );
  if (bounds?.first === null || bounds?.first === undefined || bounds.last === null) return;
  // Ids as text: bigint keeps its precision whatever the driver does with it.
  let after = { id: BigInt(bounds.first).toString(), position: '0' };
  const last = BigInt(bounds.last).toString();
  const inRange = 'e."id" >= ?::bigint and e."id" <= ?::bigint and e."recorded_at" >= ?::timestamptz and e."recorded_at" < ?::timestamptz';
  for (;;) {
    const page = await em.execute<Record<string, unknown>[]>(
      `select * from ${auditEntries(inRange)} as "entry" where ("id", "position") > (?::bigint, ?::bigint) order by "id", "position" limit ?`,
      [after.id, last, fromIso, toIso, after.id, after.position, pageSize],
    );
    const events = page.map(auditEventFromRow);
    yield* events;
    const final = events[events.length - 1];
    if (page.length < pageSize || !final) return;
    after = { id: String(final.id), position: String(final.position) };
  }
}

/** The `ndjson` line of an event (without the newline). */
export function toNdjson(event: ExportedAuditEvent): string {
  return JSON.stringify(event);
}

/*
 * FHIR R4 AuditEvent mapping. Codes used, all from standard code systems
 * except the role codes (this API's own roles, local code system):
 *
 * - type: DICOM 110110 "Patient Record" (DCM; "Patient Record Audit Event:
 *   created, read, updated, or deleted"), for every event: each one is a
 *   use of (part of) a patient's record.
 * - subtype: FHIR restful-interaction read | create | update | delete, from
 *   the event's action (the GraphQL operation is the interaction).
 * - action: C | R | U | D (audit-event-action), from the event's action.
 * - outcome: "0" success when every field was allowed or masked; "4" minor
 *   failure when some field was denied or failed to decrypt (the rest of the
 *   response was served). outcomeDesc lists those fields with their outcome
 *   and reason (names and reasons, never values).
 * - purposeOfEvent: the request's purpose of use (v3-ActReason, the code
 *   system of HL7's PurposeOfUse value set: TREAT, HPAYMT, ...), and
 *   ETREAT "Emergency Treatment" when the read was under a break-the-glass
 *   grant (the grant id is an entity detail). The caller agent carries the
 *   request's purpose as its purposeOfUse too, as IHE BALP does. Events
 *   recorded before purposes existed have only the emergency one.
 * - agent[0]: the caller. who.identifier.value = token subject, role = the
 *   token's roles (LOCAL_ROLE_SYSTEM), requestor true, network type "2" (IP
 *   address). The caller's organization is an extension (reference).
 *   agent[1], when the client named itself: DICOM 110150 "Application",
 *   requestor false, its name and version as who.display.
 * - source: observer display "phi-graph <subgraph>", type
 *   security-source-type "3" Web Server.
 * - entity, as IHE BALP does it:
 *   - the patient (when known): what Patient/<id>, type audit-entity-type
 *     "1" Person, role object-role "1" Patient (detail "emergencyGrantId"
 *     under break the glass);
 *   - the data: what <EntityType>/<id> (a literal reference when the type
 *     is a FHIR R4 resource type, else an identifier with that text as
 *     display), type "2" System Object, role "4" Domain Resource, one
 *     `detail` per field: type = the field ("Patient.ssn"), valueString =
 *     the outcome ("allowed" | "masked" | "denied:<reason>" | "failed:<reason>");
 *   - the request: BALP entity type XrequestId, what.identifier.value = the
 *     request id (shared by gateway and subgraphs);
 *   - the operation: type "2" System Object, role object-role "24" Query,
 *     name = operation name, detail "operationHash" (SHA-256 of the
 *     document; the document and variables are never stored).
 * - id: the event's id (auditEventId: the audit_event row id, then
 *   ".position" for the second and later events of a grouped row); extension AUDIT_BATCH_EXTENSION = the hash
 *   chain batch, so a resource can be checked against audit:verify.
 *
 * Access alerts (events of entity type AccessAlert, written by the access
 * watch into the same chain) are not uses of a record: type DICOM 110113
 * "Security Alert", action E (execute), no restful subtype; the alert and
 * its count/threshold are the data entity's detail, as for fields.
 */

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const RESTFUL_INTERACTION = 'http://hl7.org/fhir/restful-interaction';
const ACT_REASON = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const SOURCE_TYPE = 'http://terminology.hl7.org/CodeSystem/security-source-type';
const BALP_ENTITY_TYPE = 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType';
/** This API's roles (clinician, billing, ...): a local code system. */
export const LOCAL_ROLE_SYSTEM = 'urn:phi-graph:fhir:CodeSystem:role';
export const AGENT_ORGANIZATION_EXTENSION = 'urn:phi-graph:fhir:StructureDefinition:agent-organization';
export const AUDIT_BATCH_EXTENSION = 'urn:phi-graph:fhir:StructureDefinition:audit-batch';
const LOCAL_ENTITY_SYSTEM = 'urn:phi-graph:fhir:entity:';

/** Entity types of this API that are FHIR R4 resource types of the same meaning, referenced as Type/id. */
const FHIR_RESOURCE_TYPES: ReadonlySet<string> = new Set([
  'Patient', 'Practitioner', 'Organization', 'CareTeam', 'Encounter', 'Condition', 'MedicationRequest', 'Observation', 'AllergyIntolerance',
  'Coverage', 'Claim', 'Invoice',
]);

const ACTION_CODE: Record<AuditAction, 'C' | 'R' | 'U' | 'D'> = { create: 'C', read: 'R', update: 'U', delete: 'D' };
/** The entity type of the access watch's alert events (see alerts.ts). */
export const ACCESS_ALERT_ENTITY = 'AccessAlert';

export interface FhirCoding {
  system: string;
  code: string;
  display?: string;
}

export interface FhirReference {
  reference?: string;
  identifier?: { system?: string; value: string };
  display?: string;
}

export interface FhirExtension {
  url: string;
  valueString?: string;
  valueReference?: FhirReference;
  valueUnsignedInt?: number;
}

export interface FhirAuditEventEntity {
  what?: FhirReference;
  type?: FhirCoding;
  role?: FhirCoding;
  name?: string;
  detail?: { type: string; valueString: string }[];
}

export interface FhirAuditEventAgent {
  extension?: FhirExtension[];
  type?: { coding: FhirCoding[] };
  role?: { coding: FhirCoding[]; text?: string }[];
  who: FhirReference;
  requestor: boolean;
  network?: { address: string; type: '1' | '2' | '3' | '4' | '5' };
  purposeOfUse?: FhirCodeableConcept[];
}

interface FhirCodeableConcept {
  coding: FhirCoding[];
  text?: string;
}

/** The FHIR R4 AuditEvent of one event (only the elements this mapping fills). */
export interface FhirAuditEvent {
  resourceType: 'AuditEvent';
  id: string;
  extension: FhirExtension[];
  type: FhirCoding;
  subtype?: FhirCoding[];
  action: 'C' | 'R' | 'U' | 'D' | 'E';
  recorded: string;
  outcome: '0' | '4' | '8' | '12';
  outcomeDesc?: string;
  purposeOfEvent?: FhirCodeableConcept[];
  agent: FhirAuditEventAgent[];
  source: { observer: FhirReference; type: FhirCoding[] };
  entity: FhirAuditEventEntity[];
}

/** "allowed", "masked", "denied:<reason>" or "failed:<reason>" (the detail value of a field). */
export function fieldOutcomeText(field: FieldRecord): string {
  return field.reason ? `${field.outcome}:${field.reason}` : field.outcome;
}

function dataReference(entityType: string, entityId: string | null): FhirReference {
  if (entityId === null) return { display: entityType };
  if (FHIR_RESOURCE_TYPES.has(entityType)) return { reference: `${entityType}/${entityId}` };
  return { identifier: { system: `${LOCAL_ENTITY_SYSTEM}${entityType}`, value: entityId }, display: `${entityType}/${entityId}` };
}

export function toFhirAuditEvent(event: ExportedAuditEvent): FhirAuditEvent {
  const denied = event.fields.filter((field) => field.outcome === 'denied' || field.outcome === 'failed');
  const alert = event.entityType === ACCESS_ALERT_ENTITY;
  const purpose: FhirCodeableConcept | null = event.purpose
    ? { coding: [{ system: ACT_REASON, code: event.purpose, ...(isPurposeOfUse(event.purpose) && { display: PURPOSES_OF_USE[event.purpose] }) }], text: 'purpose of use' }
    : null;
  const purposes: FhirCodeableConcept[] = [
    ...(purpose ? [purpose] : []),
    ...(event.emergency ? [{ coding: [{ system: ACT_REASON, code: 'ETREAT', display: 'Emergency Treatment' }], text: 'break-the-glass access' }] : []),
  ];
  const caller: FhirAuditEventAgent = {
    ...(event.organizationId && {
      extension: [{ url: AGENT_ORGANIZATION_EXTENSION, valueReference: { reference: `Organization/${event.organizationId}` } }],
    }),
    ...(event.roles.length > 0 && { role: event.roles.map((role) => ({ coding: [{ system: LOCAL_ROLE_SYSTEM, code: role }], text: role })) }),
    who: { identifier: { value: event.subject } },
    requestor: true,
    ...(event.ip && { network: { address: event.ip, type: '2' as const } }),
    ...(purpose && { purposeOfUse: [purpose] }),
  };
  const agents: FhirAuditEventAgent[] = [caller];
  if (event.clientName) {
    agents.push({
      type: { coding: [{ system: DCM, code: '110150', display: 'Application' }] },
      who: { display: event.clientVersion ? `${event.clientName} ${event.clientVersion}` : event.clientName },
      requestor: false,
    });
  }
  const entities: FhirAuditEventEntity[] = [];
  if (event.patientId) {
    entities.push({
      what: { reference: `Patient/${event.patientId}` },
      type: { system: ENTITY_TYPE, code: '1', display: 'Person' },
      role: { system: OBJECT_ROLE, code: '1', display: 'Patient' },
      ...(event.emergencyGrantId && { detail: [{ type: 'emergencyGrantId', valueString: event.emergencyGrantId }] }),
    });
  }
  entities.push({
    what: dataReference(event.entityType, event.entityId),
    type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
    role: { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' },
    ...(event.fields.length > 0 && { detail: event.fields.map((field) => ({ type: field.field, valueString: fieldOutcomeText(field) })) }),
  });
  entities.push({
    what: { identifier: { value: event.requestId } },
    type: { system: BALP_ENTITY_TYPE, code: 'XrequestId', display: 'X-Request-Id' },
  });
  entities.push({
    what: { display: 'GraphQL operation' },
    type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
    role: { system: OBJECT_ROLE, code: '24', display: 'Query' },
    ...(event.operationName && { name: event.operationName }),
    detail: [{ type: 'operationHash', valueString: event.operationHash }],
  });
  return {
    resourceType: 'AuditEvent',
    id: auditEventId(event),
    extension: [{ url: AUDIT_BATCH_EXTENSION, valueUnsignedInt: event.batchSequence }],
    ...(alert
      ? { type: { system: DCM, code: '110113', display: 'Security Alert' }, action: 'E' as const }
      : {
          type: { system: DCM, code: '110110', display: 'Patient Record' },
          subtype: [{ system: RESTFUL_INTERACTION, code: event.action, display: event.action }],
          action: ACTION_CODE[event.action],
        }),
    recorded: event.recordedAt,
    outcome: denied.length > 0 ? '4' : '0',
    ...(denied.length > 0 && { outcomeDesc: denied.map((field) => `${field.outcome}: ${field.field} (${field.reason ?? 'no reason given'})`).join(', ') }),
    ...(purposes.length > 0 && { purposeOfEvent: purposes }),
    agent: agents,
    source: { observer: { display: `phi-graph ${event.subgraph}` }, type: [{ system: SOURCE_TYPE, code: '3', display: 'Web Server' }] },
    entity: entities,
  };
}

/** One line (without the newline) of the chosen format. */
export function formatAuditEvent(event: ExportedAuditEvent, format: AuditExportFormat): string {
  return format === 'fhir' ? JSON.stringify(toFhirAuditEvent(event)) : toNdjson(event);
}

/** The export as lines, each ending in a newline, for a writer to stream. */
export async function* exportAuditLines(db: Database, range: AuditExportRange, format: AuditExportFormat): AsyncGenerator<string, void, undefined> {
  for await (const event of exportAuditEvents(db, range)) yield `${formatAuditEvent(event, format)}\n`;
}
