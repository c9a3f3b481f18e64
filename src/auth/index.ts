export { ROLES, STUDY_NAME, isRole, roleList, PURPOSES_OF_USE, PURPOSE_CODES, PURPOSE_HEADER, isPurposeOfUse, type Role, type Principal, type PurposeOfUse } from './principal.js';
export { AuthenticationError, isAuthFailureReason, type AuthFailureReason } from './errors.js';
export { createTokenVerifier, principalFromClaims, type TokenVerifier, type RevocationList } from './verifier.js';
export { mintDevelopmentToken, type TokenClaims } from './mint.js';
export { loadOrCreateDevelopmentKey, DEVELOPMENT_KEY_FILE } from './development-key.js';
