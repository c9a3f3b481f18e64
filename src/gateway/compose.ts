import { composeServices } from '@apollo/composition';
import { readFile } from 'node:fs/promises';
import { parse } from 'graphql';
import { SUBGRAPH_NAMES, defaultSubgraphUrl, schemaPath } from '../subgraphs/catalog.js';

export const SUPERGRAPH_PATH = new URL('../../supergraph.graphql', import.meta.url);

/**
 * Composes the three subgraph SDL files into a supergraph with Apollo's
 * composition library. The URLs written into the supergraph are the defaults
 * (127.0.0.1:4001-4003); the in-process gateway maps names to the ports it
 * actually started, and an external router overrides them in its own config.
 */
export async function composeSupergraph(): Promise<string> {
  const services = await Promise.all(
    SUBGRAPH_NAMES.map(async (name) => ({
      name,
      url: defaultSubgraphUrl(name),
      typeDefs: parse(await readFile(schemaPath(name), 'utf8')),
    })),
  );
  const result = composeServices(services);
  if (result.errors) {
    const messages = result.errors.map((error) => `- ${error.message}`).join('\n');
    throw new Error(`Supergraph composition failed:\n${messages}`);
  }
  return `${result.supergraphSdl.trimEnd()}\n`;
}

export async function readCommittedSupergraph(): Promise<string> {
  return readFile(SUPERGRAPH_PATH, 'utf8');
}
