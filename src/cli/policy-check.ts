import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { isRole, roleList, ROLES, type PurposeOfUse } from '../auth/index.js';
import { loadApiSchema } from '../gateway/api-schema.js';
import { PURPOSE_REFUSALS, checkOperation, choosePurpose } from '../policy/index.js';

/**
 * `npm run policy:check -- --role partner [--purpose HPAYMT] path/to/operation.graphql`
 * Lists the fields of an operation that the role(s) would be denied or get
 * masked, and the arguments they may not use (any of which refuses the
 * whole operation), reading for the purpose of use `--purpose` names (a
 * token whose purpose_of_use claim names it) or, without it, for the
 * purpose a request of the roles falls back to. Exit 0: nothing denied; 1:
 * some field or argument denied, or the purpose refused; 2: bad input.
 */
const USAGE = `usage: npm run policy:check -- --role <${ROLES.join('|')}> [--role ...] [--purpose <code>] [--no-mfa] <operation.graphql>`;

const { values, positionals } = parseArgs({
  options: { role: { type: 'string', multiple: true }, purpose: { type: 'string' }, 'no-mfa': { type: 'boolean', default: false } },
  allowPositionals: true,
  strict: true,
});
const roles = roleList(values.role);
if (roles.length === 0 || positionals.length !== 1 || !roles.every(isRole)) {
  console.error(USAGE);
  process.exit(2);
}
const file = positionals[0] as string;
let document: string;
try {
  document = await readFile(file, 'utf8');
} catch (error) {
  console.error(`policy:check: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  process.exit(2);
}
const chosen = choosePurpose(roles, values.purpose === undefined ? null : [values.purpose as PurposeOfUse], values.purpose);
if ('refusal' in chosen) {
  console.log(`${file} as ${roles.join(' + ')} for ${values.purpose ?? 'no named purpose'}: REFUSED (${chosen.refusal}): ${PURPOSE_REFUSALS[chosen.refusal]}`);
  process.exit(chosen.refusal === 'PURPOSE_UNKNOWN' ? 2 : 1);
}
const { purpose } = chosen;
// As a request would: only the roles that may read for the purpose act.
const result = checkOperation(loadApiSchema(), document, chosen.roles, purpose);
if (!result.ok) {
  console.error(`${file} is not a valid operation for this API:\n${result.errors.map((error) => `  - ${error}`).join('\n')}`);
  process.exit(2);
}
const noMfa = values['no-mfa'];
const denied = result.fields.filter((field) => field.decision.kind === 'deny' || (noMfa && field.phi));
const masked = result.fields.filter((field) => field.decision.kind === 'mask' && !denied.includes(field));
const deniedArguments = noMfa ? result.deniedArgumentsWithoutMfa : result.deniedArguments;
console.log(
  `${file} as ${roles.join(' + ')} for ${purpose}${noMfa ? ' (token without MFA)' : ''}: ${result.fields.length} fields, ${denied.length} denied, ${masked.length} masked, ${deniedArguments.length} arguments denied`,
);
for (const { operation, cost, budget, breach } of result.costs) {
  console.log(`  COST  ${operation}: ${cost} of the budget of ${budget}${breach ? ` — REFUSED at run time: ${breach.limit} ${breach.measured} over ${breach.max} (OPERATION_LIMIT)` : ''}`);
}
const ARGUMENT_WHY = { ROLE_DENIED: 'the role may not read what it matches', MASKED_ONLY: 'the role reads what it matches only masked', NOT_CLASSIFIED: 'not classified', MFA_REQUIRED: 'needs an MFA token' } as const;
for (const argument of deniedArguments) {
  console.log(`  ARGUMENT DENIED  ${argument.path}  (${argument.coordinate}, ${ARGUMENT_WHY[argument.reason]}: the whole operation is refused, FORBIDDEN / ARGUMENT_DENIED)`);
}
for (const field of denied) {
  const why = field.decision.kind === 'deny' ? 'denied by role' : 'denied: needs an MFA token';
  console.log(`  DENIED  ${field.path}  (${field.coordinate}, ${why}: null and FORBIDDEN at run time)`);
}
for (const field of masked) {
  if (field.decision.kind === 'mask') console.log(`  MASKED  ${field.path}  (${field.coordinate}, ${field.decision.masker})`);
}
process.exit(denied.length > 0 || deniedArguments.length > 0 || result.costs.some((entry) => entry.breach) ? 1 : 0);
