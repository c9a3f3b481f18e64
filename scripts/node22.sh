#!/usr/bin/env bash
# Prints the folder of a Node.js 22 binary, installing it from the npm registry's `node` package
# (which carries the official binary and its headers) when the system Node is older.
# Usage: export PATH="$(scripts/node22.sh):$PATH"
# Also prints, on stderr, the export line for native builds (node-gyp) against that Node's headers.
set -euo pipefail
WANT=22
current="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$current" -ge "$WANT" ]; then
  dirname "$(command -v node)"
  exit 0
fi
CACHE="${PHI_GRAPH_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phi-graph/node$WANT}"
if [ ! -x "$CACHE/node_modules/node/bin/node" ]; then
  mkdir -p "$CACHE"
  npm install --prefix "$CACHE" --no-audit --no-fund --no-save --loglevel=error "node@$WANT" >&2
fi
"$CACHE/node_modules/node/bin/node" --version >&2
echo "$CACHE/node_modules/node/bin"
