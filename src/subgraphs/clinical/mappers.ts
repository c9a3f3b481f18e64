import type {
  AllergyIntolerance,
  ClinicalNote,
  Condition,
  Encounter,
  MedicationRequest,
  Observation,
} from '../../db/entities.js';

/** What the clinical subgraph's resolvers return before field resolvers run (codegen `mappers`). */
export interface PatientReferenceMapper {
  id: string;
}
export interface PractitionerReferenceMapper {
  id: string;
}
export type EncounterMapper = Encounter;
export type ConditionMapper = Condition;
export type MedicationRequestMapper = MedicationRequest;
export type ObservationMapper = Observation;
export type AllergyIntoleranceMapper = AllergyIntolerance;
export type ClinicalNoteMapper = ClinicalNote;
