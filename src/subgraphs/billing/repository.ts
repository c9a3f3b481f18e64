import { Claim, Coverage, Invoice, Payment } from '../../db/entities.js';
import { childPagesOf, childTable, patientOwnedById } from '../loaders.js';

/** Per-patient pages of each billing table, newest first. */
export const coveragePages = childPagesOf(childTable('Patient.coverages', Coverage, 'coverage', 'period_start'));
export const claimPages = childPagesOf(childTable('Patient.claims', Claim, 'claim', 'created_at'));
export const invoicePages = childPagesOf(childTable('Patient.invoices', Invoice, 'invoice', 'issued_at'));
export const paymentPages = childPagesOf(childTable('Patient.payments', Payment, 'payment', 'received_at'));

export const coverageById = patientOwnedById(Coverage);
export const claimById = patientOwnedById(Claim);
export const invoiceById = patientOwnedById(Invoice);
export const paymentById = patientOwnedById(Payment);
