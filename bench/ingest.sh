#!/usr/bin/env bash
# End-to-end ingest over MLLP against the raw insert rate of the same rows, same engine, same
# run: crates/cuvette/examples/ingest_load.rs. See bench/README.md for how to read the figures.
#
# Usage: bench/ingest.sh [ingest_load options]
#   --specimens N (1000)  --connections C (4)  --tests K (8)  --database postgres://…
#   --dir DIR (SQLite files; default the temp dir)  --keep  --probe M (200; 0 skips it)
# Environment: RUNS (3) — the example runs this many times; the summary gives each run and the
#   median, because one run on a small, shared machine is noise.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-3}"
cargo build --release -q -p cuvette --example ingest_load
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for run in $(seq 1 "$runs"); do
  echo "=== run $run of $runs"
  RUST_LOG="${RUST_LOG:-warn,sqlx=error}" \
    cargo run --release -q -p cuvette --example ingest_load -- "$@" | tee -a "$out"
  echo
done
python3 bench/summarize_ingest.py <"$out"
