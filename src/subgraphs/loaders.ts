import DataLoader from 'dataloader';
import type { EntityClass, EntityDictionary } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/sql';
import type { SubgraphContext } from './context.js';
import { decodeCursor, encodeCursor, NESTED_PAGE, pageSize, type Connection, toConnection } from './pagination.js';
import { toIsoDate, toIsoDateTime } from './scalars.js';

/**
 * Batching for every list and reference the subgraphs resolve: however many
 * parents a query has, each loader sends one statement per distinct
 * argument set, so the statement count does not grow with the list size.
 */

interface WithId {
  id: string;
}

/** Loads rows by primary key, one `where id in (...)` per tick. */
export function createByIdLoader<T extends WithId>(em: EntityManager, entity: EntityClass<T>): DataLoader<string, T | null> {
  return new DataLoader<string, T | null>(async (ids) => {
    const rows = (await em.find(entity as EntityClass<WithId>, { id: { $in: [...ids] } })) as unknown as T[];
    const byId = new Map(rows.map((row) => [row.id, row]));
    return ids.map((id) => byId.get(id) ?? null);
  });
}

/** How one child table is paged per patient: newest first by `sortColumn`, then by id. */
export interface ChildTable<T> {
  entity: EntityClass<T>;
  table: string;
  sortColumn: string;
  sortType: 'date' | 'timestamptz';
  /** The sort value of a loaded row, as it goes into a cursor. */
  sortValue(row: T): string;
  patientId(row: T): string;
}

interface PatientOwned extends WithId {
  patient: { id: string };
}

/**
 * Describes a table of rows that belong to a patient, paged newest first by
 * `column` (a date or an instant held in `property`).
 */
export function childTable<T extends PatientOwned>(
  entity: EntityClass<T>,
  table: string,
  column: string,
  sortType: ChildTable<T>['sortType'],
  property: (row: T) => string | Date,
): ChildTable<T> {
  const serialize = sortType === 'date' ? toIsoDate : toIsoDateTime;
  return {
    entity,
    table,
    sortColumn: column,
    sortType,
    sortValue: (row) => serialize(property(row)),
    patientId: (row) => row.patient.id,
  };
}

/** The loader factory of one child table's per-patient pages (one loader per request). */
export function childPagesOf<T extends WithId>(child: ChildTable<T>) {
  return (em: EntityManager) => createChildPageLoader(em, child);
}

/** A `Patient.<list>(first, after)` resolver over a per-patient page loader. */
export function patientListResolver<T>(factory: (em: EntityManager) => DataLoader<ChildPageKey, Connection<T>, string>) {
  return (
    patient: { id: string },
    args: { first?: number | null; after?: string | null },
    { loader }: SubgraphContext,
  ): Promise<Connection<T>> =>
    loader(factory).load({ patientId: patient.id, first: pageSize(args.first, NESTED_PAGE), after: args.after ?? null });
}

export interface ChildPageKey {
  patientId: string;
  first: number;
  after: string | null;
}

const CURSOR_PARTS = 2;

/**
 * Loads a page of a child table for many patients in one statement per
 * (first, after): a window function ranks rows within each patient.
 */
export function createChildPageLoader<T extends WithId>(
  em: EntityManager,
  child: ChildTable<T>,
): DataLoader<ChildPageKey, Connection<T>, string> {
  const cursorOf = (row: T) => encodeCursor([child.sortValue(row), row.id]);
  return new DataLoader<ChildPageKey, Connection<T>, string>(
    async (keys) => {
      const groups = new Map<string, ChildPageKey[]>();
      for (const key of keys) {
        const group = `${key.first}|${key.after ?? ''}`;
        groups.set(group, [...(groups.get(group) ?? []), key]);
      }
      const pages = new Map<string, Connection<T>>();
      for (const group of groups.values()) {
        const [{ first, after }] = group as [ChildPageKey, ...ChildPageKey[]];
        const patientIds = [...new Set(group.map((key) => key.patientId))];
        const rows = await loadRankedRows(em, child, patientIds, first + 1, decodeCursor(after, CURSOR_PARTS));
        const byPatient = new Map<string, T[]>();
        for (const row of rows) {
          const id = child.patientId(row);
          byPatient.set(id, [...(byPatient.get(id) ?? []), row]);
        }
        for (const key of group) {
          pages.set(childPageKey(key), toConnection(byPatient.get(key.patientId) ?? [], first, cursorOf));
        }
      }
      return keys.map((key) => pages.get(childPageKey(key)) as Connection<T>);
    },
    { cacheKeyFn: childPageKey },
  );
}

function childPageKey(key: ChildPageKey): string {
  return `${key.patientId}|${key.first}|${key.after ?? ''}`;
}

async function loadRankedRows<T extends WithId>(
  em: EntityManager,
  child: ChildTable<T>,
  patientIds: string[],
  perPatient: number,
  after: string[] | null,
): Promise<T[]> {
  if (patientIds.length === 0 || perPatient <= 0) return [];
  const placeholders = patientIds.map(() => '?::uuid').join(', ');
  const sort = `t."${child.sortColumn}"`;
  const afterClause = after ? ` and (${sort}, t."id") < (?::${child.sortType}, ?::uuid)` : '';
  const sql =
    `select ranked.* from (select t.*, row_number() over (partition by t."patient_id" order by ${sort} desc, t."id" desc) as "page_rank"` +
    ` from "${child.table}" t where t."patient_id" in (${placeholders})${afterClause}) ranked` +
    ` where ranked."page_rank" <= ? order by ranked."patient_id", ranked."page_rank"`;
  const params: unknown[] = [...patientIds, ...(after ?? []), perPatient];
  const rows = await em.execute<Record<string, unknown>[]>(sql, params);
  return rows.map((row) => {
    delete row['page_rank'];
    return em.map(child.entity, row as EntityDictionary<T>);
  });
}
