import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getIntrospectionQuery, type IntrospectionQuery } from 'graphql';
import { ROLES, type Role } from '../src/auth/index.js';
import { ANY_PURPOSE, INTROSPECTION_ROLES, decideField } from '../src/policy/index.js';
import { apiSchema } from './support/supergraph.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 10 });
});

afterAll(async () => {
  await stack?.stop();
});

async function introspect(role: Role, url = stack.gatewayUrl) {
  return post<IntrospectionQuery>(url, getIntrospectionQuery(), { token: await stack.token(role) });
}

function visibleFields(result: IntrospectionQuery): Set<string> {
  return new Set(
    result.__schema.types
      .filter((type) => type.kind === 'OBJECT' && !type.name.startsWith('__'))
      .flatMap((type) => ('fields' in type && type.fields ? type.fields.map((field) => `${type.name}.${field.name}`) : [])),
  );
}

describe('schema views', () => {
  for (const role of INTROSPECTION_ROLES) {
    it(`show ${role} through the gateway exactly the fields its role may read`, async () => {
      const response = await introspect(role);
      expect(response.status).toBe(200);
      const visible = visibleFields(response.body.data as IntrospectionQuery);
      const schema = apiSchema();
      for (const type of Object.values(schema.getTypeMap())) {
        if (!('getFields' in type) || type.name.startsWith('__') || type.constructor.name !== 'GraphQLObjectType') continue;
        for (const field of Object.keys((type as { getFields(): Record<string, unknown> }).getFields())) {
          const readable = decideField([role], type.name, field, undefined, ANY_PURPOSE).decision.kind !== 'deny';
          if (!readable) expect(visible.has(`${type.name}.${field}`), `${type.name}.${field}`).toBe(false);
        }
      }
      for (const name of visible) {
        const [type, field] = name.split('.') as [string, string];
        expect(decideField([role], type, field, undefined, ANY_PURPOSE).decision.kind, name).not.toBe('deny');
      }
    });
  }

  it('show an integrator no patient data types at all', async () => {
    const visible = visibleFields((await introspect('integrator')).body.data as IntrospectionQuery);
    expect([...visible].filter((name) => name.startsWith('Query.'))).toEqual(['Query.viewer']);
    expect([...visible].some((name) => name.startsWith('Patient.'))).toBe(false);
  });

  it('show an admin patients without SSN, clinical or billing fields', async () => {
    const visible = visibleFields((await introspect('admin')).body.data as IntrospectionQuery);
    expect(visible.has('Patient.name')).toBe(true);
    expect(visible.has('Patient.careTeam')).toBe(true);
    for (const hidden of ['Patient.ssn', 'Patient.clinicalNotes', 'Patient.claims', 'Patient.birthDate']) expect(visible.has(hidden), hidden).toBe(false);
    expect(visible.has('ClinicalNote.text')).toBe(false);
  });

  it('are downloadable as SDL from GET /schema.graphql: the caller view with its descriptions, refused to other roles and without a token', async () => {
    const url = stack.gatewayUrl.replace(/\/graphql$/, '/schema.graphql');
    const admin = await fetch(url, { headers: { authorization: `Bearer ${await stack.token('admin')}` } });
    expect(admin.status).toBe(200);
    const sdl = await admin.text();
    expect(sdl).toMatch(/type Patient[^{]*\{[^}]*\bname\b/);
    expect(sdl).not.toMatch(/\bssn\b/);
    expect(sdl).not.toContain('ClinicalNote');
    expect(sdl).toContain('"""');
    const integrator = await (await fetch(url, { headers: { authorization: `Bearer ${await stack.token('integrator')}` } })).text();
    expect(integrator).not.toMatch(/type Patient\b/);
    expect((await fetch(url, { headers: { authorization: `Bearer ${await stack.token('clinician')}` } })).status).toBe(403);
    expect((await fetch(url)).status).toBe(401);
  });

  it('are the only introspection a subgraph answers too', async () => {
    const response = await introspect('admin', stack.subgraphUrl('clinical'));
    const visible = visibleFields(response.body.data as IntrospectionQuery);
    expect(visible.has('ClinicalNote.text')).toBe(false);
    expect(visible.has('Patient.clinicalNotes')).toBe(false);
    expect(visible.has('Query._entities')).toBe(true);
    for (const name of visible) {
      const [type, field] = name.split('.') as [string, string];
      if (type === '_Service' || field.startsWith('_')) continue;
      expect(decideField(['admin'], type, field, undefined, ANY_PURPOSE).decision.kind, name).not.toBe('deny');
    }
  });

  for (const role of ROLES.filter((role) => !INTROSPECTION_ROLES.includes(role))) {
    it(`refuse introspection to ${role} with FORBIDDEN`, async () => {
      const response = await post(stack.gatewayUrl, '{ __schema { types { name } } }', { token: await stack.token(role) });
      expect(response.status).toBe(403);
      expect(response.body.data ?? null).toBeNull();
      expect(response.body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    });
  }

  describe('a subgraph\'s full SDL (_service)', () => {
    const attempts = {
      plain: '{ _service { sdl } }',
      aliased: '{ schema: _service { sdl } }',
      'in a fragment': 'query Sdl { ...Service } fragment Service on Query { _service { sdl } }',
      'beside an entity lookup': '{ _entities(representations: []) { __typename } _service { sdl } }',
    };
    for (const role of ['admin', 'integrator', 'clinician'] as const) {
      it(`is refused to ${role} on every subgraph port, however it is asked for`, async () => {
        const token = await stack.token(role);
        for (const name of ['patient', 'clinical', 'billing'] as const) {
          for (const [how, query] of Object.entries(attempts)) {
            const response = await post(stack.subgraphUrl(name), query, { token });
            const label = `${name}, ${how}`;
            expect(JSON.stringify(response.body), label).not.toMatch(/type Patient|@key|extend schema/);
            expect(response.body.data ?? null, label).toBeNull();
            // An integrator reads no record ids, so its entity lookup alone already refuses the whole operation (ARGUMENT_DENIED).
            const expected = role === 'integrator' && query.includes('_entities') ? { code: 'FORBIDDEN', reason: 'ARGUMENT_DENIED' } : { code: 'FORBIDDEN', reason: 'SDL_NOT_SERVED', field: 'Query._service' };
            expect(response.body.errors?.[0]?.extensions, label).toMatchObject(expected);
          }
        }
      });
    }

    it('is not part of the gateway\'s schema', async () => {
      const response = await post(stack.gatewayUrl, '{ _service { sdl } }', { token: await stack.token('admin') });
      expect(response.status).toBe(400);
      expect(response.body.errors?.[0]?.extensions?.['code']).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(JSON.stringify(response.body)).not.toContain('type Patient');
    });
  });

  it('refuse an operation that mixes introspection with data', async () => {
    const response = await post(stack.gatewayUrl, '{ __type(name: "Patient") { name } patients { edges { node { id } } } }', { token: await stack.token('admin') });
    expect(response.status).toBe(400);
    expect(response.body.errors?.[0]?.extensions?.['code']).toBe('BAD_USER_INPUT');
  });

  it('do not suggest field names in validation errors', async () => {
    const response = await post(stack.gatewayUrl, '{ patients { edges { node { id ssnn clinicalNote } } } }', { token: await stack.token('billing') });
    const messages = (response.body.errors ?? []).map((error) => error.message).join('\n');
    expect(messages).toContain('Cannot query field');
    expect(messages).not.toMatch(/Did you mean/i);
  });
});
