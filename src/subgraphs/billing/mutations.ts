import { randomUUID } from 'node:crypto';
import { earlierWrite, writeWithRecord } from '../writes.js';
import type { MutationResolvers, RecordPaymentInput } from './__generated__/resolvers-types.js';
import type { QueryResult } from '@mikro-orm/core';
import { Payment } from '../../db/entities.js';
import type { SubgraphContext } from '../context.js';
import { failed, InputCheck, invalidInput, type Failure } from '../mutation-results.js';
import { isUuid } from '../pagination.js';
import { invoiceById, paymentById } from './repository.js';
import { mayWriteFor } from '../access.js';

/**
 * Records a payment: one transaction inserts it and lowers the invoice
 * balance, with the balance checked in the same UPDATE so that concurrent
 * payments can never take an invoice below zero.
 */
async function recordPayment(input: RecordPaymentInput, context: SubgraphContext): Promise<Failure | { ok: true; error: null; payment: Payment | null }> {
  const earlier = await earlierWrite(context, COORDINATE, input);
  if (earlier) return paymentAnswer(earlier.resultId, context);
  const receivedAt = input.receivedAt ? new Date(input.receivedAt) : new Date();
  const check = new InputCheck()
    .require(isUuid(input.invoiceId), 'input.invoiceId', 'Not an id.')
    .require(Number.isInteger(input.amountCents) && input.amountCents > 0, 'input.amountCents', 'A positive whole number of cents.')
    .require(receivedAt.getTime() <= Date.now(), 'input.receivedAt', 'Cannot be in the future.');
  if (!check.ok) return invalidInput(check);
  const invoice = await context.loader(invoiceById).load(input.invoiceId);
  // Visible, and reached by a role that may record payments for its patient (not only by another role of the same token): otherwise as absent.
  if (!invoice || !(await mayWriteFor(context.access, invoice.patient.id, 'writePayment'))) return failed('NOT_FOUND', 'No such invoice among those you may see.');
  if (invoice.status === 'paid' || invoice.status === 'cancelled') return failed('CONFLICT', `The invoice is ${invoice.status}; it takes no payment.`);
  if (input.amountCents > invoice.balanceCents) {
    return failed('INVALID_INPUT', 'The amount is more than the invoice balance.', [{ field: 'input.amountCents', message: `At most ${invoice.balanceCents} cents.` }]);
  }
  const id = randomUUID();
  const written = await writeWithRecord(context, {
    coordinate: COORDINATE,
    input,
    resultId: () => id,
    wrote: (applied: boolean) => applied,
    work: async (em) => {
      // Arithmetic in SQL, guarded in the same statement: no lost update between two payments.
      const result = await em.execute<QueryResult>(
        `update "invoice" set "balance_cents" = "balance_cents" - ?,
           "status" = case when "balance_cents" - ? = 0 then 'paid' else 'partially_paid' end
         where "id" = ? and "balance_cents" >= ? and "status" in ('issued', 'partially_paid')`,
        [input.amountCents, input.amountCents, invoice.id, input.amountCents],
        'run',
      );
      if (result.affectedRows === 0) return false;
      await em.insert(Payment, {
        id,
        patient: invoice.patient.id,
        invoice: invoice.id,
        amountCents: input.amountCents,
        currency: invoice.currency,
        method: input.method,
        receivedAt,
      });
      return true;
    },
  });
  if (written.replayed) return paymentAnswer(written.resultId, context);
  if (!written.result) return failed('CONFLICT', 'The invoice changed meanwhile; read it again and retry.');
  // The invoice this request loaded is stale now: the payload shows the new balance.
  await context.em.refresh(invoice);
  return paymentAnswer(id, context);
}

const COORDINATE = 'Mutation.recordPayment';

/** The payload of a payment recorded now or by the first request of its Idempotency-Key. */
async function paymentAnswer(paymentId: string | null, context: SubgraphContext): Promise<{ ok: true; error: null; payment: Payment | null }> {
  return { ok: true, error: null, payment: paymentId ? await context.loader(paymentById).load(paymentId) : null };
}

export const mutations: MutationResolvers = {
  recordPayment: (_parent, { input }, context) => recordPayment(input, context),
};
