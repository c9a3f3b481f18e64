import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { AuthConfig } from '../config.js';
import { DEVELOPMENT_ALGORITHM, loadOrCreateDevelopmentKey } from './development-key.js';
import type { PurposeOfUse, Role } from './principal.js';

export interface TokenClaims {
  subject: string;
  roles: Role[];
  organizationId?: string | null;
  patientId?: string | null;
  /** The research study (required with the researcher role). */
  study?: string | null;
  /** The `purpose_of_use` claim; without it the roles' default purposes apply. */
  purposes?: readonly PurposeOfUse[];
  mfa: boolean;
  /** Lifetime, e.g. "15m", "1h" (jose time span). */
  ttl: string;
}

/** Signs a token with the development key. Refused in production. */
export async function mintDevelopmentToken(config: AuthConfig, dataDir: string, claims: TokenClaims): Promise<string> {
  if (!config.allowDevelopmentKey) {
    throw new Error('Development tokens cannot be minted when NODE_ENV=production; tokens come from the identity provider');
  }
  const key = await loadOrCreateDevelopmentKey(dataDir);
  return new SignJWT({
    roles: claims.roles,
    ...(claims.organizationId && { org: claims.organizationId }),
    ...(claims.patientId && { patient: claims.patientId }),
    ...(claims.study && { study: claims.study }),
    ...(claims.purposes && { purpose_of_use: claims.purposes }),
    amr: claims.mfa ? ['pwd', 'mfa'] : ['pwd'],
  })
    .setProtectedHeader({ alg: DEVELOPMENT_ALGORITHM, kid: key.kid, typ: 'JWT' })
    .setSubject(claims.subject)
    .setIssuer(config.issuer)
    .setAudience(config.audience)
    .setIssuedAt()
    .setExpirationTime(claims.ttl)
    .setJti(randomUUID())
    .sign(key.privateKey);
}
