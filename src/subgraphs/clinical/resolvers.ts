import type { Resolvers } from './__generated__/resolvers-types.js';
import { mutations } from './mutations.js';
import { DateScalar, DateTimeScalar, toIsoDate, toIsoDateTime } from '../scalars.js';
import { isUuid } from '../pagination.js';
import { patientListResolver, patientVisible } from '../loaders.js';
import { CodeSystem, encounterTypeSystem } from '../codes.js';
import { asText, sealed, sealedColumn } from '../sealed-fields.js';
import { securityLabelCodings } from '../sensitive-rows.js';
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
  Mutation: mutations,
  Patient: {
    // An entity reference outside the caller's row scope resolves to null, as if absent.
    __resolveReference: async ({ id }, { loader }) => (isUuid(id) && (await loader(patientVisible).load(id)) ? { id } : null),
    encounters: patientListResolver(encounterPages),
    conditions: patientListResolver(conditionPages),
    medicationRequests: patientListResolver(medicationRequestPages),
    observations: patientListResolver(observationPages),
    allergyIntolerances: patientListResolver(allergyIntolerancePages),
    clinicalNotes: patientListResolver(clinicalNotePages),
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
    code: (row) =>
      sealed('condition', row, { code: row.code, display: row.display }, ({ code, display }) => ({ system: CodeSystem.icd10cm, code: code ?? '', display: display ?? '' })),
    onsetDate: (row) => (row.onsetDate ? toIsoDate(row.onsetDate) : null),
    recordedDate: (row) => toIsoDate(row.recordedDate),
    encounter: (row, _args, { loader }) => (row.encounter ? loader(encounterById).load(row.encounter.id) : null),
    securityLabels: (row) => securityLabelCodings(row.securityLabels),
  },
  MedicationRequest: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(medicationRequestById).load(id) : null),
    patient: (row) => ({ id: row.patient.id }),
    medication: (row) => ({ system: CodeSystem.rxnorm, code: row.rxnormCode, display: row.display }),
    authoredOn: (row) => toIsoDate(row.authoredOn),
    requester: (row) => reference(row.requester),
    securityLabels: (row) => securityLabelCodings(row.securityLabels),
  },
  Observation: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(observationById).load(id) : null),
    patient: (row) => ({ id: row.patient.id }),
    code: (row) => ({ system: CodeSystem.loinc, code: row.loincCode, display: row.display }),
    value: (row) => sealedColumn('observation', row, 'value', row.value, asText),
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
    text: (row) => sealedColumn('clinical_note', row, 'text', row.text, asText),
    author: (row) => reference(row.author),
    encounter: (row, _args, { loader }) => (row.encounter ? loader(encounterById).load(row.encounter.id) : null),
    createdAt: (row) => toIsoDateTime(row.createdAt),
    securityLabels: (row) => securityLabelCodings(row.securityLabels),
  },
};
