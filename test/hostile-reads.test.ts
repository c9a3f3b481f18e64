import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../src/auth/index.js';
import { CursorSealer } from '../src/crypto/index.js';
import { post, startTestStack, type GraphQLResponse, type TestStack } from './support/stack.js';
import { patientOutsideCareTeams } from './support/fixtures.js';

/**
 * Hostile reads beyond selections (arguments, variables and their defaults,
 * transports, multi-role tokens, _entities, cursors, errors),
 * tried as an attacker with a valid token would. Every test asserts the
 * SAFE behaviour: it fails when the hole exists.
 */

let stack: TestStack;
/** The billing principal's organization, and its busiest care team (billing may not read careTeam). */
let billingOrg: string;
let billingTeam: string;
/** A care team of the clinician's organization with patients, of which the sample clinician is not a member. */
let foreignTeam: string;
/** The sample patient: consents to every partner organization. */
let samplePatient: string;
let samplePatientOrg: string;
let sampleMrn: string;
const NOWHERE = '00000000-0000-4000-8000-000000000001';

beforeAll(async () => {
  stack = await startTestStack({ patients: 60 });
  billingOrg = stack.principals.billing.organizationId ?? '';
  const [team] = await stack.sql<{ id: string }>(
    'select care_team_id as id from patient where managing_organization_id = ? and care_team_id is not null group by care_team_id order by count(*) desc limit 1',
    [billingOrg],
  );
  billingTeam = team?.id ?? '';
  const [foreign] = await stack.sql<{ id: string }>(
    `select p.care_team_id as id from patient p where p.managing_organization_id = ? and p.care_team_id is not null and p.care_team_id not in
       (select m.care_team_id from care_team_member m join app_user u on u.practitioner_id = m.practitioner_id where u.subject = ?)
     group by p.care_team_id order by count(*) desc limit 1`,
    [stack.principals.clinician.organizationId, stack.principals.clinician.subject],
  );
  foreignTeam = foreign?.id ?? '';
  samplePatient = stack.principals.patient.patientId ?? '';
  const [org] = await stack.sql<{ id: string }>('select managing_organization_id as id from patient where id = ?', [samplePatient]);
  samplePatientOrg = org?.id ?? '';
  const chart = await post<{ patient: { mrn: string } }>(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { mrn } }', {
    token: await stack.token('admin', { organizationId: samplePatientOrg }),
    variables: { id: samplePatient },
  });
  sampleMrn = chart.body.data?.patient.mrn ?? '';
  if (!billingTeam || !foreignTeam || !samplePatient || !sampleMrn) throw new Error('fixtures missing');
});

afterAll(async () => {
  await stack?.stop();
});

function ports(): string[] {
  return [stack.gatewayUrl, stack.subgraphUrl('patient')];
}

/** Refused whole for an argument: 403, FORBIDDEN, ARGUMENT_DENIED, no data. */
function expectArgumentDenied(response: GraphQLResponse<unknown>, label: string): void {
  const errors = response.body.errors ?? [];
  const argumentDenied = errors.length > 0 && errors.every((error) => error.extensions?.['code'] === 'FORBIDDEN' && error.extensions['reason'] === 'ARGUMENT_DENIED');
  // Soft: every port is tried and reported, not only the first that fails.
  expect.soft({ status: response.status, data: response.body.data ?? null, argumentDenied }, `${label} ${JSON.stringify(response.body).slice(0, 400)}`).toEqual({
    status: 403,
    data: null,
    argumentDenied: true,
  });
}

/** Everything a client can compare between two answers (timing aside). */
function observable(response: GraphQLResponse<unknown>): unknown {
  // The RateLimit headers count the caller's requests, not anything of the values sent.
  const headers = [...response.headers.entries()].filter(([name]) => !['date', 'x-request-id', 'keep-alive', 'connection'].includes(name) && !name.startsWith('ratelimit-'));
  return { status: response.status, body: response.body, headers };
}

function partnerToken(kind: 'pharmacy' | 'payer' | 'careCoordination', roles: Role[] = ['partner'], mfa = true): Promise<string> {
  const { subject, organizationId } = stack.principals.partners[kind];
  return stack.token('partner', { subject, organizationId, roles, mfa });
}

const PAGE = '{ edges { node { id } } pageInfo { endCursor hasNextPage } }';

describe('arguments hidden in default values of variables', () => {
  it('refuses a denied input field carried by the default value of an input-object variable', async () => {
    const token = await stack.token('billing');
    for (const url of ports()) {
      const probe = (team: string) => post(url, `query Probe($f: PatientFilter = { careTeamId: "${team}" }) { patients(first: 100, filter: $f) ${PAGE} }`, { token });
      const [real, fake] = await Promise.all([probe(billingTeam), probe(NOWHERE)]);
      expectArgumentDenied(real, `${url} real team`);
      expect.soft(observable(real), url).toEqual(observable(fake));
    }
  });

  it('refuses a denied input field whose value is a scalar variable with a default', async () => {
    const token = await stack.token('billing');
    for (const url of ports()) {
      const response = await post(url, `query Probe($c: ID = "${billingTeam}") { patients(first: 100, filter: { careTeamId: $c }) ${PAGE} }`, { token });
      expectArgumentDenied(response, url);
    }
  });

  it('refuses an identifier lookup (MRN) whose value is the default of a non-null variable, for a role that may not read the MRN', async () => {
    const token = await partnerToken('pharmacy');
    for (const url of ports()) {
      const response = await post(url, `query Probe($m: String! = "${sampleMrn}") { patientByMrn(mrn: $m) { id name { family } } }`, { token });
      expectArgumentDenied(response, url);
      expect.soft(JSON.stringify(response.body), url).not.toContain(samplePatient);
    }
  });

  it('asks MFA for a PHI argument carried by a default value', async () => {
    const token = await stack.token('billing', { mfa: false });
    for (const url of ports()) {
      const response = await post(url, `query Probe($g: AdministrativeGender = female) { patients(first: 100, filter: { gender: $g }) ${PAGE} }`, { token });
      expectArgumentDenied(response, url);
      expect.soft(response.body.errors?.[0]?.extensions?.['cause'], url).toBe('MFA_REQUIRED');
    }
  });

  it('refuses a default value shaped like the operations the gateway sends to a subgraph (other variable names)', async () => {
    const token = await stack.token('billing');
    const query = `query Probe__patient__0($Probe_filter_0: PatientFilter = { careTeamId: "${billingTeam}" }) { patients(first: 100, filter: $Probe_filter_0) ${PAGE} }`;
    expectArgumentDenied(await post(stack.subgraphUrl('patient'), query, { token }), 'patient subgraph');
  });
});

describe('arguments of a mutation hidden in a default value', () => {
  it('refuses a write input carried by a default value before anything runs, and writes nothing', async () => {
    const [practitioner] = await stack.sql<{ id: string }>(
      `select p.id from practitioner p where p.organization_id = ? and p.qualification <> 'billing_specialist'
         and p.id not in (select practitioner_id from care_team_member where care_team_id = ?) order by p.id limit 1`,
      [billingOrg, billingTeam],
    );
    const members = async () => (await stack.sql<{ n: string }>('select count(*) as n from care_team_member where care_team_id = ?', [billingTeam]))[0]?.n;
    const before = await members();
    // A nurse may not write care teams; the argument policy must refuse the operation whole, as it does for the same input sent as a variable.
    const token = await stack.token('nurse', { organizationId: billingOrg });
    const document = `mutation Probe($i: AddCareTeamMemberInput! = { careTeamId: "${billingTeam}", practitionerId: "${practitioner?.id ?? NOWHERE}" }) { addCareTeamMember(input: $i) { ok } }`;
    for (const url of ports()) {
      const asVariable = await post(url, 'mutation Probe($i: AddCareTeamMemberInput!) { addCareTeamMember(input: $i) { ok } }', {
        token,
        variables: { i: { careTeamId: billingTeam, practitionerId: practitioner?.id ?? NOWHERE } },
      });
      expectArgumentDenied(asVariable, `${url} as a variable`);
      expectArgumentDenied(await post(url, document, { token }), `${url} as a default value`);
    }
    expect.soft(await members()).toBe(before);
  });
});

describe('arguments in every shape of document', () => {
  const shapes: Record<string, (team: string) => string> = {
    'a fragment spread twice, through a nested fragment': (team) =>
      `query { ...A ...A } fragment A on Query { ...B } fragment B on Query { deep: patients(first: 100, filter: { careTeamId: "${team}" }) ${PAGE} }`,
    'inline fragments with type conditions and an alias': (team) =>
      `query { ... on Query { ... { hidden: patients(first: 100, filter: { careTeamId: "${team}" }) ${PAGE} } } }`,
    'a field under @include(if: false)': (team) => `query { patients(first: 100, filter: { careTeamId: "${team}" }) @include(if: false) ${PAGE} }`,
    'a field under @skip(if: true)': (team) => `query { patients(first: 100, filter: { careTeamId: "${team}" }) @skip(if: true) ${PAGE} }`,
    'the same field twice, allowed then denied argument, under two aliases': (team) =>
      `query { a: patients(first: 1, filter: { gender: female }) ${PAGE} b: patients(first: 100, filter: { gender: female, careTeamId: "${team}" }) ${PAGE} }`,
  };

  for (const [shape, document] of Object.entries(shapes)) {
    it(`refuses ${shape}, the same for two values`, async () => {
      const token = await stack.token('billing');
      for (const url of ports()) {
        const [real, fake] = await Promise.all([post(url, document(billingTeam), { token }), post(url, document(NOWHERE), { token })]);
        expectArgumentDenied(real, url);
        expect.soft(observable(real), url).toEqual(observable(fake));
      }
    });
  }

  it('refuses the operation that operationName selects, and runs only that one', async () => {
    const token = await stack.token('billing');
    const document = `query Safe { viewer { subject } } query Probe { patients(first: 100, filter: { careTeamId: "${billingTeam}" }) ${PAGE} }`;
    for (const url of ports()) {
      const refused = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: document, operationName: 'Probe' }),
      });
      expect.soft(refused.status, url).toBe(403);
      const safe = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: document, operationName: 'Safe' }),
      });
      const body = (await safe.json()) as { data?: { patients?: unknown } };
      expect.soft(body.data?.patients, url).toBeUndefined();
    }
  });

  it('never runs variables of the wrong JSON shape, nor echoes their values', async () => {
    const token = await stack.token('billing');
    const query = `query($f: PatientFilter) { patients(first: 100, filter: $f) ${PAGE} }`;
    const shapesOfF: unknown[] = [
      [{ careTeamId: billingTeam }],
      { careTeamId: [billingTeam] },
      { careTeamId: { id: billingTeam } },
      { careTeamId: billingTeam, careteamid: billingTeam },
      { careteamid: billingTeam },
      billingTeam,
    ];
    for (const url of ports()) {
      for (const f of shapesOfF) {
        const response = await post<{ patients: unknown }>(url, query, { token, variables: { f } });
        const label = `${url} ${JSON.stringify(f)}`;
        expect.soft(response.body.data?.patients ?? null, label).toBeNull();
        expect.soft(response.status, label).toBeGreaterThanOrEqual(400);
        expect.soft(JSON.stringify(response.body), label).not.toContain(billingTeam);
      }
    }
  });
});

describe('requests of every transport', () => {
  const probe = (team: string) => `query { patients(first: 100, filter: { careTeamId: "${team}" }) ${PAGE} }`;

  it('runs nothing of a batched (array) body', async () => {
    const token = await stack.token('billing');
    for (const url of ports()) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify([{ query: probe(billingTeam) }, { query: probe(NOWHERE) }]),
      });
      const text = await response.text();
      expect.soft(response.status, url).toBeGreaterThanOrEqual(400);
      expect.soft(text, url).not.toContain('"edges"');
    }
  });

  it('refuses a GET request with the operation in the URL', async () => {
    const token = await stack.token('billing');
    for (const url of ports()) {
      const response = await fetch(`${url}?query=${encodeURIComponent(probe(billingTeam))}`, {
        headers: { authorization: `Bearer ${token}`, 'apollo-require-preflight': 'true' },
      });
      const body = (await response.json()) as GraphQLResponse['body'];
      expectArgumentDenied({ status: response.status, headers: response.headers, body }, url);
    }
  });

  it('refuses an automatic persisted query, registered and then sent by hash alone', async () => {
    const token = await stack.token('billing');
    const query = `query($f: PatientFilter) { patients(first: 100, filter: $f) ${PAGE} }`;
    const sha256Hash = createHash('sha256').update(query).digest('hex');
    const extensions = { persistedQuery: { version: 1, sha256Hash } };
    for (const url of ports()) {
      const send = async (body: Record<string, unknown>) => {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify(body),
        });
        return { status: response.status, headers: response.headers, body: (await response.json()) as GraphQLResponse['body'] };
      };
      // Registers with an allowed value, then replays the hash with a denied one.
      const registered = await send({ query, extensions, variables: { f: { gender: 'female' } } });
      expect.soft(registered.body.errors, url).toBeUndefined();
      const replay = await send({ extensions, variables: { f: { careTeamId: billingTeam } } });
      if (url === stack.gatewayUrl) {
        // The gateway keeps no automatic persisted queries (only trusted documents): the hash alone runs nothing.
        expect.soft({ status: replay.status, data: replay.body.data ?? null, code: replay.body.errors?.[0]?.extensions?.['code'] }, url).toEqual({ status: 400, data: null, code: 'PERSISTED_QUERY_NOT_FOUND' });
      } else {
        expectArgumentDenied(replay, `${url} by hash`);
      }
    }
  });
});

describe('the refusal says nothing of the value', () => {
  it('gives two values the same status, body and headers, inline, for every denied argument a role can try', async () => {
    const cases: { role: () => Promise<string>; document: (value: string) => string; values: [string, string] }[] = [
      { role: () => stack.token('billing'), document: (v) => `{ patients(first: 100, filter: { careTeamId: "${v}" }) ${PAGE} }`, values: [billingTeam, NOWHERE] },
      { role: () => partnerToken('pharmacy'), document: (v) => `{ patientByMrn(mrn: "${v}") { id } }`, values: [sampleMrn, 'NO-SUCH-MRN'] },
      { role: () => stack.token('researcher'), document: (v) => `{ patientByMrn(mrn: "${v}") { id } }`, values: [sampleMrn, 'NO-SUCH-MRN'] },
      { role: () => stack.token('billing'), document: (v) => `{ auditEvents(first: 5, filter: { patientId: "${v}" }) { edges { node { id } } } }`, values: [samplePatient, NOWHERE] },
    ];
    for (const { role, document, values } of cases) {
      const token = await role();
      for (const url of ports()) {
        const [a, b] = await Promise.all(values.map((value) => post(url, document(value), { token })));
        expectArgumentDenied(a as GraphQLResponse, `${url} ${document('…')}`);
        expect.soft(observable(a as GraphQLResponse), url).toEqual(observable(b as GraphQLResponse));
        expect.soft(JSON.stringify(a?.body)).not.toContain(values[0]);
      }
    }
  });
});

describe('tokens whose decisions are narrower than their role', () => {
  it('refuses a payer partner a filter by gender, which its sharing agreement does not grant', async () => {
    const token = await partnerToken('payer');
    for (const url of ports()) {
      const probe = (gender: string) => post<{ patients: { edges: unknown[] } | null }>(url, `{ patients(first: 100, filter: { gender: ${gender} }) ${PAGE} }`, { token });
      const [female, male] = await Promise.all([probe('female'), probe('male')]);
      expectArgumentDenied(female, `${url} (female: ${female.body.data?.patients?.edges.length ?? '-'} rows, male: ${male.body.data?.patients?.edges.length ?? '-'} rows)`);
      expect.soft(observable(female), url).toEqual(observable(male));
    }
  });
});

describe('multi-role tokens: an argument of one role never reaches rows only another role sees', () => {
  it('billing+partner cannot resolve an MRN to a patient it reaches only as a partner (nor tell a real MRN from a missing one)', async () => {
    // The partner role may not look up by MRN; billing may, but its organization scope does not reach this patient.
    const token = await partnerToken('pharmacy', ['billing', 'partner']);
    for (const url of ports()) {
      const lookUp = (mrn: string) => post<{ patientByMrn: { id: string } | null }>(url, 'query($m: String!) { patientByMrn(mrn: $m) { id } }', { token, variables: { m: mrn } });
      const [real, missing] = await Promise.all([lookUp(sampleMrn), lookUp('NO-SUCH-MRN')]);
      expect.soft(real.body.data?.patientByMrn ?? null, `${url} ${JSON.stringify(real.body)}`).toBeNull();
      expect.soft(observable(real), `${url}: a real MRN answered unlike a missing one`).toEqual(observable(missing));
    }
  });

  it('billing+partner cannot filter partner-only patients by managing organization', async () => {
    const token = await partnerToken('pharmacy', ['billing', 'partner']);
    for (const url of ports()) {
      const probe = (organization: string) =>
        post<{ patients: { edges: unknown[] } | null }>(url, 'query($o: ID) { patients(first: 100, filter: { managingOrganizationId: $o }) { edges { node { id } } } }', {
          token,
          variables: { o: organization },
        });
      const [real, fake] = await Promise.all([probe(samplePatientOrg), probe(NOWHERE)]);
      expect.soft(observable(real), `${url}: the real organization answered unlike a missing one`).toEqual(observable(fake));
    }
  });

  it('clinician+billing cannot find, by the clinician\'s careTeam argument, patients of a care team it is not on (reached only through billing\'s organization scope)', async () => {
    const { subject, organizationId } = stack.principals.clinician;
    const token = await stack.token('clinician', { subject, organizationId, roles: ['clinician', 'billing'] });
    for (const url of ports()) {
      const probe = (team: string) => post<{ patients: { edges: { node: { id: string } }[] } | null }>(url, `{ patients(first: 100, filter: { careTeamId: "${team}" }) ${PAGE} }`, { token });
      const [real, fake] = await Promise.all([probe(foreignTeam), probe(NOWHERE)]);
      const ids = real.body.data?.patients?.edges.map((edge) => edge.node.id) ?? [];
      expect.soft(ids, `${url}: patients of a care team the clinician is not on, found by the clinician's careTeam argument under billing's scope`).toEqual([]);
      expect.soft(observable(real), url).toEqual(observable(fake));
    }
  });

  it('a researcher role never resolves an identifier, whatever other role its token carries', async () => {
    const { subject, organizationId } = stack.principals.clinician;
    const token = await stack.token('clinician', { subject, organizationId, roles: ['clinician', 'researcher'] });
    for (const url of ports()) {
      const response = await post<{ patientByMrn: { id: string } | null }>(url, 'query($m: String!) { patientByMrn(mrn: $m) { id } }', { token, variables: { m: sampleMrn } });
      expect.soft(response.body.data?.patientByMrn ?? null, `${url} ${JSON.stringify(response.body)}`).toBeNull();
    }
  });
});

describe('_entities on every subgraph', () => {
  const TYPES: Record<'patient' | 'clinical' | 'billing', string[]> = {
    patient: ['Patient', 'CareTeam', 'Practitioner', 'Organization'],
    clinical: ['Patient', 'Encounter', 'Condition', 'MedicationRequest', 'Observation', 'AllergyIntolerance', 'ClinicalNote'],
    billing: ['Patient', 'Coverage', 'Claim', 'Invoice', 'Payment'],
  };

  it('refuses a role that reads no record id a representation of every entity type, the same for a real and a missing id', async () => {
    const token = await stack.token('integrator');
    for (const [subgraph, types] of Object.entries(TYPES) as [keyof typeof TYPES, string[]][]) {
      for (const type of types) {
        const query = `query($r: [_Any!]!) { _entities(representations: $r) { __typename } }`;
        const [real, fake] = await Promise.all(
          [samplePatient, NOWHERE].map((id) => post(stack.subgraphUrl(subgraph), query, { token, variables: { r: [{ __typename: type, id }] } })),
        );
        expectArgumentDenied(real as GraphQLResponse, `${subgraph} ${type}`);
        expect.soft(observable(real as GraphQLResponse)).toEqual(observable(fake as GraphQLResponse));
        // A list input sent as one object (coerced to a list of one), and inline.
        expectArgumentDenied(await post(stack.subgraphUrl(subgraph), query, { token, variables: { r: { __typename: type, id: samplePatient } } }), `${subgraph} ${type} single`);
        expectArgumentDenied(
          await post(stack.subgraphUrl(subgraph), `{ _entities(representations: [{ __typename: "${type}", id: "${samplePatient}" }]) { __typename } }`, { token }),
          `${subgraph} ${type} inline`,
        );
      }
    }
  });

  it('ignores extra fields of a representation: an MRN beside the id matches nothing', async () => {
    const token = await partnerToken('pharmacy');
    for (const subgraph of ['patient', 'clinical', 'billing'] as const) {
      const query = `query($r: [_Any!]!) { _entities(representations: $r) { __typename ... on Patient { id } } }`;
      const send = (representation: Record<string, unknown>) => post(stack.subgraphUrl(subgraph), query, { token, variables: { r: [representation] } });
      const [withReal, withFake] = await Promise.all([
        send({ __typename: 'Patient', id: samplePatient, mrn: sampleMrn }),
        send({ __typename: 'Patient', id: samplePatient, mrn: 'NO-SUCH-MRN' }),
      ]);
      expect.soft(withReal.body, subgraph).toEqual(withFake.body);
      const [byMrnReal, byMrnFake] = await Promise.all([send({ __typename: 'Patient', mrn: sampleMrn }), send({ __typename: 'Patient', mrn: 'NO-SUCH-MRN' })]);
      expect.soft(byMrnReal.body, subgraph).toEqual(byMrnFake.body);
      expect.soft(JSON.stringify(byMrnReal.body), subgraph).not.toContain(samplePatient);
    }
  });
});

describe('errors never echo the values sent', () => {
  const MARKER = 'SECRET-MARKER-123-45-6789';
  const cases = (): { document: string; variables: Record<string, unknown>; subgraph: 'patient' | 'clinical' | 'billing' }[] => [
    { document: 'query($id: ID!) { patient(id: $id) { id } }', variables: { id: { ssn: MARKER } }, subgraph: 'patient' },
    { document: `query($n: Int) { patients(first: $n) ${PAGE} }`, variables: { n: MARKER }, subgraph: 'patient' },
    { document: `query($f: PatientFilter) { patients(first: 1, filter: $f) ${PAGE} }`, variables: { f: { gender: MARKER } }, subgraph: 'patient' },
    { document: `query($a: String) { patients(first: 1, after: $a) ${PAGE} }`, variables: { a: { cursor: MARKER } }, subgraph: 'patient' },
    { document: `query($a: String) { patients(first: 1, after: $a) ${PAGE} }`, variables: { a: MARKER }, subgraph: 'patient' },
    {
      document: 'query($r: [_Any!]!, $a: String) { _entities(representations: $r) { ... on Patient { observations(first: 1, after: $a) { edges { node { id } } } } } }',
      variables: { r: [{ __typename: 'Patient', id: samplePatient }], a: [MARKER] },
      subgraph: 'clinical',
    },
  ];

  it('names a bad variable by its path, on the gateway and the subgraphs', async () => {
    const token = await stack.token('billing');
    const failures: string[] = [];
    for (const { document, variables, subgraph } of cases()) {
      for (const url of document.includes('_entities') ? [stack.subgraphUrl(subgraph)] : [stack.gatewayUrl, stack.subgraphUrl(subgraph)]) {
        const response = await post(url, document, { token, variables });
        const text = JSON.stringify(response.body);
        if (!response.body.errors?.length) failures.push(`${url} ${document}: no error`);
        if (text.includes(MARKER)) failures.push(`${url} ${JSON.stringify(variables)}: ${text}`);
      }
    }
    expect.soft(failures).toEqual([]);
  });
});

interface PatientsPage {
  patients: { edges: { node: { id: string } }[]; pageInfo: { endCursor: string | null; hasNextPage: boolean } } | null;
}

const PATIENTS = `query($after: String, $filter: PatientFilter) { patients(first: 3, after: $after, filter: $filter) ${PAGE} }`;

function expectCursorRefused(response: GraphQLResponse<unknown>, label: string): void {
  expect.soft(response.body.errors?.map((error) => error.extensions?.['code']), `${label} ${JSON.stringify(response.body)}`).toEqual(['BAD_USER_INPUT']);
  expect.soft((response.body.data as PatientsPage | undefined)?.patients ?? null, label).toBeNull();
}

describe('sealed cursors', () => {
  it('refuses an expired cursor, sealed with the server key for the right list and caller, on the gateway and the patient subgraph', async () => {
    const ring = stack.api.sealer?.indexKeys;
    if (!ring) throw new Error('no key ring');
    const subject = stack.principals.admin.subject;
    const token = await stack.token('admin');
    const [row] = await stack.sql<{ id: string }>('select id from patient where managing_organization_id = ? order by id limit 1', [stack.principals.admin.organizationId]);
    const binding = { list: 'Query.patients', parent: '', filter: '', caller: subject };
    const fresh = new CursorSealer(ring, 3600).seal(binding, [row?.id ?? '']);
    const expired = new CursorSealer(ring, 3600, () => Date.now() - 2 * 3600 * 1000).seal(binding, [row?.id ?? '']);
    for (const url of ports()) {
      // The control: the same binding, not expired, is accepted, so the refusal below is the expiry's.
      expect.soft((await post(url, PATIENTS, { token, variables: { after: fresh } })).body.errors, url).toBeUndefined();
      const refusedExpired = await post(url, PATIENTS, { token, variables: { after: expired } });
      expectCursorRefused(refusedExpired, `${url} expired`);
      // Expired, forged and another caller's cursors get one and the same answer: the refusal says nothing of why.
      const forged = Buffer.from(JSON.stringify([row?.id])).toString('base64url');
      const foreign = new CursorSealer(ring, 3600).seal({ ...binding, caller: 'someone-else' }, [row?.id ?? '']);
      for (const [name, after] of Object.entries({ forged, foreign })) {
        const other = await post(url, PATIENTS, { token, variables: { after } });
        expect.soft(observable(other), `${url} ${name}`).toEqual(observable(refusedExpired));
      }
    }
  });

  it('binds a researcher\'s cursor to its study: the same subject in another study cannot continue it', async () => {
    const { subject } = stack.principals.researcher;
    const studyA = await stack.token('researcher', { subject, study: 'study-a' });
    const studyB = await stack.token('researcher', { subject, study: 'study-b' });
    const first = await post<PatientsPage>(stack.gatewayUrl, PATIENTS, { token: studyA, variables: {} });
    const after = first.body.data?.patients?.pageInfo.endCursor;
    expect.soft(after, JSON.stringify(first.body)).toBeTruthy();
    expect.soft((await post(stack.gatewayUrl, PATIENTS, { token: studyA, variables: { after } })).body.errors).toBeUndefined();
    for (const url of ports()) expectCursorRefused(await post(url, PATIENTS, { token: studyB, variables: { after } }), `${url} other study`);
  });

  it('after a token change (same subject, another organization), a replayed cursor never returns rows outside the new scope', async () => {
    const { subject, organizationId } = stack.principals.admin;
    const [other] = await stack.sql<{ id: string }>('select managing_organization_id as id from patient where managing_organization_id <> ? group by 1 order by count(*) desc limit 1', [organizationId]);
    const mine = await post<PatientsPage>(stack.gatewayUrl, PATIENTS, { token: await stack.token('admin'), variables: {} });
    const after = mine.body.data?.patients?.pageInfo.endCursor;
    expect.soft(after).toBeTruthy();
    const moved = await stack.token('admin', { subject, organizationId: other?.id ?? null });
    for (const url of ports()) {
      const replay = await post<PatientsPage>(url, PATIENTS, { token: moved, variables: { after } });
      const ids = replay.body.data?.patients?.edges.map((edge) => edge.node.id) ?? [];
      if (ids.length === 0) continue;
      const rows = await stack.sql<{ id: string; org: string }>(`select id, managing_organization_id as org from patient where id in (${ids.map(() => '?::uuid').join(', ')})`, ids);
      expect.soft(rows.every((row) => row.org === other?.id), url).toBe(true);
    }
  });

  it('refuses a cursor of one subgraph\'s nested list in another subgraph\'s list of the same patient', async () => {
    const token = await stack.token('patient');
    const clinical = await post<{ patient: { observations: { pageInfo: { endCursor: string | null } } | null } | null }>(
      stack.gatewayUrl,
      'query($id: ID!) { patient(id: $id) { observations(first: 1) { pageInfo { endCursor } } } }',
      { token, variables: { id: samplePatient } },
    );
    const after = clinical.body.data?.patient?.observations?.pageInfo.endCursor;
    expect.soft(after, JSON.stringify(clinical.body)).toBeTruthy();
    const billing = await post(stack.gatewayUrl, 'query($id: ID!, $a: String) { patient(id: $id) { coverages(first: 1, after: $a) { edges { node { id } } } } }', {
      token,
      variables: { id: samplePatient, a: after },
    });
    expect.soft(billing.body.errors?.map((error) => error.extensions?.['code'])).toEqual(['BAD_USER_INPUT']);
    const direct = await post(
      stack.subgraphUrl('billing'),
      'query($r: [_Any!]!, $a: String) { _entities(representations: $r) { ... on Patient { coverages(first: 1, after: $a) { edges { node { id } } } } } }',
      { token, variables: { r: [{ __typename: 'Patient', id: samplePatient }], a: after } },
    );
    expect.soft(direct.body.errors?.map((error) => error.extensions?.['code'])).toEqual(['BAD_USER_INPUT']);
  });

  it('refuses oversized, empty, padded and mangled cursors with BAD_USER_INPUT, never a server error, and never echoes them', async () => {
    const token = await stack.token('admin');
    const first = await post<PatientsPage>(stack.gatewayUrl, PATIENTS, { token, variables: {} });
    const valid = first.body.data?.patients?.pageInfo.endCursor ?? '';
    expect.soft(valid).toBeTruthy();
    const attempts: Record<string, string> = {
      oversized: 'A'.repeat(200_000),
      'just over the limit': valid + 'A'.repeat(600),
      empty: '',
      padded: `${valid}AAAA`,
      'standard base64': Buffer.from(valid, 'base64url').toString('base64'),
      whitespace: ` ${valid} `,
      'sql-ish': "' or 1=1 --",
    };
    for (const url of ports()) {
      for (const [name, after] of Object.entries(attempts)) {
        const response = await post<PatientsPage>(url, PATIENTS, { token, variables: { after } });
        expectCursorRefused(response, `${url} ${name}`);
        if (after.length > 8) expect.soft(JSON.stringify(response.body), `${url} ${name}`).not.toContain(after.trim().slice(0, 40));
      }
    }
  });

  it('refuses a cursor of page 1 of another filter, and of the unfiltered list, in a filtered list', async () => {
    const token = await stack.token('admin');
    const teams = await stack.sql<{ id: string }>(
      'select care_team_id as id from patient where managing_organization_id = ? and care_team_id is not null group by care_team_id having count(*) > 3 order by count(*) desc limit 2',
      [stack.principals.admin.organizationId],
    );
    const [team, otherTeam] = teams.map((row) => row.id);
    const byTeam = await post<PatientsPage>(stack.gatewayUrl, PATIENTS, { token, variables: { filter: { careTeamId: team } } });
    const all = await post<PatientsPage>(stack.gatewayUrl, PATIENTS, { token, variables: {} });
    const teamCursor = byTeam.body.data?.patients?.pageInfo.endCursor;
    const allCursor = all.body.data?.patients?.pageInfo.endCursor;
    expect.soft(teamCursor && allCursor).toBeTruthy();
    for (const url of ports()) {
      expect.soft((await post(url, PATIENTS, { token, variables: { after: teamCursor, filter: { careTeamId: team } } })).body.errors, url).toBeUndefined();
      expectCursorRefused(await post(url, PATIENTS, { token, variables: { after: allCursor, filter: { careTeamId: team } } }), `${url} unfiltered cursor`);
      expectCursorRefused(await post(url, PATIENTS, { token, variables: { after: teamCursor, filter: { careTeamId: otherTeam } } }), `${url} other team`);
      expectCursorRefused(await post(url, PATIENTS, { token, variables: { after: teamCursor, filter: { careTeamId: team, managingOrganizationId: stack.principals.admin.organizationId } } }), `${url} narrower filter`);
    }
  });

  it('refuses an audit trail cursor in the patient list and a patient list cursor in the audit trail', async () => {
    const auditor = await stack.token('auditor', { organizationId: billingOrg, subject: stack.principals.admin.subject });
    const admin = await stack.token('admin');
    const events = await post<{ auditEvents: { pageInfo: { endCursor: string | null } } }>(stack.gatewayUrl, 'query { auditEvents(first: 1) { pageInfo { endCursor } } }', { token: auditor });
    const list = await post<PatientsPage>(stack.gatewayUrl, PATIENTS, { token: admin, variables: {} });
    const auditCursor = events.body.data?.auditEvents.pageInfo.endCursor;
    const listCursor = list.body.data?.patients?.pageInfo.endCursor;
    expect.soft(auditCursor && listCursor, JSON.stringify(events.body)).toBeTruthy();
    expectCursorRefused(await post(stack.gatewayUrl, PATIENTS, { token: admin, variables: { after: auditCursor } }), 'audit cursor in patients');
    const back = await post(stack.gatewayUrl, 'query($a: String) { auditEvents(first: 1, after: $a) { pageInfo { endCursor } } }', { token: auditor, variables: { a: listCursor } });
    expect.soft(back.body.errors?.map((error) => error.extensions?.['code'])).toEqual(['BAD_USER_INPUT']);
  });
});

describe('cursors across a restart (same key ring)', () => {
  it('continues a list after the whole API restarts, and still refuses a foreign cursor', async () => {
    const token = await stack.token('admin');
    const before = await post<PatientsPage>(stack.gatewayUrl, PATIENTS, { token, variables: {} });
    const after = before.body.data?.patients?.pageInfo.endCursor;
    const expected = await post<PatientsPage>(stack.gatewayUrl, PATIENTS, { token, variables: { after } });
    await stack.restart();
    for (const url of ports()) {
      const continued = await post<PatientsPage>(url, PATIENTS, { token: await stack.token('admin'), variables: { after } });
      expect.soft(continued.body.errors, url).toBeUndefined();
      expect.soft(continued.body.data?.patients?.edges, url).toEqual(expected.body.data?.patients?.edges);
      expectCursorRefused(await post(url, PATIENTS, { token: await stack.token('admin', { subject: 'someone-else' }), variables: { after } }), `${url} foreign after restart`);
    }
  });
});

describe('multi-role tokens: a write under one role never reaches a patient only another role sees', () => {
  it('clinician+billing cannot add a note or a diagnosis for a patient it reaches only as billing, and writes nothing', async () => {
    const outside = await patientOutsideCareTeams(stack.api.db!, stack.principals.clinician);
    const token = await stack.token('clinician', { roles: ['clinician', 'billing'], organizationId: stack.principals.clinician.organizationId });
    const notes = async () => Number((await stack.sql<{ count: string }>('select count(*) as count from clinical_note where patient_id = ?', [outside]))[0]?.count);
    const before = await notes();
    const note = await post<{ addClinicalNote: { ok: boolean; error: { code: string } | null } | null }>(
      stack.gatewayUrl,
      'mutation($p: ID!) { addClinicalNote(input: { patientId: $p, typeCode: "11506-3", text: "Seen today." }) { ok error { code } } }',
      { token, variables: { p: outside } },
    );
    expect(note.body.data?.addClinicalNote).toEqual({ ok: false, error: { code: 'NOT_FOUND' } });
    const condition = await post<{ addCondition: { ok: boolean; error: { code: string } | null } | null }>(
      stack.gatewayUrl,
      'mutation($p: ID!) { addCondition(input: { patientId: $p, code: "E11.9", display: "Type 2 diabetes", clinicalStatus: active }) { ok error { code } } }',
      { token, variables: { p: outside } },
    );
    expect(condition.body.data?.addCondition).toEqual({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(await notes()).toBe(before);
    // The same token still writes for a patient of its care teams.
    const own = await post<{ addClinicalNote: { ok: boolean } | null }>(
      stack.gatewayUrl,
      'mutation($p: ID!) { addClinicalNote(input: { patientId: $p, typeCode: "11506-3", text: "Seen today." }) { ok } }',
      { token, variables: { p: stack.principals.patient.patientId } },
    );
    expect(own.body.data?.addClinicalNote?.ok).toBe(true);
  });

  it('billing+partner cannot record a payment on an invoice of a patient it reaches only as a partner', async () => {
    const [invoice] = await stack.sql<{ id: string; balance_cents: number }>(
      `select i.id, i.balance_cents from invoice i where i.status in ('issued', 'partially_paid') and i.balance_cents > 0 and exists
         (select 1 from consent c where c.patient_id = i.patient_id and c.scope = 'partner-sharing' and c.status = 'active' and c.organization_id = ?
          and c.period_start <= now() and (c.period_end is null or c.period_end > now())) order by i.id limit 1`,
      [stack.principals.partner.organizationId],
    );
    if (!invoice) throw new Error('no open invoice of a patient sharing with the pharmacy');
    const token = await stack.token('billing', { roles: ['billing', 'partner'], organizationId: stack.principals.partner.organizationId });
    const payments = async () => Number((await stack.sql<{ count: string }>('select count(*) as count from payment where invoice_id = ?', [invoice.id]))[0]?.count);
    const before = await payments();
    const response = await post<{ recordPayment: { ok: boolean; error: { code: string } | null } | null }>(
      stack.gatewayUrl,
      'mutation($i: ID!) { recordPayment(input: { invoiceId: $i, amountCents: 1, method: card }) { ok error { code } } }',
      { token, variables: { i: invoice.id } },
    );
    expect(response.body.data?.recordPayment).toEqual({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(await payments()).toBe(before);
  });
});
