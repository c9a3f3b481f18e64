import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { post, startTestStack, type TestStack } from './support/stack.js';
import { purgeExpiredRows } from '../src/db/housekeeping.js';

/**
 * A write and its audit record are one: the mutation's rows and its audit
 * events commit in the same transaction, or neither does. And a mutation
 * sent again with the same Idempotency-Key is applied once.
 */

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack();
});

afterAll(async () => {
  await stack?.stop();
});

const ADD_NOTE = 'mutation($input: AddClinicalNoteInput!) { addClinicalNote(input: $input) { ok error { code } note { id } } }';
const PAY = 'mutation($input: RecordPaymentInput!) { recordPayment(input: $input) { ok error { code } payment { id amount { cents } invoice { id balance { cents } } } } }';

interface NotePayload {
  addClinicalNote: { ok: boolean; note: { id: string } | null } | null;
}
interface PaymentPayload {
  recordPayment: { ok: boolean; error: { code: string } | null; payment: { id: string; invoice: { balance: { cents: number } } } | null } | null;
}

async function openInvoice(minimumCents: number): Promise<{ id: string; balance: number }> {
  const [row] = await stack.sql<{ id: string; balance_cents: number }>(
    `select i.id, i.balance_cents from invoice i join patient p on p.id = i.patient_id where p.managing_organization_id = ?
     and i.status in ('issued', 'partially_paid') and i.balance_cents >= ? and not exists (select 1 from payment x where x.invoice_id = i.id) order by i.id limit 1`,
    [stack.principals.billing.organizationId, minimumCents],
  );
  if (!row) throw new Error('no open invoice without payments');
  return { id: row.id, balance: Number(row.balance_cents) };
}

async function paymentsOf(invoiceId: string): Promise<{ id: string }[]> {
  return stack.sql<{ id: string }>('select id from payment where invoice_id = ?', [invoiceId]);
}

describe('a mutation and its audit record', () => {
  it('commit together: with the audit insert failing for about half of 40 concurrent writes, every stored note has its create event and every refused request stored nothing', async () => {
    const patientId = stack.principals.patient.patientId ?? '';
    const token = await stack.token('clinician');
    // A database fault, not a mock: a trigger that refuses about half of the batches holding a note's creation.
    await stack.sql(`create or replace function test_flaky_audit() returns trigger language plpgsql as $$
      begin
        if new."action" = 'create' and new."entity_type" = 'ClinicalNote' and random() < 0.5 then raise exception 'audit store fault (test)'; end if;
        return new;
      end $$`);
    await stack.sql('create trigger test_flaky_audit before insert on audit_event for each row execute function test_flaky_audit()');
    const [{ count: before } = { count: '0' }] = await stack.sql<{ count: string }>('select count(*) as count from clinical_note where patient_id = ?', [patientId]);
    let responses;
    try {
      responses = await Promise.all(
        Array.from({ length: 40 }, (_, index) => post<NotePayload>(stack.gatewayUrl, ADD_NOTE, { token, variables: { input: { patientId, typeCode: '11506-3', text: `Concurrent note ${index}.` } } })),
      );
    } finally {
      await stack.sql('drop trigger test_flaky_audit on audit_event');
    }
    const stored = responses.filter((response) => response.status === 200 && response.body.data?.addClinicalNote?.ok);
    const refused = responses.filter((response) => response.status === 503);
    expect(stored.length + refused.length).toBe(40);
    expect(stored.length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
    for (const response of refused) {
      expect(response.body.errors?.[0]?.extensions?.['code']).toBe('AUDIT_UNAVAILABLE');
      expect(response.body.data ?? null).toBeNull();
    }
    const notes = await stack.sql<{ id: string }>('select id from clinical_note where patient_id = ? order by created_at desc limit ?', [patientId, 40]);
    const [{ count: after } = { count: '0' }] = await stack.sql<{ count: string }>('select count(*) as count from clinical_note where patient_id = ?', [patientId]);
    expect(Number(after) - Number(before)).toBe(stored.length);
    const storedIds = new Set(stored.map((response) => response.body.data?.addClinicalNote?.note?.id));
    const created = await stack.sql<{ entity_id: string }>(
      `select entry.entity_id from audit_event e cross join lateral unnest(e.entity_ids) as entry(entity_id) where e.action = 'create' and e.entity_type = 'ClinicalNote' and entry.entity_id in (?)`,
      [[...storedIds]],
    );
    expect(new Set(created.map((row) => row.entity_id))).toEqual(storedIds);
    for (const note of notes.slice(0, stored.length)) expect(storedIds.has(note.id)).toBe(true);
  });

  it('records the new entity\'s id on a create and the changed field names, never values, on an update', async () => {
    const token = await stack.token('patient');
    const phone = '+1-617-555-0142';
    const response = await post(stack.gatewayUrl, 'mutation($input: UpdateContactInput!) { updateMyContact(input: $input) { ok } }', { token, variables: { input: { phone } } });
    expect(response.status).toBe(200);
    const [event] = await stack.sql<{ fields: unknown; entity_ids: string[] | null; entity_id: string | null }>(
      `select fields, entity_ids, entity_id from audit_event where subject = ? and action = 'update' and entity_type = 'Patient' order by id desc limit 1`,
      [stack.principals.patient.subject],
    );
    expect(JSON.stringify(event?.fields)).toContain('phone');
    expect(JSON.stringify(event)).not.toContain('555-0142');
  });
});

describe('an Idempotency-Key', () => {
  it('applies a payment sent twice with the same key once, and answers the retry with the first result', async () => {
    const invoice = await openInvoice(300);
    const token = await stack.token('billing');
    const headers = { 'idempotency-key': `pay-${invoice.id}` };
    const input = { invoiceId: invoice.id, amountCents: 100, method: 'card' };
    const first = await post<PaymentPayload>(stack.gatewayUrl, PAY, { token, variables: { input }, headers });
    const second = await post<PaymentPayload>(stack.gatewayUrl, PAY, { token, variables: { input }, headers });
    expect(first.body.data?.recordPayment?.ok).toBe(true);
    expect(second.body.data?.recordPayment?.ok).toBe(true);
    expect(second.body.data?.recordPayment?.payment?.id).toBe(first.body.data?.recordPayment?.payment?.id);
    expect(await paymentsOf(invoice.id)).toHaveLength(1);
    const [row] = await stack.sql<{ balance_cents: number }>('select balance_cents from invoice where id = ?', [invoice.id]);
    expect(Number(row?.balance_cents)).toBe(invoice.balance - 100);
  });

  it('applies concurrent requests with the same key once', async () => {
    const invoice = await openInvoice(500);
    const token = await stack.token('billing');
    const headers = { 'idempotency-key': `pay-concurrent-${invoice.id}` };
    const input = { invoiceId: invoice.id, amountCents: 100, method: 'card' };
    const answers = await Promise.all(Array.from({ length: 5 }, () => post<PaymentPayload>(stack.gatewayUrl, PAY, { token, variables: { input }, headers })));
    const ids = new Set(answers.map((answer) => answer.body.data?.recordPayment?.payment?.id));
    expect(ids.size).toBe(1);
    expect(await paymentsOf(invoice.id)).toHaveLength(1);
  });

  it('applies a payment once when the connection dropped before the answer and the client retried', async () => {
    const invoice = await openInvoice(300);
    const token = await stack.token('billing');
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'idempotency-key': `pay-dropped-${invoice.id}` };
    const body = JSON.stringify({ query: PAY, variables: { input: { invoiceId: invoice.id, amountCents: 100, method: 'ach' } } });
    const dropped = new AbortController();
    const lost = fetch(stack.gatewayUrl, { method: 'POST', headers, body, signal: dropped.signal }).catch((error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 5));
    dropped.abort();
    await lost;
    // The server went on with it; the client retries until it has an answer.
    let retry: PaymentPayload['recordPayment'] = null;
    for (let attempt = 0; attempt < 20 && !retry?.ok; attempt += 1) {
      const answer = await fetch(stack.gatewayUrl, { method: 'POST', headers, body });
      retry = ((await answer.json()) as { data?: PaymentPayload }).data?.recordPayment ?? null;
    }
    expect(retry?.ok).toBe(true);
    const payments = await paymentsOf(invoice.id);
    expect(payments).toHaveLength(1);
    expect(retry?.payment?.id).toBe(payments[0]?.id);
  });

  it('refuses the same key with a different input, and writes nothing', async () => {
    const invoice = await openInvoice(300);
    const token = await stack.token('billing');
    const headers = { 'idempotency-key': `pay-reused-${invoice.id}` };
    await post(stack.gatewayUrl, PAY, { token, variables: { input: { invoiceId: invoice.id, amountCents: 100, method: 'card' } }, headers });
    const reused = await post(stack.gatewayUrl, PAY, { token, variables: { input: { invoiceId: invoice.id, amountCents: 200, method: 'card' } }, headers });
    expect(reused.status).toBe(400);
    expect(reused.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason: 'IDEMPOTENCY_KEY_REUSED' });
    expect(await paymentsOf(invoice.id)).toHaveLength(1);
  });

  it('keeps keys apart per account: another account\'s same key is its own', async () => {
    const invoice = await openInvoice(300);
    const headers = { 'idempotency-key': `shared-${invoice.id}` };
    const input = { invoiceId: invoice.id, amountCents: 100, method: 'card' };
    await post(stack.gatewayUrl, PAY, { token: await stack.token('billing'), variables: { input }, headers });
    const other = await post<PaymentPayload>(stack.gatewayUrl, PAY, { token: await stack.token('billing', { subject: `${stack.principals.billing.subject}-other` }), variables: { input }, headers });
    expect(other.body.data?.recordPayment?.ok).toBe(true);
    expect(await paymentsOf(invoice.id)).toHaveLength(2);
  });

  it('is forgotten after 24 hours: old keys and the revocations of expired tokens are purged, newer ones kept', async () => {
    const subject = `housekeeping-${Date.now()}`;
    await stack.sql(
      `insert into idempotency_key (subject, key, coordinate, request_digest, created_at) values (?, 'old-key-1', 'Mutation.recordPayment', '\\x00', now() - interval '25 hours'), (?, 'new-key-1', 'Mutation.recordPayment', '\\x00', now())`,
      [subject, subject],
    );
    await stack.sql(`insert into revoked_token (jti, expires_at) values (?, now() - interval '1 minute'), (?, now() + interval '1 hour')`, [`${subject}-expired`, `${subject}-live`]);
    const purged = await purgeExpiredRows(stack.api.db!);
    expect(purged.idempotencyKeys).toBeGreaterThanOrEqual(1);
    expect(purged.revocations).toBeGreaterThanOrEqual(1);
    expect((await stack.sql<{ key: string }>('select key from idempotency_key where subject = ?', [subject])).map((row) => row.key)).toEqual(['new-key-1']);
    expect((await stack.sql<{ jti: string }>('select jti from revoked_token where jti like ?', [`${subject}-%`])).map((row) => row.jti)).toEqual([`${subject}-live`]);
  });

  it('refuses a malformed key before anything runs', async () => {
    const invoice = await openInvoice(300);
    const response = await post(stack.gatewayUrl, PAY, {
      token: await stack.token('billing'),
      variables: { input: { invoiceId: invoice.id, amountCents: 100, method: 'card' } },
      headers: { 'idempotency-key': 'x'.repeat(300) },
    });
    expect(response.status).toBe(400);
    expect(response.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason: 'IDEMPOTENCY_KEY_INVALID' });
    expect(await paymentsOf(invoice.id)).toHaveLength(0);
  });
});
