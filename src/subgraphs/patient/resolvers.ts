import type { Practitioner } from '../../db/entities.js';
import type { Resolvers } from './__generated__/resolvers-types.js';
import { DateScalar, DateTimeScalar, toIsoDate } from '../scalars.js';
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

function humanName(givenNames: readonly string[], familyName: string) {
  return { given: [...givenNames], family: familyName, text: [...givenNames, familyName].join(' ') };
}

export const resolvers: Resolvers = {
  Date: DateScalar,
  DateTime: DateTimeScalar,
  Query: {
    viewer: (_parent, _args, { principal, requestId }) => ({ principal, requestId }),
    patient: (_parent, { id }, { loader }) => (isUuid(id) ? loader(patientById).load(id) : null),
    patients: (_parent, { first, after, filter }, { em }) =>
      listPatients(em, pageSize(first, TOP_LEVEL_PAGE), after, filter),
    patientByMrn: (_parent, { mrn }, { em }) => findPatientByMrn(em, mrn),
  },
  Viewer: {
    subject: ({ principal }) => principal.subject,
    roles: ({ principal }) => [...principal.roles],
    organizationId: ({ principal }) => principal.organizationId,
    patientId: ({ principal }) => principal.patientId,
    mfa: ({ principal }) => principal.mfa,
    tokenExpiresAt: ({ principal }) => principal.expiresAt.toISOString(),
    requestId: ({ requestId }) => requestId,
  },
  Patient: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(patientById).load(id) : null),
    name: (patient) => humanName(patient.givenNames, patient.familyName),
    birthDate: (patient) => (patient.birthDate ? toIsoDate(patient.birthDate) : null),
    address: (patient) =>
      patient.city && patient.state && patient.postalCode
        ? { line: [...(patient.addressLines ?? [])], city: patient.city, state: patient.state, postalCode: patient.postalCode }
        : null,
    careTeam: (patient, _args, { loader }) => (patient.careTeam ? loader(careTeamById).load(patient.careTeam.id) : null),
    managingOrganization: (patient, _args, { loader }) => loader(organizationById).load(patient.managingOrganization.id),
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
