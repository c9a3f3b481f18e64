import type { EntityManager } from '@mikro-orm/sql';
import type { Principal } from '../auth/index.js';
import type { Cache } from '../cache/index.js';
import type { Logger } from '../logger.js';
import type { Sealer } from '../db/encryption.js';
import { AuditCollector, auditFieldAccess, type AuditStore, type RequestFacts } from '../audit/index.js';
import type { CursorSealer, StudyPseudonyms } from '../crypto/index.js';
import { createAccessControl, type AccessControl } from './access.js';
import { PageCursors } from './pagination.js';

/**
 * What every resolver of every subgraph receives. Built once per request;
 * nothing per-request lives in module state.
 */
export interface SubgraphContext {
  principal: Principal;
  /** Shared by the gateway and every subgraph call of one client request. */
  requestId: string;
  /** This request's unit of work. */
  em: EntityManager;
  /** Row scope and field decisions of this caller. */
  access: AccessControl;
  /** The shared cache (Redis or in-process): revocations, memberships, emergency grants. */
  cache: Cache;
  /** This subgraph's logger; never give it PHI values. */
  logger: Logger;
  /** Field encryption: the cipher (decrypts only in the policy step) and the blind-index key for writes. */
  sealer: Sealer;
  /** Per-request memo: the same factory returns the same DataLoader for the whole request. */
  loader: <L>(factory: LoaderFactory<L>) => L;
  /** This request's audit records; written once by the audit plugin. */
  audit: AuditCollector;
  /** Told of every field decision; records the PHI ones in `audit`. Absent only in a benchmark's unaudited variant. */
  auditField?: ReturnType<typeof auditFieldAccess>;
  /** The caller's address (through the gateway: the client's, forwarded). */
  clientIp: string | null;
  /** Benchmarks only (plaintextForBenchmark): rows marked unencrypted are found by the MRN lookup too. */
  plaintextForBenchmark?: boolean;
  /** Issues and reads this caller's page cursors (sealed, bound to list, parent, filter and caller). */
  cursors: PageCursors;
  /** Record ids as this caller names them (a researcher's study pseudonyms), turned back into stored ids. */
  ids: RecordIds;
  /** Shows a stored record id as this caller's study pseudonym (researchers only; see the policy's studyPseudonym masker). */
  pseudonymize?: (type: string, id: string) => string | null;
  /** Releases the request's in-flight slot (rate limits) when the work is done. */
  releaseInFlight?: () => void;
  /** The facts every audit record of this request carries (writes are recorded in their own transaction). */
  auditFacts: RequestFacts;
  /** Where a mutation writes its audit records, in its transaction; null in a benchmark's unaudited variant. */
  auditStore: AuditStore | null;
  /** The client's Idempotency-Key (checked at the door): a mutation with one is applied once (writes.ts). */
  idempotencyKey: string | null;
  /** When this request must be done (epoch ms): no write starts after it and no read answers after it. */
  deadline: number;
  /** The deadline this subgraph runs with (for the error). */
  deadlineMs: number;
}

export interface RecordIds {
  /** The stored id of a record of `type` the caller named, or null when it names none (another study's pseudonym, say). */
  stored(type: string, id: string): string | null;
}

const IDENTIFIED: RecordIds = { stored: (_type, id) => id };

/** What a loader needs: the unit of work, the caller's row scope and its cursors. */
export interface LoaderScope {
  em: EntityManager;
  access: AccessControl;
  cursors: PageCursors;
  /** For what a loader must tell the operator (a row whose labels were edited), never PHI. */
  logger: Logger;
}

export type LoaderFactory<L> = (scope: LoaderScope) => L;

/** Async only for a partner token: its organization's sharing agreement is read before the request runs (access.ts). */
export async function createSubgraphContext(
  principal: Principal,
  requestId: string,
  em: EntityManager,
  cache: Cache,
  logger: Logger,
  sealer: Sealer,
  clientIp: string | null,
  options: {
    audited: boolean;
    cursorSealer: CursorSealer;
    pseudonyms: StudyPseudonyms;
    releaseInFlight?: () => void;
    deadline: number;
    deadlineMs: number;
    auditFacts: RequestFacts;
    auditStore: AuditStore | null;
    idempotencyKey: string | null;
    plaintextForBenchmark?: boolean;
  },
): Promise<SubgraphContext> {
  const { study } = principal;
  const audit = new AuditCollector();
  const access = await createAccessControl(principal, em, cache, audit);
  const cursors = new PageCursors(options.cursorSealer, cursorCaller(principal));
  const loaders = new Map<LoaderFactory<unknown>, unknown>();
  return {
    principal,
    requestId,
    em,
    access,
    cache,
    logger,
    sealer,
    audit,
    ...(options.audited && { auditField: auditFieldAccess(audit, principal) }),
    clientIp,
    cursors,
    deadline: options.deadline,
    deadlineMs: options.deadlineMs,
    auditFacts: options.auditFacts,
    auditStore: options.auditStore,
    idempotencyKey: options.idempotencyKey,
    ...(options.releaseInFlight && { releaseInFlight: options.releaseInFlight }),
    ...(options.plaintextForBenchmark && { plaintextForBenchmark: true }),
    ...(study === null
      ? { ids: IDENTIFIED }
      : { ids: { stored: (type, id) => options.pseudonyms.reveal(study, type, id) }, pseudonymize: (type: string, id: string) => options.pseudonyms.hide(study, type, id) }),
    loader: <L>(factory: LoaderFactory<L>): L => {
      let loader = loaders.get(factory) as L | undefined;
      if (loader === undefined) {
        loader = factory({ em, access, cursors, logger });
        loaders.set(factory, loader);
      }
      return loader;
    },
  };
}

/** Whom a cursor is bound to: the token subject and its study (a cursor follows neither to another account nor to another study). */
function cursorCaller(principal: Principal): string {
  return principal.study === null ? principal.subject : `${principal.subject}\u0000study:${principal.study}`;
}
