export { ACCESS_POLICY, INTROSPECTION_ROLES, allow, deny, mask, type Decision, type PatientScope, type DirectoryScope, type RolePolicy } from './access-policy.js';
export { CATEGORIES, CATEGORY_NAMES, isPhi, type Category } from './categories.js';
export { CLASSIFICATION, categoryOf } from './classification.js';
export { MASKERS, ageAt, maskBirthYear, maskLast4, maskSsnLast4, maskZip3, type MaskerName } from './maskers.js';
export { DecisionTable, decideField, decisionTable, mostPermissive, patientScopeOf, roleDecision, type FieldDecision } from './decisions.js';
export { applyPolicy, buildShieldRules, decisionForRow, type PolicyContext } from './shield.js';
export { schemaViewFor, cachedSchemaView } from './schema-view.js';
export { introspectionByRolePlugin } from './introspection-plugin.js';
