import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import type { IndexKeys } from './key-ring.js';

/**
 * Per-study pseudonyms of record ids, for de-identified (research) access.
 *
 * A pseudonym is the record's UUID (16 bytes, one AES block) encrypted with
 * AES-256 under a key of its own for each (study, record type), derived
 * with HKDF from the research-pseudonym key. That is a keyed pseudorandom
 * permutation: the same record always gets the same pseudonym within one
 * study, two studies (or two types) get unrelated pseudonyms, nothing links
 * a pseudonym to the record's id without the key, and, unlike a keyed HMAC,
 * it maps back to the record (only under that study's key), which is what
 * federation needs when a pseudonym comes back in `_entities` or an
 * argument. It is deterministic on purpose: a study must be able to count
 * and join its own rows.
 */
const PREFIX = 'rs1_';
const BLOCK_BYTES = 16;
const PSEUDONYM = /^rs1_[A-Za-z0-9_-]{22}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
/** Keys kept per (study, type); a deployment has a handful of studies, so this bounds only abuse. */
const MAX_CACHED_KEYS = 1024;

export class StudyPseudonyms {
  readonly #master: Buffer;
  readonly #keys = new Map<string, Buffer>();

  constructor(ring: IndexKeys) {
    this.#master = ring.derivedKey('research-pseudonym');
  }

  #key(study: string, type: string): Buffer {
    const name = `${study.length}:${study}|${type}`;
    let key = this.#keys.get(name);
    if (!key) {
      if (this.#keys.size >= MAX_CACHED_KEYS) this.#keys.clear();
      key = Buffer.from(hkdfSync('sha256', this.#master, Buffer.alloc(0), `study:${name}`, 32));
      this.#keys.set(name, key);
    }
    return key;
  }

  /** The pseudonym of a record id in a study; null for anything that is not a record id. */
  hide(study: string, type: string, id: string): string | null {
    if (!UUID.test(id)) return null;
    const cipher = createCipheriv('aes-256-ecb', this.#key(study, type), null).setAutoPadding(false);
    const block = Buffer.concat([cipher.update(Buffer.from(id.replace(/-/g, ''), 'hex')), cipher.final()]);
    return `${PREFIX}${block.toString('base64url')}`;
  }

  /** The record id behind a pseudonym of this study and type, or null (another study's, another type's, or not a pseudonym). */
  reveal(study: string, type: string, pseudonym: string): string | null {
    if (!PSEUDONYM.test(pseudonym)) return null;
    const block = Buffer.from(pseudonym.slice(PREFIX.length), 'base64url');
    if (block.length !== BLOCK_BYTES) return null;
    const decipher = createDecipheriv('aes-256-ecb', this.#key(study, type), null).setAutoPadding(false);
    const hex = Buffer.concat([decipher.update(block), decipher.final()]).toString('hex');
    const id = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
    // A pseudonym of another study decrypts to random bytes: it is a version-4 UUID one time in 64, and then names no record.
    return UUID.test(id) ? id : null;
  }
}
