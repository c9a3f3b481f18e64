import type { EntityManager } from '@mikro-orm/sql';
import {
  AllergyIntolerance,
  ClinicalNote,
  Condition,
  Encounter,
  MedicationRequest,
  Observation,
} from '../../db/entities.js';
import { childPagesOf, childTable, createByIdLoader } from '../loaders.js';

/** Per-patient pages of each clinical table, newest first. */
export const encounterPages = childPagesOf(childTable(Encounter, 'encounter', 'period_start', 'timestamptz', (row) => row.periodStart));
export const conditionPages = childPagesOf(childTable(Condition, 'condition', 'recorded_date', 'date', (row) => row.recordedDate));
export const medicationRequestPages = childPagesOf(
  childTable(MedicationRequest, 'medication_request', 'authored_on', 'date', (row) => row.authoredOn),
);
export const observationPages = childPagesOf(childTable(Observation, 'observation', 'effective_at', 'timestamptz', (row) => row.effectiveAt));
export const allergyIntolerancePages = childPagesOf(
  childTable(AllergyIntolerance, 'allergy_intolerance', 'recorded_date', 'date', (row) => row.recordedDate),
);
export const clinicalNotePages = childPagesOf(childTable(ClinicalNote, 'clinical_note', 'created_at', 'timestamptz', (row) => row.createdAt));

export const encounterById = (em: EntityManager) => createByIdLoader(em, Encounter);
export const conditionById = (em: EntityManager) => createByIdLoader(em, Condition);
export const medicationRequestById = (em: EntityManager) => createByIdLoader(em, MedicationRequest);
export const observationById = (em: EntityManager) => createByIdLoader(em, Observation);
export const allergyIntoleranceById = (em: EntityManager) => createByIdLoader(em, AllergyIntolerance);
export const clinicalNoteById = (em: EntityManager) => createByIdLoader(em, ClinicalNote);
