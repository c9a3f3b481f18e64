import { rename, writeFile } from 'node:fs/promises';
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
import { labelUnlabelledRows } from '../db/labelling.js';
import { countRowsUnderKeyVersion, dataKeyReport, encryptPlaintextRows, openSealer, reencryptOldRows, type Sealer } from '../db/encryption.js';
import { describeError } from '../errors.js';
import type { Pkcs11KeyManagement } from '../crypto/pkcs11-key-management.js';

/**
 * Key operations:
 *   npm run keys:rotate                 a new key-encryption key (KEK) version, made current
 *   npm run keys:rotate-data            new data keys for every (table, category), under the current KEK
 *   npm run keys:reencrypt              moves values to the current keys (batched, resumable, online)
 *   npm run keys:retire -- --version N  retires a KEK version once no value uses it
 *   npm run keys:report                 data keys per (table, category), their KEK version and how many values use each
 *   npm run data:encrypt                encrypts rows stored before field encryption (batched, resumable)
 * Where the KEKs are (config.ts, PHI_KMS): with PHI_KMS=pkcs11, rotate generates the KEK in the HSM and
 * retire marks it there; with PHI_KEY_RING_FILE or the development ring, the file is rewritten; with
 * PHI_KEY_RING, the new ring is printed to store in your secret manager. Running instances learn a new
 * version by themselves (KEY_REFRESH_SECONDS, or at once when they meet a value under it), except with
 * PHI_KEY_RING, which needs a restart.
 */
const { values, positionals } = parseArgs({
  options: { version: { type: 'string' }, 'batch-size': { type: 'string', default: '500' } },
  allowPositionals: true,
  strict: true,
});
const [command] = positionals;
const config = loadConfig();
const batchSize = Number(values['batch-size']);
const usesHsm = config.keys.service === 'pkcs11';

async function currentDocument(): Promise<KeyRingDocument> {
  if (config.keys.ringJson) return keyRingSchema.parse(JSON.parse(config.keys.ringJson));
  if (config.keys.ringFile) {
    const { readFile } = await import('node:fs/promises');
    return keyRingSchema.parse(JSON.parse(await readFile(config.keys.ringFile, 'utf8')));
  }
  if (config.isProduction) throw new Error('production needs PHI_KEY_RING, PHI_KEY_RING_FILE or PHI_KMS=pkcs11');
  return loadOrCreateDevelopmentKeyRing(config.database.dataDir);
}

async function publish(document: KeyRingDocument, what: string): Promise<void> {
  if (config.keys.ringJson) {
    console.error(`${what}. Store this key ring as PHI_KEY_RING on every instance, restart them, then continue:`);
    console.log(JSON.stringify(document));
    return;
  }
  if (config.keys.ringFile) {
    // Written beside, then renamed over: an instance reading the file meanwhile sees the old ring or the new one, whole.
    const next = `${config.keys.ringFile}.next`;
    await writeFile(next, `${JSON.stringify(document, null, 2)}\n`, { mode: 0o600 });
    await rename(next, config.keys.ringFile);
    console.log(`${what} (${config.keys.ringFile}). Running instances pick it up by themselves.`);
    return;
  }
  await saveDevelopmentKeyRing(config.database.dataDir, document);
  console.log(`${what} (development key ring in ${config.database.dataDir}). Running instances pick it up by themselves.`);
}

async function withSealer<T>(run: (db: Awaited<ReturnType<typeof openDatabase>>, sealer: Sealer) => Promise<T>): Promise<T> {
  const db = await openDatabase({ url: config.database.url, dataDir: config.database.dataDir });
  try {
    const sealer = await openSealer(db, config.keys);
    try {
      return await run(db, sealer);
    } finally {
      await sealer.cipher.keyService.close?.();
    }
  } finally {
    await db.close();
  }
}

/** The HSM's key service, opened without a database (rotate and retire touch only the token). */
async function withHsm<T>(run: (kms: Pkcs11KeyManagement) => Promise<T>): Promise<T> {
  const settings = config.keys.pkcs11;
  if (!settings) throw new Error('PHI_KMS=pkcs11 needs PKCS11_MODULE, PKCS11_TOKEN_LABEL (or PKCS11_SLOT) and PKCS11_PIN_FILE');
  const { Pkcs11KeyManagement } = await import('../crypto/pkcs11-key-management.js');
  const kms = await Pkcs11KeyManagement.open({ ...settings, allowEmpty: true });
  try {
    return await run(kms);
  } finally {
    await kms.close();
  }
}

const progress = ({ table, done }: { table: string; done: number }) => console.error(`  ${table}: ${done} rows`);

try {
  switch (command) {
    case 'rotate': {
      if (usesHsm) {
        const version = await withHsm((kms) => kms.generateNextKek());
        console.log(`Key-encryption key version ${version} generated in the HSM and made current. Running instances pick it up by themselves.`);
      } else {
        const next = addKeyVersion(await currentDocument());
        await publish(next, `Key version ${next.current} added and made current`);
      }
      break;
    }
    case 'rotate-data': {
      const created = await withSealer((_db, sealer) => sealer.cipher.startNewDataKeys());
      console.log(`Started ${created.length} new data keys (one per table and category). Run npm run keys:reencrypt to move the values to them.`);
      break;
    }
    case 'reencrypt': {
      const { result, version } = await withSealer(async (db, sealer) => ({
        result: await reencryptOldRows(db, sealer, { batchSize, onProgress: progress }),
        version: sealer.cipher.currentKekVersion(),
      }));
      console.log(`Re-encrypted ${result.rows} rows under key version ${version} (the current data key of each table and category).`);
      if (result.unreadable.length > 0) {
        // Named by table, column and row id, never by value: tampered values, or values under a key that does not unwrap.
        console.error(`${result.unreadable.length} values did not decrypt and were left as they are (their key version cannot be retired while they remain):`);
        for (const value of result.unreadable) console.error(`  ${value.table}.${value.column} of row ${value.rowId}: ${value.reason}`);
        process.exitCode = 2;
      }
      break;
    }
    case 'retire': {
      const version = Number(values.version);
      if (!Number.isInteger(version) || version < 1) throw new Error('--version N is required');
      const remaining = await withSealer((db) => countRowsUnderKeyVersion(db, version));
      if (remaining > 0) throw new Error(`${remaining} rows are still under key version ${version}: run npm run keys:reencrypt first`);
      if (usesHsm) {
        await withHsm((kms) => kms.retireKek(version));
        console.log(`Key-encryption key version ${version} retired in the HSM.`);
      } else {
        await publish(retireKeyVersions(await currentDocument(), [version]), `Key version ${version} retired`);
      }
      break;
    }
    case 'report': {
      const report = await withSealer((db) => dataKeyReport(db));
      for (const key of report) console.log(`data key ${key.id}\t${key.scope ?? '(before scopes)'}\tKEK version ${key.kekVersion}\t${key.values} values`);
      break;
    }
    case 'encrypt-existing': {
      const rows = await withSealer((db, sealer) => encryptPlaintextRows(db, sealer, { batchSize, onProgress: progress }));
      console.log(rows > 0 ? `Encrypted ${rows} rows stored before field encryption.` : 'No plaintext rows left.');
      break;
    }
    case 'label-existing': {
      const result = await withSealer((db, sealer) => labelUnlabelledRows(db, sealer, { batchSize }));
      console.log(result.labelled > 0 ? `Labelled ${result.labelled} rows stored before sensitivity labels.` : 'No unlabelled rows left.');
      if (result.unreadable.length > 0) {
        console.error(`${result.unreadable.length} rows did not decrypt and stay unlabelled (withheld from every request not cleared for all categories):`);
        for (const value of result.unreadable) console.error(`  ${value.table} row ${value.rowId}: ${value.reason}`);
        process.exitCode = 1;
      }
      break;
    }
    case undefined:
    default:
      throw new Error('usage: keys.ts rotate | rotate-data | reencrypt | retire --version N | report | encrypt-existing | label-existing');
  }
} catch (error) {
  console.error(`keys: ${describeError(error)}`);
  process.exit(1);
}
