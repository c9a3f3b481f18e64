/**
 * Maskers reduce a value to what a role may see. They run on the value the
 * resolver produced, inside the same step, so the full value never leaves
 * it. Each is total: an unexpected input gives null, never the input.
 */

const SSN = /^(\d{3})-?(\d{2})-?(\d{4})$/;
const MINIMUM_LAST_DIGITS = 4;
/** Safe Harbor: ages over 89 are grouped, so their birth year is withheld. */
const OLDEST_REPORTABLE_AGE = 89;
const ZIP = /^(\d{3})\d{2}(-\d{4})?$/;
/**
 * Three-digit ZIP prefixes whose areas held 20,000 people or fewer (HHS
 * Safe Harbor guidance, 2000 census): they are reported as 000.
 */
const RESTRICTED_ZIP3 = new Set(['036', '059', '063', '102', '203', '556', '692', '790', '821', '823', '830', '831', '878', '879', '884', '890', '893']);

export function maskSsnLast4(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const match = SSN.exec(value);
  return match ? `***-**-${match[3]}` : null;
}

export function maskLast4(value: unknown): string | null {
  if (typeof value !== 'string' || value.length <= MINIMUM_LAST_DIGITS) return null;
  return `${'*'.repeat(value.length - MINIMUM_LAST_DIGITS)}${value.slice(-MINIMUM_LAST_DIGITS)}`;
}

/** Age in whole years at `today` of a YYYY-MM-DD birth date. */
export function ageAt(birthDate: string, today: Date): number {
  const [year, month, day] = birthDate.split('-').map(Number) as [number, number, number];
  let age = today.getUTCFullYear() - year;
  const beforeBirthday = today.getUTCMonth() + 1 < month || (today.getUTCMonth() + 1 === month && today.getUTCDate() < day);
  if (beforeBirthday) age -= 1;
  return age;
}

export function maskBirthYear(value: unknown, today = new Date()): string | null {
  if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(value)) return null;
  return ageAt(value, today) > OLDEST_REPORTABLE_AGE ? null : value.slice(0, 4);
}

export function maskZip3(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const match = ZIP.exec(value);
  if (!match?.[1]) return null;
  return RESTRICTED_ZIP3.has(match[1]) ? '000' : match[1];
}

export const MASKERS = {
  ssnLast4: { apply: maskSsnLast4, description: 'last four digits: ***-**-1234' },
  last4: { apply: maskLast4, description: 'last four characters, the rest as *' },
  birthYear: { apply: (value: unknown) => maskBirthYear(value), description: 'year only; nothing for ages over 89 (Safe Harbor)' },
  zip3: { apply: maskZip3, description: 'first three digits; 000 for sparsely populated areas (Safe Harbor)' },
  // Needs the request's study and key: the guard applies it (PolicyContext.pseudonymize); on its own it shows nothing.
  studyPseudonym: { apply: (_value: unknown) => null, description: 'the record id replaced by a pseudonym of the study named in the token: stable within the study, unlinkable across studies and to the id' },
} as const;

export type MaskerName = keyof typeof MASKERS;
