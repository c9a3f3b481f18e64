import { describe, expect, it } from 'vitest';
import { generateDirectory, generatePatient } from '../src/db/seed/generate.js';
import { CONDITIONS, MEDICATIONS } from '../src/db/seed/vocabulary.js';
import {
  labelBinding,
  labelsFor,
  labelsOfCodes,
  noteLabels,
  sensitivitiesInText,
  sensitivitiesOf,
  sensitivitiesOfCode,
  storedCodesOf,
} from '../src/policy/sensitivity.js';
import { clearanceOf } from '../src/subgraphs/sensitive-rows.js';
import { CodeSystem } from '../src/subgraphs/codes.js';

/**
 * The value sets that label clinical rows (src/policy/sensitivity.ts),
 * the labels of the seeded data and their frequencies, and clearance per
 * (role, purpose).
 */

const icd = (code: string) => sensitivitiesOfCode(CodeSystem.icd10cm, code);

describe('ICD-10-CM value sets', () => {
  it('labels by category range and by code with its children', () => {
    expect(icd('F11.20')).toEqual(['SUD']);
    expect(icd('F10.20')).toEqual(['SUD']);
    expect(icd('f19.10')).toEqual(['SUD']);
    expect(icd('Z71.41')).toEqual(['SUD']);
    expect(icd('F32.9')).toEqual(['PSY']);
    expect(icd('F99')).toEqual(['PSY']);
    expect(icd('F64.0')).toEqual(['PSY', 'SEX']);
    expect(icd('B20')).toEqual(['HIV']);
    expect(icd('Z21')).toEqual(['HIV']);
    expect(icd('A54.00')).toEqual(['STD']);
    expect(icd('A64')).toEqual(['STD']);
    expect(icd('Z30.09')).toEqual(['SEX']);
    expect(icd('O03.9')).toEqual(['SEX']);
    expect(icd('T74.11XA')).toEqual(['SDV']);
    expect(icd('Z69.11')).toEqual(['SDV']);
  });

  it('leaves out what the value sets leave out: nicotine, organic disorders, neighbours of a listed code', () => {
    for (const code of ['F17.210', 'F03.90', 'G30.9', 'I10', 'E11.9', 'A49.9', 'A65', 'Z71.3', 'Z71.6', 'B21', 'T75.1', 'Z33.1', 'O09.90']) expect(icd(code), code).toEqual([]);
  });

  it('labels SNOMED CT disorders and RxNorm clinical drugs, and nothing of an unknown system', () => {
    expect(sensitivitiesOfCode(CodeSystem.snomed, '86406008')).toEqual(['HIV']);
    expect(sensitivitiesOfCode(CodeSystem.snomed, '7200002')).toEqual(['SUD']);
    expect(sensitivitiesOfCode(CodeSystem.rxnorm, '1010604')).toEqual(['SUD']);
    expect(sensitivitiesOfCode(CodeSystem.rxnorm, '1999667')).toEqual(['HIV']);
    // An antidepressant has many uses: not labelled by itself.
    expect(sensitivitiesOfCode(CodeSystem.rxnorm, MEDICATIONS.sertraline100.code)).toEqual([]);
    expect(sensitivitiesOfCode(CodeSystem.loinc, 'F11.20')).toEqual([]);
  });
});

describe('stored labels', () => {
  it('adds ETH beside SUD and the confidentiality code: V for substance use, R otherwise, none for a row without a category', () => {
    expect(labelsFor(['SUD'])).toEqual(['ETH', 'SUD', 'V']);
    expect(labelsFor(['HIV', 'PSY'])).toEqual(['HIV', 'PSY', 'R']);
    expect(labelsFor(['SUD', 'PSY'])).toEqual(['ETH', 'PSY', 'SUD', 'V']);
    expect(labelsFor([])).toEqual([]);
    expect(labelsOfCodes([{ system: CodeSystem.icd10cm, code: 'I10' }, { system: CodeSystem.icd10cm, code: 'B20' }])).toEqual(['HIV', 'R']);
    expect(sensitivitiesOf(['ETH', 'V'])).toEqual(['SUD']);
    expect(storedCodesOf(['SUD', 'HIV'])).toEqual(['ETH', 'HIV', 'SUD']);
  });

  it('labels a note from its encounter\'s diagnoses, the codes its text names and its author\'s marks', () => {
    expect(sensitivitiesInText('Assessment: Opioid dependence, uncomplicated (F11.20). Continue buprenorphine.')).toEqual(['SUD']);
    expect(sensitivitiesInText('Blood pressure 128/82, BMI 27.1, return in 2 weeks.')).toEqual([]);
    expect(noteLabels('Follow-up.', [['HIV', 'R'], null, []])).toEqual(['HIV', 'R']);
    expect(noteLabels('Follow-up.', [], ['PSY'])).toEqual(['PSY', 'R']);
  });

  it('binds labels into what a value is bound to, in a form that does not depend on their order', () => {
    expect(labelBinding('id-1', null)).toBe('id-1');
    // Labelled with no category is not the same as never labelled: emptying an unlabelled row's labels breaks its values.
    expect(labelBinding('id-1', [])).not.toBe('id-1');
    // One label holding the others' codes is not the same labels.
    expect(labelBinding('id-1', ['ETH,SUD,V'])).not.toBe(labelBinding('id-1', ['ETH', 'SUD', 'V']));
    expect(labelBinding('id-1', ['V', 'SUD', 'ETH'])).toBe(labelBinding('id-1', ['ETH', 'SUD', 'V']));
    expect(labelBinding('id-1', ['ETH', 'SUD', 'V'])).not.toBe(labelBinding('id-1', ['ETH', 'SUD']));
  });
});

describe('the seeded data', () => {
  const directory = generateDirectory(7, 2000);
  const patients = Array.from({ length: 2000 }, (_, index) => generatePatient(directory, index));

  it('labels every row from its codes: conditions, medications, claims and notes', () => {
    for (const rows of patients.slice(0, 300)) {
      for (const condition of rows.condition) expect(condition.security_labels).toEqual(labelsOfCodes([{ system: CodeSystem.icd10cm, code: condition.code }]));
      for (const medication of rows.medication_request) expect(medication.security_labels).toEqual(labelsOfCodes([{ system: CodeSystem.rxnorm, code: medication.rxnorm_code }]));
      for (const claim of rows.claim) expect(claim.security_labels).toEqual(labelsOfCodes(claim.diagnosis_codes.map((code) => ({ system: CodeSystem.icd10cm, code }))));
      for (const note of rows.clinical_note) {
        const diagnoses = rows.condition.filter((condition) => note.encounter_id !== null && condition.encounter_id === note.encounter_id);
        expect(note.security_labels).toEqual(noteLabels(note.text, diagnoses.map((diagnosis) => diagnosis.security_labels)));
      }
    }
  });

  it('has sensitive diagnoses at about their share of a primary-care population', () => {
    const share = (category: string) => patients.filter((rows) => rows.condition.some((condition) => condition.security_labels.includes(category))).length / patients.length;
    // Depression, anxiety and ADHD are common; substance use a few per cent; HIV, STD and abuse rare but present.
    expect(share('PSY')).toBeGreaterThan(0.08);
    expect(share('PSY')).toBeLessThan(0.3);
    expect(share('SUD')).toBeGreaterThan(0.01);
    expect(share('SUD')).toBeLessThan(0.08);
    for (const rare of ['HIV', 'STD', 'SEX', 'SDV']) {
      expect(share(rare), rare).toBeGreaterThan(0);
      expect(share(rare), rare).toBeLessThan(0.04);
    }
    // Every sensitive diagnosis of the vocabulary is labelled (the seed's realistic codes are in the value sets).
    for (const definition of CONDITIONS.filter((candidate) => /^(F[2-9]|F1[0-689]|B20|A5|Z30|T74)/.test(candidate.code))) {
      expect(labelsOfCodes([{ system: CodeSystem.icd10cm, code: definition.code }]).length, definition.code).toBeGreaterThan(0);
    }
  });
});

describe('clearance', () => {
  it('is per role and purpose, what any of the roles that reach a patient is cleared for, and none without a purpose', () => {
    expect(clearanceOf({ roles: ['clinician'], purpose: 'TREAT' })).toEqual(['PSY', 'HIV', 'SEX', 'STD', 'SDV']);
    expect(clearanceOf({ roles: ['clinician'], purpose: 'HPAYMT' })).toEqual([]);
    expect(clearanceOf({ roles: ['nurse'], purpose: 'TREAT' })).toEqual(['PSY', 'HIV', 'SEX', 'STD']);
    expect(clearanceOf({ roles: ['clinician', 'nurse'], purpose: 'TREAT' })).toEqual(['PSY', 'HIV', 'SEX', 'STD', 'SDV']);
    expect(clearanceOf({ roles: ['clinician', 'billing'], purpose: 'HPAYMT' })).toEqual(['PSY', 'HIV', 'SEX', 'STD', 'SDV']);
    expect(clearanceOf({ roles: ['patient'], purpose: 'PATRQT' })).toEqual(['PSY', 'SUD', 'HIV', 'SEX', 'STD', 'SDV']);
    expect(clearanceOf({ roles: ['researcher'], purpose: 'HRESCH' })).toEqual([]);
    expect(clearanceOf({ roles: ['clinician'], purpose: null })).toEqual([]);
  });
});
