import { closeSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * One owner per embedded database folder. PGlite is a database in this
 * process's memory, written to its folder: two processes on one folder each
 * believe they own it, and what one writes the other overwrites (audit
 * batches lost while `audit:verify` in the other says the chain is intact).
 * So a process opening the folder claims it first, in `OWNER_FILE` (its pid
 * and command, created exclusively); a second process is refused with a
 * message naming the owner. A claim whose process is gone (killed, crashed)
 * is taken over. The claim is released when the database is closed.
 */
export const OWNER_FILE = 'OWNER.json';

export class FolderInUseError extends Error {
  constructor(
    readonly folder: string,
    readonly ownerPid: number,
    ownerCommand: string,
  ) {
    super(
      `The embedded database in ${folder} is in use by process ${ownerPid} (${ownerCommand}). ` +
        'PGlite has one owner per data folder: stop that process first, or give this one its own DATA_DIR, or use PostgreSQL (DATABASE_URL).',
    );
    this.name = 'FolderInUseError';
  }
}

interface Claim {
  pid: number;
  command: string;
  since: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, owned by someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readClaim(path: string): Claim | null {
  try {
    const claim = JSON.parse(readFileSync(path, 'utf8')) as Partial<Claim>;
    return typeof claim.pid === 'number' ? { pid: claim.pid, command: String(claim.command ?? 'unknown'), since: String(claim.since ?? '') } : null;
  } catch {
    return null;
  }
}

/** Claims `folder` for this process, or throws FolderInUseError; returns the release function. */
export function claimFolder(folder: string): () => void {
  const path = join(folder, OWNER_FILE);
  const mine: Claim = { pid: process.pid, command: process.argv.slice(1).join(' ').slice(0, 200), since: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      const descriptor = openSync(path, 'wx', 0o600);
      try {
        writeSync(descriptor, `${JSON.stringify(mine)}\n`);
      } finally {
        closeSync(descriptor);
      }
      return () => release(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = readClaim(path);
    if (owner && owner.pid !== process.pid && alive(owner.pid)) throw new FolderInUseError(folder, owner.pid, owner.command);
    if (owner?.pid === process.pid) return () => undefined; // already ours (a second open in this process shares the claim)
    // The owner is gone (or the file is unreadable, e.g. cut short by a crash): take it over by replacing it whole.
    const next = `${path}.${process.pid}`;
    writeFileSync(next, `${JSON.stringify(mine)}\n`, { mode: 0o600 });
    renameSync(next, path);
    if (readClaim(path)?.pid === process.pid) return () => release(path);
  }
  throw new Error(`could not claim ${folder}`);
}

function release(path: string): void {
  if (readClaim(path)?.pid === process.pid) rmSync(path, { force: true });
}
