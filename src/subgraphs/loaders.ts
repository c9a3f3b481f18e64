import DataLoader from 'dataloader';
import type { EntityClass, EntityDictionary, FilterQuery } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/sql';
import { Patient } from '../db/entities.js';
import type { Logger } from '../logger.js';
import type { AccessControl } from './access.js';
import type { LoaderFactory, SubgraphContext } from './context.js';
import { NESTED_PAGE, isUuid, pageSize, type Connection, type PageCursors, toConnection } from './pagination.js';

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

/**
 * A by-id loader of labelled rows (src/policy/sensitivity.ts): limited to
 * the patients the caller may see, then to the labels it is cleared for, so
 * a withheld row is null exactly like an absent one. The label check reads
 * each found row's labels once, which is also what records a withholding on
 * the audit trail.
 */
export function labelledById<T extends PatientOwned>(entity: EntityClass<T>, table: string, labelled: Labelled<T>): LoaderFactory<DataLoader<string, T | null>> {
  return ({ em, access, logger }) =>
    new DataLoader<string, T | null>(async (ids) => {
      const byIds = { id: { $in: [...ids] } } as unknown as FilterQuery<T>;
      const found = await em.find(entity, { $and: [byIds, { patient: await access.patientFilter() } as FilterQuery<T>] } as FilterQuery<T>);
      const inScope = new Set(found.map((row) => row.id));
      // The ids asked for, checked whether found or not: a withheld id costs the same statements as an absent one.
      const asked = ids.filter(isUuid);
      const patients = [...new Set(found.map((row) => row.patient.id))];
      const condition = asked.length > 0 ? await access.labels.sql('t', patients.length > 0 ? patients : [NO_PATIENT], labelsExpression(labelled)) : null;
      let rows = found;
      if (condition) {
        const checked = await em.execute<{ id: string; patient_id: string; labels: string[] | null; visible: boolean }[]>(
          `select t."id", t."patient_id", ${labelsExpression(labelled)} as "labels", ${condition.sql} as "visible" from "${table}" t where t."id" in (${asked.map(() => '?::uuid').join(', ')})`,
          [...condition.params, ...asked],
        );
        const visible = new Set(checked.filter((row) => row.visible && inScope.has(row.id)).map((row) => row.id));
        const withheld = checked.filter((row) => !row.visible && inScope.has(row.id));
        recordWithheldRows(access, labelled.entityType, withheld.map((row) => ({ patientId: row.patient_id, labels: row.labels })));
        rows = found.filter((row) => visible.has(row.id));
      }
      reportMismatches(rows, labelled, logger);
      await access.recordReads(rows.map((row) => row.patient.id));
      await access.recordSensitiveReads(labelled.entityType, rows.map(labelledFacts));
      const byId = new Map(rows.map((row) => [row.id, row]));
      return ids.map((id) => byId.get(id) ?? null);
    });
}

/** How a labelled table is treated: its audit entity type, where its labels are, and (for plaintext codes) a check of its labels against its codes. */
export interface Labelled<T> {
  entityType: string;
  /**
   * The row's labels as SQL over alias `t`: its own `security_labels` by
   * default; invoices and payments take their claim's (a withheld claim
   * must not show through the invoice that bills it).
   */
  labels?: (alias: string) => string;
  /** False when the row's own codes call for a label it does not carry (its labels edited in the database): logged (the statement withheld it by `labels`). */
  consistent?: (row: T) => boolean;
}

/** A patient id no row has: the label check's statement is the same whether anything was found or not. */
const NO_PATIENT = '00000000-0000-0000-0000-000000000000';

function labelsExpression<T>(labelled: Labelled<T>, alias = 't'): string {
  return labelled.labels ? labelled.labels(alias) : `${alias}."security_labels"`;
}

function labelledFacts(row: PatientOwned & { securityLabels?: string[] | null }): { id: string; patientId: string; labels: readonly string[] | null } {
  return { id: row.id, patientId: row.patient.id, labels: row.securityLabels ?? null };
}

/**
 * Tells the operator of a row whose stored labels lack one its code calls
 * for (edited in the database, or not labelled yet): the statement already
 * withheld it by its code (`Labelled.labels`), so this only reports.
 */
function reportMismatches<T>(rows: readonly T[], labelled: Labelled<T>, logger: Logger): void {
  const check = labelled.consistent;
  if (!check) return;
  for (const row of rows) {
    if (!check(row)) logger.error({ event: 'label-mismatch', entityType: labelled.entityType, id: (row as { id?: string }).id }, 'a row lacks a label its code calls for (edited in the database, or not labelled yet)');
  }
}

function recordWithheldRows(access: AccessControl, entityType: string, rows: readonly { patientId: string; labels: readonly string[] | null }[]): void {
  const byPatient = new Map<string, (readonly string[] | null)[]>();
  for (const row of rows) byPatient.set(row.patientId, [...(byPatient.get(row.patientId) ?? []), row.labels]);
  for (const [patientId, labels] of byPatient) access.recordWithheld(entityType, patientId, labels);
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
  /** Set for tables whose rows carry sensitivity labels: rows the caller is not cleared for are withheld in the page's statement. */
  labelled?: Labelled<T>;
}

interface PatientOwned extends WithId {
  patient: { id: string };
}

/** Describes a table of rows that belong to a patient, paged newest first by `column`. */
export function childTable<T extends PatientOwned>(list: string, entity: EntityClass<T>, table: string, column: string, labelled?: Labelled<T>): ChildTable<T> {
  return { list, entity, table, sortColumn: column, patientId: (row) => row.patient.id, ...(labelled && { labelled }) };
}

/**
 * The loader factory of one child table's per-patient pages (one loader per
 * request). Its parent patients were already checked against the row scope
 * when their references were resolved.
 */
export function childPagesOf<T extends WithId>(child: ChildTable<T>): ChildPages<T> {
  return { list: child.list, factory: ({ em, cursors, access, logger }) => createChildPageLoader(em, child, cursors, access, logger) };
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
  access: AccessControl,
  logger: Logger,
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
        const labels = child.labelled ? await access.labels.sql('t', patientIds, labelsExpression(child.labelled)) : null;
        const rows = await loadRankedRows(em, child, patientIds, first + 1, afterId, labels);
        if (child.labelled) {
          reportMismatches(rows, child.labelled, logger);
          await access.recordSensitiveReads(child.labelled.entityType, (rows as unknown as PatientOwned[]).map(labelledFacts));
          if (labels) await recordWithheldPages(em, child, patientIds, labels, access);
        }
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

/** Records, per patient, the rows of a labelled list the caller's labels withheld (audit only; one statement per batch). */
async function recordWithheldPages<T>(em: EntityManager, child: ChildTable<T>, patientIds: string[], labels: LabelSql, access: AccessControl): Promise<void> {
  if (!child.labelled || patientIds.length === 0) return;
  const rows = await em.execute<{ patient_id: string; security_labels: string[] | null }[]>(
    `select t."patient_id", ${labelsExpression(child.labelled)} as "security_labels" from "${child.table}" t where t."patient_id" in (${patientIds.map(() => '?::uuid').join(', ')}) and not ${labels.sql}`,
    [...patientIds, ...labels.params],
  );
  recordWithheldRows(access, child.labelled.entityType, rows.map((row) => ({ patientId: row.patient_id, labels: row.security_labels })));
}

type LabelSql = { sql: string; params: unknown[] };

async function loadRankedRows<T extends WithId>(
  em: EntityManager,
  child: ChildTable<T>,
  patientIds: string[],
  perPatient: number,
  afterId: string | null,
  labels: LabelSql | null,
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
    ` from "${child.table}" t where t."patient_id" in (${placeholders})${afterClause}${labels ? ` and ${labels.sql}` : ''}) ranked` +
    ` where ranked."page_rank" <= ? order by ranked."patient_id", ranked."page_rank"`;
  const params: unknown[] = [...patientIds, ...(afterId ? [afterId] : []), ...(labels ? labels.params : []), perPatient];
  const rows = await em.execute<Record<string, unknown>[]>(sql, params);
  return rows.map((row) => {
    delete row['page_rank'];
    return em.map(child.entity, row as EntityDictionary<T>);
  });
}
