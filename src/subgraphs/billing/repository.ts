import { Claim, Coverage, Invoice, Payment } from '../../db/entities.js';
import { childPagesOf, childTable, labelledById, patientOwnedById, type Labelled } from '../loaders.js';

/** A claim's labels are those of its diagnosis codes, bound into their encryption. */
const claimLabels: Labelled<Claim> = { entityType: 'Claim' };
/** An invoice bills a claim: it is withheld with it (an invoice without its claim would tell that the claim is sensitive). */
const invoiceLabels: Labelled<Invoice> = {
  entityType: 'Invoice',
  labels: (t) => `case when ${t}."claim_id" is null then '{}'::text[] else (select c."security_labels" from "claim" c where c."id" = ${t}."claim_id") end`,
};
/** A payment pays an invoice: withheld with the invoice's claim. */
const paymentLabels: Labelled<Payment> = {
  entityType: 'Payment',
  labels: (t) =>
    `(select case when i."claim_id" is null then '{}'::text[] else c."security_labels" end from "invoice" i left join "claim" c on c."id" = i."claim_id" where i."id" = ${t}."invoice_id")`,
};

/** Per-patient pages of each billing table, newest first. */
export const coveragePages = childPagesOf(childTable('Patient.coverages', Coverage, 'coverage', 'period_start'));
export const claimPages = childPagesOf(childTable('Patient.claims', Claim, 'claim', 'created_at', claimLabels));
export const invoicePages = childPagesOf(childTable('Patient.invoices', Invoice, 'invoice', 'issued_at', invoiceLabels));
export const paymentPages = childPagesOf(childTable('Patient.payments', Payment, 'payment', 'received_at', paymentLabels));

export const coverageById = patientOwnedById(Coverage);
export const claimById = labelledById(Claim, 'claim', claimLabels);
export const invoiceById = labelledById(Invoice, 'invoice', invoiceLabels);
export const paymentById = labelledById(Payment, 'payment', paymentLabels);
