/** Code system URIs (FHIR canonical names) used in Coding values. */
export const CodeSystem = {
  icd10cm: 'http://hl7.org/fhir/sid/icd-10-cm',
  loinc: 'http://loinc.org',
  rxnorm: 'http://www.nlm.nih.gov/research/umls/rxnorm',
  snomed: 'http://snomed.info/sct',
  cpt: 'http://www.ama-assn.org/go/cpt',
} as const;

const CPT_CODE = /^\d{4}[0-9A-Z]$/;

/** Encounter types are CPT evaluation-and-management codes or SNOMED CT concepts. */
export function encounterTypeSystem(code: string): string {
  return CPT_CODE.test(code) ? CodeSystem.cpt : CodeSystem.snomed;
}
