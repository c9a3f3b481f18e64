import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { ApolloGateway, RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { introspectionByRolePlugin } from '../policy/index.js';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { expressMiddleware } from '@as-integrations/express5';
import express from 'express';
import type { Principal, TokenVerifier } from '../auth/index.js';
import type { Logger } from '../logger.js';
import { createApp, errorHandler, healthRoutes, listen, locals, MAX_BODY_BYTES, REQUEST_ID_HEADER, requestId, requireToken } from '../http.js';
import { GRAPHQL_PATH, isSubgraphName, type SubgraphName } from '../subgraphs/catalog.js';
import type { RunningServer } from '../subgraphs/server.js';
import { SUPERGRAPH_PATH } from './compose.js';
import { loadApiSchema } from './api-schema.js';

/** What the gateway knows about one client request. */
export interface GatewayContext {
  principal: Principal;
  requestId: string;
  /** The caller's own Authorization header, forwarded unchanged to every subgraph. */
  authorization: string;
}

/** Forwards the caller's token and the request id, so each subgraph authenticates the caller itself. */
class ForwardingDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  override willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>): void {
    const caller = context as Partial<GatewayContext>;
    if (!caller.authorization || !caller.requestId) return; // the gateway's own health checks carry no caller
    request.http?.headers.set('authorization', caller.authorization);
    request.http?.headers.set(REQUEST_ID_HEADER, caller.requestId);
  }
}

export interface GatewayDependencies {
  verifier: TokenVerifier;
  logger: Logger;
  /** Where each subgraph actually listens (overrides the URLs in supergraph.graphql). */
  subgraphUrls: Record<SubgraphName, string>;
  /** Answers /readyz. */
  ready: () => Promise<boolean>;
}

/**
 * The federation gateway: Apollo Gateway executing the committed
 * supergraph.graphql. It verifies the token before planning anything;
 * the subgraphs verify it again.
 */
export async function startGateway(deps: GatewayDependencies, host: string, port: number): Promise<RunningServer> {
  const log = deps.logger.child({ component: 'gateway' });
  // Apollo Gateway reports every schema load at info; only its warnings matter to an operator.
  const gatewayLog = log.child({}, { level: log.levelVal > 40 ? log.level : 'warn' });
  const supergraphSdl = readFileSync(SUPERGRAPH_PATH, 'utf8');
  const apiSchema = loadApiSchema(supergraphSdl);
  const gateway = new ApolloGateway({
    supergraphSdl,
    logger: gatewayLog,
    buildService: ({ name, url }) => {
      const target = isSubgraphName(name) ? deps.subgraphUrls[name] : url;
      return new ForwardingDataSource({ url: target });
    },
  });
  const app = createApp();
  const httpServer: Server = createServer(app);
  const apollo = new ApolloServer<GatewayContext>({
    gateway,
    introspection: true,
    includeStacktraceInErrorResponses: false,
    // main.ts owns shutdown: one ordered stop for all servers, then the database and cache.
    stopOnTerminationSignals: false,
    hideSchemaDetailsFromClientErrors: true,
    logger: log,
    plugins: [ApolloServerPluginDrainHttpServer({ httpServer }), introspectionByRolePlugin<GatewayContext>(() => apiSchema)],
  });
  await apollo.start();

  healthRoutes(app, deps.ready);
  app.use(
    GRAPHQL_PATH,
    requestId,
    requireToken(deps.verifier, log),
    express.json({ limit: MAX_BODY_BYTES }),
    expressMiddleware(apollo, {
      context: ({ req, res }) => {
        const { principal, requestId: id } = locals(res);
        return Promise.resolve({ principal, requestId: id, authorization: req.header('authorization') ?? '' });
      },
    }),
  );
  app.use(errorHandler(log));

  const boundPort = await listen(httpServer, host, port);
  return { name: 'gateway', url: `http://${host}:${boundPort}${GRAPHQL_PATH}`, port: boundPort, stop: () => apollo.stop() };
}
