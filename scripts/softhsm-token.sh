#!/usr/bin/env bash
# Creates a throwaway SoftHSM2 token (a software HSM) in a folder of its own,
# for tests and for trying PHI_KMS=pkcs11 on a workstation. Never for
# production: the token is a set of files protected only by its PIN.
#
# Usage:
#   scripts/softhsm-token.sh <folder> [label] [pin] [so-pin]
#     folder  created if missing; gets softhsm2.conf and tokens/
#     label   token label (default: phi)
#     pin     user PIN, what the API logs in with (default: 1234)
#     so-pin  security officer PIN, for token administration (default: 12345678)
#
# Prints the line to export so that the PKCS#11 module (and softhsm2-util)
# find this token, for example:
#   eval "$(scripts/softhsm-token.sh /tmp/phi-hsm phi 1234)"
# (the PINs are never printed). Requires softhsm2-util (apt-get install softhsm2).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 4 ]]; then
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2
  exit 64
fi

folder=$1
label=${2:-phi}
pin=${3:-1234}
so_pin=${4:-12345678}

if ! command -v softhsm2-util >/dev/null 2>&1; then
  echo "softhsm2-util not found: install SoftHSM2 (apt-get install softhsm2)" >&2
  exit 69
fi

mkdir -p "$folder/tokens"
folder=$(cd "$folder" && pwd)
conf="$folder/softhsm2.conf"

cat >"$conf" <<CONF
directories.tokendir = $folder/tokens
objectstore.backend = file
log.level = ERROR
CONF

SOFTHSM2_CONF="$conf" softhsm2-util --init-token --free --label "$label" --pin "$pin" --so-pin "$so_pin" >/dev/null

printf 'export SOFTHSM2_CONF=%q\n' "$conf"
