import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { getVariableValues, GraphQLError, parse, validate, type GraphQLFormattedError, type OperationDefinitionNode } from 'graphql';
import { createErrorFormatter, formatClientError } from '../src/graphql-errors.js';
import type { Role } from '../src/auth/index.js';
import { createLogger } from '../src/logger.js';
import { startGateway } from '../src/gateway/server.js';
import type { SubgraphName } from '../src/subgraphs/catalog.js';
import { resolveServices } from './support/services.js';
import { apiSchema } from './support/supergraph.js';
import { post, startTestStack, type GraphQLResponse, type TestStack } from './support/stack.js';

/**
 * Errors reveal nothing (issue 11): no "Did you mean …" from validation or
 * from variable coercion, on the gateway and on every subgraph port; only
 * the codes meant for clients keep their message; a database that goes
 * away mid-request answers a bare code and the API recovers by itself.
 */

const services = await resolveServices();

/** Apollo Server's rendering of an error, before our formatter sees it. */
function rendered(error: GraphQLError, code?: string): GraphQLFormattedError {
  const json = error.toJSON();
  return { ...json, extensions: { ...json.extensions, ...(code && { code }) } };
}

describe('the error formatter', () => {
  it('answers a driver error as a bare INTERNAL_SERVER_ERROR, keeping only its path and locations', () => {
    const driver = Object.assign(new Error('terminating connection due to administrator command: select "ssn" from "patient" where "mrn" = \'MRN-0042\''), {
      name: 'ConnectionException',
      code: '57P01',
      stack: 'ConnectionException: terminating connection\n    at Connection.parseE (/srv/node_modules/pg/lib/connection.js:1:1)',
    });
    const error = new GraphQLError(driver.message, { originalError: driver, path: ['patient', 'ssn'], extensions: { exception: { stacktrace: driver.stack?.split('\n') } } });
    const shown = formatClientError({ ...rendered(error), locations: [{ line: 1, column: 3 }], extensions: { ...error.extensions, code: 'INTERNAL_SERVER_ERROR', stacktrace: ['at pg'] } }, error);
    // A lost connection is said as the database being unavailable (the response is then withheld, 503), never in the driver's words.
    expect(shown).toEqual({
      message: 'The database did not answer in time, so nothing is returned. Retry shortly; quote the request id.',
      locations: [{ line: 1, column: 3 }],
      path: ['patient', 'ssn'],
      extensions: { code: 'DATABASE_UNAVAILABLE' },
    });
    const bug = Object.assign(new Error('duplicate key value violates unique constraint "patient_mrn_key": MRN-0042'), { name: 'UniqueConstraintViolationException', code: '23505' });
    const hidden = formatClientError(rendered(new GraphQLError(bug.message, { originalError: bug }), 'INTERNAL_SERVER_ERROR'), new GraphQLError(bug.message, { originalError: bug }));
    expect(hidden).toEqual({ message: 'Internal server error; quote the request id when reporting it.', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  });

  it('answers an error without a code, or with a code not meant for clients, as INTERNAL_SERVER_ERROR', () => {
    for (const [message, code] of [
      ['request to http://10.0.3.7:4002/graphql failed, reason: connect ECONNREFUSED 10.0.3.7:4002', 'DOWNSTREAM_SERVICE_ERROR'],
      ['duplicate key value violates unique constraint "patient_mrn_key"', 'INTERNAL_SERVER_ERROR'],
      ['Cannot return null for non-nullable field Patient.id.', 'SOMETHING_NEW'],
    ] as const) {
      const formatted: GraphQLFormattedError = { message, extensions: { ...(code && { code }), serviceName: 'clinical', response: { url: 'http://10.0.3.7:4002/graphql', body: message } } };
      const shown = formatClientError(formatted, new Error(message));
      expect(shown, message).toEqual({ message: 'Internal server error; quote the request id when reporting it.', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
    }
  });

  it('lets client codes through with their message and only the whitelisted simple extensions', () => {
    const shown = formatClientError({
      message: 'Your role may not read Patient.ssn.',
      path: ['patient', 'ssn'],
      extensions: {
        code: 'FORBIDDEN',
        reason: 'ROLE_DENIED',
        field: 'Patient.ssn',
        serviceName: 'patient',
        stacktrace: ['GraphQLError: Your role may not read Patient.ssn.', '    at refusalOf (/srv/src/policy/guard.ts:81:1)'],
        exception: { message: 'driver text' },
        requestId: 'req-12345678',
      },
    });
    expect(shown).toEqual({
      message: 'Your role may not read Patient.ssn.',
      path: ['patient', 'ssn'],
      extensions: { code: 'FORBIDDEN', reason: 'ROLE_DENIED', field: 'Patient.ssn', requestId: 'req-12345678' },
    });
  });

  it('drops a whitelisted extension that carries an object, or a sentence where a code belongs (where driver text could hide)', () => {
    const shown = formatClientError({ message: 'Bad cursor.', extensions: { code: 'BAD_USER_INPUT', argumentName: 'after', reason: { detail: 'relation "observation" does not exist' } } });
    expect(shown.extensions).toEqual({ code: 'BAD_USER_INPUT', argumentName: 'after' });
    const sentence = formatClientError({ message: 'Refused.', extensions: { code: 'FORBIDDEN', reason: 'ARGUMENT_DENIED', cause: 'connection to 10.0.3.7:5432 refused' } });
    expect(sentence.extensions).toEqual({ code: 'FORBIDDEN', reason: 'ARGUMENT_DENIED' });
  });

  it('keeps what an argument refusal says: the argument, its path and the code of why', () => {
    const extensions = { code: 'FORBIDDEN', reason: 'ARGUMENT_DENIED', argument: 'PatientFilter.careTeamId', argumentPath: 'patients.filter.careTeamId', cause: 'MFA_REQUIRED' };
    expect(formatClientError({ message: 'The operation was not run.', extensions }).extensions).toEqual(extensions);
  });

  it('keeps the codes of the audit trail and of requests that could not run as sent', () => {
    for (const code of ['AUDIT_UNAVAILABLE', 'GRAPHQL_VALIDATION_FAILED', 'GRAPHQL_PARSE_FAILED', 'BAD_REQUEST', 'OPERATION_RESOLUTION_FAILURE', 'PERSISTED_QUERY_NOT_FOUND', 'PERSISTED_QUERY_NOT_SUPPORTED', 'UNAUTHENTICATED', 'NOT_FOUND', 'DECRYPTION_FAILED']) {
      expect(formatClientError({ message: `a ${code} message`, extensions: { code } }), code).toEqual({ message: `a ${code} message`, extensions: { code } });
    }
  });

  it('removes every suggestion graphql-js makes while coercing variables, and the value the caller sent', () => {
    const schema = apiSchema();
    const attempts: { document: string; variables: Record<string, unknown>; correct: string; sent?: string }[] = [
      { document: 'query($f: PatientFilter) { patients(filter: $f) { edges { node { id } } } }', variables: { f: { gendr: 'male' } }, correct: 'gender' },
      { document: 'query($f: PatientFilter) { patients(filter: $f) { edges { node { id } } } }', variables: { f: { gender: 'mal' } }, correct: 'male' },
      { document: 'mutation($i: UpdateContactInput!) { updateMyContact(input: $i) { ok } }', variables: { i: { phone: '+1-617-555-0142', adress: { city: 'Boston' } } }, correct: 'address', sent: '617-555-0142' },
      { document: 'mutation($i: RecordPaymentInput!) { recordPayment(input: $i) { ok } }', variables: { i: { invoiceId: 'inv-1', amountCents: 4711, method: 'crd' } }, correct: '"card"', sent: '4711' },
    ];
    for (const { document, variables, correct, sent } of attempts) {
      const operation = parse(document).definitions[0] as OperationDefinitionNode;
      const result = getVariableValues(schema, operation.variableDefinitions ?? [], variables);
      const [error] = result.errors ?? [];
      if (!error) throw new Error(`no coercion error for ${document}`);
      // The attack is real: graphql-js itself suggests the right name.
      expect(error.message, document).toMatch(/Did you mean/);
      const shown = formatClientError(rendered(error, 'BAD_USER_INPUT'), error);
      expect(shown.message, document).not.toMatch(/Did you mean/i);
      expect(shown.message, document).not.toContain(correct);
      expect(shown.message, document).toMatch(/^Variable "\$[fi]" got an invalid value/);
      if (sent) expect(shown.message, document).not.toContain(sent);
    }
  });

  it('keeps the path of the invalid part of a variable and the reason, without the suggestion', () => {
    const operation = parse('query($f: PatientFilter) { patients(filter: $f) { edges { node { id } } } }').definitions[0] as OperationDefinitionNode;
    const [error] = getVariableValues(apiSchema(), operation.variableDefinitions ?? [], { f: { gender: 'mal' } }).errors ?? [];
    if (!error) throw new Error('no coercion error');
    expect(formatClientError(rendered(error, 'BAD_USER_INPUT'), error).message).toBe(
      'Variable "$f" got an invalid value at "f.gender"; Not a value of the "AdministrativeGender" enum.',
    );
    // A reason that quotes the value sent is replaced by one that does not.
    const [quoted] = getVariableValues(apiSchema(), operation.variableDefinitions ?? [], { f: { careTeamId: { ssn: 'SECRET-123' } } }).errors ?? [];
    if (!quoted) throw new Error('no coercion error');
    expect(formatClientError(rendered(quoted, 'BAD_USER_INPUT'), quoted).message).toBe('Variable "$f" got an invalid value at "f.careTeamId"; Not a valid ID.');
    // Without the cause (an error that crossed HTTP), only the variable's name is kept.
    expect(formatClientError({ message: error.message, extensions: { code: 'BAD_USER_INPUT' } }).message).toBe('Variable "$f" got an invalid value.');
  });

  it('removes the suggestions of validation errors of literals, wherever they sit in the message', () => {
    const document = parse('{ patients(filter: { gendr: male, gender: mal }) { edges { node { id nmae } } } }');
    const errors = validate(apiSchema(), document);
    expect(errors.map((error) => error.message).join('\n')).toMatch(/Did you mean/);
    for (const error of errors) {
      const shown = formatClientError(rendered(error, 'GRAPHQL_VALIDATION_FAILED'), error);
      expect(shown.message).not.toMatch(/Did you mean|"gender"|"male"|"name"/i);
    }
    expect(formatClientError({ message: 'A. Did you mean "x"? B. Did you mean the enum value "y" or "z"?', extensions: { code: 'BAD_USER_INPUT' } }).message).toBe('A. B.');
  });

  it('logs an error it hides by kind and SQLSTATE only, never by message', () => {
    const lines: string[] = [];
    const logger = createLogger('info', { write: (line: string) => lines.push(line) });
    const driver = Object.assign(new Error('Connection terminated unexpectedly while reading "patient"."ssn" = 123-45-6789'), { name: 'ConnectionException', code: '57P01' });
    const error = new GraphQLError(driver.message, { originalError: driver });
    const shown = createErrorFormatter(logger)(rendered(error), error);
    expect(shown.extensions).toEqual({ code: 'DATABASE_UNAVAILABLE' });
    const log = lines.join('');
    expect(log).toContain('ConnectionException');
    expect(log).toContain('57P01');
    expect(log).not.toMatch(/terminated|123-45-6789|ssn/);
  });
});

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 20 });
});

afterAll(async () => {
  await stack?.stop();
});

interface Attempt {
  name: string;
  subgraph: SubgraphName;
  /** A role that may use the arguments, so the request gets as far as coercing them (clinician when absent). */
  role?: Role;
  query: string;
  variables?: Record<string, unknown>;
  /** Spellings the caller got wrong: no error may name them. */
  correct: string[];
  /** Values the caller sent: no error may echo them. */
  sent?: string[];
}

const PATIENTS = 'patients(filter: $filter) { edges { node { id } } }';
/** Misspelt input fields (optional ones, so no "required field missing" error names the right spelling) and enum values. */
const ATTEMPTS: Attempt[] = [
  { name: 'an unknown filter field, inline', subgraph: 'patient', query: '{ patients(filter: { gendr: male }) { edges { node { id } } } }', correct: ['gender'] },
  { name: 'a misspelt enum value, inline', subgraph: 'patient', query: '{ patients(filter: { gender: mal }) { edges { node { id } } } }', correct: ['"male"', 'female'] },
  { name: 'an unknown filter field, in a variable', subgraph: 'patient', query: `query($filter: PatientFilter) { ${PATIENTS} }`, variables: { filter: { gendr: 'male' } }, correct: ['gender'] },
  { name: 'a misspelt enum value, in a variable', subgraph: 'patient', query: `query($filter: PatientFilter) { ${PATIENTS} }`, variables: { filter: { gender: 'mal' } }, correct: ['"male"', 'female'] },
  { name: 'a misspelt enum value of another filter, in a variable', subgraph: 'patient', query: 'query($f: AuditEventFilter) { auditEvents(filter: $f) { edges { node { id } } } }', variables: { f: { outcome: 'alowed' } }, role: 'auditor', correct: ['allowed', 'masked', 'denied'] },
  {
    name: 'an unknown mutation input field, in a variable',
    subgraph: 'patient',
    role: 'patient',
    query: 'mutation($input: UpdateContactInput!) { updateMyContact(input: $input) { ok } }',
    variables: { input: { phone: '+1-617-555-0142', adress: { line: ['12 Elm St'], city: 'Boston', state: 'MA', postalCode: '02115' } } },
    correct: ['address'],
    sent: ['617-555-0142', 'Elm St', '02115'],
  },
  {
    name: 'a misspelt enum value in a mutation input, inline',
    subgraph: 'clinical',
    query: 'mutation { addCondition(input: { patientId: "p-1", code: "E11.9", display: "Type 2 diabetes", clinicalStatus: activ }) { ok } }',
    correct: ['"active"', 'inactive', 'recurrence', 'resolved'],
  },
  {
    name: 'an unknown mutation input field, inline',
    subgraph: 'clinical',
    query: 'mutation { addCondition(input: { patientId: "p-1", code: "E11.9", display: "Type 2 diabetes", clinicalStatus: active, onsteDate: "2024-01-02" }) { ok } }',
    correct: ['onsetDate'],
  },
  {
    name: 'a misspelt enum value in a mutation input, in a variable',
    subgraph: 'clinical',
    query: 'mutation($input: AddConditionInput!) { addCondition(input: $input) { ok } }',
    variables: { input: { patientId: 'p-1', code: 'E11.9', display: 'Disclosed diagnosis 8841', clinicalStatus: 'activ' } },
    correct: ['"active"', 'inactive', 'recurrence', 'resolved'],
    sent: ['8841'],
  },
  {
    name: 'an unknown mutation input field, in a variable',
    subgraph: 'clinical',
    query: 'mutation($input: AddClinicalNoteInput!) { addClinicalNote(input: $input) { ok } }',
    variables: { input: { patientId: 'p-1', encountrId: 'e-1', typeCode: '11506-3', text: 'Patient reports chest pain 7312' } },
    correct: ['encounterId'],
    sent: ['chest pain', '7312'],
  },
  {
    name: 'a misspelt enum value in a mutation input, inline',
    subgraph: 'billing',
    role: 'billing',
    query: 'mutation { recordPayment(input: { invoiceId: "i-1", amountCents: 100, method: crd }) { ok } }',
    correct: ['"card"', 'check', 'insurance'],
  },
  {
    name: 'an unknown mutation input field, inline',
    subgraph: 'billing',
    role: 'billing',
    query: 'mutation { recordPayment(input: { invoiceId: "i-1", amountCents: 100, method: card, recievedAt: "2024-01-02T00:00:00Z" }) { ok } }',
    correct: ['receivedAt'],
  },
  {
    name: 'a misspelt enum value in a mutation input, in a variable',
    subgraph: 'billing',
    role: 'billing',
    query: 'mutation($input: RecordPaymentInput!) { recordPayment(input: $input) { ok } }',
    variables: { input: { invoiceId: 'i-1', amountCents: 98765, method: 'chek' } },
    correct: ['"check"', '"card"'],
    sent: ['98765'],
  },
  {
    name: 'an unknown mutation input field, in a variable',
    subgraph: 'billing',
    role: 'billing',
    query: 'mutation($input: RecordPaymentInput!) { recordPayment(input: $input) { ok } }',
    variables: { input: { invoiceId: 'i-1', amountCents: 98765, method: 'card', recievedAt: '2024-01-02T00:00:00Z' } },
    correct: ['receivedAt'],
    sent: ['98765'],
  },
];

function expectNothingSuggested(response: GraphQLResponse, attempt: Attempt, where: string): void {
  const label = `${attempt.name} (${attempt.subgraph}) at ${where}`;
  const errors = response.body.errors ?? [];
  expect(errors.length, label).toBeGreaterThan(0);
  expect(response.body.data ?? null, label).toBeNull();
  for (const error of errors) expect(['GRAPHQL_VALIDATION_FAILED', 'BAD_USER_INPUT'], `${label}: ${error.message}`).toContain(error.extensions?.['code']);
  const text = JSON.stringify(errors);
  expect(text, label).not.toMatch(/did you mean/i);
  for (const spelling of attempt.correct) expect(text, `${label} names ${spelling}`).not.toContain(spelling);
  for (const value of attempt.sent ?? []) expect(text, `${label} echoes ${value}`).not.toContain(value);
}

describe('misspelt input fields and enum values', () => {
  for (const attempt of ATTEMPTS) {
    it(`suggest nothing for ${attempt.name} (${attempt.subgraph}), through the gateway and on the subgraph's own port`, async () => {
      const token = await stack.token(attempt.role ?? 'clinician');
      for (const [where, url] of [
        ['the gateway', stack.gatewayUrl],
        [`the ${attempt.subgraph} subgraph`, stack.subgraphUrl(attempt.subgraph)],
      ] as const) {
        const response = await post(url, attempt.query, { token, ...(attempt.variables && { variables: attempt.variables }) });
        expectNothingSuggested(response, attempt, where);
      }
    });
  }

  it('suggest no field names on any subgraph port either', async () => {
    const token = await stack.token('billing');
    for (const [name, query, correct] of [
      ['patient', '{ patients { edges { node { id nmae } } } }', '"name"'],
      ['clinical', 'mutation { addConditon(input: { patientId: "p", code: "c", display: "d", clinicalStatus: active }) { ok } }', 'addCondition'],
      ['billing', 'mutation { recordPaymnt(input: { invoiceId: "i", amountCents: 1, method: card }) { ok } }', 'recordPayment'],
    ] as const) {
      const response = await post(stack.subgraphUrl(name), query, { token });
      const text = JSON.stringify(response.body.errors ?? []);
      expect(response.body.errors?.[0]?.extensions?.['code'], name).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(text, name).not.toMatch(/did you mean/i);
      expect(text, name).not.toContain(correct);
    }
  });
});

/** Words of a driver or of the database that must never reach a client. */
const DRIVER_TEXT = /terminat|connection|SQLSTATE|57P01|postgres|pg_|observation|relation|lock|select |ECONN|127\.0\.0\.1|localhost|:\d{4}\//i;

describe('a database that goes away mid-request', () => {
  const observationsOf = (patientId: string) => ({
    gateway: {
      query: 'query($id: ID!) { patient(id: $id) { id observations(first: 3) { edges { node { id value } } } } }',
      variables: { id: patientId },
      read: (body: GraphQLResponse['body']) => (body.data as { patient?: { observations?: { edges: unknown[] } | null } | null } | null)?.patient?.observations?.edges,
    },
    subgraph: {
      query: 'query($r: [_Any!]!) { _entities(representations: $r) { ... on Patient { observations(first: 3) { edges { node { id value } } } } } }',
      variables: { r: [{ __typename: 'Patient', id: patientId }] },
      read: (body: GraphQLResponse['body']) => (body.data as { _entities?: ({ observations?: { edges: unknown[] } | null } | null)[] } | null)?._entities?.[0]?.observations?.edges,
    },
  });

  for (const where of ['gateway', 'subgraph'] as const) {
    it(`answers through the ${where} only a bare code, no driver text, and the next request succeeds without a restart`, async (context) => {
      context.skip(!services.postgresUrl, 'needs PostgreSQL (DATABASE_URL or 127.0.0.1:5432): PGlite runs inside the API process and has no backends to terminate');
      const patientId = stack.principals.patient.patientId ?? '';
      const [hasObservations] = await stack.sql<{ n: number }>('select count(*)::int as n from observation where patient_id = ?', [patientId]);
      expect(hasObservations?.n ?? 0).toBeGreaterThan(0);
      const { query, variables, read } = observationsOf(patientId)[where];
      const url = where === 'gateway' ? stack.gatewayUrl : stack.subgraphUrl('clinical');
      const token = await stack.token('clinician');

      // Before: the request works.
      const before = await post(url, query, { token, variables });
      expect(before.body.errors ?? [], 'before').toEqual([]);
      expect(read(before.body)?.length ?? 0).toBeGreaterThan(0);

      const locker = new pg.Client({ connectionString: stack.config.database.url });
      await locker.connect();
      let pending: Promise<GraphQLResponse> | undefined;
      try {
        await locker.query('begin');
        await locker.query('lock table observation in access exclusive mode');
        pending = post(url, query, { token, variables });
        // Wait until the API's statement is queued behind the lock.
        const deadline = Date.now() + 10_000;
        for (;;) {
          const waiting = await locker.query<{ n: number }>(
            "select count(*)::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and wait_event_type = 'Lock'",
          );
          if ((waiting.rows[0]?.n ?? 0) > 0) break;
          if (Date.now() > deadline) throw new Error('the request never waited on the observation lock');
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        // The database goes away for the API: every backend of the test database but this one.
        const terminated = await locker.query<{ n: number }>(
          'select count(*)::int as n from (select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()) t',
        );
        expect(terminated.rows[0]?.n ?? 0).toBeGreaterThan(0);
        await locker.query('rollback');
      } finally {
        await locker.end();
      }

      const during = await pending;
      const errors = during.body.errors ?? [];
      expect(errors.length).toBeGreaterThan(0);
      for (const error of errors) expect(['INTERNAL_SERVER_ERROR', 'AUDIT_UNAVAILABLE', 'DATABASE_UNAVAILABLE']).toContain(error.extensions?.['code']);
      // The audit write usually meets a dead connection too: then, by design, nothing at all is returned (fail closed).
      if (errors.some((error) => error.extensions?.['code'] === 'AUDIT_UNAVAILABLE')) {
        expect(during.status).toBe(503);
        expect(during.body.data ?? null).toBeNull();
      }
      const shown = JSON.stringify(errors.map((error) => ({ message: error.message, extensions: error.extensions })));
      expect(shown).not.toMatch(DRIVER_TEXT);
      expect(shown).not.toMatch(/stack|exception|serviceName/);
      expect(read(during.body) ?? null).toBeNull();

      // The pool drops the dead connections and opens new ones: no restart needed.
      const after = await post(url, query, { token, variables });
      expect(after.body.errors ?? [], 'after').toEqual([]);
      expect(read(after.body)?.length ?? 0).toBeGreaterThan(0);
    });
  }
});

describe('a subgraph the gateway cannot reach', () => {
  it('answers 503 SUBGRAPH_UNAVAILABLE without partial data, the subgraph\'s address or the fetch error', async () => {
    // A port nothing listens on any more, standing in for the clinical subgraph.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const gateway = await startGateway(
      {
        verifier: stack.api.verifier,
        logger: createLogger('silent'),
        subgraphUrls: { patient: stack.subgraphUrl('patient'), clinical: `http://127.0.0.1:${port}/graphql`, billing: stack.subgraphUrl('billing') },
        ready: () => Promise.resolve(true),
      },
      '127.0.0.1',
      0,
    );
    try {
      const response = await post(gateway.url, 'query($id: ID!) { patient(id: $id) { id conditions(first: 1) { edges { node { id } } } } }', {
        token: await stack.token('clinician'),
        variables: { id: stack.principals.patient.patientId },
      });
      const errors = response.body.errors ?? [];
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('5');
      expect(errors.map((error) => error.extensions?.['code'])).toEqual(['SUBGRAPH_UNAVAILABLE']);
      const shown = JSON.stringify(errors);
      expect(shown).not.toContain(String(port));
      expect(shown).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|request to|fetch|clinical|serviceName/i);
      // A half-answered page is not an answer: nothing of the subgraphs that are up either.
      expect(response.body.data ?? null).toBeNull();
      // What does not need the missing subgraph is served as usual.
      const patientOnly = await post<{ patient: { id: string } | null }>(gateway.url, 'query($id: ID!) { patient(id: $id) { id } }', {
        token: await stack.token('clinician'),
        variables: { id: stack.principals.patient.patientId },
      });
      expect(patientOnly.status).toBe(200);
      expect(patientOnly.body.data?.patient?.id).toBe(stack.principals.patient.patientId);
    } finally {
      await gateway.stop();
    }
  });
});

describe('a subgraph that does not answer', () => {
  it('is given up at the gateway\'s fetch deadline: 504 SUBGRAPH_TIMEOUT, no data, no address, quickly', async () => {
    // Accepts the request and never answers, standing in for a stuck clinical subgraph.
    const requests: { destroy(): void }[] = [];
    const stuck = createServer((request) => {
      requests.push(request.socket);
    });
    await new Promise<void>((resolve) => stuck.listen(0, '127.0.0.1', resolve));
    const { port } = stuck.address() as AddressInfo;
    const gateway = await startGateway(
      {
        verifier: stack.api.verifier,
        logger: createLogger('silent'),
        subgraphUrls: { patient: stack.subgraphUrl('patient'), clinical: `http://127.0.0.1:${port}/graphql`, billing: stack.subgraphUrl('billing') },
        ready: () => Promise.resolve(true),
        subgraphTimeoutMs: 500,
      },
      '127.0.0.1',
      0,
    );
    try {
      const started = Date.now();
      const response = await post(gateway.url, 'query($id: ID!) { patient(id: $id) { id conditions(first: 1) { edges { node { id } } } } }', {
        token: await stack.token('clinician'),
        variables: { id: stack.principals.patient.patientId },
      });
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(response.status).toBe(504);
      expect(response.body.data ?? null).toBeNull();
      expect(response.body.errors?.map((error) => error.extensions?.['code'])).toEqual(['SUBGRAPH_TIMEOUT']);
      expect(JSON.stringify(response.body)).not.toMatch(new RegExp(`${port}|127\\.0\\.0\\.1|timeout of|request to|clinical`, 'i'));
      expect(requests.length).toBeGreaterThan(0);
      // Nothing leaves for Apollo: the gateway's built-in usage data collection (an OTLP export and cloud-metadata probes) is off.
      expect(process.env['APOLLO_TELEMETRY_DISABLED']).toBe('true');
    } finally {
      for (const socket of requests) socket.destroy();
      await gateway.stop();
      await new Promise((resolve) => stuck.close(resolve));
    }
  });
});
