import type { Config } from '../config.js';
import { SUBGRAPH_NAMES } from '../subgraphs/catalog.js';
import { databaseTransport } from './database-tls.js';
import { isLoopbackHost } from './endpoints.js';
import { redisTransport } from './redis-tls.js';

export interface HopDescription {
  hop: 'gateway-listener' | 'subgraph-listener' | 'database' | 'redis' | 'subgraph-calls';
  description: string;
  /** PHI crosses a network on it without verified TLS. */
  insecure: boolean;
}

type ServedKind = 'all' | 'subgraphs' | 'subgraph' | 'gateway';

/** How each hop of a process serving `mode` is carried, in words an operator reads at start (never a password or a path's content). */
export function describeTransport(config: Config, mode: { kind: ServedKind }): HopDescription[] {
  const { transport } = config;
  const hops: HopDescription[] = [];
  const servesGateway = mode.kind === 'all' || mode.kind === 'gateway';
  const servesSubgraphs = mode.kind !== 'gateway';
  const plain = transport.terminatedUpstream ? 'http, TLS terminated by the proxy in front (TLS_TERMINATED_UPSTREAM)' : 'http';
  if (servesGateway) {
    hops.push({ hop: 'gateway-listener', description: transport.listener ? 'https' : plain, insecure: !transport.listener && !transport.terminatedUpstream && !isLoopbackHost(config.gateway.host) });
  }
  if (servesSubgraphs) {
    const names = transport.subgraphClientNames.length > 0 ? ` naming ${transport.subgraphClientNames.join(' or ')}` : ' of the CA';
    const description = transport.listener ? (transport.subgraphClientCaFile ? `https, client certificates${names} required (mutual TLS)` : 'https') : plain;
    // The proxy of TLS_TERMINATED_UPSTREAM is the gateway's: subgraphs on another interface without TLS are not covered by it.
    hops.push({ hop: 'subgraph-listener', description, insecure: !transport.listener && !isLoopbackHost(config.subgraphs.host) });
    if (config.database.url) {
      const database = databaseTransport(config.database.url);
      const verified = database.mode === 'verify-full';
      hops.push({ hop: 'database', description: `PostgreSQL at ${database.host}, sslmode=${database.mode}${database.loopback ? ' (this machine)' : ''}`, insecure: !verified && !database.loopback });
    } else {
      hops.push({ hop: 'database', description: 'embedded PGlite (no network)', insecure: false });
    }
  }
  if (config.redisUrl) {
    const redis = redisTransport(config.redisUrl);
    hops.push({ hop: 'redis', description: `Redis at ${redis.host}, ${redis.tls ? 'TLS, certificate verified' : 'plaintext'}${redis.loopback ? ' (this machine)' : ''}`, insecure: !redis.tls && !redis.loopback });
  } else {
    hops.push({ hop: 'redis', description: 'in-process cache (no network)', insecure: false });
  }
  if (servesGateway) {
    const calls = SUBGRAPH_NAMES.map((name) => {
      const url = new URL(config.subgraphs.urls[name] ?? `${transport.listener ? 'https' : 'http'}://${config.subgraphs.host}/`);
      const secure = url.protocol === 'https:';
      return { name, secure, loopback: isLoopbackHost(url.hostname) };
    });
    const mutual = transport.gatewayClient.certFile ? ', client certificate presented when asked' : '';
    hops.push({
      hop: 'subgraph-calls',
      description: calls.map((call) => `${call.name}: ${call.secure ? `https${mutual}` : 'http'}`).join('; '),
      insecure: calls.some((call) => !call.secure && !call.loopback),
    });
  }
  return hops;
}
