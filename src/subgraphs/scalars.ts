import { GraphQLError, GraphQLScalarType, Kind } from 'graphql';

const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function invalid(name: string, expected: string): GraphQLError {
  return new GraphQLError(`${name} must be ${expected}.`, { extensions: { code: 'BAD_USER_INPUT' } });
}

/** Serializes a stored date (string or Date) as YYYY-MM-DD. */
export function toIsoDate(value: string | Date): string {
  return typeof value === 'string' ? value.slice(0, 10) : value.toISOString().slice(0, 10);
}

/** Serializes a stored instant as an ISO string in UTC. */
export function toIsoDateTime(value: string | Date): string {
  return (typeof value === 'string' ? new Date(value) : value).toISOString();
}

/** True when YYYY-MM-DD (the start of `value`) is a day of the calendar: Date.parse takes 2020-02-31 for March 2. */
function isCalendarDate(value: string): boolean {
  const [year, month, day] = value.slice(0, 10).split('-').map(Number) as [number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

function parseChecked(pattern: RegExp, name: string, expected: string) {
  return (value: unknown): string => {
    if (typeof value !== 'string' || !pattern.test(value) || Number.isNaN(Date.parse(value)) || !isCalendarDate(value)) throw invalid(name, expected);
    return value;
  };
}

const parseDate = parseChecked(ISO_DATE, 'Date', 'an ISO 8601 calendar date (YYYY-MM-DD)');
const parseDateTime = parseChecked(ISO_DATE_TIME, 'DateTime', 'an ISO 8601 date-time with a time zone');

export const DateScalar = new GraphQLScalarType({
  name: 'Date',
  description: 'Calendar date, ISO 8601 (YYYY-MM-DD).',
  serialize: (value) => toIsoDate(value as string | Date),
  parseValue: parseDate,
  parseLiteral: (ast) => parseDate(ast.kind === Kind.STRING ? ast.value : undefined),
});

export const DateTimeScalar = new GraphQLScalarType({
  name: 'DateTime',
  description: 'Instant, ISO 8601 with time zone (UTC on output).',
  serialize: (value) => toIsoDateTime(value as string | Date),
  parseValue: parseDateTime,
  parseLiteral: (ast) => parseDateTime(ast.kind === Kind.STRING ? ast.value : undefined),
});
