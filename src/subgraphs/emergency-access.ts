import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/sql';
import type { Cache } from '../cache/index.js';
import { EmergencyAccess, EmergencyReview, NotificationOutbox } from '../db/entities.js';
import { isSensitivity, type Sensitivity } from '../policy/sensitivity.js';

/**
 * Break the glass. A grant in force lives in the cache under the caller's
 * subject with a TTL, so it ends by itself; every grant is also a row of
 * emergency_access, the durable record. A cache miss is filled from that
 * table, so a restarted Redis loses no grant in force.
 */
export interface EmergencyGrant {
  id: string;
  patientId: string;
  expiresAt: Date;
  /** The sensitivity categories the reason was given for: labelled rows of these are shown under the grant. */
  sensitiveCategories: readonly Sensitivity[];
}

export const EMERGENCY_ACCESS_MINUTES = { default: 60, min: 1, max: 240 } as const;
export const MINIMUM_REASON_LENGTH = 20;
/** How long "no grants" is remembered before the table is asked again. */
const EMPTY_GRANTS_TTL_SECONDS = 60;
const KEY = 'emergency-access:';
const MILLISECONDS_PER_SECOND = 1000;

type StoredGrants = Record<string, { id: string; expiresAt: number; sensitive?: string[] }>;

function toGrants(stored: StoredGrants, now: number): EmergencyGrant[] {
  return Object.entries(stored)
    .filter(([, grant]) => grant.expiresAt > now)
    .map(([patientId, grant]) => ({ id: grant.id, patientId, expiresAt: new Date(grant.expiresAt), sensitiveCategories: (grant.sensitive ?? []).filter(isSensitivity) }));
}

async function store(cache: Cache, subject: string, grants: EmergencyGrant[]): Promise<void> {
  const now = Date.now();
  const live = grants.filter((grant) => grant.expiresAt.getTime() > now);
  const stored: StoredGrants = Object.fromEntries(
    live.map((grant) => [grant.patientId, { id: grant.id, expiresAt: grant.expiresAt.getTime(), sensitive: [...grant.sensitiveCategories] }]),
  );
  const latest = Math.max(0, ...live.map((grant) => grant.expiresAt.getTime()));
  const ttl = live.length > 0 ? Math.ceil((latest - now) / MILLISECONDS_PER_SECOND) : EMPTY_GRANTS_TTL_SECONDS;
  await cache.set(`${KEY}${subject}`, JSON.stringify(stored), ttl);
}

/** The caller's grants in force now. */
export async function activeEmergencyGrants(subject: string, em: EntityManager, cache: Cache): Promise<EmergencyGrant[]> {
  const cached = await cache.get(`${KEY}${subject}`);
  if (cached !== null) return toGrants(JSON.parse(cached) as StoredGrants, Date.now());
  const rows = await em.find(EmergencyAccess, { subject, expiresAt: { $gt: new Date() } }, { orderBy: { expiresAt: 'asc' } });
  const grants = rows.map((row) => ({ id: row.id, patientId: row.patient.id, expiresAt: row.expiresAt, sensitiveCategories: row.sensitiveCategories.filter(isSensitivity) }));
  await store(cache, subject, grants);
  return grants;
}

/** How long a privacy officer has to review a break-the-glass access (src/subgraphs/patient/emergency-reviews.ts). */
export const EMERGENCY_REVIEW_HOURS = 72;

/** The outbox kind that tells a patient their record was opened under break-the-glass access. */
export const EMERGENCY_ACCESS_NOTICE = 'emergency-access-notice';

/**
 * Opens the review of a grant and records the patient's notice, in the
 * grant's transaction (`em`): a grant never exists without them.
 */
async function openReview(em: EntityManager, grant: { id: string; patientId: string; organizationId: string; grantedAt: Date }): Promise<void> {
  const dueAt = new Date(grant.grantedAt.getTime() + EMERGENCY_REVIEW_HOURS * 3_600_000);
  await em.insert(EmergencyReview, { id: randomUUID(), grant: grant.id, organization: grant.organizationId, openedAt: grant.grantedAt, dueAt, status: 'open' });
  await em.insert(NotificationOutbox, {
    id: randomUUID(),
    kind: EMERGENCY_ACCESS_NOTICE,
    patient: grant.patientId,
    // Ids and times only: the deliverer looks up how to reach the patient; the reason stays with the review.
    payload: { grantId: grant.id, organizationId: grant.organizationId, openedAt: grant.grantedAt.toISOString() },
    createdAt: grant.grantedAt,
  });
}

/**
 * Records a grant in the database, with its review and the patient's notice
 * (one transaction), and puts it in force in the cache. `organizationId`:
 * the patient's organization, whose privacy officers review it.
 */
export async function grantEmergencyAccess(
  subject: string,
  patientId: string,
  organizationId: string,
  reason: string,
  sensitiveCategories: readonly Sensitivity[],
  minutes: number,
  em: EntityManager,
  cache: Cache,
  /**
   * How the row is written (a mutation's writeWithRecord, with its audit record, in one transaction); directly on `em`
   * when absent. It answers false when it wrote nothing (an Idempotency-Key's first request already did): then no grant.
   */
  write: (work: (em: EntityManager) => Promise<string>) => Promise<boolean> = async (work) => {
    await work(em);
    return true;
  },
): Promise<EmergencyGrant | null> {
  const grantedAt = new Date();
  const expiresAt = new Date(grantedAt.getTime() + minutes * 60 * MILLISECONDS_PER_SECOND);
  const id = randomUUID();
  const wrote = await write(async (writer) => {
    await writer.insert(EmergencyAccess, { id, subject, patient: patientId, reason, sensitiveCategories: [...sensitiveCategories], grantedAt, expiresAt });
    await openReview(writer, { id, patientId, organizationId, grantedAt });
    return id;
  });
  if (!wrote) return null;
  const current = await activeEmergencyGrants(subject, em, cache);
  const grant = { id, patientId, expiresAt, sensitiveCategories };
  await store(cache, subject, [...current.filter((existing) => existing.patientId !== patientId), grant]);
  return grant;
}
