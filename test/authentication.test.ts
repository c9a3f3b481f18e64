import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, base64url, decodeJwt, generateKeyPair } from 'jose';
import { loadOrCreateDevelopmentKey } from '../src/auth/index.js';
import { SUBGRAPH_NAMES } from '../src/subgraphs/catalog.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 10 });
});

afterAll(async () => {
  await stack?.stop();
});

/** A query that would return PHI from each place it can be sent. */
const PHI_QUERY: Record<string, string> = {
  gateway: '{ patients(first: 2) { edges { node { id mrn ssn name { text } } } } }',
  patient: '{ patients(first: 2) { edges { node { id mrn ssn name { text } } } } }',
  clinical: '{ _entities(representations: [{ __typename: "Patient", id: "00000000-0000-4000-8000-000000000000" }]) { ... on Patient { clinicalNotes { edges { node { text } } } } } }',
  billing: '{ _entities(representations: [{ __typename: "Patient", id: "00000000-0000-4000-8000-000000000000" }]) { ... on Patient { claims { edges { node { diagnosisCodes } } } } } }',
};

function targets(): { name: string; url: string }[] {
  return [{ name: 'gateway', url: stack.gatewayUrl }, ...SUBGRAPH_NAMES.map((name) => ({ name, url: stack.subgraphUrl(name) }))];
}


async function developmentToken(claims: Record<string, unknown>, options: { issuer?: string; audience?: string; expiresAt?: number } = {}) {
  const key = await loadOrCreateDevelopmentKey(stack.config.database.dataDir);
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ roles: ['clinician'], amr: ['pwd', 'mfa'], ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: key.kid })
    .setSubject('test-subject')
    .setJti(`jti-${Math.random()}`)
    .setIssuedAt(now - 60)
    .setIssuer(options.issuer ?? stack.config.auth.issuer)
    .setAudience(options.audience ?? stack.config.auth.audience)
    .setExpirationTime(options.expiresAt ?? now + 300)
    .sign(key.privateKey);
}

const attacks: { name: string; header: () => Promise<string | undefined>; reason?: string; message?: RegExp }[] = [
  { name: 'no Authorization header', header: () => Promise.resolve(undefined) },
  { name: 'a Basic credential instead of a bearer token', header: () => Promise.resolve('Basic YWRtaW46YWRtaW4=') },
  { name: 'a bearer value that is not a JWT', header: () => Promise.resolve('Bearer not-a-token'), reason: 'MALFORMED_TOKEN', message: /not a valid JWT/ },
  { name: 'three dotted parts that are not base64url JSON', header: () => Promise.resolve('Bearer abc.def.ghi'), reason: 'MALFORMED_TOKEN', message: /not a valid JWT/ },
  { name: 'a scheme without a credential', header: () => Promise.resolve('Bearer'), reason: 'MALFORMED_HEADER', message: /Bearer <token>/ },
  {
    name: 'an unsigned token (alg: none)',
    header: async () => {
      const valid = decodeJwt(await stack.token('admin'));
      const head = base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }));
      return `Bearer ${head}.${base64url.encode(JSON.stringify(valid))}.`;
    },
  },
  {
    name: 'a token signed by another key',
    header: async () => {
      const { privateKey } = await generateKeyPair('ES256');
      const claims = decodeJwt(await stack.token('admin'));
      return `Bearer ${await new SignJWT(claims).setProtectedHeader({ alg: 'ES256' }).sign(privateKey)}`;
    },
  },
  {
    name: 'an HS256 token keyed with the public key (algorithm confusion)',
    header: async () => {
      const key = await loadOrCreateDevelopmentKey(stack.config.database.dataDir);
      const claims = decodeJwt(await stack.token('admin'));
      const secret = new TextEncoder().encode(JSON.stringify(key.publicJwk));
      return `Bearer ${await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(secret)}`;
    },
  },
  {
    name: 'an expired token',
    header: async () => `Bearer ${await developmentToken({}, { expiresAt: Math.floor(Date.now() / 1000) - 120 })}`,
  },
  { name: 'a token for another issuer', header: async () => `Bearer ${await developmentToken({}, { issuer: 'https://evil.example' })}` },
  { name: 'a token for another audience', header: async () => `Bearer ${await developmentToken({}, { audience: 'other-api' })}` },
  { name: 'a token naming an unknown role', header: async () => `Bearer ${await developmentToken({ roles: ['superuser'] })}` },
  { name: 'a patient token without its patient claim', header: async () => `Bearer ${await developmentToken({ roles: ['patient'] })}` },
  {
    name: 'a revoked token',
    header: async () => {
      const token = await stack.token('clinician');
      await stack.api.revocations.revoke(decodeJwt(token).jti ?? '', new Date(Date.now() + 300_000));
      return `Bearer ${token}`;
    },
  },
];

describe('an unauthenticated request', () => {
  for (const attack of attacks) {
    it(`with ${attack.name} gets 401 UNAUTHENTICATED and no data at the gateway and at every subgraph`, async () => {
      for (const target of targets()) {
        const authorization = await attack.header();
        const response = await post(target.url, PHI_QUERY[target.name] ?? '', {
          headers: authorization === undefined ? {} : { authorization },
        });
        expect(response.status, target.name).toBe(401);
        expect(response.body.data, target.name).toBeUndefined();
        expect(response.body.errors?.[0]?.extensions?.['code'], target.name).toBe('UNAUTHENTICATED');
        if (attack.reason) expect(response.body.errors?.[0]?.extensions?.['reason'], target.name).toBe(attack.reason);
        if (attack.message) expect(response.body.errors?.[0]?.message, target.name).toMatch(attack.message);
        expect(JSON.stringify(response.body), target.name).not.toMatch(/\d{3}-\d{2}-\d{4}/);
      }
    });
  }
});

describe('an authenticated request', () => {
  it('is served at the gateway and at every subgraph', async () => {
    const token = await stack.token('clinician');
    for (const target of targets()) {
      const response = await post(target.url, PHI_QUERY[target.name] ?? '', { token });
      expect(response.status, target.name).toBe(200);
      expect(response.body.errors, target.name).toBeUndefined();
      expect(response.body.data, target.name).toBeTruthy();
    }
  });

  it('tells the caller who they are, from the token', async () => {
    const token = await stack.token('billing', { mfa: false });
    const response = await post<{ viewer: Record<string, unknown> }>(stack.gatewayUrl, '{ viewer { subject roles organizationId patientId mfa tokenExpiresAt } }', { token });
    expect(response.body.data?.viewer).toMatchObject({
      subject: stack.principals.billing.subject,
      roles: ['billing'],
      organizationId: stack.principals.billing.organizationId,
      patientId: null,
      mfa: false,
    });
  });
});

