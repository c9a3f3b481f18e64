import type { Resolvers } from './__generated__/resolvers-types.js';
import { DateScalar, DateTimeScalar, toIsoDate, toIsoDateTime } from '../scalars.js';
import { isUuid, NESTED_PAGE, pageSize } from '../pagination.js';
import { CodeSystem, encounterTypeSystem } from '../codes.js';
import {
  allergyIntoleranceById,
  allergyIntolerancePages,
  clinicalNoteById,
  clinicalNotePages,
  conditionById,
  conditionPages,
  encounterById,
  encounterPages,
  medicationRequestById,
  medicationRequestPages,
  observationById,
  observationPages,
} from './repository.js';

const reference = (entity: { id: string } | null | undefined) => (entity ? { id: entity.id } : null);

export const resolvers: Resolvers = {
  Date: DateScalar,
  DateTime: DateTimeScalar,
  Patient: {
    __resolveReference: ({ id }) => (isUuid(id) ? { id } : null),
    encounters: ({ id }, { first, after }, { loader }) =>
      loader(encounterPages).load({ patientId: id, first: pageSize(first, NESTED_PAGE), after: after ?? null }),
    conditions: ({ id }, { first, after }, { loader }) =>
      loader(conditionPages).load({ patientId: id, first: pageSize(first, NESTED_PAGE), after: after ?? null }),
    medicationRequests: ({ id }, { first, after }, { loader }) =>
      loader(medicationRequestPages).load({ patientId: id, first: pageSize(first, NESTED_PAGE), after: after ?? null }),
    observations: ({ id }, { first, after }, { loader }) =>
      loader(observationPages).load({ patientId: id, first: pageSize(first, NESTED_PAGE), after: after ?? null }),
    allergyIntolerances: ({ id }, { first, after }, { loader }) =>
      loader(allergyIntolerancePages).load({ patientId: id, first: pageSize(first, NESTED_PAGE), after: after ?? null }),
    clinicalNotes: ({ id }, { first, after }, { loader }) =>
      loader(clinicalNotePages).load({ patientId: id, first: pageSize(first, NESTED_PAGE), after: after ?? null }),
  },
  Encounter: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(encounterById).load(id) : null),
    patient: (row) => ({ id: row.patient.id }),
    class: (row) => row.class,
    type: (row) => ({ system: encounterTypeSystem(row.typeCode), code: row.typeCode, display: row.typeDisplay }),
    period: (row) => ({ start: toIsoDateTime(row.periodStart), end: row.periodEnd ? toIsoDateTime(row.periodEnd) : null }),
    practitioner: (row) => reference(row.practitioner),
  },
  Condition: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(conditionById).load(id) : null),
    patient: (row) => ({ id: row.patient.id }),
    code: (row) => ({ system: CodeSystem.icd10cm, code: row.code, display: row.display }),
    onsetDate: (row) => (row.onsetDate ? toIsoDate(row.onsetDate) : null),
    recordedDate: (row) => toIsoDate(row.recordedDate),
    encounter: (row, _args, { loader }) => (row.encounter ? loader(encounterById).load(row.encounter.id) : null),
  },
  MedicationRequest: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(medicationRequestById).load(id) : null),
    patient: (row) => ({ id: row.patient.id }),
    medication: (row) => ({ system: CodeSystem.rxnorm, code: row.rxnormCode, display: row.display }),
    authoredOn: (row) => toIsoDate(row.authoredOn),
    requester: (row) => reference(row.requester),
  },
  Observation: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(observationById).load(id) : null),
    patient: (row) => ({ id: row.patient.id }),
    code: (row) => ({ system: CodeSystem.loinc, code: row.loincCode, display: row.display }),
    effectiveAt: (row) => toIsoDateTime(row.effectiveAt),
    encounter: (row, _args, { loader }) => (row.encounter ? loader(encounterById).load(row.encounter.id) : null),
  },
  AllergyIntolerance: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(allergyIntoleranceById).load(id) : null),
    patient: (row) => ({ id: row.patient.id }),
    code: (row) => ({ system: CodeSystem.snomed, code: row.snomedCode, display: row.display }),
    recordedDate: (row) => toIsoDate(row.recordedDate),
  },
  ClinicalNote: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(clinicalNoteById).load(id) : null),
    patient: (row) => ({ id: row.patient.id }),
    type: (row) => ({ system: CodeSystem.loinc, code: row.typeCode, display: row.typeDisplay }),
    author: (row) => reference(row.author),
    encounter: (row, _args, { loader }) => (row.encounter ? loader(encounterById).load(row.encounter.id) : null),
    createdAt: (row) => toIsoDateTime(row.createdAt),
  },
};
