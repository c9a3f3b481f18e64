import type { EntityManager } from '@mikro-orm/sql';
import type { Principal } from '../auth/index.js';

/**
 * What every resolver of every subgraph receives. Built once per request;
 * nothing per-request lives in module state.
 */
export interface SubgraphContext {
  principal: Principal;
  /** Shared by the gateway and every subgraph call of one client request. */
  requestId: string;
  /** This request's unit of work. */
  em: EntityManager;
  /** Per-request memo: the same factory returns the same DataLoader for the whole request. */
  loader: <L>(factory: LoaderFactory<L>) => L;
}

export type LoaderFactory<L> = (em: EntityManager) => L;

export function createSubgraphContext(principal: Principal, requestId: string, em: EntityManager): SubgraphContext {
  const loaders = new Map<LoaderFactory<unknown>, unknown>();
  return {
    principal,
    requestId,
    em,
    loader: <L>(factory: LoaderFactory<L>): L => {
      let loader = loaders.get(factory) as L | undefined;
      if (loader === undefined) {
        loader = factory(em);
        loaders.set(factory, loader);
      }
      return loader;
    },
  };
}
