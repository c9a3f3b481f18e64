import type { EntityManager } from '@mikro-orm/sql';
import { requestTimeout } from '../errors.js';
import type { SubgraphContext } from './context.js';
import { recordDeadlineRefusal } from './deadline.js';

/**
 * Every write of a mutation goes through here: one transaction, which
 * commits whole or not at all, and which does not start past the request's
 * deadline nor run past it (its statements get what is left of the deadline
 * as their statement timeout, never more than the connection's own). A
 * mutation the gateway has given up on writes nothing.
 */
export async function writeBeforeDeadline<T>(context: SubgraphContext, work: (em: EntityManager) => Promise<T>, coordinate: string): Promise<T> {
  const left = Math.floor(context.deadline - Date.now());
  if (left <= 0) {
    recordDeadlineRefusal(context, coordinate, 'update');
    throw requestTimeout(context.deadlineMs);
  }
  try {
    return await context.em.transactional(async (em) => {
      // least() ignores the NULL of a connection without a statement timeout (0 turns it off).
      await em.execute(
        `select set_config('statement_timeout', least(?::bigint, nullif(extract(epoch from current_setting('statement_timeout')::interval) * 1000, 0))::bigint::text, true)`,
        [left],
      );
      return await work(em);
    });
  } catch (error) {
    // Rolled back; when the deadline has come meanwhile, it is what cancelled the write: say so.
    if (Date.now() < context.deadline - DEADLINE_SLACK_MS) throw error;
    recordDeadlineRefusal(context, coordinate, 'update');
    throw requestTimeout(context.deadlineMs);
  }
}

/** A statement cancelled by its timeout comes back a little before the deadline it was given (the round trip). */
const DEADLINE_SLACK_MS = 50;
