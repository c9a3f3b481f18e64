/**
 * Word lists and code systems for the synthetic data generator.
 *
 * Names, streets and cities are ordinary and common, so that no generated
 * person is a real one. Organizations are fictitious. Clinical codes are real
 * codes from their code systems (ICD-10-CM, RxNorm, LOINC, SNOMED CT, CPT)
 * with their usual displays, so that the API can be exercised with realistic
 * codings. Weights are relative frequencies.
 */
import type { Category } from '../../policy/index.js';
import type { Weighted } from './random.js';

// ---------------------------------------------------------------------------
// People and places
// ---------------------------------------------------------------------------

export const FEMALE_GIVEN_NAMES = [
  'Mary', 'Patricia', 'Jennifer', 'Linda', 'Elizabeth', 'Barbara', 'Susan', 'Jessica', 'Sarah', 'Karen',
  'Lisa', 'Nancy', 'Betty', 'Sandra', 'Margaret', 'Ashley', 'Kimberly', 'Emily', 'Donna', 'Michelle',
  'Carol', 'Amanda', 'Melissa', 'Deborah', 'Stephanie', 'Rebecca', 'Sharon', 'Laura', 'Cynthia', 'Amy',
  'Kathleen', 'Angela', 'Shirley', 'Brenda', 'Emma', 'Anna', 'Pamela', 'Nicole', 'Samantha', 'Katherine',
  'Christine', 'Helen', 'Debra', 'Rachel', 'Carolyn', 'Janet', 'Maria', 'Olivia', 'Heather', 'Diane',
  'Julie', 'Joyce', 'Victoria', 'Ruth', 'Virginia', 'Lauren', 'Kelly', 'Christina', 'Joan', 'Evelyn',
  'Sofia', 'Isabella', 'Mia', 'Camila', 'Aaliyah', 'Mei', 'Priya', 'Fatima', 'Guadalupe', 'Leilani',
] as const;

export const MALE_GIVEN_NAMES = [
  'James', 'Robert', 'John', 'Michael', 'David', 'William', 'Richard', 'Joseph', 'Thomas', 'Christopher',
  'Charles', 'Daniel', 'Matthew', 'Anthony', 'Mark', 'Donald', 'Steven', 'Andrew', 'Paul', 'Joshua',
  'Kenneth', 'Kevin', 'Brian', 'George', 'Timothy', 'Ronald', 'Jason', 'Edward', 'Jeffrey', 'Ryan',
  'Jacob', 'Gary', 'Nicholas', 'Eric', 'Jonathan', 'Stephen', 'Larry', 'Justin', 'Scott', 'Brandon',
  'Benjamin', 'Samuel', 'Gregory', 'Alexander', 'Patrick', 'Frank', 'Raymond', 'Jack', 'Dennis', 'Jerry',
  'Tyler', 'Aaron', 'Jose', 'Adam', 'Nathan', 'Henry', 'Zachary', 'Douglas', 'Peter', 'Kyle',
  'Luis', 'Carlos', 'Miguel', 'Darnell', 'Malik', 'Wei', 'Hiroshi', 'Arjun', 'Omar', 'Kai',
] as const;

export const FAMILY_NAMES = [
  'Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodriguez', 'Martinez',
  'Hernandez', 'Lopez', 'Gonzalez', 'Wilson', 'Anderson', 'Thomas', 'Taylor', 'Moore', 'Jackson', 'Martin',
  'Lee', 'Perez', 'Thompson', 'White', 'Harris', 'Sanchez', 'Clark', 'Ramirez', 'Lewis', 'Robinson',
  'Walker', 'Young', 'Allen', 'King', 'Wright', 'Scott', 'Torres', 'Nguyen', 'Hill', 'Flores',
  'Green', 'Adams', 'Nelson', 'Baker', 'Hall', 'Rivera', 'Campbell', 'Mitchell', 'Carter', 'Roberts',
  'Gomez', 'Phillips', 'Evans', 'Turner', 'Diaz', 'Parker', 'Cruz', 'Edwards', 'Collins', 'Reyes',
  'Stewart', 'Morris', 'Morales', 'Murphy', 'Cook', 'Rogers', 'Gutierrez', 'Ortiz', 'Morgan', 'Cooper',
  'Peterson', 'Bailey', 'Reed', 'Kelly', 'Howard', 'Ramos', 'Kim', 'Cox', 'Ward', 'Richardson',
  'Watson', 'Brooks', 'Chavez', 'Wood', 'James', 'Bennett', 'Gray', 'Mendoza', 'Ruiz', 'Hughes',
  'Price', 'Alvarez', 'Castillo', 'Sanders', 'Patel', 'Myers', 'Long', 'Ross', 'Foster', 'Jimenez',
  "O'Brien", "O'Connor", 'McCarthy', 'Nakamura', 'Chen', 'Wang', 'Singh', 'Kowalski', 'Schmidt', 'Okafor',
] as const;

export const STREET_NAMES = [
  'Main', 'Oak', 'Pine', 'Maple', 'Cedar', 'Elm', 'Washington', 'Lake', 'Hill', 'Park',
  'Walnut', 'Sunset', 'Lincoln', 'Jackson', 'Church', 'River', 'Willow', 'Meadow', 'Chestnut', 'Spring',
  'Highland', 'Franklin', 'Ridge', 'Forest', 'Jefferson', 'Center', 'Mill', 'Cherry', 'Adams', 'Madison',
  'Prospect', 'Orchard', 'Birch', 'Harbor', 'Summit', 'Bridge', 'Valley', 'Hickory', 'Magnolia', 'Sycamore',
] as const;

export const STREET_SUFFIXES = ['St', 'Ave', 'Rd', 'Blvd', 'Ln', 'Dr', 'Ct', 'Way', 'Pl', 'Ter'] as const;

export const SECONDARY_ADDRESS_UNITS = ['Apt', 'Unit', 'Suite', 'Fl'] as const;

export interface City {
  name: string;
  /** Two-letter USPS state code. */
  state: string;
  /** First three digits of the city's ZIP codes. */
  zipPrefix: string;
}

// ---------------------------------------------------------------------------
// Organizations and care teams (fictitious)
// ---------------------------------------------------------------------------

export interface ProviderOrganizationDefinition {
  name: string;
  /** Share of the patients this organization manages. */
  weight: number;
  /** Where its patients live. */
  cities: readonly City[];
}

export const PROVIDER_ORGANIZATIONS: readonly ProviderOrganizationDefinition[] = [
  {
    name: 'Riverside General Hospital',
    weight: 35,
    cities: [
      { name: 'Boston', state: 'MA', zipPrefix: '021' },
      { name: 'Quincy', state: 'MA', zipPrefix: '021' },
      { name: 'Worcester', state: 'MA', zipPrefix: '016' },
      { name: 'Lowell', state: 'MA', zipPrefix: '018' },
      { name: 'Providence', state: 'RI', zipPrefix: '029' },
      { name: 'Nashua', state: 'NH', zipPrefix: '030' },
    ],
  },
  {
    name: 'St. Catherine Medical Center',
    weight: 25,
    cities: [
      { name: 'Columbus', state: 'OH', zipPrefix: '432' },
      { name: 'Dayton', state: 'OH', zipPrefix: '454' },
      { name: 'Cincinnati', state: 'OH', zipPrefix: '452' },
      { name: 'Toledo', state: 'OH', zipPrefix: '436' },
      { name: 'Akron', state: 'OH', zipPrefix: '443' },
    ],
  },
  {
    name: 'Cedar Valley Family Health Clinic',
    weight: 20,
    cities: [
      { name: 'Denver', state: 'CO', zipPrefix: '802' },
      { name: 'Aurora', state: 'CO', zipPrefix: '800' },
      { name: 'Boulder', state: 'CO', zipPrefix: '803' },
      { name: 'Fort Collins', state: 'CO', zipPrefix: '805' },
      { name: 'Colorado Springs', state: 'CO', zipPrefix: '809' },
    ],
  },
  {
    name: 'Lakeshore Community Health Center',
    weight: 20,
    cities: [
      { name: 'Milwaukee', state: 'WI', zipPrefix: '532' },
      { name: 'Madison', state: 'WI', zipPrefix: '537' },
      { name: 'Green Bay', state: 'WI', zipPrefix: '543' },
      { name: 'Chicago', state: 'IL', zipPrefix: '606' },
      { name: 'Evanston', state: 'IL', zipPrefix: '602' },
    ],
  },
];

export const PAYER_ORGANIZATIONS = [
  { name: 'Bluestone Health Plan', weight: 55 },
  { name: 'Meridian Mutual Insurance Company', weight: 45 },
] as const;

export type PartnerKind = 'pharmacy' | 'payer' | 'careCoordination';

export interface PartnerOrganizationDefinition {
  kind: PartnerKind;
  name: string;
  /**
   * The categories its sharing agreement grants: what it needs for its work
   * (minimum necessary), always within the partner role's own decisions
   * (test/policy.test.ts checks both).
   */
  sharedCategories: readonly Category[];
}

/** What every partner needs to reach the data it is granted: its own token, value shapes, record ids, patient lookups, the directory (none of it PHI). */
const PARTNER_PLUMBING = ['self', 'structure', 'recordId', 'recordLink', 'patientLookup', 'directory'] as const satisfies readonly Category[];

/** Partner organizations, each with its sharing agreement; the first is the sample `partner` principal's. */
export const PARTNER_ORGANIZATIONS: readonly PartnerOrganizationDefinition[] = [
  {
    kind: 'pharmacy',
    name: 'Harbor Street Pharmacy',
    // Dispensing: who the patient is and how to reach them, what was prescribed and by whom, allergies to check it against, the coverage to bill.
    sharedCategories: [...PARTNER_PLUMBING, 'name', 'birthDate', 'gender', 'contact', 'medication', 'freeText', 'careParticipant', 'allergy', 'coverage', 'memberId'],
  },
  {
    kind: 'payer',
    name: 'Summit Ridge Health Plan',
    // Eligibility and coverage: who the member is and the coverage on file; no clinical content, no contact details.
    sharedCategories: [...PARTNER_PLUMBING, 'name', 'birthDate', 'coverage', 'memberId'],
  },
  {
    kind: 'careCoordination',
    name: 'Bridgeway Care Coordination',
    // Transitions of care: who the patient is, how to reach them, who prescribes, medications and allergies to reconcile; no billing.
    sharedCategories: [...PARTNER_PLUMBING, 'name', 'birthDate', 'contact', 'careParticipant', 'medication', 'freeText', 'allergy'],
  },
];

export interface CareTeamServiceDefinition {
  name: string;
  minAge?: number;
  maxAge?: number;
}

/** The first two accept every age, so every provider has a team for every patient. */
export const CARE_TEAM_SERVICES: readonly CareTeamServiceDefinition[] = [
  { name: 'Primary Care' },
  { name: 'Family Medicine' },
  { name: 'Internal Medicine', minAge: 18 },
  { name: 'Pediatrics', maxAge: 17 },
  { name: 'Cardiology', minAge: 18 },
  { name: 'Geriatrics', minAge: 65 },
  { name: 'Endocrinology' },
  { name: 'Behavioral Health' },
  { name: 'Pulmonology' },
];

export const HEALTH_PLANS = {
  commercial: ['Gold PPO', 'Silver HMO', 'Bronze HDHP', 'Platinum PPO', 'Silver EPO'],
  medicare: ['Medicare Advantage HMO', 'Medicare Advantage PPO'],
  medicaid: ['Medicaid Managed Care'],
} as const;

// ---------------------------------------------------------------------------
// Clinical code systems
// ---------------------------------------------------------------------------

/** Age bands (inclusive) and their weights; roughly the US population, with the 90+ band over-represented. */
export const AGE_BANDS: Weighted<readonly [number, number]> = [
  [[0, 4], 6],
  [[5, 17], 15],
  [[18, 29], 15],
  [[30, 44], 19],
  [[45, 64], 25],
  [[65, 79], 13],
  [[80, 89], 4],
  [[90, 100], 1],
];

export const GENDERS: Weighted<'male' | 'female' | 'other' | 'unknown'> = [
  ['female', 50.5],
  ['male', 48.3],
  ['other', 0.7],
  ['unknown', 0.5],
];

export type EncounterClass = 'ambulatory' | 'emergency' | 'inpatient' | 'virtual';

export interface Coding {
  code: string;
  display: string;
}

export const ENCOUNTER_CLASSES: Weighted<EncounterClass> = [
  ['ambulatory', 62],
  ['virtual', 16],
  ['emergency', 14],
  ['inpatient', 8],
];

/** Encounter types: CPT evaluation-and-management codes (5 digits) and SNOMED CT procedures. */
export const ENCOUNTER_TYPES: Record<EncounterClass, Weighted<Coding>> = {
  ambulatory: [
    [{ code: '99213', display: 'Office or other outpatient visit, established patient, low complexity' }, 35],
    [{ code: '99214', display: 'Office or other outpatient visit, established patient, moderate complexity' }, 25],
    [{ code: '99203', display: 'Office or other outpatient visit, new patient, low complexity' }, 10],
    [{ code: '185349003', display: 'Encounter for check up' }, 15],
    [{ code: '390906007', display: 'Follow-up encounter' }, 15],
  ],
  emergency: [
    [{ code: '99284', display: 'Emergency department visit, moderate complexity' }, 45],
    [{ code: '99285', display: 'Emergency department visit, high complexity' }, 25],
    [{ code: '50849002', display: 'Emergency room admission' }, 30],
  ],
  inpatient: [
    [{ code: '99223', display: 'Initial hospital inpatient care, high complexity' }, 35],
    [{ code: '32485007', display: 'Hospital admission' }, 40],
    [{ code: '183452005', display: 'Emergency hospital admission' }, 25],
  ],
  virtual: [
    [{ code: '448337001', display: 'Telemedicine consultation with patient' }, 65],
    [{ code: '185317003', display: 'Telephone encounter' }, 35],
  ],
};

export interface MedicationDefinition extends Coding {
  dosage: string;
}

/** RxNorm clinical drugs (SCD) with a typical dosage instruction. */
export const MEDICATIONS = {
  metforminEr500: { code: '860975', display: '24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet', dosage: 'Take 1 tablet by mouth once daily with the evening meal' },
  insulin7030: { code: '106892', display: 'insulin human isophane 70 UNT/ML / Regular Insulin Human 30 UNT/ML Injectable Suspension', dosage: 'Inject 20 units under the skin twice daily before breakfast and dinner' },
  lisinopril10: { code: '314076', display: 'lisinopril 10 MG Oral Tablet', dosage: 'Take 1 tablet by mouth once daily' },
  amlodipine5: { code: '197361', display: 'amlodipine 5 MG Oral Tablet', dosage: 'Take 1 tablet by mouth once daily' },
  hydrochlorothiazide25: { code: '310798', display: 'hydrochlorothiazide 25 MG Oral Tablet', dosage: 'Take 1 tablet by mouth every morning' },
  losartan25: { code: '979485', display: 'losartan potassium 25 MG Oral Tablet', dosage: 'Take 1 tablet by mouth once daily' },
  simvastatin20: { code: '312961', display: 'simvastatin 20 MG Oral Tablet', dosage: 'Take 1 tablet by mouth every evening' },
  atorvastatin80: { code: '259255', display: 'atorvastatin 80 MG Oral Tablet', dosage: 'Take 1 tablet by mouth once daily' },
  albuterolInhaler: { code: '2123111', display: 'NDA020503 200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler', dosage: 'Inhale 2 puffs by mouth every 4 to 6 hours as needed for wheezing' },
  fluticasoneInhaler: { code: '895994', display: '120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler', dosage: 'Inhale 2 puffs by mouth twice daily; rinse mouth after use' },
  ibuprofen200: { code: '310965', display: 'ibuprofen 200 MG Oral Tablet', dosage: 'Take 2 tablets by mouth every 6 hours as needed for pain; take with food' },
  naproxenSodium220: { code: '849574', display: 'naproxen sodium 220 MG Oral Tablet', dosage: 'Take 1 tablet by mouth every 8 to 12 hours as needed for pain' },
  naproxen500: { code: '198014', display: 'naproxen 500 MG Oral Tablet', dosage: 'Take 1 tablet by mouth twice daily with food as needed for pain' },
  acetaminophen325: { code: '313782', display: 'acetaminophen 325 MG Oral Tablet', dosage: 'Take 2 tablets by mouth every 6 hours as needed for pain or fever; do not exceed 3,000 mg per day' },
  sertraline100: { code: '312938', display: 'sertraline 100 MG Oral Tablet', dosage: 'Take 1 tablet by mouth once daily' },
  fluoxetine20: { code: '310385', display: 'fluoxetine 20 MG Oral Capsule', dosage: 'Take 1 capsule by mouth every morning' },
  duloxetine20: { code: '596926', display: 'duloxetine 20 MG Delayed Release Oral Capsule', dosage: 'Take 1 capsule by mouth once daily' },
  levothyroxine75: { code: '966222', display: 'levothyroxine sodium 0.075 MG Oral Tablet', dosage: 'Take 1 tablet by mouth every morning on an empty stomach' },
  warfarin5: { code: '855332', display: 'warfarin sodium 5 MG Oral Tablet', dosage: 'Take 1 tablet by mouth once daily in the evening, or as directed by the anticoagulation clinic' },
  metoprololEr100: { code: '866414', display: '24 HR metoprolol succinate 100 MG Extended Release Oral Tablet', dosage: 'Take 1 tablet by mouth once daily' },
  amoxicillin250: { code: '308182', display: 'amoxicillin 250 MG Oral Capsule', dosage: 'Take 1 capsule by mouth every 8 hours for 10 days' },
  penicillinV250: { code: '834061', display: 'penicillin V potassium 250 MG Oral Tablet', dosage: 'Take 1 tablet by mouth every 6 hours for 10 days' },
  nitrofurantoin50: { code: '311995', display: 'nitrofurantoin, macrocrystals 50 MG Oral Capsule', dosage: 'Take 1 capsule by mouth every 6 hours for 7 days' },
  azithromycin250: { code: '308460', display: 'azithromycin 250 MG Oral Tablet', dosage: 'Take 2 tablets by mouth on day 1, then 1 tablet once daily on days 2 to 5' },
  furosemide40: { code: '313988', display: 'furosemide 40 MG Oral Tablet', dosage: 'Take 1 tablet by mouth every morning' },
  ferrousSulfate325: { code: '310325', display: 'ferrous sulfate 325 MG Oral Tablet', dosage: 'Take 1 tablet by mouth once daily' },
  donepezil10: { code: '997223', display: 'donepezil hydrochloride 10 MG Oral Tablet', dosage: 'Take 1 tablet by mouth at bedtime' },
  hydrocortisoneCream: { code: '106258', display: 'hydrocortisone 10 MG/ML Topical Cream', dosage: 'Apply a thin layer to the affected skin twice daily for up to 7 days' },
  methylphenidate20: { code: '1091392', display: 'methylphenidate hydrochloride 20 MG Oral Tablet', dosage: 'Take 1 tablet by mouth every morning' },
  aspirin81: { code: '243670', display: 'aspirin 81 MG Oral Tablet', dosage: 'Take 1 tablet by mouth once daily' },
  clopidogrel75: { code: '309362', display: 'clopidogrel 75 MG Oral Tablet', dosage: 'Take 1 tablet by mouth once daily' },
  naltrexone50: { code: '1483744', display: 'naltrexone hydrochloride 50 MG Oral Tablet', dosage: 'Take 1 tablet by mouth once daily' },
  buprenorphineNaloxone8: { code: '1010604', display: 'buprenorphine 8 MG / naloxone 2 MG Sublingual Film', dosage: 'Dissolve 1 film under the tongue once daily' },
  bictegravirEmtricitabineTenofovir: {
    code: '1999667',
    display: 'bictegravir 50 MG / emtricitabine 200 MG / tenofovir alafenamide 25 MG Oral Tablet',
    dosage: 'Take 1 tablet by mouth once daily',
  },
  ceftriaxone500: { code: '1665005', display: 'ceftriaxone 500 MG Injection', dosage: 'Inject 500 mg into the muscle once' },
  cetirizine10: { code: '1014678', display: 'cetirizine hydrochloride 10 MG Oral Tablet', dosage: 'Take 1 tablet by mouth once daily as needed for allergy symptoms' },
} as const satisfies Record<string, MedicationDefinition>;

/** Medications anyone may be prescribed, whatever their conditions. */
export const OVER_THE_COUNTER_MEDICATIONS: readonly MedicationDefinition[] = [
  MEDICATIONS.acetaminophen325,
  MEDICATIONS.ibuprofen200,
  MEDICATIONS.cetirizine10,
];

export interface ConditionDefinition extends Coding {
  /** How a clinician would refer to it in a note. */
  term: string;
  chronic: boolean;
  weight: number;
  minAge?: number;
  maxAge?: number;
  medications: readonly MedicationDefinition[];
}

/** ICD-10-CM diagnoses (billable codes). */
export const CONDITIONS: readonly ConditionDefinition[] = [
  { code: 'I10', display: 'Essential (primary) hypertension', term: 'hypertension', chronic: true, weight: 11, minAge: 18, medications: [MEDICATIONS.lisinopril10, MEDICATIONS.amlodipine5, MEDICATIONS.hydrochlorothiazide25, MEDICATIONS.losartan25] },
  { code: 'E78.5', display: 'Hyperlipidemia, unspecified', term: 'hyperlipidemia', chronic: true, weight: 8, minAge: 20, medications: [MEDICATIONS.simvastatin20, MEDICATIONS.atorvastatin80] },
  { code: 'E11.9', display: 'Type 2 diabetes mellitus without complications', term: 'type 2 diabetes', chronic: true, weight: 7, minAge: 12, medications: [MEDICATIONS.metforminEr500, MEDICATIONS.insulin7030] },
  { code: 'E66.9', display: 'Obesity, unspecified', term: 'obesity', chronic: true, weight: 6, minAge: 6, medications: [] },
  { code: 'J06.9', display: 'Acute upper respiratory infection, unspecified', term: 'an upper respiratory infection', chronic: false, weight: 6, medications: [MEDICATIONS.acetaminophen325, MEDICATIONS.cetirizine10] },
  { code: 'M54.50', display: 'Low back pain, unspecified', term: 'low back pain', chronic: false, weight: 5, minAge: 14, medications: [MEDICATIONS.ibuprofen200, MEDICATIONS.naproxenSodium220, MEDICATIONS.naproxen500] },
  { code: 'F41.1', display: 'Generalized anxiety disorder', term: 'generalized anxiety disorder', chronic: true, weight: 4, minAge: 10, medications: [MEDICATIONS.sertraline100, MEDICATIONS.duloxetine20] },
  { code: 'F32.9', display: 'Major depressive disorder, single episode, unspecified', term: 'depression', chronic: true, weight: 4, minAge: 12, medications: [MEDICATIONS.sertraline100, MEDICATIONS.fluoxetine20] },
  { code: 'K21.9', display: 'Gastro-esophageal reflux disease without esophagitis', term: 'gastroesophageal reflux', chronic: true, weight: 4, minAge: 16, medications: [] },
  { code: 'J45.909', display: 'Unspecified asthma, uncomplicated', term: 'asthma', chronic: true, weight: 4, minAge: 2, medications: [MEDICATIONS.albuterolInhaler, MEDICATIONS.fluticasoneInhaler] },
  { code: 'E03.9', display: 'Hypothyroidism, unspecified', term: 'hypothyroidism', chronic: true, weight: 3, minAge: 10, medications: [MEDICATIONS.levothyroxine75] },
  { code: 'N39.0', display: 'Urinary tract infection, site not specified', term: 'a urinary tract infection', chronic: false, weight: 3, minAge: 2, medications: [MEDICATIONS.nitrofurantoin50] },
  { code: 'J02.9', display: 'Acute pharyngitis, unspecified', term: 'acute pharyngitis', chronic: false, weight: 3, minAge: 2, medications: [MEDICATIONS.penicillinV250, MEDICATIONS.amoxicillin250] },
  { code: 'J20.9', display: 'Acute bronchitis, unspecified', term: 'acute bronchitis', chronic: false, weight: 2, medications: [MEDICATIONS.azithromycin250] },
  { code: 'H66.90', display: 'Otitis media, unspecified, unspecified ear', term: 'otitis media', chronic: false, weight: 3, maxAge: 12, medications: [MEDICATIONS.amoxicillin250] },
  { code: 'L20.9', display: 'Atopic dermatitis, unspecified', term: 'atopic dermatitis', chronic: true, weight: 2, medications: [MEDICATIONS.hydrocortisoneCream] },
  { code: 'G43.909', display: 'Migraine, unspecified, not intractable, without status migrainosus', term: 'migraine', chronic: true, weight: 2, minAge: 10, medications: [MEDICATIONS.ibuprofen200, MEDICATIONS.naproxenSodium220] },
  { code: 'R51.9', display: 'Headache, unspecified', term: 'headache', chronic: false, weight: 2, minAge: 4, medications: [MEDICATIONS.acetaminophen325] },
  { code: 'E55.9', display: 'Vitamin D deficiency, unspecified', term: 'vitamin D deficiency', chronic: true, weight: 2, medications: [] },
  { code: 'D64.9', display: 'Anemia, unspecified', term: 'anemia', chronic: true, weight: 2, medications: [MEDICATIONS.ferrousSulfate325] },
  { code: 'F90.0', display: 'Attention-deficit hyperactivity disorder, predominantly inattentive type', term: 'ADHD', chronic: true, weight: 2, minAge: 5, maxAge: 45, medications: [MEDICATIONS.methylphenidate20] },
  { code: 'G47.33', display: 'Obstructive sleep apnea (adult) (pediatric)', term: 'obstructive sleep apnea', chronic: true, weight: 2, minAge: 18, medications: [] },
  { code: 'M17.11', display: 'Unilateral primary osteoarthritis, right knee', term: 'right knee osteoarthritis', chronic: true, weight: 2, minAge: 45, medications: [MEDICATIONS.acetaminophen325, MEDICATIONS.naproxen500] },
  { code: 'I25.10', display: 'Atherosclerotic heart disease of native coronary artery without angina pectoris', term: 'coronary artery disease', chronic: true, weight: 2, minAge: 40, medications: [MEDICATIONS.aspirin81, MEDICATIONS.clopidogrel75, MEDICATIONS.atorvastatin80] },
  { code: 'I48.91', display: 'Unspecified atrial fibrillation', term: 'atrial fibrillation', chronic: true, weight: 2, minAge: 45, medications: [MEDICATIONS.warfarin5, MEDICATIONS.metoprololEr100] },
  { code: 'J44.9', display: 'Chronic obstructive pulmonary disease, unspecified', term: 'COPD', chronic: true, weight: 2, minAge: 40, medications: [MEDICATIONS.albuterolInhaler] },
  { code: 'N18.30', display: 'Chronic kidney disease, stage 3 unspecified', term: 'stage 3 chronic kidney disease', chronic: true, weight: 1.5, minAge: 40, medications: [] },
  { code: 'I50.9', display: 'Heart failure, unspecified', term: 'heart failure', chronic: true, weight: 1.5, minAge: 45, medications: [MEDICATIONS.furosemide40, MEDICATIONS.metoprololEr100] },
  { code: 'G30.9', display: "Alzheimer's disease, unspecified", term: "Alzheimer's disease", chronic: true, weight: 1, minAge: 65, medications: [MEDICATIONS.donepezil10] },
  // Sensitive diagnoses (labelled: src/policy/sensitivity.ts), at roughly their share of a primary-care population.
  { code: 'F10.20', display: 'Alcohol dependence, uncomplicated', term: 'alcohol use disorder', chronic: true, weight: 1.5, minAge: 18, medications: [MEDICATIONS.naltrexone50] },
  { code: 'F11.20', display: 'Opioid dependence, uncomplicated', term: 'opioid use disorder', chronic: true, weight: 0.8, minAge: 18, medications: [MEDICATIONS.buprenorphineNaloxone8] },
  { code: 'B20', display: 'Human immunodeficiency virus [HIV] disease', term: 'HIV disease', chronic: true, weight: 0.4, minAge: 18, medications: [MEDICATIONS.bictegravirEmtricitabineTenofovir] },
  { code: 'A54.00', display: 'Gonococcal infection of lower genitourinary tract, unspecified', term: 'a gonococcal infection', chronic: false, weight: 0.5, minAge: 16, maxAge: 50, medications: [MEDICATIONS.ceftriaxone500] },
  { code: 'Z30.09', display: 'Encounter for other general counseling and advice on contraception', term: 'contraception counseling', chronic: false, weight: 1, minAge: 15, maxAge: 50, medications: [] },
  { code: 'T74.11XA', display: 'Adult physical abuse, confirmed, initial encounter', term: 'physical abuse', chronic: false, weight: 0.3, minAge: 18, medications: [] },
];

/** What an observation generator measures; see `measureObservation` in generate.ts. */
export type Measure =
  | 'systolic'
  | 'diastolic'
  | 'heartRate'
  | 'respiratoryRate'
  | 'temperature'
  | 'oxygenSaturation'
  | 'weight'
  | 'height'
  | 'bmi'
  | 'hemoglobinA1c'
  | 'glucose'
  | 'cholesterol'
  | 'hdl'
  | 'ldl'
  | 'triglycerides'
  | 'creatinine'
  | 'hemoglobin';

export interface ObservationDefinition extends Coding {
  /** UCUM unit. */
  unit: string;
  decimals: number;
  measure: Measure;
  weight: number;
  minAge?: number;
}

/** LOINC vital signs and laboratory results. */
export const OBSERVATIONS: readonly ObservationDefinition[] = [
  { code: '8480-6', display: 'Systolic blood pressure', unit: 'mm[Hg]', decimals: 0, measure: 'systolic', weight: 12, minAge: 3 },
  { code: '8462-4', display: 'Diastolic blood pressure', unit: 'mm[Hg]', decimals: 0, measure: 'diastolic', weight: 12, minAge: 3 },
  { code: '8867-4', display: 'Heart rate', unit: '/min', decimals: 0, measure: 'heartRate', weight: 12 },
  { code: '9279-1', display: 'Respiratory rate', unit: '/min', decimals: 0, measure: 'respiratoryRate', weight: 6 },
  { code: '8310-5', display: 'Body temperature', unit: 'Cel', decimals: 1, measure: 'temperature', weight: 6 },
  { code: '59408-5', display: 'Oxygen saturation in Arterial blood by Pulse oximetry', unit: '%', decimals: 0, measure: 'oxygenSaturation', weight: 5 },
  { code: '29463-7', display: 'Body weight', unit: 'kg', decimals: 1, measure: 'weight', weight: 10 },
  { code: '8302-2', display: 'Body height', unit: 'cm', decimals: 1, measure: 'height', weight: 7 },
  { code: '39156-5', display: 'Body mass index (BMI) [Ratio]', unit: 'kg/m2', decimals: 1, measure: 'bmi', weight: 5, minAge: 2 },
  { code: '4548-4', display: 'Hemoglobin A1c/Hemoglobin.total in Blood', unit: '%', decimals: 1, measure: 'hemoglobinA1c', weight: 4, minAge: 10 },
  { code: '2339-0', display: 'Glucose [Mass/volume] in Blood', unit: 'mg/dL', decimals: 0, measure: 'glucose', weight: 4 },
  { code: '2093-3', display: 'Cholesterol [Mass/volume] in Serum or Plasma', unit: 'mg/dL', decimals: 0, measure: 'cholesterol', weight: 3, minAge: 9 },
  { code: '2085-9', display: 'Cholesterol in HDL [Mass/volume] in Serum or Plasma', unit: 'mg/dL', decimals: 0, measure: 'hdl', weight: 2, minAge: 9 },
  { code: '18262-6', display: 'Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay', unit: 'mg/dL', decimals: 0, measure: 'ldl', weight: 2, minAge: 9 },
  { code: '2571-8', display: 'Triglyceride [Mass/volume] in Serum or Plasma', unit: 'mg/dL', decimals: 0, measure: 'triglycerides', weight: 2, minAge: 9 },
  { code: '2160-0', display: 'Creatinine [Mass/volume] in Serum or Plasma', unit: 'mg/dL', decimals: 2, measure: 'creatinine', weight: 3 },
  { code: '718-7', display: 'Hemoglobin [Mass/volume] in Blood', unit: 'g/dL', decimals: 1, measure: 'hemoglobin', weight: 3 },
];

export interface AllergenDefinition extends Coding {
  weight: number;
}

/** SNOMED CT substances. */
export const ALLERGENS: readonly AllergenDefinition[] = [
  { code: '764146007', display: 'Penicillin', weight: 20 },
  { code: '372687004', display: 'Amoxicillin', weight: 6 },
  { code: '387458008', display: 'Aspirin', weight: 6 },
  { code: '387207008', display: 'Ibuprofen', weight: 5 },
  { code: '387494007', display: 'Codeine', weight: 4 },
  { code: '762952008', display: 'Peanut', weight: 8 },
  { code: '442571000124108', display: 'Tree nut', weight: 4 },
  { code: '735029006', display: 'Shellfish', weight: 6 },
  { code: '735971005', display: 'Fish', weight: 2 },
  { code: '102263004', display: 'Eggs (edible)', weight: 3 },
  { code: '3718001', display: "Cow's milk", weight: 3 },
  { code: '412071004', display: 'Wheat', weight: 2 },
  { code: '111088007', display: 'Latex', weight: 4 },
  { code: '288328004', display: 'Bee venom', weight: 4 },
  { code: '256277009', display: 'Grass pollen', weight: 10 },
  { code: '260147004', display: 'House dust mite', weight: 8 },
  { code: '264287008', display: 'Animal dander', weight: 7 },
];

/** Reactions (SNOMED CT findings and disorders, as text). */
export const ALLERGY_REACTIONS: Weighted<string> = [
  ['Wheal', 20],
  ['Eruption of skin', 20],
  ['Itching', 15],
  ['Rhinoconjunctivitis', 12],
  ['Allergic angioedema', 8],
  ['Dyspnea', 7],
  ['Nausea', 6],
  ['Diarrhea', 4],
  ['Cough', 4],
  ['Anaphylaxis', 4],
];

export const ANAPHYLAXIS = 'Anaphylaxis';

/** LOINC document types for clinical notes. */
export const NOTE_TYPES = {
  progress: { code: '11506-3', display: 'Progress note' },
  consult: { code: '11488-4', display: 'Consult note' },
  historyAndPhysical: { code: '34117-2', display: 'History and physical note' },
  discharge: { code: '18842-5', display: 'Discharge summary' },
  emergency: { code: '34111-5', display: 'Emergency department note' },
} as const satisfies Record<string, Coding>;

export const NOTE_PHRASES = {
  symptomStatus: [
    'feeling generally well',
    'intermittent fatigue over the past few weeks',
    'improvement since the last visit',
    'occasional difficulty sleeping',
    'no new complaints',
    'mild symptoms that worsen in the evening',
  ],
  control: ['stable', 'improving', 'not yet at goal', 'well controlled', 'partially controlled'],
  examination: [
    'Vital signs reviewed and within expected range.',
    'Physical examination unremarkable apart from the findings above.',
    'Alert and oriented, in no acute distress.',
    'Lungs clear to auscultation; heart with regular rate and rhythm.',
  ],
  lifestyle: [
    'Counseled on diet, regular physical activity and sleep hygiene.',
    'Discussed medication adherence and reviewed warning signs.',
    'Reviewed home monitoring log with the patient.',
  ],
} as const;
