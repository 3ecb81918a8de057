#!/usr/bin/env bash
# Fuzzes the JSON API from its own OpenAPI document with schemathesis: the demo lab is served
# on a fresh database and every documented operation is called with generated valid and
# invalid input. A run fails on any 5xx answer, any status the document does not list for
# the operation, any body that breaks its documented schema, and any answer that is not JSON.
#
#   api/schemathesis.sh                       on SQLite
#   API_TEST_DATABASE_URL=postgres://USER@HOST:5432/DB api/schemathesis.sh
#                                             on SQLite, then on PostgreSQL (a database named
#                                             cuvette_schemathesis is created anew beside DB)
#
# SCHEMATHESIS_EXAMPLES (default 100) bounds the cases per operation and phase; SCHEMATHESIS_SEED
# picks the generator's seed (a fixed one by default, so a failure reproduces).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
VENV=target/schemathesis-venv
EXAMPLES="${SCHEMATHESIS_EXAMPLES:-100}"
SEED="${SCHEMATHESIS_SEED:-20261124}"

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "Installing schemathesis $VERSION into $VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian ships venv separately.
    sudo_="" ; [ "$(id -u)" -ne 0 ] && sudo_="sudo"
    $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

cargo build --locked --quiet -p cuvette
BIN=target/debug/cuvette

SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
trap stop_server EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# run LABEL DEMO-DATABASE-OPTIONS…: serves the demo lab and runs schemathesis against it.
run() {
  local label=$1
  shift
  local port log key
  port=$(free_port)
  log="target/schemathesis-$label.log"
  "$BIN" demo "$@" --listen "127.0.0.1:$port" --no-mllp --no-astm >"$log" 2>&1 &
  SERVER_PID=$!
  # The demo prints its API key once the lab is seeded, just before it listens.
  for _ in $(seq 1 600); do
    grep -q '^API key' "$log" && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "The demo server stopped before it was ready:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.5
  done
  if ! grep -q '^API key' "$log"; then
    echo "The demo server did not get ready (see $log)" >&2
    exit 1
  fi
  # The demo's key acts as a technologist; a supervisor may do every operation (the catalog
  # edit too), so the run reaches every handler's rules rather than the role check.
  key=$("$BIN" apikey create "$@" --name "schemathesis-$(date +%s)" --role supervisor 2>/dev/null)
  echo "=== schemathesis against the demo lab on $label (port $port) ==="
  local status=0
  # From target/, where schemathesis keeps its cache.
  (cd target && "schemathesis-venv/bin/schemathesis" run "http://127.0.0.1:$port/api/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$EXAMPLES" \
    --seed "$SEED" \
    --generation-database none \
    --wait-for-schema 60 \
    --request-timeout 30 \
    --no-color) || status=$?
  stop_server
  if [ "$status" -ne 0 ]; then
    echo "schemathesis found failures on $label; the server's log is $log" >&2
    exit "$status"
  fi
}

data="target/schemathesis-demo"
rm -rf "$data"
run sqlite --data "$data"

if [ -n "${API_TEST_DATABASE_URL:-}" ]; then
  # A database of its own, so the run neither sees nor leaves data in the one named.
  db=cuvette_schemathesis
  psql "$API_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  psql "$API_TEST_DATABASE_URL" -qc "CREATE DATABASE $db" >/dev/null
  base="${API_TEST_DATABASE_URL%%\?*}"
  run postgresql --database "${base%/*}/$db"
fi
