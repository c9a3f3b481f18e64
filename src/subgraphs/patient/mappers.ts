import type { Principal } from '../../auth/index.js';
import type { CareTeam, Organization, Patient, Practitioner } from '../../db/entities.js';

/**
 * A patient as the field resolvers read it: an entity (a lookup, a
 * mutation's result) or a plain row of a list (read without entities,
 * repository.ts). Relations are read by id only.
 */
export interface PatientRecord {
  id: string;
  mrn: Uint8Array;
  name: Uint8Array;
  birthDate?: Uint8Array | null;
  gender: Patient['gender'];
  ssn?: Uint8Array | null;
  addressLines?: Uint8Array | null;
  city?: Uint8Array | null;
  state?: Uint8Array | null;
  postalCode?: Uint8Array | null;
  phone?: Uint8Array | null;
  email?: Uint8Array | null;
  cryptoVersion: number;
  managingOrganization: { id: string };
  careTeam?: { id: string } | null;
}

/** What the patient subgraph's resolvers return before field resolvers run (codegen `mappers`). */
export type PatientMapper = PatientRecord;
export type CareTeamMapper = CareTeam;
export type PractitionerMapper = Practitioner;
export type OrganizationMapper = Organization;
/** The caller and the id of the request they made. */
export interface ViewerMapper {
  principal: Principal;
  requestId: string;
}

/** An address is read column by column from its patient's row, each decrypted only if its field is allowed. */
export interface AddressMapper {
  patient: PatientRecord;
}

export type { AuditEventRow as AuditEventMapper, DisclosureModel as DisclosureMapper } from './audit-queries.js';
export type { EmergencyReviewModel as EmergencyReviewMapper } from './emergency-reviews.js';
export type { ConsentProvision as ConsentMapper } from '../../policy/consent.js';
