/** The subgraphs of the API, their schema files and default ports. */
export const SUBGRAPH_NAMES = ['patient', 'clinical', 'billing'] as const;
export type SubgraphName = (typeof SUBGRAPH_NAMES)[number];

export const DEFAULT_SUBGRAPH_PORTS: Record<SubgraphName, number> = {
  patient: 4001,
  clinical: 4002,
  billing: 4003,
};

export const GRAPHQL_PATH = '/graphql';

export function isSubgraphName(value: string): value is SubgraphName {
  return (SUBGRAPH_NAMES as readonly string[]).includes(value);
}

export function schemaPath(name: SubgraphName): URL {
  return new URL(`../../schema/${name}.graphql`, import.meta.url);
}

export function defaultSubgraphUrl(name: SubgraphName): string {
  return `http://127.0.0.1:${DEFAULT_SUBGRAPH_PORTS[name]}${GRAPHQL_PATH}`;
}
