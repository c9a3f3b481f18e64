import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  createRemoteJWKSet,
  errors as joseErrors,
  exportJWK,
  importSPKI,
  jwtVerify,
  calculateJwkThumbprint,
  type JWTPayload,
  type JWTVerifyGetKey,
  type CryptoKey,
} from 'jose';
import type { AuthConfig } from '../config.js';
import { AuthenticationError } from './errors.js';
import { DEVELOPMENT_ALGORITHM, DEVELOPMENT_KEY_FILE, isDevelopmentKid, loadOrCreateDevelopmentKey } from './development-key.js';
import { STUDY_NAME, isPurposeOfUse, isRole, type Principal, type PurposeOfUse } from './principal.js';

/** Answers whether a token id has been revoked (Redis or in-process). */
export interface RevocationList {
  isRevoked(tokenId: string): Promise<boolean>;
}

export interface TokenVerifier {
  /** Verifies an Authorization header value and returns the caller, or throws AuthenticationError. */
  verifyAuthorization(header: string | undefined): Promise<Principal>;
}

const BEARER = /^Bearer +(\S+)$/i;
const COMPACT_JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export async function createTokenVerifier(
  config: AuthConfig,
  dataDir: string,
  revocations: RevocationList,
): Promise<TokenVerifier> {
  const { key, algorithms } = await resolveVerificationKey(config, dataDir);
  return {
    async verifyAuthorization(header) {
      if (header === undefined || header === '') throw new AuthenticationError('MISSING_TOKEN');
      const match = BEARER.exec(header.trim());
      if (!match?.[1]) throw new AuthenticationError('MALFORMED_HEADER');
      if (!COMPACT_JWT.test(match[1])) throw new AuthenticationError('MALFORMED_TOKEN');
      const payload = await verifySignature(match[1], key, config, algorithms);
      const principal = principalFromClaims(payload);
      if (await revocations.isRevoked(principal.tokenId)) throw new AuthenticationError('REVOKED_TOKEN');
      return principal;
    },
  };
}

type VerificationKey = CryptoKey | JWTVerifyGetKey;

async function resolveVerificationKey(
  config: AuthConfig,
  dataDir: string,
): Promise<{ key: VerificationKey; algorithms: string[] }> {
  if (config.jwksUrl) {
    return { key: createRemoteJWKSet(new URL(config.jwksUrl)), algorithms: config.algorithms };
  }
  if (config.publicKeyPem) {
    const [algorithm] = config.algorithms;
    if (!algorithm) throw new Error('AUTH_ALGORITHMS is empty: name the algorithm of AUTH_PUBLIC_KEY');
    const key = await importSPKI(config.publicKeyPem, algorithm);
    if (!config.allowDevelopmentKey) await refuseDevelopmentPublicKey(key, dataDir);
    return { key, algorithms: config.algorithms };
  }
  if (!config.allowDevelopmentKey) {
    throw new Error('No token verification key configured: set AUTH_JWKS_URL or AUTH_PUBLIC_KEY (the development key is refused in production)');
  }
  const developmentKey = await loadOrCreateDevelopmentKey(dataDir);
  return { key: developmentKey.publicKey, algorithms: [DEVELOPMENT_ALGORITHM] };
}

/** In production, a configured public key that is the development key is refused at start. */
async function refuseDevelopmentPublicKey(key: CryptoKey, dataDir: string): Promise<void> {
  const path = join(dataDir, DEVELOPMENT_KEY_FILE);
  if (!existsSync(path)) return;
  const stored = JSON.parse(await readFile(path, 'utf8')) as { publicJwk: Parameters<typeof calculateJwkThumbprint>[0] };
  const configured = await calculateJwkThumbprint(await exportJWK(key));
  if (configured === (await calculateJwkThumbprint(stored.publicJwk))) {
    throw new Error('AUTH_PUBLIC_KEY is the development signing key; production refuses it');
  }
}

async function verifySignature(
  token: string,
  key: VerificationKey,
  config: AuthConfig,
  algorithms: string[],
): Promise<JWTPayload> {
  try {
    const options = {
      issuer: config.issuer,
      audience: config.audience,
      algorithms,
      clockTolerance: config.clockToleranceSeconds,
      requiredClaims: ['exp', 'iat', 'sub', 'jti'],
    };
    const { payload, protectedHeader } =
      typeof key === 'function' ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options);
    if (!config.allowDevelopmentKey && isDevelopmentKid(protectedHeader.kid)) {
      throw new AuthenticationError('INVALID_TOKEN', 'development key id in production');
    }
    return payload;
  } catch (error) {
    if (error instanceof AuthenticationError) throw error;
    if (error instanceof joseErrors.JWTExpired) throw new AuthenticationError('EXPIRED_TOKEN');
    if (error instanceof joseErrors.JWTClaimValidationFailed) throw new AuthenticationError('INVALID_CLAIMS', error.claim);
    // Parts that are not base64url JSON (a header or claims set that does not decode).
    if (error instanceof joseErrors.JWSInvalid || error instanceof joseErrors.JWTInvalid) throw new AuthenticationError('MALFORMED_TOKEN', error.code);
    if (error instanceof joseErrors.JOSEError) throw new AuthenticationError('INVALID_TOKEN', error.code);
    throw new AuthenticationError('INVALID_TOKEN');
  }
}

/** Turns verified claims into a Principal; anything unexpected refuses the token. */
export function principalFromClaims(payload: JWTPayload): Principal {
  const roles = payload['roles'];
  if (!Array.isArray(roles) || roles.length === 0 || !roles.every(isRole)) {
    throw new AuthenticationError('INVALID_CLAIMS', 'roles');
  }
  const organizationId = optionalString(payload['org'], 'org');
  const patientId = optionalString(payload['patient'], 'patient');
  if (roles.includes('patient') && !patientId) {
    throw new AuthenticationError('INVALID_CLAIMS', 'patient');
  }
  const study = optionalString(payload['study'], 'study');
  // De-identified access never mixes with identified access in one token: its record ids are per-study pseudonyms.
  if (roles.includes('researcher') && (!study || !STUDY_NAME.test(study) || roles.length > 1)) {
    throw new AuthenticationError('INVALID_CLAIMS', 'study');
  }
  const amr = payload['amr'];
  if (amr !== undefined && !(Array.isArray(amr) && amr.every((method) => typeof method === 'string'))) {
    throw new AuthenticationError('INVALID_CLAIMS', 'amr');
  }
  if (!payload.sub || !payload.jti || payload.exp === undefined) {
    throw new AuthenticationError('INVALID_CLAIMS', 'sub/jti/exp');
  }
  // The subject and token id are recorded with every audit event: bounded like the columns that hold them.
  if (payload.sub.length > MAX_CLAIM_LENGTH || payload.jti.length > MAX_CLAIM_LENGTH || (organizationId?.length ?? 0) > MAX_CLAIM_LENGTH) {
    throw new AuthenticationError('INVALID_CLAIMS', 'sub/jti/org length');
  }
  // Every role of the token; a request narrows `roles` to those that may read for its purpose (http.ts).
  const distinct = [...new Set(roles)];
  return {
    subject: payload.sub,
    roles: distinct,
    tokenRoles: distinct,
    organizationId,
    patientId,
    mfa: Array.isArray(amr) && amr.includes('mfa'),
    tokenId: payload.jti,
    expiresAt: new Date(payload.exp * 1000),
    study: roles.includes('researcher') ? study : null,
    purposes: purposesOf(payload['purpose_of_use']),
    purpose: null,
  };
}

/** The most purposes a claim may name (there are a few dozen codes in all). */
const MAX_PURPOSES = 32;

/**
 * The `purpose_of_use` claim: an array of codes or one space-separated
 * string (as OAuth scopes are). Codes this API does not know are left out:
 * they grant nothing. Any other shape refuses the token.
 */
function purposesOf(claim: unknown): PurposeOfUse[] | null {
  if (claim === undefined) return null;
  const codes = typeof claim === 'string' ? claim.split(' ').filter((code) => code !== '') : claim;
  if (!Array.isArray(codes) || codes.length > MAX_PURPOSES || !codes.every((code) => typeof code === 'string' && code.length <= 32)) {
    throw new AuthenticationError('INVALID_CLAIMS', 'purpose_of_use');
  }
  return [...new Set(codes.filter(isPurposeOfUse))];
}

/** The longest subject, token id or organization a token may carry. */
const MAX_CLAIM_LENGTH = 255;

function optionalString(value: unknown, claim: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value === '') throw new AuthenticationError('INVALID_CLAIMS', claim);
  return value;
}
