import type { Practitioner } from '../../db/entities.js';
import type { Resolvers } from './__generated__/resolvers-types.js';
import { notFound } from '../../errors.js';
import { grantAnswer, mutations } from './mutations.js';
import { API_SCOPES, listConsents, patientConsents } from './consents.js';
import { toFhirConsent } from '../../policy/consent.js';
import type { ConsentActorRole } from './__generated__/resolvers-types.js';
import { listAuditEvents, listDisclosures } from './audit-queries.js';
import { accessEventCountOf,
  sensitiveDataReadOf, accessEventsOf, dataKindsOf, listEmergencyReviews } from './emergency-reviews.js';
import { auditEventId } from '../../audit/index.js';
import { ageAt } from '../../policy/index.js';
import { DateScalar, DateTimeScalar } from '../scalars.js';
import { asStringArray, asText, sealedColumn } from '../sealed-fields.js';
import { isUuid, pageSize, TOP_LEVEL_PAGE } from '../pagination.js';
import {
  careTeamById,
  careTeamMemberIds,
  findPatientByMrn,
  listPatients,
  organizationById,
  patientById,
  practitionerById,
} from './repository.js';

const AGE_BANDS: readonly [number, string][] = [
  [18, '0-17'],
  [30, '18-29'],
  [40, '30-39'],
  [50, '40-49'],
  [60, '50-59'],
  [70, '60-69'],
  [80, '70-79'],
  [90, '80-89'],
];
const OLDEST_BAND = '90+';

function ageGroupOf(birthDate: string, today: Date): string {
  const age = ageAt(birthDate, today);
  return AGE_BANDS.find(([below]) => age < below)?.[1] ?? OLDEST_BAND;
}

function humanName(givenNames: readonly string[], familyName: string) {
  return { given: [...givenNames], family: familyName, text: [...givenNames, familyName].join(' ') };
}

/** The plaintext of patient.name: {"given": [...], "family": "..."}. */
function nameFromJson(json: string) {
  const { given, family } = JSON.parse(json) as { given: string[]; family: string };
  return humanName(given, family);
}

export const resolvers: Resolvers = {
  Date: DateScalar,
  DateTime: DateTimeScalar,
  Query: {
    viewer: (_parent, _args, { principal, requestId }) => ({ principal, requestId }),
    // Out of scope and absent look the same: null with NOT_FOUND, so existence does not leak.
    patient: async (_parent, { id }, { loader, ids }) => {
      const stored = ids.stored('Patient', id);
      return (stored !== null && isUuid(stored) ? await loader(patientById).load(stored) : null) ?? Promise.reject(notFound('Patient'));
    },
    patients: (_parent, { first, after, filter }, { em, access, cursors, logger }) =>
      listPatients({ em, access, cursors, logger }, pageSize(first, TOP_LEVEL_PAGE), after, filter),
    auditEvents: (_parent, { filter, first, after }, { em, principal, cursors }) => listAuditEvents(em, principal, cursors, filter, first, after),
    myDisclosures: (_parent, { first, after }, { em, principal, cursors }) => listDisclosures(em, principal, cursors, first, after),
    emergencyReviews: (_parent, { status, first, after }, { em, principal, cursors }) => listEmergencyReviews(em, principal, cursors, status, first, after),
    myConsents: (_parent, { first, after }, { em, principal, cursors }) =>
      listConsents(em, cursors, 'Query.myConsents', principal.roles.includes('patient') ? principal.patientId : null, first, after),
    patientConsents: (_parent, { patientId, first, after }, context) => patientConsents(context, patientId, first, after),
    patientByMrn: async (_parent, { mrn }, { em, access, cursors, logger, sealer, plaintextForBenchmark }) =>
      (await findPatientByMrn({ em, access, cursors, logger }, sealer.indexKeys, mrn, plaintextForBenchmark)) ?? Promise.reject(notFound('Patient')),
  },
  Mutation: mutations,
  Consent: {
    scope: (consent) => API_SCOPES[consent.scope],
    actorRole: (consent) => (consent.actorRole ?? null) as ConsentActorRole | null,
    sensitiveData: (consent) => consent.sensitivities,
    periodStart: (consent) => consent.periodStart.toISOString(),
    periodEnd: (consent) => consent.periodEnd?.toISOString() ?? null,
    recordedAt: (consent) => consent.recordedAt?.toISOString() ?? null,
    revokedAt: (consent) => consent.revokedAt?.toISOString() ?? null,
    fhir: (consent) => JSON.stringify(toFhirConsent(consent)),
  },
  EmergencyReview: {
    // The patient follows its own rules (row scope, fields): the reviewer reads MRN and name, never clinical values.
    patient: (review, _args, { loader }) => loader(patientById).load(review.patientId),
    overdue: (review) => review.status === 'open' && Date.parse(review.dueAt) < Date.now(),
    dataKinds: (review, _args, { em }) => dataKindsOf(em, review),
    accessEvents: (review, _args, { em }) => accessEventsOf(em, review),
    accessEventCount: (review, _args, { em }) => accessEventCountOf(em, review),
    sensitiveDataRead: (review, _args, { em }) => sensitiveDataReadOf(em, review),
  },
  AuditEvent: {
    // The stored row id, and the event's position in it when the row groups several events.
    id: (event) => auditEventId(event),
  },
  Viewer: {
    subject: ({ principal }) => principal.subject,
    roles: ({ principal }) => [...principal.roles],
    organizationId: ({ principal }) => principal.organizationId,
    patientId: ({ principal }) => principal.patientId,
    mfa: ({ principal }) => principal.mfa,
    tokenExpiresAt: ({ principal }) => principal.expiresAt.toISOString(),
    requestId: ({ requestId }) => requestId,
    emergencyAccess: async (_viewer, _args, { access }) =>
      (await access.emergencyGrants()).map(grantAnswer),
  },
  Patient: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(patientById).load(id) : null),
    mrn: (patient) => sealedColumn('patient', patient, 'mrn', patient.mrn, asText),
    name: (patient) => sealedColumn('patient', patient, 'name', patient.name, nameFromJson),
    birthDate: (patient) => sealedColumn('patient', patient, 'birth_date', patient.birthDate, asText),
    ageGroup: (patient) => sealedColumn('patient', patient, 'birth_date', patient.birthDate, (date) => ageGroupOf(date, new Date())),
    ssn: (patient) => sealedColumn('patient', patient, 'ssn', patient.ssn, asText),
    phone: (patient) => sealedColumn('patient', patient, 'phone', patient.phone, asText),
    email: (patient) => sealedColumn('patient', patient, 'email', patient.email, asText),
    address: (patient) => (patient.city ? { patient } : null),
    careTeam: (patient, _args, { loader }) => (patient.careTeam ? loader(careTeamById).load(patient.careTeam.id) : null),
    managingOrganization: (patient, _args, { loader }) => loader(organizationById).load(patient.managingOrganization.id),
  },
  Address: {
    line: ({ patient }) => sealedColumn('patient', patient, 'address_lines', patient.addressLines, asStringArray),
    city: ({ patient }) => sealedColumn('patient', patient, 'city', patient.city, asText),
    state: ({ patient }) => sealedColumn('patient', patient, 'state', patient.state, asText),
    postalCode: ({ patient }) => sealedColumn('patient', patient, 'postal_code', patient.postalCode, asText),
  },
  CareTeam: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(careTeamById).load(id) : null),
    managingOrganization: async (team, _args, { loader }) => {
      const organization = await loader(organizationById).load(team.organization.id);
      if (!organization) throw new Error(`Care team ${team.id} names a missing organization`);
      return organization;
    },
    members: async (team, _args, { loader }) => {
      const ids = await loader(careTeamMemberIds).load(team.id);
      const practitioners = await loader(practitionerById).loadMany(ids);
      return practitioners.filter((practitioner): practitioner is Practitioner => practitioner !== null && !(practitioner instanceof Error));
    },
  },
  Practitioner: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(practitionerById).load(id) : null),
    name: (practitioner) => humanName(practitioner.givenNames, practitioner.familyName),
  },
  Organization: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(organizationById).load(id) : null),
  },
};
