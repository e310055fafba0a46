#!/usr/bin/env bash
# Personalisation benchmark: bench/personalize (a store built through
# core.Ingest, segment templates applied and refreshed, the HTTP server on
# loopback) answering GET /v1/personalize alone, under concurrent ingestion
# over POST /v1/batch, and in-process under the same ingestion. Prints
# lookups/s, the share answered and p50/p90/p99/p99.9/max latency; nothing
# is asserted. Everything lives in a temporary directory removed on exit.
#
# Environment knobs (defaults in brackets):
#   PEOPLE [100000]  CLIENTS [8]  DURATION [20s]  INGEST_BATCH [200]  SEED [1]
#   BENCH_TMP [$TMPDIR or /tmp]  OUT [bench/out/personalize.txt]
set -euo pipefail

cd "$(dirname "$0")/.."
PEOPLE=${PEOPLE:-100000}
CLIENTS=${CLIENTS:-8}
DURATION=${DURATION:-20s}
INGEST_BATCH=${INGEST_BATCH:-200}
SEED=${SEED:-1}
OUT=${OUT:-bench/out/personalize.txt}

TMP=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/custody-personalize.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

printf '==> building bench/personalize\n' >&2
go build -o "$TMP/personalize" ./bench/personalize
mkdir -p "$(dirname "$OUT")"
printf '==> running: %s people, %s clients, %s a phase\n' "$PEOPLE" "$CLIENTS" "$DURATION" >&2
"$TMP/personalize" -people "$PEOPLE" -clients "$CLIENTS" -duration "$DURATION" -ingest-batch "$INGEST_BATCH" \
	-seed "$SEED" -dir "$TMP/custody" | tee "$OUT"
