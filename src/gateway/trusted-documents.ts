import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { NextFunction, Request, Response } from 'express';
import { z } from 'zod';
import type { Principal, Role } from '../auth/index.js';

/**
 * Trusted documents: operations registered ahead of time for a client
 * (`npm run documents:register`, after the policy check of the roles it
 * serves), kept in a manifest deployed with the gateway (TRUSTED_DOCUMENTS_FILE,
 * or DATA_DIR/trusted-documents.json). A client sends the document's id
 * instead of its text: Apollo's persisted-query extension
 * (`extensions.persistedQuery.sha256Hash`) or `documentId` (`sha256:<hex>`).
 * The id is the SHA-256 of the text, the same digest the audit trail records
 * as the operation's hash, so each audit event names its document.
 *
 * Roles listed in TRUSTED_DOCUMENTS_REQUIRED_ROLES may run registered
 * documents only: anything else is refused, 400 PERSISTED_QUERY_REQUIRED.
 * A registered document runs only for the roles it was checked for.
 */
export const DEFAULT_TRUSTED_DOCUMENTS_FILE = 'trusted-documents.json';

const entrySchema = z.object({
  id: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  client: z.string().min(1).max(100),
  roles: z.array(z.string()).min(1),
  operationName: z.string().nullable(),
  document: z.string().min(1),
  registeredAt: z.string(),
});
export const manifestSchema = z.object({ version: z.literal(1), documents: z.array(entrySchema) });
export type TrustedDocument = z.infer<typeof entrySchema>;
export type Manifest = z.infer<typeof manifestSchema>;

export function documentId(document: string): string {
  return `sha256:${createHash('sha256').update(document).digest('hex')}`;
}

export function readManifest(path: string): Manifest {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, documents: [] };
    throw error;
  }
  const manifest = manifestSchema.parse(JSON.parse(text));
  for (const entry of manifest.documents) {
    if (documentId(entry.document) !== entry.id) throw new Error(`trusted documents: ${entry.id} does not match its document (edited by hand?)`);
  }
  return manifest;
}

function refuse(response: Response, status: number, code: string, message: string): void {
  response.status(status).json({ errors: [{ message, extensions: { code } }] });
}

function refuseAdHoc(response: Response): void {
  refuse(response, 400, 'PERSISTED_QUERY_REQUIRED', 'Your role runs registered operations only: send extensions.persistedQuery.sha256Hash or documentId of a trusted document.');
}

/** The requested id, as `sha256:<hex>`, from either form; undefined for an ad-hoc operation; null for a malformed one. */
function requestedId(body: Record<string, unknown>): string | null | undefined {
  const extensions = body['extensions'] as { persistedQuery?: { sha256Hash?: unknown } } | undefined;
  const hash = extensions?.persistedQuery?.sha256Hash;
  const id = body['documentId'];
  if (hash === undefined && id === undefined) return undefined;
  const text = typeof id === 'string' ? id : typeof hash === 'string' ? `sha256:${hash}` : '';
  return /^sha256:[0-9a-f]{64}$/.test(text) ? text : null;
}

/** Express middleware after the token check and the JSON body: puts the registered text in place of an id, refuses what is not allowed. */
export function trustedDocuments(manifest: Manifest, requiredRoles: ReadonlySet<Role>) {
  const byId = new Map(manifest.documents.map((entry) => [entry.id, entry]));
  return (request: Request, response: Response, next: NextFunction): void => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const principal = response.locals['principal'] as Principal | undefined;
    const id = requestedId(body);
    // Whether the caller must send trusted documents is decided by every role its token carries (a purpose that leaves a role out does not lift it).
    if (id === undefined) {
      if (principal?.tokenRoles.some((role) => requiredRoles.has(role))) {
        refuseAdHoc(response);
        return;
      }
      next();
      return;
    }
    const entry = id === null ? undefined : byId.get(id);
    // An APQ client sends the text with its hash: not a registered document, it is an ad-hoc operation (APQ is off: nothing is stored).
    if (!entry && id !== null && body['documentId'] === undefined && typeof body['query'] === 'string') {
      if (documentId(body['query']) !== id) {
        refuse(response, 400, 'BAD_REQUEST', 'The persisted-query hash is not the SHA-256 of the query sent.');
        return;
      }
      const extensions = body['extensions'] as Record<string, unknown>;
      delete extensions['persistedQuery'];
      if (principal?.tokenRoles.some((role) => requiredRoles.has(role))) {
        refuseAdHoc(response);
        return;
      }
      next();
      return;
    }
    // Unknown, or registered for other roles: the same answer (which documents exist is not for every caller).
    if (!entry || !principal?.roles.some((role) => entry.roles.includes(role))) {
      refuse(response, 400, 'PERSISTED_QUERY_NOT_FOUND', 'No trusted document with this id for your role.');
      return;
    }
    if (typeof body['query'] === 'string' && body['query'] !== entry.document) {
      refuse(response, 400, 'BAD_REQUEST', 'The query sent is not the trusted document named by its id.');
      return;
    }
    body['query'] = entry.document;
    delete body['documentId'];
    const extensions = body['extensions'] as Record<string, unknown> | undefined;
    if (extensions) delete extensions['persistedQuery'];
    request.body = body;
    next();
  };
}
