import { isIP } from 'node:net';

/**
 * Which hops stay on this machine. A connection to a loopback address (or a
 * Unix socket) never crosses a network, so production lets it go without
 * TLS; any other host needs verified TLS unless the operator allows that
 * hop in ALLOW_INSECURE_TRANSPORT (README, "Transport security").
 */

/** The hops an operator may allow without verified TLS to a host that is not loopback. */
export const INSECURE_HOPS = ['database', 'redis', 'subgraphs'] as const;
export type InsecureHop = (typeof INSECURE_HOPS)[number];

export function isInsecureHop(value: string): value is InsecureHop {
  return (INSECURE_HOPS as readonly string[]).includes(value);
}

/**
 * `localhost`, 127.0.0.0/8, ::1 (bracketed or not), the IPv4-mapped
 * loopback, or a Unix socket's path. Only the literal name `localhost`:
 * `db.localhost` goes to DNS here (and, through a cluster's search domains,
 * to whoever owns a namespace called localhost).
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === '' || bare.startsWith('/')) return bare !== '';
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || /^::ffff:127\./.test(bare) || bare === '0:0:0:0:0:0:0:1';
  return false;
}
