import { HeaderMap, type ApolloServerPlugin, type GraphQLResponse } from '@apollo/server';
import { GraphQLError } from 'graphql';
import type { Principal } from '../auth/index.js';
import type { Logger } from '../logger.js';
import type { AuditCollector } from './collector.js';
import { operationHash, type AuditEventRecord, type FieldRecord, type RequestFacts } from './events.js';
import { alertEvent, logAlerts, watchAccess, type AccessWatch, type Alert, type AlertThresholds } from './alerts.js';
import type { Cache } from '../cache/index.js';
import { AUDIT_UNAVAILABLE_MESSAGE, ErrorCode, cacheUnavailable } from '../errors.js';
import { EMERGENCY_PATIENTS_PER_HOUR, type RateBudget } from '../policy/index.js';
import { rateBudget, rateLimited, secondsToNextHour, type RateLimitOverrides, type RateLimitReason } from '../rate-limits.js';
import { RETRY_AFTER_SECONDS } from '../unavailable.js';
import type { AuditStore } from './store.js';
import { auditWriteFailures, auditWriteSeconds, fieldDecisions, roleLabel } from '../metrics.js';

/**
 * Owns each request's audit collector: at willSendResponse the request's
 * reads and refusals are written as one batch, and the response waits. If
 * the write fails, the response leaves without any data (fail closed):
 * HTTP 503 and AUDIT_UNAVAILABLE, the failure logged and counted.
 */
export interface AuditedContext {
  principal: Principal;
  requestId: string;
  audit: AuditCollector;
  clientIp: string | null;
  logger: Logger;
  access: { readonly emergencyReads: ReadonlyMap<string, string> };
}

export const AUDIT_UNAVAILABLE = ErrorCode.AuditUnavailable;
/** Headers the gateway forwards so subgraph records name the client's operation, not the gateway's fetch. */
export const FORWARDED_OPERATION_NAME = 'x-client-operation-name';
export const FORWARDED_OPERATION_HASH = 'x-client-operation-hash';
const CLIENT_NAME = 'apollographql-client-name';
const CLIENT_VERSION = 'apollographql-client-version';
const MAX_HEADER_LENGTH = 200;

export interface AuditMetrics {
  writes: number;
  failures: number;
}

function header(headers: { get(name: string): string | undefined } | undefined, name: string): string | null {
  const value = headers?.get(name);
  return value ? value.slice(0, MAX_HEADER_LENGTH) : null;
}

/**
 * The facts of one request that every audit record of it carries: the
 * audit plugin's (reads) and a mutation's own (writes, in its transaction)
 * are the same. Headers are cut to MAX_HEADER_LENGTH so a record always fits.
 */
export function requestFacts(
  subgraph: string,
  principal: Principal,
  requestId: string,
  ip: string | null,
  headers: { get(name: string): string | undefined } | undefined,
  operationName: string | null | undefined,
  source: string | undefined,
): RequestFacts {
  return {
    requestId,
    subgraph,
    subject: principal.subject,
    roles: [...principal.roles],
    organizationId: principal.organizationId,
    clientName: header(headers, CLIENT_NAME),
    clientVersion: header(headers, CLIENT_VERSION),
    ip,
    // A name sent straight to a subgraph has no length limit of its own: cut like a forwarded one, so the audit row always fits.
    operationName: header(headers, FORWARDED_OPERATION_NAME) ?? operationName?.slice(0, MAX_HEADER_LENGTH) ?? null,
    operationHash: header(headers, FORWARDED_OPERATION_HASH) ?? operationHash(source ?? ''),
    purpose: principal.purpose,
    // The account's other roles, when this request acted with fewer (its purpose): on the record, for who it was.
    tokenRoles: principal.tokenRoles.length === principal.roles.length ? null : [...principal.tokenRoles],
  };
}

export interface AuditWatch {
  cache: Cache;
  thresholds: AlertThresholds;
  /** Settings that replace the policy's budgets (RATE_LIMIT_*). */
  rateOverrides?: RateLimitOverrides;
}

export function auditPlugin<TContext extends AuditedContext>(
  subgraph: string,
  store: AuditStore,
  metrics: AuditMetrics,
  watch: AuditWatch,
): ApolloServerPlugin<TContext> {
  return {
    requestDidStart() {
      return Promise.resolve({
        async willSendResponse({ contextValue, request, response, source, operationName }) {
          const { audit, principal } = contextValue;
          if (audit.size === 0 && audit.written.length === 0 && audit.alerts.length === 0) return;
          const facts = requestFacts(subgraph, principal, contextValue.requestId, contextValue.clientIp, request.http?.headers, operationName, source);
          // Writes are on record with their rows (their mutation's transaction); what is left of them was never written.
          audit.markUnwritten();
          const recordedAt = new Date();
          const events = audit.events(facts, recordedAt, contextValue.access.emergencyReads);
          // The counters move while the batch is written (one round trip fewer on the response's path);
          // an alert is recorded only once the access itself is on record.
          const watching = watchAccess(watch.cache, [...audit.written, ...events], watch.thresholds, recordedAt).catch((error: unknown) => {
            contextValue.logger.error({ event: 'access-alert-failed', requestId: facts.requestId, err: { name: (error as Error).name } }, 'access counters could not be updated');
            return null;
          });
          countFieldDecisions(events, principal);
          const writing = process.hrtime.bigint();
          try {
            if (events.length > 0) await store.append(events);
            metrics.writes += 1;
            if (events.length > 0) auditWriteSeconds.observe({ subgraph }, Number(process.hrtime.bigint() - writing) / 1e9);
          } catch (error) {
            metrics.failures += 1;
            auditWriteFailures.inc({ subgraph });
            const code = (error as { code?: unknown }).code;
            contextValue.logger.error(
              { event: 'audit-write-failed', requestId: contextValue.requestId, failures: metrics.failures, err: { name: (error as Error).name, code: typeof code === 'string' ? code : undefined } },
              'audit write failed: response withheld',
            );
            response.http.status = 503;
            response.http.headers = new HeaderMap([
              ['retry-after', '5'],
              ['cache-control', 'no-store'],
            ]);
            const withheld = new GraphQLError(AUDIT_UNAVAILABLE_MESSAGE, { extensions: { code: AUDIT_UNAVAILABLE, requestId: contextValue.requestId } }).toJSON();
            response.body = { kind: 'single', singleResult: { data: null, errors: [withheld] } };
            return;
          }
          const watched = await watching;
          withholdPastBudget(response, watched, events, rateBudget(principal.tokenRoles, watch.rateOverrides), principal.subject, contextValue.requestId, contextValue.logger);
          await recordAlerts([...audit.alerts, ...(watched?.alerts ?? [])], facts, recordedAt, store, contextValue.logger);
        },
      });
    },
  };
}

/**
 * PHI field decisions of one request into the counters, summed first: a 1,000-row page is a few label sets, not
 * 10,000 increments. Records without a reason are shared objects (collector.ts), so they are counted by identity
 * (a map lookup per field of a row) and their labels made once per distinct record.
 */
function countFieldDecisions(events: readonly { fields: readonly FieldRecord[] }[], principal: Principal): void {
  const perRecord = new Map<FieldRecord, number>();
  for (const event of events) for (const record of event.fields) perRecord.set(record, (perRecord.get(record) ?? 0) + 1);
  const sums = new Map<string, { field: string; outcome: string; count: number }>();
  for (const [{ field, outcome }, count] of perRecord) {
    const coordinate = field.split(':')[0] ?? field;
    const key = `${coordinate}\u0000${outcome}`;
    const sum = sums.get(key);
    if (sum) sum.count += count;
    else sums.set(key, { field: coordinate, outcome, count });
  }
  const role = roleLabel(principal);
  for (const { field, outcome, count } of sums.values()) fieldDecisions.inc({ field, role, outcome }, count);
}

/**
 * The exfiltration budget, after the fact: a response that takes the
 * principal past its distinct patients of the hour (or past the stricter
 * budget of reads under emergency grants) leaves without data, 429
 * RATE_LIMITED; the next requests are refused before they run
 * (src/rate-limits.ts). If the counters could not be updated, a response
 * that read patients is withheld too (503): the budget is never waived.
 */
function withholdPastBudget(
  response: { http: { status?: number; headers: HeaderMap }; body: GraphQLResponse['body'] },
  watched: AccessWatch | null,
  events: readonly AuditEventRecord[],
  budget: RateBudget,
  subject: string,
  requestId: string,
  logger: Logger,
): void {
  const readPatients = events.some((event) => event.action === 'read' && event.patientId);
  if (!readPatients) return;
  if (!watched) {
    response.http.status = 503;
    response.http.headers.set('retry-after', String(RETRY_AFTER_SECONDS));
    const withheld = cacheUnavailable().toJSON();
    response.body = { kind: 'single', singleResult: { data: null, errors: [{ ...withheld, extensions: { ...withheld.extensions, requestId } }] } };
    return;
  }
  const passed: [RateLimitReason, number] | null =
    budget.patientsPerHour > 0 && watched.patients > budget.patientsPerHour
      ? ['PATIENTS_PER_HOUR', budget.patientsPerHour]
      : watched.emergencyPatients > EMERGENCY_PATIENTS_PER_HOUR
        ? ['EMERGENCY_PATIENTS_PER_HOUR', EMERGENCY_PATIENTS_PER_HOUR]
        : null;
  if (!passed) return;
  logger.warn({ event: 'rate-limited', reason: passed[0], subject, requestId, patients: watched.patients }, 'a response was withheld: the principal passed its patient budget');
  response.http.status = 429;
  response.http.headers.set('retry-after', String(secondsToNextHour()));
  response.body = { kind: 'single', singleResult: { data: null, errors: [rateLimited(passed[0], passed[1]).toJSON()] } };
}

/** Records the alerts this request raised; a failure here is logged, the access is already on record. */
async function recordAlerts(alerts: Alert[], facts: RequestFacts, recordedAt: Date, store: AuditStore, logger: Logger): Promise<void> {
  if (alerts.length === 0) return;
  logAlerts(logger, alerts, facts);
  try {
    await store.append(alerts.map((alert) => alertEvent(alert, facts, recordedAt)));
  } catch (error) {
    logger.error({ event: 'access-alert-failed', requestId: facts.requestId, err: { name: (error as Error).name } }, 'access alerts could not be recorded');
  }
}
