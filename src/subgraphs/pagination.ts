import { canonicalFilter, type CursorBinding, type CursorSealer } from '../crypto/index.js';
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

/** How long a page cursor stays valid: long enough to page through any list, short enough that a leaked one soon dies. */
export const CURSOR_TTL_SECONDS = 3600;

/**
 * The cursors of one request. Every cursor is sealed (crypto/cursor.ts) and
 * bound to its list (`Type.field`), its parent row, its filter and the
 * caller; `read` refuses, with BAD_USER_INPUT, any cursor that was not
 * issued for exactly that list and caller or has expired, and the same
 * answer is given for each of those, so a refusal says nothing about why.
 */
export class PageCursors {
  constructor(
    private readonly sealer: CursorSealer,
    /** The token subject, and the research study when the token names one. */
    private readonly caller: string,
  ) {}

  #binding(list: string, parent: string, filter: Record<string, unknown> | null | undefined): CursorBinding {
    return { list, parent, filter: canonicalFilter(filter), caller: this.caller };
  }

  issue(list: string, parent: string, filter: Record<string, unknown> | null | undefined, position: readonly string[]): string {
    return this.sealer.seal(this.#binding(list, parent, filter), position);
  }

  /** The position an `after` argument names, or null when there is none. */
  read(list: string, parent: string, filter: Record<string, unknown> | null | undefined, after: string | null | undefined, parts: number): string[] | null {
    if (after === null || after === undefined) return null;
    const position = this.sealer.open(this.#binding(list, parent, filter), after, parts);
    if (!position) throw badUserInput('"after" is not a cursor this API issued for this list and caller, or it has expired; start again from the first page.', 'after');
    return position;
  }
}

/**
 * An edge whose cursor is sealed only when a client asks for it: a page of
 * a thousand rows read without `cursor` seals none (each seal is an AES-GCM
 * encryption with a fresh nonce).
 */
class LazyEdge<T> {
  #cursor: string | undefined;
  constructor(
    readonly node: T,
    private readonly cursorOf: (row: T) => string,
  ) {}

  get cursor(): string {
    this.#cursor ??= this.cursorOf(this.node);
    return this.#cursor;
  }
}

/** Builds a connection from up to `size + 1` rows already in order (the extra row only signals a next page). */
export function toConnection<T>(rows: readonly T[], size: number, cursorOf: (row: T) => string): Connection<T> {
  const edges = rows.slice(0, size).map((node) => new LazyEdge(node, cursorOf));
  const last = edges.at(-1);
  return {
    edges,
    pageInfo: {
      hasNextPage: rows.length > size,
      get endCursor() {
        return last?.cursor ?? null;
      },
    },
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}
