import { badUserInput } from '../errors.js';

/** Page sizes: documented in the SDL next to each list field. */
export const TOP_LEVEL_PAGE = { defaultSize: 20, maxSize: 1000 } as const;
export const NESTED_PAGE = { defaultSize: 10, maxSize: 100 } as const;

export interface PageBounds {
  defaultSize: number;
  maxSize: number;
}

export interface Edge<T> {
  cursor: string;
  node: T;
}

export interface Connection<T> {
  edges: Edge<T>[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/** Validates `first`: 0..max, default when omitted. Above the maximum is an error, not a silent cut. */
export function pageSize(first: number | null | undefined, bounds: PageBounds): number {
  if (first === null || first === undefined) return bounds.defaultSize;
  if (!Number.isInteger(first) || first < 0 || first > bounds.maxSize) {
    throw badUserInput(`"first" must be between 0 and ${bounds.maxSize}.`, 'first');
  }
  return first;
}

/** Cursors are opaque to clients: base64url of a JSON array of sort values. */
export function encodeCursor(values: readonly string[]): string {
  return Buffer.from(JSON.stringify(values)).toString('base64url');
}

export function decodeCursor(cursor: string | null | undefined, length: number): string[] | null {
  if (cursor === null || cursor === undefined) return null;
  try {
    const values: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(values) && values.length === length && values.every((value): value is string => typeof value === 'string')) {
      return values;
    }
  } catch {
    // fall through to the error below
  }
  throw badUserInput('"after" is not a cursor returned by this API.', 'after');
}

/** Builds a connection from up to `size + 1` rows already in order (the extra row only signals a next page). */
export function toConnection<T>(rows: readonly T[], size: number, cursorOf: (row: T) => string): Connection<T> {
  const page = rows.slice(0, size);
  const edges = page.map((node) => ({ cursor: cursorOf(node), node }));
  return { edges, pageInfo: { hasNextPage: rows.length > size, endCursor: edges.at(-1)?.cursor ?? null } };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}
