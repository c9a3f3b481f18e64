import { isIP } from 'node:net';

/** The names Express (proxy-addr) knows for address ranges. */
const NAMED_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * One TRUST_PROXY item: a named range, an IP address, or a CIDR range. The
 * addresses whose X-Forwarded-For and X-Forwarded-Proto are believed (the
 * client's address in the audit trail; whether the request came over HTTPS).
 */
export function isTrustedProxyValue(value: string): boolean {
  if (NAMED_RANGES.has(value)) return true;
  const [address, prefix, ...rest] = value.split('/');
  if (rest.length > 0 || address === undefined) return false;
  const family = isIP(address);
  if (family === 0) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}
