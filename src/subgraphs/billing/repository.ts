import type { EntityManager } from '@mikro-orm/sql';
import { Claim, Coverage, Invoice, Payment } from '../../db/entities.js';
import { createByIdLoader, createChildPageLoader, type ChildTable } from '../loaders.js';
import { toIsoDateTime } from '../scalars.js';

/** Per-patient pages of each billing table, newest first. */
const patientOf = (row: { patient: { id: string } }) => row.patient.id;

const coverages: ChildTable<Coverage> = {
  entity: Coverage,
  table: 'coverage',
  sortColumn: 'period_start',
  sortType: 'timestamptz',
  sortValue: (row) => toIsoDateTime(row.periodStart),
  patientId: patientOf,
};
const claims: ChildTable<Claim> = {
  entity: Claim,
  table: 'claim',
  sortColumn: 'created_at',
  sortType: 'timestamptz',
  sortValue: (row) => toIsoDateTime(row.createdAt),
  patientId: patientOf,
};
const invoices: ChildTable<Invoice> = {
  entity: Invoice,
  table: 'invoice',
  sortColumn: 'issued_at',
  sortType: 'timestamptz',
  sortValue: (row) => toIsoDateTime(row.issuedAt),
  patientId: patientOf,
};
const payments: ChildTable<Payment> = {
  entity: Payment,
  table: 'payment',
  sortColumn: 'received_at',
  sortType: 'timestamptz',
  sortValue: (row) => toIsoDateTime(row.receivedAt),
  patientId: patientOf,
};

export const coveragePages = (em: EntityManager) => createChildPageLoader(em, coverages);
export const claimPages = (em: EntityManager) => createChildPageLoader(em, claims);
export const invoicePages = (em: EntityManager) => createChildPageLoader(em, invoices);
export const paymentPages = (em: EntityManager) => createChildPageLoader(em, payments);

export const coverageById = (em: EntityManager) => createByIdLoader(em, Coverage);
export const claimById = (em: EntityManager) => createByIdLoader(em, Claim);
export const invoiceById = (em: EntityManager) => createByIdLoader(em, Invoice);
export const paymentById = (em: EntityManager) => createByIdLoader(em, Payment);
