import type { MoneyMapper } from './mappers.js';

const CENTS_PER_UNIT = 100;
const CENT_DIGITS = 2;

/** Exact decimal string of an integer amount of cents: 123450 -> "1234.50", -5 -> "-0.05". */
export function formatCents({ cents }: MoneyMapper): string {
  const sign = cents < 0 ? '-' : '';
  const absolute = Math.abs(cents);
  const units = Math.trunc(absolute / CENTS_PER_UNIT);
  const rest = String(absolute % CENTS_PER_UNIT).padStart(CENT_DIGITS, '0');
  return `${sign}${units}.${rest}`;
}
