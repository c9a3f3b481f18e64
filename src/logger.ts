import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * Structured logs to stdout. Anything that could carry a credential or PHI
 * (authorization headers, variables, bodies) is redacted by path; the code
 * logs codes, ids and counts, never values.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  '*.authorization',
  'variables',
  '*.variables',
  'body',
  '*.body',
  'token',
  '*.token',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    { level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' }, base: { service: 'phi-graph' } },
    destination,
  );
}
