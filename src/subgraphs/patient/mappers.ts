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

/** An address keeps the id of its patient, so decisions that depend on the row can find it. */
export interface AddressMapper {
  patientId: string;
  line: string[];
  city: string;
  state: string;
  postalCode: string;
}
