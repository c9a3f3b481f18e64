import {
  AllergyIntolerance,
  ClinicalNote,
  Condition,
  Encounter,
  MedicationRequest,
  Observation,
} from '../../db/entities.js';
import { childPagesOf, childTable, patientOwnedById } from '../loaders.js';

/** Per-patient pages of each clinical table, newest first. */
export const encounterPages = childPagesOf(childTable('Patient.encounters', Encounter, 'encounter', 'period_start'));
export const conditionPages = childPagesOf(childTable('Patient.conditions', Condition, 'condition', 'recorded_date'));
export const medicationRequestPages = childPagesOf(
  childTable('Patient.medicationRequests', MedicationRequest, 'medication_request', 'authored_on'),
);
export const observationPages = childPagesOf(childTable('Patient.observations', Observation, 'observation', 'effective_at'));
export const allergyIntolerancePages = childPagesOf(
  childTable('Patient.allergyIntolerances', AllergyIntolerance, 'allergy_intolerance', 'recorded_date'),
);
export const clinicalNotePages = childPagesOf(childTable('Patient.clinicalNotes', ClinicalNote, 'clinical_note', 'created_at'));

export const encounterById = patientOwnedById(Encounter);
export const conditionById = patientOwnedById(Condition);
export const medicationRequestById = patientOwnedById(MedicationRequest);
export const observationById = patientOwnedById(Observation);
export const allergyIntoleranceById = patientOwnedById(AllergyIntolerance);
export const clinicalNoteById = patientOwnedById(ClinicalNote);
