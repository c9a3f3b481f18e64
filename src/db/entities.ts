import { defineEntity, p } from '@mikro-orm/core';

/**
 * MikroORM entities. Column names follow the default underscore naming
 * strategy; the migrations in ./migrations are generated from these
 * definitions and a test checks they stay in step.
 */

export const OrganizationSchema = defineEntity({
  name: 'Organization',
  tableName: 'organization',
  properties: {
    id: p.uuid().primary(),
    name: p.string(),
    type: p.enum(['provider', 'payer', 'partner'] as const),
    /**
     * The data categories (src/policy/categories.ts) a partner organization's
     * sharing agreement grants; empty for everyone else. A partner token
     * reads, of its role's decisions, only these (src/subgraphs/access.ts).
     */
    sharedCategories: p.array().defaultRaw(`'{}'`),
  },
});
export class Organization extends OrganizationSchema.class {}
OrganizationSchema.setClass(Organization);

export const PractitionerSchema = defineEntity({
  name: 'Practitioner',
  tableName: 'practitioner',
  properties: {
    id: p.uuid().primary(),
    organization: () => p.manyToOne(Organization).index(),
    givenNames: p.array(),
    familyName: p.string(),
    npi: p.string().length(10).unique(),
    qualification: p.enum(['physician', 'nurse', 'billing_specialist'] as const),
  },
});
export class Practitioner extends PractitionerSchema.class {}
PractitionerSchema.setClass(Practitioner);

export const CareTeamSchema = defineEntity({
  name: 'CareTeam',
  tableName: 'care_team',
  properties: {
    id: p.uuid().primary(),
    organization: () => p.manyToOne(Organization).index(),
    name: p.string(),
  },
});
export class CareTeam extends CareTeamSchema.class {}
CareTeamSchema.setClass(CareTeam);

export const CareTeamMemberSchema = defineEntity({
  name: 'CareTeamMember',
  tableName: 'care_team_member',
  properties: {
    careTeam: () => p.manyToOne(CareTeam).primary(),
    practitioner: () => p.manyToOne(Practitioner).primary().index(),
  },
});
export class CareTeamMember extends CareTeamMemberSchema.class {}
CareTeamMemberSchema.setClass(CareTeamMember);

export const PatientSchema = defineEntity({
  name: 'Patient',
  tableName: 'patient',
  properties: {
    id: p.uuid().primary(),
    // Encrypted columns (bytea, see db/encryption.ts): ciphertext once crypto_version is 1.
    mrn: p.blob(),
    mrnIndex: p.blob().nullable().unique(),
    /** JSON {"given": [...], "family": "..."} */
    name: p.blob(),
    birthDate: p.blob().nullable(),
    gender: p.enum(['male', 'female', 'other', 'unknown'] as const),
    ssn: p.blob().nullable(),
    ssnIndex: p.blob().nullable().index(),
    /** JSON array of street lines */
    addressLines: p.blob().nullable(),
    city: p.blob().nullable(),
    state: p.blob().nullable(),
    postalCode: p.blob().nullable(),
    phone: p.blob().nullable(),
    email: p.blob().nullable(),
    emailIndex: p.blob().nullable().index(),
    /** 0: the encrypted columns still hold plaintext (a database from before encryption); 1: ciphertext. */
    cryptoVersion: p.smallint().default(0),
    managingOrganization: () => p.manyToOne(Organization).index(),
    careTeam: () => p.manyToOne(CareTeam).nullable().index(),
    consents: () => p.oneToMany(Consent).mappedBy('patient'),
  },
});
export class Patient extends PatientSchema.class {}
PatientSchema.setClass(Patient);

export const EncounterSchema = defineEntity({
  name: 'Encounter',
  tableName: 'encounter',
  indexes: [{ properties: ['patient', 'periodStart', 'id'] }],
  properties: {
    id: p.uuid().primary(),
    patient: () => p.manyToOne(Patient),
    status: p.enum(['planned', 'in_progress', 'finished', 'cancelled'] as const),
    class: p.enum(['ambulatory', 'emergency', 'inpatient', 'virtual'] as const),
    typeCode: p.string(),
    typeDisplay: p.string(),
    periodStart: p.datetime(),
    periodEnd: p.datetime().nullable(),
    practitioner: () => p.manyToOne(Practitioner).nullable(),
  },
});
export class Encounter extends EncounterSchema.class {}
EncounterSchema.setClass(Encounter);

export const ConditionSchema = defineEntity({
  name: 'Condition',
  tableName: 'condition',
  indexes: [{ properties: ['patient', 'recordedDate', 'id'] }],
  // Only the label codes this API knows (src/policy/sensitivity.ts); a row with any other is withheld as well.
  checks: [{ name: 'condition_security_labels_check', expression: `"security_labels" <@ '{PSY,SUD,HIV,SEX,STD,SDV,ETH,R,V}'::text[]` }],
  properties: {
    id: p.uuid().primary(),
    patient: () => p.manyToOne(Patient),
    encounter: () => p.manyToOne(Encounter).nullable(),
    code: p.blob(),
    display: p.blob(),
    cryptoVersion: p.smallint().default(0),
    clinicalStatus: p.enum(['active', 'recurrence', 'inactive', 'resolved'] as const),
    onsetDate: p.date().nullable(),
    recordedDate: p.date(),
    /**
     * Sensitivity labels (src/policy/sensitivity.ts), derived from the row's codes when written; bound into the associated
     * data of its encrypted values. Null: not derived yet (a row from before labels), withheld from every request not cleared for all categories.
     */
    securityLabels: p.array().nullable(),
  },
});
export class Condition extends ConditionSchema.class {}
ConditionSchema.setClass(Condition);

export const MedicationRequestSchema = defineEntity({
  name: 'MedicationRequest',
  tableName: 'medication_request',
  indexes: [{ properties: ['patient', 'authoredOn', 'id'] }],
  // Only the label codes this API knows (src/policy/sensitivity.ts); a row with any other is withheld as well.
  checks: [{ name: 'medication_request_security_labels_check', expression: `"security_labels" <@ '{PSY,SUD,HIV,SEX,STD,SDV,ETH,R,V}'::text[]` }],
  properties: {
    id: p.uuid().primary(),
    patient: () => p.manyToOne(Patient),
    rxnormCode: p.string(),
    display: p.string(),
    dosageInstruction: p.string(),
    status: p.enum(['active', 'completed', 'stopped', 'cancelled'] as const),
    authoredOn: p.date(),
    requester: () => p.manyToOne(Practitioner).nullable(),
    /**
     * Sensitivity labels (src/policy/sensitivity.ts), derived from the row's codes when written; bound into the associated
     * data of its encrypted values. Null: not derived yet (a row from before labels), withheld from every request not cleared for all categories.
     */
    securityLabels: p.array().nullable(),
  },
});
export class MedicationRequest extends MedicationRequestSchema.class {}
MedicationRequestSchema.setClass(MedicationRequest);

export const ObservationSchema = defineEntity({
  name: 'Observation',
  tableName: 'observation',
  indexes: [{ properties: ['patient', 'effectiveAt', 'id'] }],
  properties: {
    id: p.uuid().primary(),
    patient: () => p.manyToOne(Patient),
    encounter: () => p.manyToOne(Encounter).nullable(),
    loincCode: p.string(),
    display: p.string(),
    value: p.blob(),
    cryptoVersion: p.smallint().default(0),
    unit: p.string(),
    effectiveAt: p.datetime(),
  },
});
export class Observation extends ObservationSchema.class {}
ObservationSchema.setClass(Observation);

export const AllergyIntoleranceSchema = defineEntity({
  name: 'AllergyIntolerance',
  tableName: 'allergy_intolerance',
  indexes: [{ properties: ['patient', 'recordedDate', 'id'] }],
  properties: {
    id: p.uuid().primary(),
    patient: () => p.manyToOne(Patient),
    snomedCode: p.string(),
    display: p.string(),
    criticality: p.enum(['low', 'high', 'unable_to_assess'] as const),
    reaction: p.string().nullable(),
    recordedDate: p.date(),
  },
});
export class AllergyIntolerance extends AllergyIntoleranceSchema.class {}
AllergyIntoleranceSchema.setClass(AllergyIntolerance);

export const ClinicalNoteSchema = defineEntity({
  name: 'ClinicalNote',
  tableName: 'clinical_note',
  indexes: [{ properties: ['patient', 'createdAt', 'id'] }],
  // Only the label codes this API knows (src/policy/sensitivity.ts); a row with any other is withheld as well.
  checks: [{ name: 'clinical_note_security_labels_check', expression: `"security_labels" <@ '{PSY,SUD,HIV,SEX,STD,SDV,ETH,R,V}'::text[]` }],
  properties: {
    id: p.uuid().primary(),
    patient: () => p.manyToOne(Patient),
    encounter: () => p.manyToOne(Encounter).nullable(),
    author: () => p.manyToOne(Practitioner).nullable(),
    typeCode: p.string(),
    typeDisplay: p.string(),
    text: p.blob(),
    cryptoVersion: p.smallint().default(0),
    createdAt: p.datetime(),
    /**
     * Sensitivity labels (src/policy/sensitivity.ts), derived from the row's codes when written; bound into the associated
     * data of its encrypted values. Null: not derived yet (a row from before labels), withheld from every request not cleared for all categories.
     */
    securityLabels: p.array().nullable(),
  },
});
export class ClinicalNote extends ClinicalNoteSchema.class {}
ClinicalNoteSchema.setClass(ClinicalNote);

export const CoverageSchema = defineEntity({
  name: 'Coverage',
  tableName: 'coverage',
  indexes: [{ properties: ['patient', 'periodStart', 'id'] }],
  properties: {
    id: p.uuid().primary(),
    patient: () => p.manyToOne(Patient),
    payer: p.string(),
    memberId: p.blob(),
    cryptoVersion: p.smallint().default(0),
    plan: p.string(),
    status: p.enum(['active', 'cancelled'] as const),
    periodStart: p.datetime(),
    periodEnd: p.datetime().nullable(),
  },
});
export class Coverage extends CoverageSchema.class {}
CoverageSchema.setClass(Coverage);

export const ClaimSchema = defineEntity({
  name: 'Claim',
  tableName: 'claim',
  indexes: [{ properties: ['patient', 'createdAt', 'id'] }],
  // Only the label codes this API knows (src/policy/sensitivity.ts); a row with any other is withheld as well.
  checks: [{ name: 'claim_security_labels_check', expression: `"security_labels" <@ '{PSY,SUD,HIV,SEX,STD,SDV,ETH,R,V}'::text[]` }],
  properties: {
    id: p.uuid().primary(),
    patient: () => p.manyToOne(Patient),
    coverage: () => p.manyToOne(Coverage).nullable(),
    encounter: () => p.manyToOne(Encounter).nullable(),
    status: p.enum(['draft', 'submitted', 'accepted', 'denied', 'paid'] as const),
    totalCents: p.integer(),
    currency: p.string().length(3),
    /** JSON array of ICD-10-CM codes */
    diagnosisCodes: p.blob(),
    cryptoVersion: p.smallint().default(0),
    createdAt: p.datetime(),
    /**
     * Sensitivity labels (src/policy/sensitivity.ts), derived from the row's codes when written; bound into the associated
     * data of its encrypted values. Null: not derived yet (a row from before labels), withheld from every request not cleared for all categories.
     */
    securityLabels: p.array().nullable(),
  },
});
export class Claim extends ClaimSchema.class {}
ClaimSchema.setClass(Claim);

export const InvoiceSchema = defineEntity({
  name: 'Invoice',
  tableName: 'invoice',
  indexes: [{ properties: ['patient', 'issuedAt', 'id'] }],
  properties: {
    id: p.uuid().primary(),
    patient: () => p.manyToOne(Patient),
    claim: () => p.manyToOne(Claim).nullable(),
    status: p.enum(['issued', 'partially_paid', 'paid', 'cancelled'] as const),
    totalCents: p.integer(),
    balanceCents: p.integer(),
    currency: p.string().length(3),
    issuedAt: p.datetime(),
  },
});
export class Invoice extends InvoiceSchema.class {}
InvoiceSchema.setClass(Invoice);

export const PaymentSchema = defineEntity({
  name: 'Payment',
  tableName: 'payment',
  indexes: [{ properties: ['patient', 'receivedAt', 'id'] }],
  properties: {
    id: p.uuid().primary(),
    patient: () => p.manyToOne(Patient),
    invoice: () => p.manyToOne(Invoice),
    amountCents: p.integer(),
    currency: p.string().length(3),
    method: p.enum(['card', 'ach', 'check', 'insurance'] as const),
    receivedAt: p.datetime(),
  },
});
export class Payment extends PaymentSchema.class {}
PaymentSchema.setClass(Payment);

/**
 * A patient's consent, one FHIR R4 Consent with one provision
 * (src/policy/consent.ts): it permits or denies an actor (an organization,
 * a role, or both) some purposes and sensitive data for a period. Partner
 * sharing and research consents also make the partner and researcher row
 * scopes; their sensitive categories, and those of treatment consents,
 * clear or withhold labelled rows.
 */
export const ConsentSchema = defineEntity({
  name: 'Consent',
  tableName: 'consent',
  indexes: [{ properties: ['organization', 'scope', 'status'] }],
  checks: [
    { name: 'consent_sensitivities_check', expression: `"sensitivities" <@ '{PSY,SUD,HIV,SEX,STD,SDV}'::text[]` },
    { name: 'consent_purposes_check', expression: `cardinality("purposes") > 0 and "purposes" <@ '{TREAT,ETREAT,HPAYMT,HOPERAT,HRESCH,PUBHLTH,PATRQT,HSYSADMIN}'::text[]` },
    { name: 'consent_actor_role_check', expression: `"actor_role" is null or "actor_role" in ('partner', 'researcher', 'clinician', 'nurse', 'billing')` },
    { name: 'consent_organization_check', expression: `("scope" = 'research') = ("organization_id" is null)` },
  ],
  properties: {
    id: p.uuid().primary(),
    patient: () => p.manyToOne(Patient).index(),
    organization: () => p.manyToOne(Organization).nullable().deleteRule('restrict'),
    scope: p.enum(['partner-sharing', 'research', 'treatment'] as const),
    status: p.enum(['active', 'revoked'] as const),
    periodStart: p.datetime(),
    periodEnd: p.datetime().nullable(),
    decision: p.enum(['permit', 'deny'] as const).default('permit'),
    /** The actor role (null: every role the scope concerns). */
    actorRole: p.string().nullable(),
    /** Purposes of use a permit covers, always listed; a deny covers every purpose. */
    purposes: p.array().defaultRaw(`'{}'`),
    /** Sensitivity categories it permits or denies (empty: none). */
    sensitivities: p.array().defaultRaw(`'{}'`),
    source: p.enum(['patient', 'paper', 'migrated', 'imported'] as const).default('patient'),
    /** Who recorded it (token subject; the migration and the seed leave it null). */
    recordedBy: p.string().nullable(),
    recordedAt: p.datetime().nullable(),
    revokedAt: p.datetime().nullable(),
    revokedBy: p.string().nullable(),
    /** For a consent signed on paper: where the signed form is kept (document id, scan reference). */
    documentReference: p.string().nullable(),
    /** For a revocation staff recorded: where the patient's signed revocation is kept. */
    revocationReference: p.string().nullable(),
  },
});
export class Consent extends ConsentSchema.class {}
ConsentSchema.setClass(Consent);

/**
 * Break the glass: a record of every emergency access grant. The grant in
 * force lives in the cache with a TTL; this row is the durable record.
 */
export const EmergencyAccessSchema = defineEntity({
  name: 'EmergencyAccess',
  tableName: 'emergency_access',
  indexes: [{ properties: ['subject', 'expiresAt'] }],
  properties: {
    id: p.uuid().primary(),
    subject: p.string(),
    patient: () => p.manyToOne(Patient).index(),
    reason: p.text(),
    grantedAt: p.datetime(),
    expiresAt: p.datetime(),
    /** The sensitivity categories the reason was given for: labelled rows of these (only) are shown under the grant. */
    sensitiveCategories: p.array().defaultRaw(`'{}'`),
  },
});
export class EmergencyAccess extends EmergencyAccessSchema.class {}
EmergencyAccessSchema.setClass(EmergencyAccess);

/**
 * The review of one break-the-glass grant, opened in the grant's own
 * transaction and closed by a privacy officer of the patient's
 * organization with an outcome (src/subgraphs/emergency-review.ts).
 */
export const EmergencyReviewSchema = defineEntity({
  name: 'EmergencyReview',
  tableName: 'emergency_review',
  indexes: [
    { properties: ['organization', 'status', 'openedAt'] },
    { name: 'emergency_review_due_index', expression: `create index "emergency_review_due_index" on "emergency_review" ("due_at") where "status" = 'open'` },
  ],
  checks: [
    {
      name: 'emergency_review_closed_check',
      expression: `("status" = 'open' and "outcome" is null and "note" is null and "reviewer" is null and "closed_at" is null) or ("status" = 'closed' and "outcome" is not null and "note" is not null and "reviewer" is not null and "closed_at" is not null)`,
    },
  ],
  properties: {
    id: p.uuid().primary(),
    grant: () => p.oneToOne(EmergencyAccess).owner(),
    organization: () => p.manyToOne(Organization),
    openedAt: p.datetime(),
    dueAt: p.datetime(),
    status: p.enum(['open', 'closed'] as const),
    outcome: p.enum(['justified', 'not-justified', 'follow-up'] as const).nullable(),
    note: p.text().nullable(),
    reviewer: p.string().nullable(),
    closedAt: p.datetime().nullable(),
    overdueAlertedAt: p.datetime().nullable(),
  },
});
export class EmergencyReview extends EmergencyReviewSchema.class {}
EmergencyReviewSchema.setClass(EmergencyReview);

/**
 * Messages for the organisation's messaging system to deliver, written in
 * the transaction of what they announce; ids and times only, never PHI.
 */
export const NotificationOutboxSchema = defineEntity({
  name: 'NotificationOutbox',
  tableName: 'notification_outbox',
  indexes: [{ name: 'notification_outbox_pending_index', expression: `create index "notification_outbox_pending_index" on "notification_outbox" ("created_at") where "delivered_at" is null` }],
  properties: {
    id: p.uuid().primary(),
    kind: p.string().length(64),
    patient: () => p.manyToOne(Patient),
    payload: p.json<Record<string, string | number | null>>(),
    createdAt: p.datetime(),
    deliveredAt: p.datetime().nullable(),
  },
});
export class NotificationOutbox extends NotificationOutboxSchema.class {}
NotificationOutboxSchema.setClass(NotificationOutbox);

/** Data keys, wrapped by a key-encryption key of the key ring (envelope encryption). */
export const DataKeySchema = defineEntity({
  name: 'DataKey',
  tableName: 'data_key',
  indexes: [{ properties: ['scope', 'kekVersion'] }],
  properties: {
    id: p.integer().primary().autoincrement(),
    kekVersion: p.integer().index(),
    wrapped: p.blob(),
    /** `table/category`, bound into the wrapping; null for a key made before scopes. */
    scope: p.text().nullable(),
    createdAt: p.datetime(),
  },
});
export class DataKey extends DataKeySchema.class {}
DataKeySchema.setClass(DataKey);

/**
 * The audit trail: each row is one or more events of a (request, subgraph,
 * entity type, action) with the fields read or refused and their outcomes;
 * never a value. A row's events are its (patientIds[i], entityIds[i]); rows
 * written before grouping hold one event in patientId and entityId. Rows are
 * appended in batches (one per request), each batch hash-chained to the one
 * before (audit_batch); triggers refuse updates, and deletes of rows that are
 * not past retention.
 */
export const AuditEventSchema = defineEntity({
  name: 'AuditEvent',
  tableName: 'audit_event',
  indexes: [
    { properties: ['patientId', 'recordedAt'] },
    { properties: ['subject', 'recordedAt'] },
    { properties: ['recordedAt'] },
    { name: 'audit_event_patient_ids_index', expression: 'create index "audit_event_patient_ids_index" on "audit_event" using gin ("patient_ids")' },
    {
      name: 'audit_event_emergency_grant_id_index',
      expression: 'create index "audit_event_emergency_grant_id_index" on "audit_event" ("emergency_grant_id") where "emergency_grant_id" is not null',
    },
  ],
  properties: {
    id: p.bigint('number').primary().autoincrement(),
    batchSequence: p.bigint('number').index(),
    recordedAt: p.datetime(),
    requestId: p.string(),
    subgraph: p.string(),
    subject: p.string(),
    roles: p.array(),
    organizationId: p.uuid().nullable(),
    clientName: p.string().nullable(),
    clientVersion: p.string().nullable(),
    ip: p.string().nullable(),
    operationName: p.string().nullable(),
    operationHash: p.string(),
    /** The request's purpose of use (HL7 v3 PurposeOfUse); null in events recorded before purposes existed. */
    purpose: p.string().length(32).nullable(),
    /** Every role of the token, when the request acted with fewer (its purpose's); null otherwise. */
    tokenRoles: p.array().nullable(),
    patientId: p.uuid().nullable(),
    entityType: p.string(),
    entityId: p.string().nullable(),
    patientIds: p.array().columnType('uuid[]').nullable(),
    entityIds: p.array().nullable(),
    action: p.enum(['read', 'create', 'update', 'delete'] as const),
    /** [{ field, outcome: allowed | masked | denied, reason? }] */
    fields: p.json<{ field: string; outcome: 'allowed' | 'masked' | 'failed' | 'denied' | 'withheld'; reason?: string }[]>(),
    emergency: p.boolean(),
    emergencyGrantId: p.uuid().nullable(),
  },
});
export class AuditEvent extends AuditEventSchema.class {}
AuditEventSchema.setClass(AuditEvent);

export const AuditBatchSchema = defineEntity({
  name: 'AuditBatch',
  tableName: 'audit_batch',
  properties: {
    sequence: p.bigint('number').primary().autoincrement(false),
    recordedAt: p.datetime(),
    eventCount: p.integer(),
    /** SHA-256 of the batch's events in their canonical form. */
    payloadDigest: p.blob(),
    previousHash: p.blob(),
    /** sha256(previous_hash || payload_digest) */
    hash: p.blob(),
  },
});
export class AuditBatch extends AuditBatchSchema.class {}
AuditBatchSchema.setClass(AuditBatch);

/** The head of the hash chain (one row), or a checkpoint a purge left. */
export const AuditChainSchema = defineEntity({
  name: 'AuditChain',
  tableName: 'audit_chain',
  properties: {
    id: p.smallint().primary().autoincrement(false),
    sequence: p.bigint('number'),
    hash: p.blob(),
    /** The first batch kept after the last purge (verification starts there). */
    checkpointSequence: p.bigint('number'),
    checkpointPreviousHash: p.blob(),
    retentionDays: p.integer(),
  },
});
export class AuditChain extends AuditChainSchema.class {}
AuditChainSchema.setClass(AuditChain);

/** Accounts that can sign in: one per practitioner and patient, plus staff and partner accounts. */
export const AppUserSchema = defineEntity({
  name: 'AppUser',
  tableName: 'app_user',
  properties: {
    id: p.uuid().primary(),
    subject: p.string().unique(),
    roles: p.array(),
    organization: () => p.manyToOne(Organization).nullable(),
    practitioner: () => p.manyToOne(Practitioner).nullable(),
    patient: () => p.manyToOne(Patient).nullable(),
  },
});
export class AppUser extends AppUserSchema.class {}
AppUserSchema.setClass(AppUser);

/** A mutation's Idempotency-Key (src/subgraphs/writes.ts): what it was bound to (a digest, never the values) and what it wrote. */
export const IdempotencyKeySchema = defineEntity({
  name: 'IdempotencyKey',
  tableName: 'idempotency_key',
  properties: {
    subject: p.text().primary(),
    key: p.text().primary(),
    coordinate: p.text(),
    requestDigest: p.blob(),
    resultId: p.text().nullable(),
    createdAt: p.datetime().defaultRaw('now()').index(),
  },
});
export class IdempotencyKey extends IdempotencyKeySchema.class {}
IdempotencyKeySchema.setClass(IdempotencyKey);

/** A revoked token id until the token would have expired (src/db/revocations.ts); the cache holds a copy. */
export const RevokedTokenSchema = defineEntity({
  name: 'RevokedToken',
  tableName: 'revoked_token',
  properties: {
    jti: p.text().primary(),
    expiresAt: p.datetime().index(),
    revokedAt: p.datetime().defaultRaw('now()'),
  },
});
export class RevokedToken extends RevokedTokenSchema.class {}
RevokedTokenSchema.setClass(RevokedToken);

export const ENTITIES = [
  Organization,
  Practitioner,
  CareTeam,
  CareTeamMember,
  Patient,
  Encounter,
  Condition,
  MedicationRequest,
  Observation,
  AllergyIntolerance,
  ClinicalNote,
  Coverage,
  Claim,
  Invoice,
  Payment,
  Consent,
  EmergencyAccess,
  EmergencyReview,
  NotificationOutbox,
  DataKey,
  AuditEvent,
  AuditBatch,
  AuditChain,
  AppUser,
  IdempotencyKey,
  RevokedToken,
];
