import { BlockList, isIP } from 'node:net';

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
  const family = isIP(bare);
  if (family === 0) return false;
  return LOOPBACK.check(bare, family === 4 ? 'ipv4' : 'ipv6');
}

/** 127.0.0.0/8, ::1 in any spelling, and the IPv4-mapped loopback (::ffff:127.0.0.1, which URLs write ::ffff:7f00:1). */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addSubnet('::ffff:7f00:0', 104, 'ipv6');
