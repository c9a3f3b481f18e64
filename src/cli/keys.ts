import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import {
  addKeyVersion,
  keyRingSchema,
  loadOrCreateDevelopmentKeyRing,
  retireKeyVersions,
  saveDevelopmentKeyRing,
  type KeyRingDocument,
} from '../crypto/index.js';
import { openDatabase } from '../db/index.js';
import { countRowsUnderKeyVersion, encryptPlaintextRows, openSealer, reencryptOldRows } from '../db/encryption.js';
import { describeError } from '../errors.js';

/**
 * Key ring operations:
 *   npm run keys:rotate                 add a key version and make it current
 *   npm run keys:reencrypt              re-encrypt values under older versions (batched, resumable, online)
 *   npm run keys:retire -- --version N  retire a version once no value uses it
 *   npm run data:encrypt                encrypt rows stored before field encryption (batched, resumable)
 * With PHI_KEY_RING set, rotate and retire print the new ring to store in your secret manager;
 * without it (development) they update the development key ring file in DATA_DIR.
 */
const { values, positionals } = parseArgs({
  options: { version: { type: 'string' }, 'batch-size': { type: 'string', default: '500' } },
  allowPositionals: true,
  strict: true,
});
const [command] = positionals;
const config = loadConfig();
const batchSize = Number(values['batch-size']);

async function currentDocument(): Promise<KeyRingDocument> {
  if (config.keyRingJson) return keyRingSchema.parse(JSON.parse(config.keyRingJson));
  if (config.isProduction) throw new Error('PHI_KEY_RING is required in production');
  return loadOrCreateDevelopmentKeyRing(config.database.dataDir);
}

async function publish(document: KeyRingDocument, what: string): Promise<void> {
  if (config.keyRingJson) {
    console.error(`${what}. Store this key ring as PHI_KEY_RING on every instance, restart them, then continue:`);
    console.log(JSON.stringify(document));
    return;
  }
  await saveDevelopmentKeyRing(config.database.dataDir, document);
  console.log(`${what} (development key ring in ${config.database.dataDir}). Restart the API to use it.`);
}

async function withSealer<T>(run: (db: Awaited<ReturnType<typeof openDatabase>>, sealer: Awaited<ReturnType<typeof openSealer>>) => Promise<T>): Promise<T> {
  const db = await openDatabase({ url: config.database.url, dataDir: config.database.dataDir });
  try {
    const sealer = await openSealer(db, { keyRingJson: config.keyRingJson, dataDir: config.database.dataDir, allowDevelopmentKeyRing: !config.isProduction });
    return await run(db, sealer);
  } finally {
    await db.close();
  }
}

const progress = ({ table, done }: { table: string; done: number }) => console.error(`  ${table}: ${done} rows`);

try {
  switch (command) {
    case 'rotate': {
      const next = addKeyVersion(await currentDocument());
      await publish(next, `Key version ${next.current} added and made current`);
      break;
    }
    case 'reencrypt': {
      const rows = await withSealer((db, sealer) => reencryptOldRows(db, sealer, { batchSize, onProgress: progress }));
      console.log(`Re-encrypted ${rows} rows under key version ${(await currentDocument()).current}.`);
      break;
    }
    case 'retire': {
      const version = Number(values.version);
      if (!Number.isInteger(version) || version < 1) throw new Error('--version N is required');
      const remaining = await withSealer((db) => countRowsUnderKeyVersion(db, version));
      if (remaining > 0) throw new Error(`${remaining} rows are still under key version ${version}: run npm run keys:reencrypt first`);
      await publish(retireKeyVersions(await currentDocument(), [version]), `Key version ${version} retired`);
      break;
    }
    case 'encrypt-existing': {
      const rows = await withSealer((db, sealer) => encryptPlaintextRows(db, sealer, { batchSize, onProgress: progress }));
      console.log(rows > 0 ? `Encrypted ${rows} rows stored before field encryption.` : 'No plaintext rows left.');
      break;
    }
    case undefined:
    default:
      throw new Error('usage: keys.ts rotate | reencrypt | retire --version N | encrypt-existing');
  }
} catch (error) {
  console.error(`keys: ${describeError(error)}`);
  process.exit(1);
}
