/**
 * Sensitivity labels: FHIR `meta.security` codes a clinical row carries when
 * its codes fall in one of the value sets below, derived when the row is
 * written (and by `data:label` for rows written before labels existed).
 *
 * - Six sensitivity categories (HL7 v3 ActCode, InformationSensitivityPolicy):
 *   `PSY` psychiatric disorder, `SUD` substance use disorder (42 CFR Part 2;
 *   stored with its older code `ETH` as well), `HIV`, `SEX` sexuality and
 *   reproductive health, `STD` sexually transmitted disease, `SDV` sexual
 *   assault, abuse or domestic violence.
 * - One confidentiality code (HL7 v3 Confidentiality): `V` (very restricted)
 *   for substance use disorder, `R` (restricted) for any other category; a
 *   row without a category carries none (normal).
 *
 * The policy clears roles per purpose for categories (access-policy.ts);
 * a row with a category the request is not cleared for is withheld in SQL,
 * as if absent (src/subgraphs/sensitive-rows.ts). Labels are bound into the
 * associated data of the row's encrypted columns, so a label stripped or
 * changed in the database makes the row's values fail to decrypt.
 */

import { CodeSystem } from '../subgraphs/codes.js';

export const SENSITIVITIES = ['PSY', 'SUD', 'HIV', 'SEX', 'STD', 'SDV'] as const;
export type Sensitivity = (typeof SENSITIVITIES)[number];

export const SENSITIVITY_TEXT: Readonly<Record<Sensitivity, string>> = {
  PSY: 'psychiatry disorder information sensitivity',
  SUD: 'substance use disorder information sensitivity',
  HIV: 'HIV/AIDS information sensitivity',
  SEX: 'sexuality and reproductive health information sensitivity',
  STD: 'sexually transmitted disease information sensitivity',
  SDV: 'sexual assault, abuse, or domestic violence information sensitivity',
};

/** Every code a row may carry: the categories, `ETH` beside `SUD`, and the confidentiality codes. */
export const SECURITY_LABEL_CODES = [...SENSITIVITIES, 'ETH', 'R', 'V'] as const;
export type SecurityLabelCode = (typeof SECURITY_LABEL_CODES)[number];

export const ACT_CODE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
export const CONFIDENTIALITY_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';

const LABEL_DISPLAY: Readonly<Record<SecurityLabelCode, string>> = {
  ...SENSITIVITY_TEXT,
  ETH: 'substance abuse information sensitivity',
  R: 'restricted',
  V: 'very restricted',
};

/** A label as FHIR shows it in `meta.security`. */
export function labelCoding(code: SecurityLabelCode): { system: string; code: string; display: string } {
  const system = code === 'R' || code === 'V' ? CONFIDENTIALITY_SYSTEM : ACT_CODE_SYSTEM;
  return { system, code, display: LABEL_DISPLAY[code] };
}

export function isSensitivity(value: unknown): value is Sensitivity {
  return typeof value === 'string' && (SENSITIVITIES as readonly string[]).includes(value);
}

/** An ICD-10-CM range: codes from `from` to `to` by their first three characters (`F20`-`F99`), or one code and its children (`Z71.41`). */
type IcdRange = readonly [from: string, to?: string];

/**
 * ICD-10-CM value sets (documented in README "Sensitivity labels"). A code
 * matches a range by its category (first three characters) or, for a range
 * of one longer code, by that code and its children.
 */
export const ICD10_VALUE_SETS: Readonly<Record<Sensitivity, readonly IcdRange[]>> = {
  // Mental and behavioural disorders, less the organic (F01-F09) and substance (F10-F19) blocks.
  PSY: [['F20', 'F99']],
  // Disorders due to psychoactive substances less nicotine (F17: 42 CFR 2.11 leaves tobacco out), and abuse counselling.
  SUD: [['F10', 'F16'], ['F18', 'F19'], ['Z71.41'], ['Z71.42'], ['Z71.51'], ['Z71.52']],
  HIV: [['B20'], ['Z21'], ['R75'], ['O98.7'], ['Z20.6']],
  // Sexual and reproductive health: contraception, procreation, pregnancy with abortive outcome, infertility, gender identity.
  SEX: [['Z30', 'Z31'], ['Z33.2'], ['O00', 'O08'], ['N97'], ['N46'], ['F64'], ['Z87.890']],
  // Infections with a predominantly sexual mode of transmission, and contact with them.
  STD: [['A50', 'A64'], ['Z20.2']],
  // Maltreatment (confirmed, suspected), perpetrators, examination after alleged rape, counselling of victims, history of abuse.
  SDV: [['T74'], ['T76'], ['Y07'], ['Z04.4'], ['Z69'], ['Z62.81'], ['Z91.41']],
};

/**
 * SNOMED CT disorders (concept ids). No stored row is coded in SNOMED CT
 * today but allergies (none of them sensitive); the set serves codings
 * written in SNOMED CT by the API or the import later, and its tests.
 */
export const SNOMED_VALUE_SETS: Readonly<Record<Sensitivity, readonly string[]>> = {
  PSY: ['35489007', '197480006', '21897009', '58214004', '13746004', '406506008', '47505003'],
  SUD: ['66590003', '7200002', '5602001', '75544000', '191816009', '26416006'],
  HIV: ['86406008', '165816005', '111880001'],
  SEX: ['13197004', '386639001', '8619003'],
  STD: ['15628003', '105629000', '76272004', '8098009'],
  SDV: ['95930005', '248110002', '397940009'],
};

/**
 * RxNorm clinical drugs whose prescription alone discloses a category:
 * treatment of opioid and alcohol use disorder, antiretroviral therapy and
 * pre-exposure prophylaxis, hormonal contraception. Medications with many
 * uses (antidepressants, antibiotics) are not labelled by themselves.
 */
export const RXNORM_VALUE_SETS: Readonly<Record<Sensitivity, readonly string[]>> = {
  PSY: [],
  // buprenorphine/naloxone sublingual films, naltrexone, acamprosate
  SUD: ['1010600', '1010604', '1307056', '1307061', '1483744', '835726'],
  // bictegravir/emtricitabine/tenofovir alafenamide; emtricitabine/tenofovir disoproxil (treatment or PrEP)
  HIV: ['1999667', '476556'],
  // norethindrone 0.35 MG (progestin-only pill); ethinyl estradiol/norethindrone
  SEX: ['198042', '238015'],
  STD: [],
  SDV: [],
};

function inIcdRange(code: string, [from, to]: IcdRange): boolean {
  const normalized = code.trim().toUpperCase();
  if (to !== undefined) {
    const category = normalized.slice(0, 3);
    return category >= from && category <= to;
  }
  if (from.length === 3) return normalized.slice(0, 3) === from;
  return normalized === from || normalized.startsWith(from);
}

/** The categories of one coded value; an unknown system gives none. */
export function sensitivitiesOfCode(system: string, code: string): Sensitivity[] {
  return SENSITIVITIES.filter((category) => {
    switch (system) {
      case CodeSystem.icd10cm:
        return ICD10_VALUE_SETS[category].some((range) => inIcdRange(code, range));
      case CodeSystem.snomed:
        return SNOMED_VALUE_SETS[category].includes(code.trim());
      case CodeSystem.rxnorm:
        return RXNORM_VALUE_SETS[category].includes(code.trim());
      default:
        return false;
    }
  });
}

/** The stored labels of a set of categories: the categories (with `ETH` beside `SUD`) and the confidentiality code, sorted. */
export function labelsFor(categories: Iterable<Sensitivity>): SecurityLabelCode[] {
  const found = new Set<SecurityLabelCode>(categories);
  if (found.size === 0) return [];
  if (found.has('SUD')) found.add('ETH');
  found.add(found.has('SUD') ? 'V' : 'R');
  return [...found].sort();
}

/** The labels of a row with these codings. */
export function labelsOfCodes(codings: Iterable<{ system: string; code: string }>): SecurityLabelCode[] {
  const categories = new Set<Sensitivity>();
  for (const { system, code } of codings) for (const category of sensitivitiesOfCode(system, code)) categories.add(category);
  return labelsFor(categories);
}

/** The categories among stored labels (`ETH` counts as `SUD`). */
export function sensitivitiesOf(labels: readonly string[]): Sensitivity[] {
  const found = new Set<Sensitivity>();
  for (const label of labels) {
    if (label === 'ETH') found.add('SUD');
    else if (isSensitivity(label)) found.add(label);
  }
  return SENSITIVITIES.filter((category) => found.has(category));
}

/** The stored labels that stand for categories: what a SQL `&&` test against a row's labels must list to withhold them. */
export function storedCodesOf(categories: Iterable<Sensitivity>): string[] {
  const codes: string[] = [];
  for (const category of categories) codes.push(category, ...(category === 'SUD' ? ['ETH'] : []));
  return codes.sort();
}

/** Label codes as one PostgreSQL text[] literal, for a `?::text[]` parameter (the driver would expand a JS array into a list); the codes are fixed identifiers. */
export function textArrayLiteral(codes: readonly string[]): string {
  return `{${codes.join(',')}}`;
}

/**
 * What a row's labels add to the associated data of its encrypted values:
 * nothing for a row not labelled yet (null: written before labels
 * existed, so it still decrypts), else the sorted labels as JSON, empty
 * ones included. Stripping, adding, changing or merging labels (`{"ETH,SUD,V"}`
 * for `{ETH,SUD,V}`), or emptying a row that was never labelled, makes the
 * values fail to authenticate.
 */
export function labelBinding(rowId: string, labels: readonly string[] | null | undefined): string {
  if (labels === null || labels === undefined) return rowId;
  return `${rowId}\u0000labels=${JSON.stringify([...labels].sort())}`;
}

/**
 * The labels of a row whose code is stored in plaintext, as SQL: its stored
 * labels plus those its code calls for (RxNorm value sets), so a label
 * stripped in the database withholds nothing less, and a row not labelled
 * yet is withheld by its code from the first read. Codes are inlined: they
 * are the value sets' own digits.
 */
export function labelsOfRxNormSql(labels: string, code: string): string {
  const parts = SENSITIVITIES.filter((category) => RXNORM_VALUE_SETS[category].length > 0).map((category) => {
    const codes = RXNORM_VALUE_SETS[category];
    if (!codes.every((value) => /^\d+$/.test(value))) throw new Error(`RxNorm value set ${category} holds a code that is not digits`);
    return `(case when ${code} in (${codes.map((value) => `'${value}'`).join(', ')}) then '{${labelsFor([category]).join(',')}}'::text[] else '{}'::text[] end)`;
  });
  return [`coalesce(${labels}, '{}'::text[])`, ...parts].join(' || ');
}

/** ICD-10-CM codes written in free text, e.g. "Assessment: ... (F11.20)". */
const ICD10_IN_TEXT = /\b([A-TV-Z][0-9][0-9AB](?:\.[0-9A-Z]{1,4})?)\b/g;

/** The categories of the ICD-10-CM codes a text names (a note's own diagnoses, as its author wrote them). */
export function sensitivitiesInText(text: string): Sensitivity[] {
  const found = new Set<Sensitivity>();
  for (const match of text.matchAll(ICD10_IN_TEXT)) {
    for (const category of sensitivitiesOfCode(CodeSystem.icd10cm, match[1] ?? '')) found.add(category);
  }
  return SENSITIVITIES.filter((category) => found.has(category));
}

/**
 * A clinical note's labels: those of the diagnoses of its encounter, of the
 * codes its text names, and any its author marked it with (a
 * psychotherapy note, say).
 */
export function noteLabels(text: string, encounterLabels: readonly (readonly string[] | null)[], marked: readonly Sensitivity[] = []): SecurityLabelCode[] {
  const categories = new Set<Sensitivity>([...sensitivitiesInText(text), ...marked]);
  for (const labels of encounterLabels) for (const category of sensitivitiesOf(labels ?? [])) categories.add(category);
  return labelsFor(categories);
}
