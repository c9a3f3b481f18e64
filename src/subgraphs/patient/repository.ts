import { CRYPTO_VERSION_ENCRYPTED } from '../../db/encryption.js';
import type { FilterQuery } from '@mikro-orm/core';
import type { QBFilterQuery } from '@mikro-orm/sql';
import type { IndexKeys } from '../../crypto/index.js';
import { blindIndexOf } from '../../db/encryption.js';
import { CareTeam, CareTeamMember, Organization, Patient, Practitioner } from '../../db/entities.js';
import { createByIdLoader, directoryById } from '../loaders.js';
import type { LoaderFactory, LoaderScope } from '../context.js';
import DataLoader from 'dataloader';
import { isUuid, type Connection, toConnection } from '../pagination.js';
import type { PatientFilter } from './__generated__/resolvers-types.js';
import type { PatientRecord } from './mappers.js';

/** Reads patients (within the caller's row scope), care teams, practitioners and organizations for one request. */
export const patientById: LoaderFactory<DataLoader<string, Patient | null>> = ({ em, access }) =>
  createByIdLoader(em, Patient, () => access.patientFilter(), (rows) => access.recordReads(rows.map((row) => row.id)));
export const careTeamById = directoryById(CareTeam);
export const practitionerById = directoryById(Practitioner);
export const organizationById = directoryById(Organization);

/** Practitioner ids of each care team, one statement per batch. */
export const careTeamMemberIds: LoaderFactory<DataLoader<string, string[]>> = ({ em }) =>
  new DataLoader<string, string[]>(async (careTeamIds) => {
    const members = await em.find(CareTeamMember, { careTeam: { $in: [...careTeamIds] } }, { orderBy: { practitioner: 'asc' } });
    const byTeam = new Map<string, string[]>();
    for (const member of members) {
      const teamId = member.careTeam.id;
      byTeam.set(teamId, [...(byTeam.get(teamId) ?? []), member.practitioner.id]);
    }
    return careTeamIds.map((id) => byTeam.get(id) ?? []);
  });

const PATIENT_LIST = 'Query.patients';
/** A patient cursor holds the last row's id: rows after it in id order, inside the caller's scope. */
const PATIENT_CURSOR_PARTS = 1;

/**
 * A page of patient rows as plain records, straight from the query: a list
 * is read, never changed, so the ORM's entities (hydration, identity map,
 * change-tracking snapshots) would only cost time and garbage, about a
 * tenth of a 1,000-row page's CPU (bench/BENCHMARKS.md). The same columns,
 * filter and order as em.find; relations are references by id, as on an
 * entity that was not populated.
 */
async function patientRows(em: LoaderScope['em'], where: QBFilterQuery<Patient>, limit: number): Promise<PatientRecord[]> {
  const rows = await em.createQueryBuilder(Patient).select('*').where(where).orderBy({ id: 'asc' }).limit(limit).execute<PatientRow[]>('all');
  return rows.map((row) => ({
    ...row,
    managingOrganization: { id: row.managingOrganization },
    careTeam: row.careTeam === null || row.careTeam === undefined ? null : { id: row.careTeam },
  }));
}

/** A patient row as the query builder maps it: relations as the referenced id. */
type PatientRow = Omit<PatientRecord, 'managingOrganization' | 'careTeam'> & { managingOrganization: string; careTeam?: string | null };

export async function listPatients(
  { em, access, cursors }: LoaderScope,
  first: number,
  after: string | null | undefined,
  filter: PatientFilter | null | undefined,
): Promise<Connection<PatientRecord>> {
  const where: FilterQuery<Patient> = {};
  const [afterId] = cursors.read(PATIENT_LIST, '', filter, after, PATIENT_CURSOR_PARTS) ?? [];
  if (afterId !== undefined) where.id = { $gt: afterId };
  if (filter?.gender) where.gender = filter.gender;
  if (filter?.managingOrganizationId) {
    if (!isUuid(filter.managingOrganizationId)) return toConnection([], first, () => '');
    where.managingOrganization = filter.managingOrganizationId;
  }
  if (filter?.careTeamId) {
    if (!isUuid(filter.careTeamId)) return toConnection([], first, () => '');
    where.careTeam = filter.careTeamId;
  }
  const scoped = { $and: [where, await access.patientFilter()] } as QBFilterQuery<Patient>;
  const rows = first === 0 ? [] : await patientRows(em, scoped, first + 1);
  await access.recordReads(rows.map((row) => row.id));
  return toConnection(rows, first, (patient) => cursors.issue(PATIENT_LIST, '', filter, [patient.id]));
}

/**
 * Exact MRN lookup through the blind index: an indexed equality, nothing
 * decrypted. Only encrypted rows are found: a row marked as not encrypted
 * is never read (its mark sits outside the envelope; see crypto/sealed.ts).
 */
export async function findPatientByMrn({ em, access }: LoaderScope, ring: IndexKeys, mrn: string, plaintextForBenchmark = false): Promise<Patient | null> {
  // The benchmark's plaintext copies (plaintextForBenchmark, refused in production) hold only rows marked unencrypted.
  const byMrn: FilterQuery<Patient> = { mrnIndex: blindIndexOf(ring, 'mrn', mrn), cryptoVersion: plaintextForBenchmark ? { $in: [0, CRYPTO_VERSION_ENCRYPTED] } : CRYPTO_VERSION_ENCRYPTED };
  const patient = await em.findOne(Patient, { $and: [byMrn, await access.patientFilter()] });
  if (patient) await access.recordReads([patient.id]);
  return patient;
}
