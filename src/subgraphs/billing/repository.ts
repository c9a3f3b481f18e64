import type { EntityManager } from '@mikro-orm/sql';
import { Claim, Coverage, Invoice, Payment } from '../../db/entities.js';
import { childPagesOf, childTable, createByIdLoader } from '../loaders.js';

/** Per-patient pages of each billing table, newest first. */
export const coveragePages = childPagesOf(childTable(Coverage, 'coverage', 'period_start', 'timestamptz', (row) => row.periodStart));
export const claimPages = childPagesOf(childTable(Claim, 'claim', 'created_at', 'timestamptz', (row) => row.createdAt));
export const invoicePages = childPagesOf(childTable(Invoice, 'invoice', 'issued_at', 'timestamptz', (row) => row.issuedAt));
export const paymentPages = childPagesOf(childTable(Payment, 'payment', 'received_at', 'timestamptz', (row) => row.receivedAt));

export const coverageById = (em: EntityManager) => createByIdLoader(em, Coverage);
export const claimById = (em: EntityManager) => createByIdLoader(em, Claim);
export const invoiceById = (em: EntityManager) => createByIdLoader(em, Invoice);
export const paymentById = (em: EntityManager) => createByIdLoader(em, Payment);
