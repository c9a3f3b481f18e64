import { refusals } from './metrics.js';
import type { ApolloServerPlugin } from '@apollo/server';
import type { NextFunction, Request, Response } from 'express';
import { GraphQLError } from 'graphql';
import type { Principal } from './auth/index.js';
import type { Cache } from './cache/index.js';
import { ErrorCode, cacheUnavailable, isCacheUnavailable } from './errors.js';
import type { Logger } from './logger.js';
import { ACCESS_POLICY, type RateBudget } from './policy/index.js';
import { RETRY_AFTER_SECONDS } from './unavailable.js';

/**
 * What one principal may ask for over time, refused (not only alerted)
 * past its budget: requests per minute, requests in flight at once, and
 * the exfiltration budget, distinct patients whose data it received in the
 * last hour (counted by the audit trail's access watch, src/audit/alerts.ts).
 * Counters live in the cache (Redis: shared by every instance; in-process
 * without it). Past a budget: HTTP 429, RATE_LIMITED with the budget that
 * was passed, Retry-After and the RateLimit headers.
 */
export type RateLimitReason = 'REQUESTS_PER_MINUTE' | 'IN_FLIGHT' | 'PATIENTS_PER_HOUR' | 'EMERGENCY_PATIENTS_PER_HOUR';

/** Settings that replace the policy's budgets for every role (a deployment that must differ, and tests). */
export interface RateLimitOverrides {
  requestsPerMinute?: number;
  inFlight?: number;
  patientsPerHour?: number;
}

const MINUTE_SECONDS = 60;
/** An in-flight counter outlives a request that never finished (a crashed process) by at most this. */
const IN_FLIGHT_TTL_SECONDS = 120;

/** A token with several roles gets the largest of their budgets. */
export function rateBudget(roles: readonly Principal['roles'][number][], overrides: RateLimitOverrides = {}): RateBudget {
  const largest = (pick: (budget: RateBudget) => number) => Math.max(0, ...roles.map((role) => pick(ACCESS_POLICY[role].rate)));
  return {
    requestsPerMinute: overrides.requestsPerMinute ?? largest((budget) => budget.requestsPerMinute),
    inFlight: overrides.inFlight ?? largest((budget) => budget.inFlight),
    patientsPerHour: overrides.patientsPerHour ?? largest((budget) => budget.patientsPerHour),
  };
}

/** The key of a principal's hourly set of patients read, shared with the access watch. */
export function patientsReadKey(subject: string, now = new Date()): string {
  return `access-watch:${subject}:${now.toISOString().slice(0, 13)}:patients`;
}

/** The key of a principal's hourly set of patients read under break-the-glass grants. */
export function emergencyPatientsReadKey(subject: string, now = new Date()): string {
  return `access-watch:${subject}:${now.toISOString().slice(0, 13)}:emergency-patients`;
}

export function secondsToNextHour(now = new Date()): number {
  return 3600 - (now.getUTCMinutes() * 60 + now.getUTCSeconds());
}

export function rateLimited(reason: RateLimitReason, limit: number): GraphQLError {
  const what: Record<RateLimitReason, string> = {
    REQUESTS_PER_MINUTE: `more than ${limit} requests in a minute`,
    IN_FLIGHT: `more than ${limit} requests at once`,
    PATIENTS_PER_HOUR: `the data of more than ${limit} distinct patients in an hour`,
    EMERGENCY_PATIENTS_PER_HOUR: `more than ${limit} distinct patients under emergency access in an hour`,
  };
  return new GraphQLError(`Refused: your account asked for ${what[reason]}. Wait for Retry-After, or ask your administrator for a larger budget.`, {
    extensions: { code: ErrorCode.RateLimited, reason, max: limit },
  });
}

function refuse(response: Response, reason: RateLimitReason, limit: number, retryAfter: number, remaining = 0): void {
  const error = rateLimited(reason, limit);
  refusals.inc({ kind: 'rate_limit', reason });
  response
    .status(429)
    .setHeader('retry-after', String(retryAfter))
    .setHeader('ratelimit-limit', String(limit))
    .setHeader('ratelimit-remaining', String(Math.max(0, remaining)))
    .setHeader('ratelimit-reset', String(retryAfter))
    .json({ errors: [{ message: error.message, extensions: error.extensions }] });
}

/**
 * The budget check of every request, after its token is verified and before
 * anything else: the minute's count, the requests in flight (released when
 * the response ends), and whether the hour's patient budget is spent.
 * `scope` keeps the counters of the gateway and each subgraph apart (a
 * client request reaches a subgraph once or twice through the gateway:
 * `factor` scales a subgraph's budgets to that).
 */
export function rateLimits(cache: Cache, scope: string, logger: Logger, options: { factor?: number; overrides?: RateLimitOverrides } = {}) {
  const factor = options.factor ?? 1;
  const spent = new SpentBudgets();
  return (request: Request, response: Response, next: NextFunction): void => {
    const { principal, requestId } = response.locals as { principal: Principal; requestId: string };
    // A principal already past a budget that does not reset before a known time is refused here, without a round trip:
    // a flood past its budget costs a token check and nothing more.
    const known = spent.refusal(principal.subject);
    if (known) return refuse(response, known.reason, known.limit, known.retryAfter);
    // The account's budget (every role of its token): counters are per account, whatever purpose one request reads for.
    const budget = rateBudget(principal.tokenRoles, options.overrides);
    const now = new Date();
    const minute = Math.floor(now.getTime() / 60_000);
    const base = `rate:${scope}:${principal.subject}`;
    const inFlightKey = `${base}:in-flight`;
    const check = async (): Promise<void> => {
      const perMinute = budget.requestsPerMinute * factor;
      const count = await cache.increment(`${base}:minute:${minute}`, MINUTE_SECONDS);
      const resetIn = MINUTE_SECONDS - now.getUTCSeconds();
      response.setHeader('ratelimit-limit', String(perMinute));
      response.setHeader('ratelimit-remaining', String(Math.max(0, perMinute - count)));
      response.setHeader('ratelimit-reset', String(resetIn));
      if (count > perMinute) {
        spent.remember(principal.subject, 'REQUESTS_PER_MINUTE', perMinute, resetIn);
        return refuse(response, 'REQUESTS_PER_MINUTE', perMinute, resetIn);
      }
      const patients = (await cache.addToSet(patientsReadKey(principal.subject, now), [], 3600)).size;
      if (patients >= budget.patientsPerHour && budget.patientsPerHour > 0) {
        spent.remember(principal.subject, 'PATIENTS_PER_HOUR', budget.patientsPerHour, secondsToNextHour(now));
        return refuse(response, 'PATIENTS_PER_HOUR', budget.patientsPerHour, secondsToNextHour(now));
      }
      const inFlight = budget.inFlight * factor;
      const running = await cache.increment(inFlightKey, IN_FLIGHT_TTL_SECONDS);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        void cache.increment(inFlightKey, IN_FLIGHT_TTL_SECONDS, -1).catch(() => undefined);
      };
      // Released when the work is done (the response sent, or the GraphQL request finished: releaseInFlightPlugin),
      // not when the client goes away: a client that disconnects does not stop what it started.
      response.once('finish', release);
      response.locals['releaseInFlight'] = release;
      if (running > inFlight) return refuse(response, 'IN_FLIGHT', inFlight, 1);
      next();
    };
    check().catch((error: unknown) => {
      if (!isCacheUnavailable(error)) {
        next(error);
        return;
      }
      // Budgets are never waived because the counters did not answer.
      logger.warn({ requestId, event: 'cache-unavailable', step: 'rate-limits' }, 'request refused: the rate counters did not answer');
      const refusal = cacheUnavailable();
      response.status(503).setHeader('retry-after', String(RETRY_AFTER_SECONDS)).json({ errors: [{ message: refusal.message, extensions: refusal.extensions }] });
    });
  };
}

/** How many principals one process remembers as past their budget (the oldest are forgotten first: they are asked of the cache again). */
const MAX_REMEMBERED = 10_000;

/**
 * The principals this process has refused for a budget that stays spent
 * until a known time (the minute's requests, the hour's patients): until
 * then they are refused without asking the cache. The shared counters stay
 * the truth; this only saves asking them again what cannot have changed.
 * In-flight refusals are not remembered (a slot frees at any moment).
 */
class SpentBudgets {
  private readonly until = new Map<string, { at: number; reason: RateLimitReason; limit: number }>();

  remember(subject: string, reason: RateLimitReason, limit: number, seconds: number): void {
    this.until.delete(subject);
    if (this.until.size >= MAX_REMEMBERED) {
      const oldest = this.until.keys().next().value;
      if (oldest !== undefined) this.until.delete(oldest);
    }
    this.until.set(subject, { at: Date.now() + seconds * 1000, reason, limit });
  }

  refusal(subject: string): { reason: RateLimitReason; limit: number; retryAfter: number } | null {
    const entry = this.until.get(subject);
    if (!entry) return null;
    const left = entry.at - Date.now();
    if (left <= 0) {
      this.until.delete(subject);
      return null;
    }
    return { reason: entry.reason, limit: entry.limit, retryAfter: Math.ceil(left / 1000) };
  }
}

/** What a request's GraphQL context carries of its in-flight slot. */
export interface InFlightSlot {
  releaseInFlight?: () => void;
}

/** Releases the request's in-flight slot when its GraphQL work is done, whether or not its client is still there. */
export function releaseInFlightPlugin<TContext extends InFlightSlot>(): ApolloServerPlugin<TContext> {
  return {
    requestDidStart() {
      return Promise.resolve({
        willSendResponse({ contextValue }) {
          contextValue.releaseInFlight?.();
          return Promise.resolve();
        },
      });
    },
  };
}

/** The release function the rate limits left for this response, if any. */
export function inFlightRelease(response: Response): (() => void) | undefined {
  const release: unknown = response.locals['releaseInFlight'];
  return typeof release === 'function' ? (release as () => void) : undefined;
}
