import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { IndexKeys } from './key-ring.js';

/**
 * Page cursors, sealed: AES-256-GCM under a key derived for cursors only.
 * The plaintext holds the position (the sort values of the last row) and
 * an expiry; the associated data is the list the cursor belongs to (its
 * connection, parent, filter and caller). So a cursor is opaque (nothing
 * of the row, dates included, can be read from it), cannot be made or
 * edited by a client, and opens only for the list and the caller that
 * received it: anything else fails authentication and is refused.
 */
const CURSOR_FORMAT = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** A cursor longer than this was not made here (a page of five sort values is far shorter). */
const MAX_CURSOR_LENGTH = 512;

/** What a cursor is bound to; every part must match when it is opened. */
export interface CursorBinding {
  /** The connection field, e.g. `Query.patients`, `Patient.observations`. */
  list: string;
  /** The parent row of a nested list (the patient), or '' for a top-level list. */
  parent: string;
  /** The list's filter arguments, canonical (see canonicalFilter). */
  filter: string;
  /** Who received it: the token subject, and the research study when the token names one. */
  caller: string;
}

function associatedData(binding: CursorBinding): Buffer {
  // Length-prefixed parts: no two different bindings can serialize alike.
  const parts = [binding.list, binding.parent, binding.filter, binding.caller].map((part) => `${Buffer.byteLength(part)}:${part}`);
  return Buffer.from(`cursor/${CURSOR_FORMAT}|${parts.join('|')}`, 'utf8');
}

/** Filter arguments in one canonical form: keys sorted, absent and null alike. */
export function canonicalFilter(filter: Record<string, unknown> | null | undefined): string {
  if (!filter) return '';
  const entries = Object.entries(filter)
    .filter(([, value]) => value !== null && value !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.length === 0 ? '' : JSON.stringify(entries);
}

export class CursorSealer {
  readonly #key: Buffer;

  constructor(
    ring: IndexKeys,
    /** How long a cursor stays valid. */
    readonly ttlSeconds: number,
    private readonly now: () => number = Date.now,
  ) {
    this.#key = ring.derivedKey('cursor');
  }

  seal(binding: CursorBinding, position: readonly string[]): string {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce);
    cipher.setAAD(associatedData(binding));
    const plaintext = JSON.stringify({ p: position, e: Math.floor(this.now() / 1000) + this.ttlSeconds });
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return Buffer.concat([Buffer.of(CURSOR_FORMAT), nonce, body, cipher.getAuthTag()]).toString('base64url');
  }

  /** The position of a cursor issued for this binding and still valid, or null for anything else. */
  open(binding: CursorBinding, cursor: string, parts: number): string[] | null {
    if (cursor.length > MAX_CURSOR_LENGTH || !/^[A-Za-z0-9_-]+$/.test(cursor)) return null;
    const bytes = Buffer.from(cursor, 'base64url');
    if (bytes.length < 1 + NONCE_BYTES + TAG_BYTES + 1 || bytes[0] !== CURSOR_FORMAT) return null;
    const nonce = bytes.subarray(1, 1 + NONCE_BYTES);
    const tag = bytes.subarray(bytes.length - TAG_BYTES);
    const body = bytes.subarray(1 + NONCE_BYTES, bytes.length - TAG_BYTES);
    let plaintext: string;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, nonce);
      decipher.setAAD(associatedData(binding));
      decipher.setAuthTag(tag);
      plaintext = Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
    } catch {
      return null;
    }
    const { p: position, e: expiry } = JSON.parse(plaintext) as { p: unknown; e: unknown };
    if (typeof expiry !== 'number' || expiry * 1000 <= this.now()) return null;
    if (!Array.isArray(position) || position.length !== parts || !position.every((value): value is string => typeof value === 'string')) return null;
    return position;
  }
}
