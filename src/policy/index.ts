export { ACCESS_POLICY, EMERGENCY_PATIENTS_PER_HOUR, INTROSPECTION_ROLES, type RateBudget, allow, deny, mask, type Decision, type PatientScope, type DirectoryScope, type RolePolicy } from './access-policy.js';
export { CATEGORIES, CATEGORY_NAMES, isPhi, type Category } from './categories.js';
export { CLASSIFICATION, categoryOf } from './classification.js';
export { MASKERS, ageAt, maskBirthYear, maskLast4, maskSsnLast4, maskZip3, type MaskerName } from './maskers.js';
export {
  ANY_PURPOSE,
  DecisionTable,
  NO_AGREEMENT,
  boundBySharingAgreement,
  decideField,
  decisionTable,
  mostPermissive,
  rank,
  roleDecision,
  sharingAgreement,
  type FieldDecision,
  type RequestPurpose,
  type SharingAgreement,
} from './decisions.js';
export { PURPOSE_REFUSALS, choosePurpose, purposeAllows, type PurposeRefusal } from './purposes.js';
export { applyDecryptionOnly, applyPolicy, buildShieldRules } from './shield.js';
export { decisionForRow, isEncryptedField, isPromiseLike, ENCRYPTED_DIRECTIVE, type PolicyContext, type Unseal } from './guard.js';
export { schemaViewFor, cachedSchemaView } from './schema-view.js';
export { introspectionByRolePlugin } from './introspection-plugin.js';
export { renderAccessMatrix } from './matrix.js';
export { checkOperation, type FieldVerdict, type OperationCheck } from './check-operation.js';
export {
  ARGUMENT_CLASSIFICATION,
  INPUT_FIELD_CLASSIFICATION,
  argumentDenied,
  argumentDecider,
  argumentUse,
  categoryDeciderFor,
  decideArgumentUse,
  inputFieldUse,
  refusedArguments,
  type ArgumentRefusal,
  type ArgumentUse,
  type ArgumentVerdict,
  type CategoryDecider,
} from './arguments.js';
export { argumentPolicyPlugin, type ArgumentPolicyOptions } from './argument-plugin.js';
export { DEFAULT_DENIAL, REASONS, reasonFor } from './reasons.js';
export {
  DEFAULT_OPERATION_LIMITS,
  MAX_MUTATION_FIELDS,
  costBudget,
  countTokens,
  measureOperation,
  measureSource,
  operationLimitError,
  type LimitBreach,
  type LimitName,
  type OperationLimits,
} from './limits.js';
export { operationLimitsPlugin } from './limits-plugin.js';
