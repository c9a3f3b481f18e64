#!/usr/bin/env bash
# The production build, as an operator deploys it: `npm run build`, then in a folder of its own only what
# ships (package files, dist/, schema/, supergraph.graphql, bin/, and the native AES-GCM addon's source with
# its build script, native/ and scripts/build-native.mjs), `npm ci --omit=dev` (no tsx, no
# TypeScript), `node dist/db/migrate-cli.js`, `npm start` with NODE_ENV=production against PostgreSQL and
# Redis, with throwaway production keys and a throwaway CA: the gateway serves HTTPS and the subgraphs require
# the gateway's client certificate (mutual TLS); then a token signed by the throwaway issuer key must be served
# over HTTPS, and production must refuse to start on plain HTTP.
# Used by .ci/run; needs PostgreSQL (POSTGRES_URL, a server URL) and Redis (REDIS_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
POSTGRES_URL="${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
PORT="${CHECK_PORT:-4710}"

npm run build
work="$(mktemp -d)"
database="phi_production_check_$$"
roles="phi_production_check_$$"
server=""
cleanup() {
  # The server runs in a process group of its own (setsid): npm, the supervisor and its children stop together.
  if [ -n "$server" ]; then
    kill -TERM -- "-$server" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 -- "-$server" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$server" 2>/dev/null || true
  fi
  psql "$POSTGRES_URL" -qc "drop database if exists $database" >/dev/null 2>&1 || true
  psql "$POSTGRES_URL" -qc "drop role if exists ${roles}_api, ${roles}_retention, ${roles}_owner" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/native/aead" "$work/scripts"
cp -r package.json package-lock.json dist schema supergraph.graphql bin "$work/"
cp native/aead/binding.gyp native/aead/aead.c "$work/native/aead/"
cp scripts/build-native.mjs "$work/scripts/"
(cd "$work" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
# Where CI requires the addon, the deployed API must decrypt with it (it refuses to start otherwise).
if [ "${REQUIRE_NATIVE_CRYPTO:-}" = "1" ]; then export PHI_NATIVE_CRYPTO=require; fi
if [ -e "$work/node_modules/tsx" ] || [ -e "$work/node_modules/typescript" ]; then echo "FATAL: --omit=dev installed a development package" >&2; exit 1; fi

# Throwaway production keys: an ES256 issuer key pair, an Ed25519 audit signing key, a key ring.
eval "$(cd "$work" && node --input-type=module -e '
  import { generateKeyPairSync, randomBytes } from "node:crypto";
  const issuer = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const audit = generateKeyPairSync("ed25519");
  const key = () => randomBytes(32).toString("base64");
  const quote = (text) => `'"'"'${text.replaceAll("'"'"'", "")}'"'"'`;
  console.log(`export AUTH_PUBLIC_KEY=${quote(issuer.publicKey.export({ type: "spki", format: "pem" }))}`);
  console.log(`export CHECK_ISSUER_PRIVATE_KEY=${quote(issuer.privateKey.export({ type: "pkcs8", format: "pem" }))}`);
  console.log(`export AUDIT_SIGNING_KEY=${quote(audit.privateKey.export({ type: "pkcs8", format: "pem" }))}`);
  console.log(`export PHI_KEY_RING=${quote(JSON.stringify({ current: 1, keys: { 1: key() }, retired: [], blindIndexKey: key() }))}`);
')"
# A throwaway CA, the servers' certificate (127.0.0.1) and the gateway's client certificate, made with the build's own
# certificate module (openssl underneath).
tls="$work/tls"
(cd "$work" && node --input-type=module -e '
  import { createAuthority, issueCertificate } from "./dist/transport/development-certificates.js";
  const folder = process.argv[1];
  const ca = createAuthority(folder, "phi-graph production check CA");
  issueCertificate(ca, folder, { name: "server", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], usage: "server" });
  issueCertificate(ca, folder, { name: "gateway-client", commonName: "phi-graph-gateway", usage: "client" });
' "$tls")
psql "$POSTGRES_URL" -qc "create database $database" >/dev/null
url_of() { node -e 'const url = new URL(process.argv[1]); url.pathname = "/" + process.argv[2]; if (process.argv[3]) { url.username = process.argv[3]; url.password = ""; } console.log(url.toString())' "$POSTGRES_URL" "$database" "${1:-}"; }
export NODE_ENV=production REDIS_URL REDIS_KEY_PREFIX="phi-production-check-$$:" \
  AUTH_ISSUER=https://id.check.example AUTH_AUDIENCE=phi-graph DATA_DIR="$work/data" LOG_LEVEL=warn \
  PORT="$PORT" PATIENT_SUBGRAPH_PORT=$((PORT + 1)) CLINICAL_SUBGRAPH_PORT=$((PORT + 2)) BILLING_SUBGRAPH_PORT=$((PORT + 3))
# Migrations and roles as the superuser (the deliberate production steps), then the API as its own least-privileged role.
(cd "$work" && DATABASE_URL="$(url_of)" node dist/db/migrate-cli.js)
(cd "$work" && DATABASE_URL="$(url_of)" node dist/cli/db-roles.js --prefix "$roles")
export DATABASE_URL="$(url_of "${roles}_api")"

# Production refuses plain HTTP (no TLS_CERT_FILE, no TLS_TERMINATED_UPSTREAM), saying why.
if refusal="$(cd "$work" && timeout 60 node dist/main.js 2>&1)"; then echo "FATAL: production started on plain HTTP" >&2; exit 1; fi
case "$refusal" in
  *'TLS_CERT_FILE: production serves HTTPS'*) echo "production refuses plain HTTP: OK" ;;
  *) echo "FATAL: production did not refuse plain HTTP as expected: $refusal" >&2; exit 1 ;;
esac
export TLS_CERT_FILE="$tls/server.pem" TLS_KEY_FILE="$tls/server.key" TLS_CA_FILE="$tls/ca.pem" SUBGRAPH_CLIENT_CA_FILE="$tls/ca.pem" SUBGRAPH_CLIENT_NAMES=phi-graph-gateway \
  GATEWAY_CLIENT_CERT_FILE="$tls/gateway-client.pem" GATEWAY_CLIENT_KEY_FILE="$tls/gateway-client.key"
https() { curl --cacert "$tls/ca.pem" "$@"; }

setsid bash -c 'cd "$1" && exec npm start' start "$work" </dev/null &
server=$!
for _ in $(seq 1 120); do
  if https -fsS "https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then echo "FATAL: the production start exited" >&2; exit 1; fi
  sleep 1
done
token="$(cd "$work" && node --input-type=module -e '
  import { SignJWT, importPKCS8 } from "jose";
  const key = await importPKCS8(process.env.CHECK_ISSUER_PRIVATE_KEY, "ES256");
  console.log(await new SignJWT({ roles: ["admin"], org: "00000000-0000-4000-8000-000000000001", amr: ["pwd", "mfa"] })
    .setProtectedHeader({ alg: "ES256", typ: "JWT" }).setSubject("production-check").setIssuer(process.env.AUTH_ISSUER)
    .setAudience(process.env.AUTH_AUDIENCE).setIssuedAt().setExpirationTime("5m").setJti(crypto.randomUUID()).sign(key));
')"
answer="$(https -fsS "https://127.0.0.1:$PORT/graphql" -H "authorization: Bearer $token" -H 'content-type: application/json' -d '{"query":"{ viewer { subject roles } }"}')"
echo "production build answered: $answer"
case "$answer" in
  *'"subject":"production-check"'*) ;;
  *) echo "FATAL: the production build did not serve the viewer" >&2; exit 1 ;;
esac
unauthenticated="$(https -s -o /dev/null -w '%{http_code}' "https://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' -d '{"query":"{ viewer { subject } }"}')"
[ "$unauthenticated" = 401 ] || { echo "FATAL: expected 401 without a token, got $unauthenticated" >&2; exit 1; }
# A subgraph answers nobody without the gateway's client certificate: the handshake fails (curl exits non-zero, no HTTP status).
if https -s -o /dev/null "https://127.0.0.1:$((PORT + 1))/graphql" -H "authorization: Bearer $token" -H 'content-type: application/json' -d '{"query":"{ __typename }"}'; then
  echo "FATAL: a subgraph answered a caller without a client certificate" >&2; exit 1
fi
echo "production build: HTTPS gateway, subgraphs refuse callers without the gateway's certificate: OK"
echo "production build: npm ci --omit=dev, migrate, npm start with NODE_ENV=production over TLS: OK ($(node --version))"
