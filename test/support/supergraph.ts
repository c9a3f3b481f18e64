import { readFileSync } from 'node:fs';
import { Supergraph } from '@apollo/federation-internals';
import type { GraphQLSchema } from 'graphql';

/** The API schema clients see through the gateway, from the committed supergraph. */
export function apiSchema(): GraphQLSchema {
  const sdl = readFileSync(new URL('../../supergraph.graphql', import.meta.url), 'utf8');
  return Supergraph.build(sdl).apiSchema().toGraphQLJSSchema();
}
