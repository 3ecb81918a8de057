#!/usr/bin/env bash
# The browser test: a fresh demo lab on a free port, playwright-core driving the system's
# chromium through one specimen from order to released report. Screenshots land in
# target/e2e-screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium from the distribution"
  sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_="sudo"
  $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq chromium >/dev/null
fi
(cd e2e && npm ci --no-audit --no-fund --silent)

cargo build --locked -p cuvette
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="$data/server.log"
target/debug/cuvette demo --data "$data/lab" --listen "127.0.0.1:$port" >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 $server 2>/dev/null; then cat "$log"; echo "the demo server stopped"; exit 1; fi
  sleep 1
done
mkdir -p target/e2e-screenshots
CUVETTE_URL="http://127.0.0.1:$port" SCREENSHOTS="$root/target/e2e-screenshots" node --test e2e/
