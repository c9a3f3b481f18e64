import type { GraphQLFormattedError } from 'graphql';
import { CLIENT_ERROR_CODES, ErrorCode, INTERNAL_ERROR_MESSAGE, cacheUnavailable, databaseUnavailable, isCacheUnavailable, isDatabaseUnavailable } from './errors.js';
import type { Logger } from './logger.js';

/**
 * The one error formatter (Apollo Server's `formatError`) of the gateway
 * and of every subgraph: what a client may learn from an error.
 *
 * - Only the codes meant for clients (CLIENT_ERROR_CODES) keep their
 *   message. Anything else (a driver's message, "Connection terminated
 *   unexpectedly", a subgraph fetch error naming an internal URL, a stack)
 *   becomes a bare INTERNAL_SERVER_ERROR with a fixed message.
 * - No suggestions: graphql-js appends "Did you mean …?" to validation
 *   errors and also, through a different code path that Apollo Server's
 *   `hideSchemaDetailsFromClientErrors` does not reach, to the errors of
 *   variable coercion (unknown input fields, misspelt enum values).
 *   Every suggestion sentence is removed from every message.
 * - A variable that could not be coerced is named with its path, not
 *   echoed: graphql-js quotes the whole value sent (an input object with
 *   every field of it, possibly PHI) in the message.
 * - Extensions are whitelisted, and only simple values pass (codes only
 *   where they say why): never
 *   `stacktrace`, `exception`, `serviceName`, a subgraph's `response`, or
 *   anything else that could carry driver text. `path` and `locations` stay.
 */

/**
 * Extensions a client may see; each holds a code, a name, a coordinate or
 * a path we set, never a caught error's text. Those that say why are
 * codes (UPPER_SNAKE), so not even a sentence can pass through them.
 */
const CLIENT_EXTENSIONS = ['code', 'reason', 'cause', 'field', 'argumentName', 'argument', 'argumentPath', 'limit', 'max', 'measured', 'requestId'] as const;
const CODE_EXTENSIONS: ReadonlySet<string> = new Set(['code', 'reason', 'cause']);
const CODE = /^[A-Z][A-Z0-9_]{0,63}$/;

/** " Did you mean "x", "y", or "z"?" and its variants ("… the enum value …", "… to use an inline fragment on …"). */
const SUGGESTION = /\s*Did you mean\b[^?]*(?:\?|$)/gi;

/** graphql-js's variable coercion message: `Variable "$name" got invalid value <the value>[ at "name.path"]; <why>`. */
const VARIABLE_COERCION = /^Variable "\$([_A-Za-z][_0-9A-Za-z]*)" got invalid value /;
const VARIABLE_PATH = / at "([_A-Za-z][_0-9A-Za-z]*(?:\.[_A-Za-z][_0-9A-Za-z]*|\[\d+\])*)"$/;

export function stripSuggestions(message: string): string {
  return message.replace(SUGGESTION, '').trim();
}

/** The messages of the errors an error was made from (graphql-js and Apollo keep the first cause as `originalError`). */
function causeMessages(error: unknown): string[] {
  const messages: string[] = [];
  let current = (error as { originalError?: unknown } | null)?.originalError;
  for (let depth = 0; current instanceof Error && depth < 5; depth += 1) {
    messages.push(current.message);
    current = (current as { originalError?: unknown }).originalError;
  }
  return messages;
}

/**
 * `Variable "$filter" got invalid value { gendr: "male" }; Field "gendr" …`
 * becomes `Variable "$filter" got an invalid value; Field "gendr" …`. The
 * reason is known exactly only from the cause graphql-js kept; without it
 * (an error that crossed HTTP) only the variable's name is kept.
 */
function withoutEchoedValue(message: string, error: unknown): string {
  const variable = VARIABLE_COERCION.exec(message);
  if (!variable) return message;
  const reason = causeMessages(error).find((cause) => cause !== message && message.endsWith(`; ${cause}`));
  if (reason === undefined) return `Variable "$${variable[1]}" got an invalid value.`;
  const prefix = message.slice(0, message.length - reason.length - 2);
  const path = VARIABLE_PATH.exec(prefix)?.[1];
  return `Variable "$${variable[1]}" got an invalid value${path ? ` at "${path}"` : ''}; ${safeReason(reason)}`;
}

/**
 * Reasons of graphql-js that name only the schema and the caller's field
 * names; any other (`ID cannot represent value: <the value>`, `Value "<the
 * value>" does not exist in "Enum" enum.`, a scalar's own parse error)
 * quotes what was sent, and is replaced by a reason that does not.
 */
const SAFE_REASONS = [
  /^Field "[_A-Za-z][_0-9A-Za-z]*" is not defined by type "[_A-Za-z][_0-9A-Za-z]*"\.$/,
  /^Field "[_A-Za-z][_0-9A-Za-z]*" of required type "[_A-Za-z0-9[\]!]+" was not provided\.$/,
  /^Expected type "[_A-Za-z][_0-9A-Za-z]*" to be an object\.$/,
  /^Expected non-nullable type "[_A-Za-z0-9[\]!]+" not to be null\.$/,
];
const SCALAR_REASON = /^(ID|Int|Float|String|Boolean|Date|DateTime) cannot represent/;
const ENUM_REASON = /^Value .* does not exist in "([_A-Za-z][_0-9A-Za-z]*)" enum\.?/s;

function safeReason(reason: string): string {
  const stripped = stripSuggestions(reason);
  if (SAFE_REASONS.some((pattern) => pattern.test(stripped))) return stripped;
  const scalar = SCALAR_REASON.exec(stripped)?.[1];
  if (scalar) return `Not a valid ${scalar}.`;
  const enumType = ENUM_REASON.exec(stripped)?.[1];
  if (enumType) return `Not a value of the "${enumType}" enum.`;
  return 'The value does not fit its type.';
}

function isSimpleValue(value: unknown): boolean {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
}

function isShownValue(name: string, value: unknown): boolean {
  if (CODE_EXTENSIONS.has(name)) return typeof value === 'string' && CODE.test(value);
  return isSimpleValue(value) || (Array.isArray(value) && value.every((item) => typeof item === 'string' || typeof item === 'number'));
}

function clientExtensions(extensions: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const name of CLIENT_EXTENSIONS) {
    const value = extensions[name];
    if (isShownValue(name, value)) kept[name] = value;
  }
  return kept;
}

function position(formatted: GraphQLFormattedError): Pick<GraphQLFormattedError, 'locations' | 'path'> {
  return { ...(formatted.locations && { locations: formatted.locations }), ...(formatted.path && { path: formatted.path }) };
}

/** True when the error's code is one meant for clients; anything else is answered as an internal error. */
export function isClientError(formatted: GraphQLFormattedError): boolean {
  const code = formatted.extensions?.['code'];
  return typeof code === 'string' && CLIENT_ERROR_CODES.has(code);
}

/**
 * What the client sees of one error. `formatted` is Apollo Server's
 * rendering of it, `error` the error itself (for the causes of variable
 * coercion errors).
 */
export function formatClientError(formatted: GraphQLFormattedError, error?: unknown): GraphQLFormattedError {
  const extensions = formatted.extensions ?? {};
  if (!isClientError(formatted)) {
    const requestId = extensions['requestId'];
    if (error !== undefined && isCacheUnavailable(error)) {
      return { message: cacheUnavailable().message, ...position(formatted), extensions: { code: ErrorCode.CacheUnavailable, ...(typeof requestId === 'string' && { requestId }) } };
    }
    if (error !== undefined && isDatabaseUnavailable(error)) {
      return { message: databaseUnavailable().message, ...position(formatted), extensions: { code: ErrorCode.DatabaseUnavailable, ...(typeof requestId === 'string' && { requestId }) } };
    }
    return {
      message: INTERNAL_ERROR_MESSAGE,
      ...position(formatted),
      extensions: { code: ErrorCode.Internal, ...(typeof requestId === 'string' && { requestId }) },
    };
  }
  return {
    message: stripSuggestions(withoutEchoedValue(formatted.message, error)),
    ...position(formatted),
    extensions: clientExtensions(extensions),
  };
}

/**
 * `formatError` for an Apollo Server. An error turned into an internal one
 * is logged by kind only (the error's class and a driver's SQLSTATE or
 * system code, never its message, which can quote values), with its path.
 */
export function createErrorFormatter(logger: Logger): (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError {
  return (formatted, error) => {
    const shown = formatClientError(formatted, error);
    if (!isClientError(formatted)) {
      const cause = (error as { originalError?: unknown } | null)?.originalError ?? error;
      const code = (cause as { code?: unknown } | null)?.code;
      logger.error(
        {
          event: 'internal-error',
          path: formatted.path?.join('.'),
          err: { name: cause instanceof Error ? cause.name : typeof cause, code: typeof code === 'string' ? code.slice(0, 40) : undefined },
        },
        'an error was answered as INTERNAL_SERVER_ERROR',
      );
    }
    return shown;
  };
}
