import DataLoader from 'dataloader';
import type { EntityClass, EntityDictionary, FilterQuery } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/sql';
import { Patient } from '../db/entities.js';
import type { LoaderFactory, SubgraphContext } from './context.js';
import { NESTED_PAGE, pageSize, type Connection, type PageCursors, toConnection } from './pagination.js';

/**
 * Batching for every list and reference the subgraphs resolve: however many
 * parents a query has, each loader sends one statement per distinct
 * argument set, so the statement count does not grow with the list size.
 */

interface WithId {
  id: string;
}

/**
 * Loads rows by primary key, one `where id in (...)` per tick. `scope` adds
 * the caller's row scope to the same statement; a row outside it is null.
 */
export function createByIdLoader<T extends WithId>(
  em: EntityManager,
  entity: EntityClass<T>,
  scope?: () => Promise<FilterQuery<T>>,
  onLoaded?: (rows: T[]) => Promise<void>,
): DataLoader<string, T | null> {
  return new DataLoader<string, T | null>(async (ids) => {
    const byIds = { id: { $in: [...ids] } } as unknown as FilterQuery<T>;
    const where = scope ? ({ $and: [byIds, await scope()] } as FilterQuery<T>) : byIds;
    const rows = await em.find(entity, where);
    await onLoaded?.(rows);
    const byId = new Map(rows.map((row) => [row.id, row]));
    return ids.map((id) => byId.get(id) ?? null);
  });
}

/** A by-id loader of rows that belong to a patient, limited to the patients the caller may see. */
export function patientOwnedById<T extends PatientOwned>(entity: EntityClass<T>): LoaderFactory<DataLoader<string, T | null>> {
  return ({ em, access }) =>
    createByIdLoader(
      em,
      entity,
      async () => ({ patient: await access.patientFilter() }) as FilterQuery<T>,
      (rows) => access.recordReads(rows.map((row) => row.patient.id)),
    );
}

/** Whether each patient id is inside the caller's row scope (one statement per batch). */
export const patientVisible: LoaderFactory<DataLoader<string, boolean>> = ({ em, access }) =>
  new DataLoader<string, boolean>(async (ids) => {
    const rows = await em.find(Patient, { $and: [{ id: { $in: [...ids] } }, await access.patientFilter()] }, { fields: ['id'] });
    const visible = new Set(rows.map((row) => row.id));
    await access.recordReads([...visible]);
    return ids.map((id) => visible.has(id));
  });

/** A by-id loader of directory rows: all of them, or none for roles without directory access. */
export function directoryById<T extends WithId>(entity: EntityClass<T>): LoaderFactory<DataLoader<string, T | null>> {
  return ({ em, access }) =>
    access.directoryVisible
      ? createByIdLoader(em, entity)
      : new DataLoader<string, T | null>((ids) => Promise.resolve(ids.map(() => null)));
}

/** How one child table is paged per patient: newest first by `sortColumn`, then by id. */
export interface ChildTable<T> {
  /** The connection field, e.g. `Patient.observations`: what its cursors are bound to. */
  list: string;
  entity: EntityClass<T>;
  table: string;
  sortColumn: string;
  patientId(row: T): string;
}

interface PatientOwned extends WithId {
  patient: { id: string };
}

/** Describes a table of rows that belong to a patient, paged newest first by `column`. */
export function childTable<T extends PatientOwned>(list: string, entity: EntityClass<T>, table: string, column: string): ChildTable<T> {
  return { list, entity, table, sortColumn: column, patientId: (row) => row.patient.id };
}

/**
 * The loader factory of one child table's per-patient pages (one loader per
 * request). Its parent patients were already checked against the row scope
 * when their references were resolved.
 */
export function childPagesOf<T extends WithId>(child: ChildTable<T>): ChildPages<T> {
  return { list: child.list, factory: ({ em, cursors }) => createChildPageLoader(em, child, cursors) };
}

export interface ChildPages<T> {
  list: string;
  factory: LoaderFactory<DataLoader<ChildPageKey, Connection<T>, string>>;
}

/**
 * A `Patient.<list>(first, after)` resolver over a per-patient page loader.
 * The cursor is opened here, against this list and this patient: a cursor
 * of another list, patient or caller is refused before anything is read.
 */
export function patientListResolver<T>({ list, factory }: ChildPages<T>) {
  return (
    patient: { id: string },
    args: { first?: number | null; after?: string | null },
    { loader, cursors }: SubgraphContext,
  ): Promise<Connection<T>> => {
    const first = pageSize(args.first, NESTED_PAGE);
    const [afterId] = cursors.read(list, patient.id, null, args.after, CURSOR_PARTS) ?? [];
    return loader(factory).load({ patientId: patient.id, first, afterId: afterId ?? null });
  };
}

export interface ChildPageKey {
  patientId: string;
  first: number;
  /** The id of the last row of the previous page, from a cursor already opened for this patient's list. */
  afterId: string | null;
}

/** A cursor holds the last row's id (sealed, so nothing of it can be read or changed by the client). */
const CURSOR_PARTS = 1;

/**
 * Loads a page of a child table for many patients in one statement per
 * (first, after): a window function ranks rows within each patient.
 */
export function createChildPageLoader<T extends WithId>(
  em: EntityManager,
  child: ChildTable<T>,
  cursors: PageCursors,
): DataLoader<ChildPageKey, Connection<T>, string> {
  return new DataLoader<ChildPageKey, Connection<T>, string>(
    async (keys) => {
      const groups = new Map<string, ChildPageKey[]>();
      for (const key of keys) {
        const group = `${key.first}|${key.afterId ?? ''}`;
        groups.set(group, [...(groups.get(group) ?? []), key]);
      }
      const pages = new Map<string, Connection<T>>();
      for (const group of groups.values()) {
        const [{ first, afterId }] = group as [ChildPageKey, ...ChildPageKey[]];
        const patientIds = [...new Set(group.map((key) => key.patientId))];
        const rows = await loadRankedRows(em, child, patientIds, first + 1, afterId);
        const byPatient = new Map<string, T[]>();
        for (const row of rows) {
          const id = child.patientId(row);
          byPatient.set(id, [...(byPatient.get(id) ?? []), row]);
        }
        for (const key of group) {
          const cursorOf = (row: T) => cursors.issue(child.list, key.patientId, null, [row.id]);
          pages.set(childPageKey(key), toConnection(byPatient.get(key.patientId) ?? [], first, cursorOf));
        }
      }
      return keys.map((key) => pages.get(childPageKey(key)) as Connection<T>);
    },
    { cacheKeyFn: childPageKey },
  );
}

function childPageKey(key: ChildPageKey): string {
  return `${key.patientId}|${key.first}|${key.afterId ?? ''}`;
}

async function loadRankedRows<T extends WithId>(
  em: EntityManager,
  child: ChildTable<T>,
  patientIds: string[],
  perPatient: number,
  afterId: string | null,
): Promise<T[]> {
  if (patientIds.length === 0 || perPatient <= 0) return [];
  const placeholders = patientIds.map(() => '?::uuid').join(', ');
  const sort = `t."${child.sortColumn}"`;
  // The position is looked up among the same patient's rows only: a cursor never reaches a row outside the parent it was issued for.
  const afterClause = afterId
    ? ` and (${sort}, t."id") < (select s."${child.sortColumn}", s."id" from "${child.table}" s where s."id" = ?::uuid and s."patient_id" = t."patient_id")`
    : '';
  const sql =
    `select ranked.* from (select t.*, row_number() over (partition by t."patient_id" order by ${sort} desc, t."id" desc) as "page_rank"` +
    ` from "${child.table}" t where t."patient_id" in (${placeholders})${afterClause}) ranked` +
    ` where ranked."page_rank" <= ? order by ranked."patient_id", ranked."page_rank"`;
  const params: unknown[] = [...patientIds, ...(afterId ? [afterId] : []), perPatient];
  const rows = await em.execute<Record<string, unknown>[]>(sql, params);
  return rows.map((row) => {
    delete row['page_rank'];
    return em.map(child.entity, row as EntityDictionary<T>);
  });
}
