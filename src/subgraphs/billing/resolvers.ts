import type { Resolvers } from './__generated__/resolvers-types.js';
import { mutations } from './mutations.js';
import { DateScalar, DateTimeScalar, toIsoDateTime } from '../scalars.js';
import { isUuid } from '../pagination.js';
import { patientListResolver, patientVisible } from '../loaders.js';
import { formatCents } from './money.js';
import { securityLabelCodings } from '../sensitive-rows.js';
import { asStringArray, asText, sealedColumn } from '../sealed-fields.js';
import { claimById, claimPages, coverageById, coveragePages, invoiceById, invoicePages, paymentById, paymentPages } from './repository.js';

export const resolvers: Resolvers = {
  Date: DateScalar,
  DateTime: DateTimeScalar,
  Mutation: mutations,
  Patient: {
    // An entity reference outside the caller's row scope resolves to null, as if absent.
    __resolveReference: async ({ id }, { loader }) => (isUuid(id) && (await loader(patientVisible).load(id)) ? { id } : null),
    coverages: patientListResolver(coveragePages),
    claims: patientListResolver(claimPages),
    invoices: patientListResolver(invoicePages),
    payments: patientListResolver(paymentPages),
  },
  Money: {
    decimal: (money) => formatCents(money),
  },
  Coverage: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(coverageById).load(id) : null),
    patient: (row) => ({ id: row.patient.id }),
    memberId: (row) => sealedColumn('coverage', row, 'member_id', row.memberId, asText),
    period: (row) => ({ start: toIsoDateTime(row.periodStart), end: row.periodEnd ? toIsoDateTime(row.periodEnd) : null }),
  },
  Claim: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(claimById).load(id) : null),
    patient: (row) => ({ id: row.patient.id }),
    coverage: (row, _args, { loader }) => (row.coverage ? loader(coverageById).load(row.coverage.id) : null),
    total: (row) => ({ cents: row.totalCents, currency: row.currency }),
    diagnosisCodes: (row) => sealedColumn('claim', row, 'diagnosis_codes', row.diagnosisCodes, asStringArray),
    securityLabels: (row) => securityLabelCodings(row.securityLabels),
    createdAt: (row) => toIsoDateTime(row.createdAt),
  },
  Invoice: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(invoiceById).load(id) : null),
    patient: (row) => ({ id: row.patient.id }),
    claim: (row, _args, { loader }) => (row.claim ? loader(claimById).load(row.claim.id) : null),
    total: (row) => ({ cents: row.totalCents, currency: row.currency }),
    balance: (row) => ({ cents: row.balanceCents, currency: row.currency }),
    issuedAt: (row) => toIsoDateTime(row.issuedAt),
  },
  Payment: {
    __resolveReference: ({ id }, { loader }) => (isUuid(id) ? loader(paymentById).load(id) : null),
    patient: (row) => ({ id: row.patient.id }),
    invoice: async (row, _args, { loader }) => {
      const invoice = await loader(invoiceById).load(row.invoice.id);
      if (!invoice) throw new Error(`Payment ${row.id} names a missing invoice`);
      return invoice;
    },
    amount: (row) => ({ cents: row.amountCents, currency: row.currency }),
    receivedAt: (row) => toIsoDateTime(row.receivedAt),
  },
};
