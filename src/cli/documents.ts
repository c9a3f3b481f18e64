import { readFile, rename, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { isRole, roleList } from '../auth/index.js';
import { loadConfig } from '../config.js';
import { loadApiSchema } from '../gateway/api-schema.js';
import { documentId, readManifest, type TrustedDocument } from '../gateway/trusted-documents.js';
import { checkOperation } from '../policy/check-operation.js';
import { ANY_PURPOSE } from '../policy/decisions.js';

/**
 * Trusted documents (src/gateway/trusted-documents.ts):
 *   npm run documents:register -- --client portal --role partner ops/*.graphql
 *     checks each operation for the client's roles as policy:check does and registers it only when
 *     nothing in it would be denied (no denied field or argument, within the cost budget);
 *   npm run documents:list
 * The manifest is TRUSTED_DOCUMENTS_FILE (default DATA_DIR/trusted-documents.json); deploy it with the gateway.
 */
const USAGE = 'usage: npm run documents:register -- --client NAME --role R[,R...] FILE...  |  npm run documents:list';
const { values, positionals } = parseArgs({
  options: { client: { type: 'string' }, role: { type: 'string', multiple: true } },
  allowPositionals: true,
  strict: true,
});
const [command, ...files] = positionals;
const config = loadConfig();
const path = config.trustedDocuments.file;

function fail(message: string, code = 2): never {
  console.error(message);
  process.exit(code);
}

try {
  const manifest = readManifest(path);
  if (command === 'list') {
    for (const entry of manifest.documents) console.log(`${entry.id}\t${entry.client}\t${entry.roles.join(',')}\t${entry.operationName ?? '(anonymous)'}`);
    process.exit(0);
  }
  if (command !== 'register') fail(USAGE);
  const client = values.client ?? '';
  const roles = roleList(values.role);
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(client) || roles.length === 0 || files.length === 0) fail(USAGE);
  if (!roles.every(isRole)) fail(`unknown role in ${roles.join(',')}\n${USAGE}`);
  const schema = loadApiSchema();
  const accepted: TrustedDocument[] = [];
  let refused = 0;
  for (const file of files) {
    let source: string;
    try {
      source = await readFile(file, 'utf8');
    } catch (error) {
      fail(`documents: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    // Registered for the roles whatever the purpose: each request is still decided for its own purpose when it runs.
    const result = checkOperation(schema, source, roles, ANY_PURPOSE);
    if (!result.ok) {
      console.error(`REFUSED ${file}: not a valid operation for this API: ${result.errors.join('; ')}`);
      refused += 1;
      continue;
    }
    const reasons = [
      ...result.fields.filter((field) => field.decision.kind === 'deny').map((field) => `field ${field.path} (${field.coordinate}) is denied`),
      ...result.deniedArguments.map((argument) => `argument ${argument.path} (${argument.coordinate}) is denied`),
      ...result.costs.filter((entry) => entry.breach).map((entry) => `${entry.operation} is past the ${entry.breach?.limit} limit`),
    ];
    if (reasons.length > 0) {
      console.error(`REFUSED ${file} for ${roles.join(' + ')}: ${reasons.join('; ')}`);
      refused += 1;
      continue;
    }
    accepted.push({ id: documentId(source), client, roles, operationName: result.costs[0]?.operation ?? null, document: source, registeredAt: new Date().toISOString() });
  }
  if (refused > 0) fail(`${refused} of ${files.length} operations refused; nothing was registered.`, 1);
  const kept = manifest.documents.filter((entry) => !accepted.some((added) => added.id === entry.id && added.client === entry.client));
  const next = { version: 1 as const, documents: [...kept, ...accepted] };
  await writeFile(`${path}.next`, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o644 });
  await rename(`${path}.next`, path);
  for (const entry of accepted) console.log(`registered ${entry.id} ${entry.operationName ?? '(anonymous)'} for ${client} (${roles.join(',')})`);
  console.error(`${path}: ${next.documents.length} trusted documents. Deploy it with the gateway (restart it to load the new list).`);
} catch (error) {
  fail(`documents: ${(error as Error).message}`, 1);
}
