import type { EntityManager } from '@mikro-orm/sql';
import {
  AllergyIntolerance,
  ClinicalNote,
  Condition,
  Encounter,
  MedicationRequest,
  Observation,
} from '../../db/entities.js';
import { createByIdLoader, createChildPageLoader, type ChildTable } from '../loaders.js';
import { toIsoDate, toIsoDateTime } from '../scalars.js';

/** Per-patient pages of each clinical table, newest first. */
const patientOf = (row: { patient: { id: string } }) => row.patient.id;

const encounters: ChildTable<Encounter> = {
  entity: Encounter,
  table: 'encounter',
  sortColumn: 'period_start',
  sortType: 'timestamptz',
  sortValue: (row) => toIsoDateTime(row.periodStart),
  patientId: patientOf,
};
const conditions: ChildTable<Condition> = {
  entity: Condition,
  table: 'condition',
  sortColumn: 'recorded_date',
  sortType: 'date',
  sortValue: (row) => toIsoDate(row.recordedDate),
  patientId: patientOf,
};
const medicationRequests: ChildTable<MedicationRequest> = {
  entity: MedicationRequest,
  table: 'medication_request',
  sortColumn: 'authored_on',
  sortType: 'date',
  sortValue: (row) => toIsoDate(row.authoredOn),
  patientId: patientOf,
};
const observations: ChildTable<Observation> = {
  entity: Observation,
  table: 'observation',
  sortColumn: 'effective_at',
  sortType: 'timestamptz',
  sortValue: (row) => toIsoDateTime(row.effectiveAt),
  patientId: patientOf,
};
const allergyIntolerances: ChildTable<AllergyIntolerance> = {
  entity: AllergyIntolerance,
  table: 'allergy_intolerance',
  sortColumn: 'recorded_date',
  sortType: 'date',
  sortValue: (row) => toIsoDate(row.recordedDate),
  patientId: patientOf,
};
const clinicalNotes: ChildTable<ClinicalNote> = {
  entity: ClinicalNote,
  table: 'clinical_note',
  sortColumn: 'created_at',
  sortType: 'timestamptz',
  sortValue: (row) => toIsoDateTime(row.createdAt),
  patientId: patientOf,
};

export const encounterPages = (em: EntityManager) => createChildPageLoader(em, encounters);
export const conditionPages = (em: EntityManager) => createChildPageLoader(em, conditions);
export const medicationRequestPages = (em: EntityManager) => createChildPageLoader(em, medicationRequests);
export const observationPages = (em: EntityManager) => createChildPageLoader(em, observations);
export const allergyIntolerancePages = (em: EntityManager) => createChildPageLoader(em, allergyIntolerances);
export const clinicalNotePages = (em: EntityManager) => createChildPageLoader(em, clinicalNotes);

export const encounterById = (em: EntityManager) => createByIdLoader(em, Encounter);
export const conditionById = (em: EntityManager) => createByIdLoader(em, Condition);
export const medicationRequestById = (em: EntityManager) => createByIdLoader(em, MedicationRequest);
export const observationById = (em: EntityManager) => createByIdLoader(em, Observation);
export const allergyIntoleranceById = (em: EntityManager) => createByIdLoader(em, AllergyIntolerance);
export const clinicalNoteById = (em: EntityManager) => createByIdLoader(em, ClinicalNote);
