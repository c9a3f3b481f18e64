import {
  AllergyIntolerance,
  ClinicalNote,
  Condition,
  Encounter,
  MedicationRequest,
  Observation,
} from '../../db/entities.js';
import { childPagesOf, childTable, labelledById, patientOwnedById, type Labelled } from '../loaders.js';
import { CodeSystem } from '../codes.js';
import { labelsOfCodes, labelsOfRxNormSql } from '../../policy/sensitivity.js';

/** Conditions and notes bind their labels into their encrypted values (a label edited in the database makes them fail to decrypt). */
const conditionLabels: Labelled<Condition> = { entityType: 'Condition' };
const noteLabels: Labelled<ClinicalNote> = { entityType: 'ClinicalNote' };
/** A medication's code is stored in plaintext: what its code calls for counts with its stored labels, in the statement itself. */
const medicationLabels: Labelled<MedicationRequest> = {
  entityType: 'MedicationRequest',
  labels: (t) => labelsOfRxNormSql(`${t}."security_labels"`, `${t}."rxnorm_code"`),
  consistent: (row) => labelsOfCodes([{ system: CodeSystem.rxnorm, code: row.rxnormCode }]).every((label) => (row.securityLabels ?? []).includes(label)),
};

/** Per-patient pages of each clinical table, newest first. */
export const encounterPages = childPagesOf(childTable('Patient.encounters', Encounter, 'encounter', 'period_start'));
export const conditionPages = childPagesOf(childTable('Patient.conditions', Condition, 'condition', 'recorded_date', conditionLabels));
export const medicationRequestPages = childPagesOf(
  childTable('Patient.medicationRequests', MedicationRequest, 'medication_request', 'authored_on', medicationLabels),
);
export const observationPages = childPagesOf(childTable('Patient.observations', Observation, 'observation', 'effective_at'));
export const allergyIntolerancePages = childPagesOf(
  childTable('Patient.allergyIntolerances', AllergyIntolerance, 'allergy_intolerance', 'recorded_date'),
);
export const clinicalNotePages = childPagesOf(childTable('Patient.clinicalNotes', ClinicalNote, 'clinical_note', 'created_at', noteLabels));

export const encounterById = patientOwnedById(Encounter);
export const conditionById = labelledById(Condition, 'condition', conditionLabels);
export const medicationRequestById = labelledById(MedicationRequest, 'medication_request', medicationLabels);
export const observationById = patientOwnedById(Observation);
export const allergyIntoleranceById = patientOwnedById(AllergyIntolerance);
export const clinicalNoteById = labelledById(ClinicalNote, 'clinical_note', noteLabels);
