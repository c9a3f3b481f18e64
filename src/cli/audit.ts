import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createPublicKey } from 'node:crypto';
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { loadConfig, type Config } from '../config.js';
import { openDatabase, type Database } from '../db/index.js';
import { AUDIT_EXPORT_FORMATS, exportAuditEvents, formatAuditEvent, verifyAuditChain, type AuditExportFormat } from '../audit/index.js';
import { verificationBundle, verifyExport, type VerificationBundle } from '../audit/offline.js';
import type { StoredAuditEvent } from '../audit/events.js';
import { describeError } from '../errors.js';
import { CHECKPOINT_FOLDER, FolderCheckpointSink, loadSigningKey, verifyAgainstCheckpoints, writeCheckpoint } from '../audit/checkpoints.js';
import { join } from 'node:path';

/**
 * npm run audit:verify   walks the audit hash chain and reports any edited, deleted or reordered row, then checks
 *                        the chain against every signed checkpoint outside the database (truncation, rewritten
 *                        and re-chained batches, a head moved back, a bad signature) (exit 1).
 * npm run audit:checkpoint   signs the chain's head now into a checkpoint outside the database.
 * npm run audit:verify -- --export FILE [--public-key PEM]
 *                        verifies an NDJSON export offline, without the database: its events against the batches,
 *                        links and signed checkpoints of FILE.verification.json (written by audit:export --out).
 * npm run audit:export -- --from <ISO> --to <ISO> [--format ndjson|fhir] [--out file]
 *                        writes every audit event recorded in [from, to) as NDJSON (events, or FHIR R4
 *                        AuditEvent resources), streamed page by page; to stdout, or to the file (written
 *                        as <file>.partial and renamed once complete). A summary goes to stderr.
 */
const USAGE = 'usage: audit.ts verify [--export file [--public-key pem]] | audit.ts checkpoint | audit.ts export --from <ISO 8601> --to <ISO 8601> [--format ndjson|fhir] [--out file]';

class UsageError extends Error {}

function parseCommandLine() {
  try {
    return parseArgs({
      allowPositionals: true,
      strict: true,
      options: {
        from: { type: 'string' },
        to: { type: 'string' },
        format: { type: 'string' },
        out: { type: 'string' },
        export: { type: 'string' },
        'public-key': { type: 'string' },
      },
    });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n${USAGE}`);
  }
}

type ExportArguments = ReturnType<typeof parseCommandLine>['values'];

/** A date, or a date and time with its zone (a time without a zone would depend on this machine's). */
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;

function instant(name: string, value: string | undefined): Date {
  if (value === undefined) throw new UsageError(`--${name} is required\n${USAGE}`);
  const date = new Date(value);
  if (!ISO_INSTANT.test(value) || Number.isNaN(date.getTime())) {
    throw new UsageError(`--${name} must be an ISO 8601 date (2026-11-01) or date and time with a zone (2026-11-01T00:00:00Z), not "${value}"`);
  }
  return date;
}

function exportFormat(value: string | undefined): AuditExportFormat {
  const format = value ?? 'ndjson';
  if (!(AUDIT_EXPORT_FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format must be one of ${AUDIT_EXPORT_FORMATS.join(', ')}`);
  return format as AuditExportFormat;
}

/** Writes every line, waiting whenever the destination asks to (a slow pipe or disk never makes lines pile up in memory). */
async function writeLines(lines: AsyncIterable<string>, stream: Writable): Promise<number> {
  let count = 0;
  const failure: { error: Error | null } = { error: null };
  const onError = (error: Error) => {
    failure.error = error;
  };
  stream.on('error', onError);
  try {
    for await (const line of lines) {
      if (failure.error) throw failure.error;
      count += 1;
      if (!stream.write(line)) await once(stream, 'drain');
    }
    if (failure.error) throw failure.error;
  } finally {
    stream.off('error', onError);
  }
  return count;
}

async function exportCommand(db: Database, values: ExportArguments, config: Config): Promise<void> {
  const from = instant('from', values.from);
  const to = instant('to', values.to);
  if (from.getTime() >= to.getTime()) throw new UsageError('--from must be before --to');
  const format = exportFormat(values.format);
  // The batches of the exported events, for the offline verification bundle written beside an NDJSON file.
  const sequences = new Set<number>();
  const lines = (async function* () {
    for await (const event of exportAuditEvents(db, { from, to })) {
      sequences.add(event.batchSequence);
      yield `${formatAuditEvent(event, format)}\n`;
    }
  })();
  let count: number;
  if (values.out) {
    const partial = `${values.out}.partial`;
    const file = createWriteStream(partial, { flags: 'w', mode: 0o600 });
    try {
      await once(file, 'open');
      count = await writeLines(lines, file);
      file.end();
      await once(file, 'close');
      await rename(partial, values.out);
      if (format === 'ndjson') {
        const key = await loadSigningKey({ pem: config.auditSigningKeyPem, dataDir: config.database.dataDir, allowDevelopmentKey: !config.isProduction });
        const sink = new FolderCheckpointSink(join(config.database.dataDir, CHECKPOINT_FOLDER));
        const bundle = await verificationBundle(db, sequences, key, await sink.lines());
        await writeFile(`${values.out}.verification.json`, `${JSON.stringify(bundle, null, 1)}\n`, { mode: 0o600 });
      }
    } catch (error) {
      file.destroy();
      await rm(partial, { force: true });
      throw error;
    }
  } else {
    count = await writeLines(lines, process.stdout);
  }
  console.error(
    `Exported ${count} audit events recorded in [${from.toISOString()}, ${to.toISOString()}) as ${format}${values.out ? ` to ${values.out}` : ''}${values.out && format === 'ndjson' ? `, and what verifies it offline to ${values.out}.verification.json` : ''}.`,
  );
}

/** An export verified with nothing of ours but the public key (given, or the bundle's, compared by id). */
async function verifyOffline(file: string, publicKeyFile: string | undefined): Promise<void> {
  const events = (await readFile(file, 'utf8'))
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as StoredAuditEvent);
  const bundle = JSON.parse(await readFile(`${file}.verification.json`, 'utf8')) as VerificationBundle;
  const publicKey = createPublicKey(publicKeyFile ? await readFile(publicKeyFile, 'utf8') : bundle.publicKey);
  if (!publicKeyFile) console.error(`Verifying with the public key inside the export (id ${bundle.keyId}): check that id against the key you were given, or pass --public-key.`);
  const report = verifyExport(events, bundle, publicKey);
  if (report.ok) {
    console.log(`Export verified offline: ${report.events} events in ${report.batches} batches, ${report.checkpointsMatched} signed checkpoints matched.`);
  } else {
    console.error(`Export FAILS verification (${report.problems.length} problems):`);
    for (const problem of report.problems) console.error(`  ${problem}`);
    process.exitCode = 1;
  }
}

try {
  const { positionals, values } = parseCommandLine();
  const [command] = positionals;
  if (positionals.length > 1) throw new UsageError(USAGE);
  const offline = command === 'verify' && values.export !== undefined;
  if (command === 'verify' && Object.keys(values).some((name) => name !== 'export' && name !== 'public-key')) throw new UsageError(USAGE);
  if (command === 'checkpoint' && Object.keys(values).length > 0) throw new UsageError(USAGE);
  if (offline) {
    await verifyOffline(values.export ?? '', values['public-key']);
    process.exit(process.exitCode ?? 0);
  }
  if (command !== 'verify' && command !== 'export' && command !== 'checkpoint') throw new UsageError(USAGE);
  const config = loadConfig();
  const db = await openDatabase({ url: config.database.url, dataDir: config.database.dataDir });
  try {
    switch (command) {
      case 'verify': {
        const report = await verifyAuditChain(db);
        if (report.ok) {
          console.log(`Audit chain intact: ${report.batches} batches, ${report.events} events.`);
        } else {
          console.error(`Audit chain BROKEN (${report.problems.length} problems over ${report.batches} batches):`);
          for (const problem of report.problems) console.error(`  batch ${problem.sequence}: ${problem.problem}`);
          process.exitCode = 1;
        }
        // The chain alone proves nothing against whoever runs the database: check it against the signed checkpoints kept outside it.
        const key = await loadSigningKey({ pem: config.auditSigningKeyPem, dataDir: config.database.dataDir, allowDevelopmentKey: !config.isProduction });
        const sink = new FolderCheckpointSink(join(config.database.dataDir, CHECKPOINT_FOLDER));
        const checked = await verifyAgainstCheckpoints(db, await sink.lines(), key.publicKey);
        if (checked.ok) {
          console.log(`Signed checkpoints hold: ${checked.checked} checked against the chain (${sink.description}).`);
        } else {
          console.error(`Signed checkpoints CONTRADICT the database (${checked.problems.length} problems, ${sink.description}):`);
          for (const problem of checked.problems) console.error(`  ${problem.line > 0 ? `checkpoint ${problem.line}` : 'checkpoints'}: ${problem.problem}`);
          process.exitCode = 1;
        }
        break;
      }
      case 'checkpoint': {
        const key = await loadSigningKey({ pem: config.auditSigningKeyPem, dataDir: config.database.dataDir, allowDevelopmentKey: !config.isProduction });
        const sink = new FolderCheckpointSink(join(config.database.dataDir, CHECKPOINT_FOLDER));
        const written = await writeCheckpoint(db, sink, key, { force: true });
        console.log(`Checkpoint signed: chain of ${written?.size ?? 0} batches, head ${written?.head ?? ''}, in ${sink.description}.`);
        break;
      }
      case 'export':
        await exportCommand(db, values, config);
        break;
    }
  } finally {
    await db.close();
  }
} catch (error) {
  console.error(`audit: ${describeError(error)}`);
  process.exit(2);
}
