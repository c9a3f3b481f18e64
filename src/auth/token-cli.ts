import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { readDevelopmentPrincipals } from '../db/seed/index.js';
import { isPurposeOfUse, isRole, PURPOSE_CODES, roleList, ROLES, STUDY_NAME, type PurposeOfUse } from './principal.js';
import { mintDevelopmentToken } from './mint.js';
import { describeError } from '../errors.js';

/**
 * `npm run -s token -- --role <role>[,<role>...] [--sub ID] [--org ID] [--patient ID] [--study NAME] [--purpose CODE[,CODE...]] [--no-mfa] [--ttl 15m]`
 * prints a development bearer token, alone, on stdout. Without --sub it
 * uses the seeded account that fits the role (written by the seeder).
 * Without --purpose the token has no `purpose_of_use` claim: its roles'
 * default purposes apply (src/policy/purposes.ts).
 */

const USAGE = `usage: npm run -s token -- --role <${ROLES.join('|')}>[,<role>...] [--sub ID] [--org ID] [--patient ID] [--study NAME] [--purpose CODE[,CODE...]] [--no-mfa] [--ttl 15m]`;
/** The study a development researcher token names when --study is not given. */
const DEVELOPMENT_STUDY = 'development-study';

function fail(message: string): never {
  console.error(message);
  process.exit(2);
}

try {
  const { values } = parseArgs({
    options: {
      role: { type: 'string', multiple: true },
      sub: { type: 'string' },
      org: { type: 'string' },
      patient: { type: 'string' },
      study: { type: 'string' },
      purpose: { type: 'string', multiple: true },
      'no-mfa': { type: 'boolean', default: false },
      ttl: { type: 'string', default: '15m' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) fail(USAGE);
  const roles = roleList(values.role);
  if (roles.length === 0) fail(`--role is required\n${USAGE}`);
  for (const role of roles) if (!isRole(role)) fail(`unknown role "${role}"\n${USAGE}`);
  if (!/^\d+[smhd]$/.test(values.ttl)) fail(`--ttl must look like 15m, 1h or 30s\n${USAGE}`);

  const config = loadConfig();
  const [primaryRole] = roles as [(typeof ROLES)[number]];
  let sample = null;
  if (!values.sub) {
    const principals = await readDevelopmentPrincipals(config.database.dataDir);
    if (!principals) fail(`No seeded accounts found in ${config.database.dataDir}: run "npm start" or "npm run seed" first, or pass --sub.`);
    sample = principals[primaryRole];
  }
  const patientId = values.patient ?? sample?.patientId ?? null;
  if (roles.includes('patient') && !patientId) fail('the patient role needs --patient <patient id>');
  if (roles.includes('researcher') && roles.length > 1) fail('the researcher role is de-identified access: it cannot be combined with another role in one token');
  const study = roles.includes('researcher') ? (values.study ?? DEVELOPMENT_STUDY) : null;
  if (study && !STUDY_NAME.test(study)) fail('--study takes 1 to 64 letters, digits, ".", "_", ":" or "-"');
  const purposes = values.purpose === undefined ? undefined : roleList(values.purpose);
  for (const purpose of purposes ?? []) if (!isPurposeOfUse(purpose)) fail(`unknown purpose of use "${purpose}" (one of ${PURPOSE_CODES.join(', ')})\n${USAGE}`);
  const token = await mintDevelopmentToken(config.auth, config.database.dataDir, {
    subject: values.sub ?? sample?.subject ?? fail('no subject'),
    roles: roles as (typeof ROLES)[number][],
    organizationId: values.org ?? sample?.organizationId ?? null,
    patientId,
    study,
    ...(purposes && { purposes: purposes as PurposeOfUse[] }),
    mfa: !values['no-mfa'],
    ttl: values.ttl,
  });
  process.stdout.write(`${token}\n`);
} catch (error) {
  fail(`token: ${describeError(error)}\n${USAGE}`);
}
