#!/usr/bin/env bash
# Prints the path of a hive-gateway binary (@graphql-hive/gateway, pinned), installing it from the npm registry
# into a cache folder of its own: it is a test tool of CI (test/hive-gateway.test.ts), not a dependency of the
# product, and half a gigabyte. Usage: export HIVE_GATEWAY_BIN="$(scripts/hive-gateway.sh)"
set -euo pipefail
VERSION=2.15.1
CACHE="${PHI_GRAPH_HIVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phi-graph/hive-gateway-$VERSION}"
if [ ! -x "$CACHE/node_modules/.bin/hive-gateway" ]; then
  mkdir -p "$CACHE"
  [ -f "$CACHE/package.json" ] || echo '{"name":"phi-graph-hive-gateway","private":true,"type":"module"}' > "$CACHE/package.json"
  npm install --prefix "$CACHE" --no-audit --no-fund --loglevel=error "@graphql-hive/gateway@$VERSION" >&2
fi
echo "$CACHE/node_modules/.bin/hive-gateway"
