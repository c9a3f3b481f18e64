export { ROLES, STUDY_NAME, isRole, roleList, type Role, type Principal } from './principal.js';
export { AuthenticationError, isAuthFailureReason, type AuthFailureReason } from './errors.js';
export { createTokenVerifier, principalFromClaims, type TokenVerifier, type RevocationList } from './verifier.js';
export { mintDevelopmentToken, type TokenClaims } from './mint.js';
export { loadOrCreateDevelopmentKey, DEVELOPMENT_KEY_FILE } from './development-key.js';
