import { describe, expect, it } from 'vitest';
import { isIntrospectionType, isNonNullType, isObjectType } from 'graphql';
import { ROLES, type Role } from '../src/auth/index.js';
import {
  ACCESS_POLICY,
  CATEGORIES,
  CLASSIFICATION,
  REASONS,
  categoryOf,
  reasonFor,
  decideField,
  maskBirthYear,
  maskLast4,
  maskSsnLast4,
  maskZip3,
  mostPermissive,
  rank,
  roleDecision,
  allow,
  deny,
  mask,
  CATEGORY_NAMES,
  NO_AGREEMENT,
  decisionTable,
  ANY_PURPOSE,
  sharingAgreement,
  type Category,
} from '../src/policy/index.js';
import { PARTNER_ORGANIZATIONS } from '../src/db/seed/index.js';
import { buildSchema } from '../src/subgraphs/server.js';
import { SUBGRAPH_NAMES } from '../src/subgraphs/catalog.js';
import { apiSchema } from './support/supergraph.js';

function objectFields(schema: ReturnType<typeof apiSchema>): { type: string; field: string; nonNull: boolean }[] {
  return Object.values(schema.getTypeMap())
    .filter((type) => isObjectType(type) && !isIntrospectionType(type))
    .flatMap((type) =>
      isObjectType(type)
        ? Object.values(type.getFields()).map((field) => ({ type: type.name, field: field.name, nonNull: isNonNullType(field.type) }))
        : [],
    );
}

describe('the access policy', () => {
  const fields = objectFields(apiSchema());

  it('classifies every field of every type in the composed schema, so every role has a decision for it', () => {
    const unclassified = fields.filter(({ type, field }) => !categoryOf(type, field)).map(({ type, field }) => `${type}.${field}`);
    expect(unclassified).toEqual([]);
    for (const { type, field } of fields) {
      for (const role of ROLES) expect(['allow', 'mask', 'deny']).toContain(decideField([role], type, field, undefined, ANY_PURPOSE).decision.kind);
    }
  });

  it('classifies no field that the schema does not have (no stale entries)', () => {
    const known = new Set(fields.map(({ type, field }) => `${type}.${field}`));
    const stale = Object.entries(CLASSIFICATION).flatMap(([type, map]) => Object.keys(map).map((field) => `${type}.${field}`)).filter((name) => !known.has(name));
    expect(stale).toEqual([]);
  });

  it('keeps every field that some role is denied nullable, so a denial cannot null out the rest of a response', () => {
    const fragile = fields
      .filter(({ nonNull }) => nonNull)
      .filter(({ type, field }) => ROLES.some((role) => decideField([role], type, field, undefined, ANY_PURPOSE).decision.kind === 'deny') && categoryOf(type, field) !== 'structure')
      .filter(({ type, field }) => !(field === 'id' || (type === 'Query' && field === 'viewer')))
      .map(({ type, field }) => `${type}.${field}`);
    expect(fragile).toEqual([]);
  });

  it('covers the federation fields of every subgraph schema too', () => {
    for (const name of SUBGRAPH_NAMES) {
      const subgraphFields = objectFields(buildSchema(name)).filter(({ type, field }) => !(type === 'Query' && field.startsWith('_')) && type !== '_Service');
      const unclassified = subgraphFields.filter(({ type, field }) => !categoryOf(type, field));
      expect(unclassified, name).toEqual([]);
    }
  });
});

describe('minimum necessary', () => {
  const allowed = (role: Role) => new Set(Object.entries(ACCESS_POLICY[role].fields).filter(([, decision]) => decision.kind !== 'deny').map(([category]) => category as Category));
  const clinical: Category[] = ['encounter', 'condition', 'medication', 'observation', 'allergy', 'clinicalNote', 'clinicalDate', 'careParticipant'];
  const billingContent: Category[] = ['claim', 'diagnosisCodes', 'invoice', 'payment', 'coverage', 'memberId'];
  const identifying: Category[] = ['name', 'mrn', 'ssn', 'contact', 'addressStreet', 'clinicalNote', 'clinicalDate', 'careParticipant', 'careTeam', 'managingOrganization'];

  it('gives admin and auditor no clinical or billing content', () => {
    for (const role of ['admin', 'auditor'] as const) {
      for (const category of [...clinical, ...billingContent]) expect(allowed(role).has(category), `${role} ${category}`).toBe(false);
    }
  });

  it('gives billing no clinical content beyond diagnosis codes on claims', () => {
    for (const category of clinical) expect(allowed('billing').has(category), category).toBe(false);
    expect(allowed('billing').has('diagnosisCodes')).toBe(true);
  });

  it('gives nurses no clinical notes, and clinicians and nurses a masked SSN at most', () => {
    expect(allowed('nurse').has('clinicalNote')).toBe(false);
    expect(roleDecision('clinician', 'ssn')).toEqual(mask('ssnLast4'));
    expect(roleDecision('nurse', 'ssn')).toEqual(mask('ssnLast4'));
  });

  it('gives researchers a Safe Harbor view: no identifiers, year of birth, three-digit ZIP', () => {
    for (const category of identifying) expect(allowed('researcher').has(category), category).toBe(false);
    expect(roleDecision('researcher', 'birthDate')).toEqual(mask('birthYear'));
    expect(roleDecision('researcher', 'postalCode')).toEqual(mask('zip3'));
    expect(ACCESS_POLICY.researcher.patients).toBe('researchCohort');
  });

  it('never shows a partner a category more fully than a treating clinician sees it', () => {
    const looser = CATEGORY_NAMES.filter((category) => rank(roleDecision('partner', category)) > rank(roleDecision('clinician', category)));
    expect(looser).toEqual([]);
    // Two masks rank alike: the partner's must be the clinician's, not a more revealing one.
    for (const category of CATEGORY_NAMES) {
      const partner = roleDecision('partner', category);
      if (partner.kind === 'mask') expect(partner, category).toEqual(roleDecision('clinician', category));
    }
    expect(roleDecision('partner', 'memberId')).toEqual(mask('last4'));
  });

  it('grants each seeded partner organization a set within the partner role, each a different one', () => {
    for (const partner of PARTNER_ORGANIZATIONS) {
      const beyondRole = partner.sharedCategories.filter((category) => roleDecision('partner', category).kind === 'deny');
      expect(beyondRole, partner.name).toEqual([]);
      expect(sharingAgreement(partner.sharedCategories).categories.size, partner.name).toBe(partner.sharedCategories.length);
    }
    const sets = PARTNER_ORGANIZATIONS.map((partner) => [...partner.sharedCategories].sort().join(','));
    expect(new Set(sets).size).toBe(PARTNER_ORGANIZATIONS.length);
    expect(PARTNER_ORGANIZATIONS.map((partner) => partner.kind).sort()).toEqual(['careCoordination', 'payer', 'pharmacy']);
  });

  it('gives integrators no data at all', () => {
    expect([...allowed('integrator')].sort()).toEqual(['self', 'structure']);
    expect(ACCESS_POLICY.integrator.patients).toBe('none');
  });

  it('marks every category that is about a patient as PHI', () => {
    const nonPhi = Object.entries(CATEGORIES).filter(([, category]) => !category.phi).map(([name]) => name);
    expect(nonPhi.sort()).toEqual(['directory', 'patientLookup', 'recordId', 'recordLink', 'self', 'structure']);
  });
});

describe('the reasons of the policy', () => {
  it('give every decision that is not a denial a one-line reason', () => {
    const missing = ROLES.flatMap((role) => CATEGORY_NAMES.filter((category) => roleDecision(role, category).kind !== 'deny' && !reasonFor(role, category)).map((category) => `${role}.${category}`));
    expect(missing).toEqual([]);
    for (const role of ROLES) for (const reason of Object.values(REASONS[role])) expect(reason).not.toContain('\n');
  });
});

describe('combining roles', () => {
  it('takes the most permissive decision field by field and never invents one', () => {
    expect(mostPermissive([deny, mask('ssnLast4')])).toEqual(mask('ssnLast4'));
    expect(mostPermissive([mask('birthYear'), allow])).toEqual(allow);
    expect(mostPermissive([deny, deny])).toEqual(deny);
    expect(mostPermissive([])).toEqual(deny);
    expect(decideField(['nurse', 'billing'], 'ClinicalNote', 'text', undefined, ANY_PURPOSE).decision).toEqual(deny);
    expect(decideField(['nurse', 'billing'], 'Claim', 'total', undefined, ANY_PURPOSE).decision).toEqual(allow);
    expect(decideField(['researcher', 'partner'], 'Patient', 'birthDate', undefined, ANY_PURPOSE).decision).toEqual(allow);
  });
});

describe('a partner under its sharing agreement', () => {
  const payer: Category[] = ['self', 'structure', 'recordId', 'patientLookup', 'directory', 'name', 'birthDate', 'coverage', 'memberId'];

  it('reads a category only if the role allows it and its organization is granted it', () => {
    const table = decisionTable(['partner'], ANY_PURPOSE, sharingAgreement(payer));
    expect(table.get('Patient', 'name').decision).toEqual(allow);
    expect(table.get('Coverage', 'memberId').decision).toEqual(mask('last4'));
    // Granted to the role, not to this organization:
    expect(table.get('Patient', 'medicationRequests').decision).toEqual(deny);
    expect(table.get('MedicationRequest', 'medication').decision).toEqual(deny);
    expect(table.get('Patient', 'phone').decision).toEqual(deny);
    // Granted to the organization, never to the role: an agreement cannot widen the policy.
    const overreaching = decisionTable(['partner'], ANY_PURPOSE, sharingAgreement([...payer, 'ssn', 'clinicalNote']));
    expect(overreaching.get('Patient', 'ssn').decision).toEqual(deny);
    expect(overreaching.get('ClinicalNote', 'text').decision).toEqual(deny);
  });

  it('reads nothing without an agreement, or with category names the policy does not know', () => {
    for (const table of [decisionTable(['partner'], ANY_PURPOSE), decisionTable(['partner'], ANY_PURPOSE, NO_AGREEMENT), decisionTable(['partner'], ANY_PURPOSE, sharingAgreement(['Name', 'medications', '']))]) {
      for (const [type, field] of [['Query', 'patients'], ['Patient', 'id'], ['Patient', 'name'], ['MedicationRequest', 'medication']] as const) {
        expect(table.get(type, field).decision, `${type}.${field}`).toEqual(deny);
      }
    }
  });

  it('keeps one table per agreement, and leaves the other roles of a token as they are', () => {
    const pharmacy = sharingAgreement([...payer, 'medication']);
    expect(decisionTable(['partner'], ANY_PURPOSE, sharingAgreement(payer))).toBe(decisionTable(['partner'], ANY_PURPOSE, sharingAgreement([...payer].reverse())));
    expect(decisionTable(['partner'], ANY_PURPOSE, pharmacy)).not.toBe(decisionTable(['partner'], ANY_PURPOSE, sharingAgreement(payer)));
    expect(decisionTable(['partner'], ANY_PURPOSE, pharmacy).get('MedicationRequest', 'medication').decision).toEqual(allow);
    expect(decisionTable(['partner'], ANY_PURPOSE, sharingAgreement(payer)).get('MedicationRequest', 'medication').decision).toEqual(deny);
    // Roles not bound by an agreement share their table whatever agreement is passed.
    expect(decisionTable(['billing'], ANY_PURPOSE, pharmacy)).toBe(decisionTable(['billing'], ANY_PURPOSE));
    expect(decisionTable(['billing', 'partner'], ANY_PURPOSE, sharingAgreement(payer)).get('Claim', 'total').decision).toEqual(allow);
    expect(decisionTable(['billing', 'partner'], ANY_PURPOSE, sharingAgreement(payer)).get('MedicationRequest', 'medication').decision).toEqual(deny);
  });
});

describe('maskers', () => {
  it('keep the last four digits of an SSN and nothing else', () => {
    expect(maskSsnLast4('987-65-4321')).toBe('***-**-4321');
    expect(maskSsnLast4('not an ssn')).toBeNull();
    expect(maskLast4('XKJ123456789')).toBe('********6789');
    expect(maskLast4('123')).toBeNull();
  });

  it('reduce a birth date to its year, and withhold it for ages over 89', () => {
    const today = new Date('2026-11-25T00:00:00Z');
    expect(maskBirthYear('1985-07-14', today)).toBe('1985');
    expect(maskBirthYear('1936-11-26', today)).toBe('1936'); // 89 until tomorrow
    expect(maskBirthYear('1936-11-25', today)).toBeNull(); // 90 today
    expect(maskBirthYear('garbage', today)).toBeNull();
  });

  it('reduce a ZIP code to three digits, and to 000 in sparsely populated areas', () => {
    expect(maskZip3('02139')).toBe('021');
    expect(maskZip3('02139-4307')).toBe('021');
    expect(maskZip3('03601')).toBe('000');
    expect(maskZip3('2139')).toBeNull();
  });
});
