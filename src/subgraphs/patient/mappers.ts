import type { Principal } from '../../auth/index.js';
import type { CareTeam, Organization, Patient, Practitioner } from '../../db/entities.js';

/** What the patient subgraph's resolvers return before field resolvers run (codegen `mappers`). */
export type PatientMapper = Patient;
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
  patient: Patient;
}

export type { AuditEventRow as AuditEventMapper, DisclosureModel as DisclosureMapper } from './audit-queries.js';
