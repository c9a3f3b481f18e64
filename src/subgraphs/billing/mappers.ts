import type { Claim, Coverage, Invoice, Payment } from '../../db/entities.js';

/** What the billing subgraph's resolvers return before field resolvers run (codegen `mappers`). */
export interface PatientReferenceMapper {
  id: string;
}
export type CoverageMapper = Coverage;
export type ClaimMapper = Claim;
export type InvoiceMapper = Invoice;
export type PaymentMapper = Payment;
/** Money stays in integer minor units until it is printed. */
export interface MoneyMapper {
  cents: number;
  currency: string;
}
