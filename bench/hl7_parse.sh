#!/usr/bin/env bash
# HL7 v2 parser throughput: Cuvette's parser against a plain memchr split of the same bytes,
# and against python-hl7 and hl7apy, on the same corpus, in the same run. See bench/README.md
# for how to read the figures.
#
# Usage: bench/hl7_parse.sh [MESSAGES] [SECONDS]     (defaults: 1000 messages, 2 s each)
# Environment: CUVETTE_SHARED_DIR (where tools/peers.sh lives; default ../shared),
#              KEEP_CORPUS=1 keeps the generated corpus and prints where it is.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
messages="${1:-1000}"
seconds="${2:-2}"
shared="${CUVETTE_SHARED_DIR:-$root/../shared}"
if [ ! -x "$shared/tools/peers.sh" ]; then
  echo "the shared peers script is missing ($shared/tools/peers.sh): set CUVETTE_SHARED_DIR" >&2
  exit 1
fi
py=$("$shared/tools/peers.sh" | tail -n 1)

corpus=$(mktemp -d)
if [ -z "${KEEP_CORPUS:-}" ]; then trap 'rm -rf "$corpus"' EXIT; fi
python3 bench/gen_oru_corpus.py "$corpus" "$messages"

cargo build --release --locked -q -p cuvette-hl7 --example parse_corpus
target/release/examples/parse_corpus "$corpus" "$seconds" | tee "$corpus.cuvette"
"$py" bench/hl7_parse_peer.py python-hl7 "$corpus" "$seconds" | tee "$corpus.python-hl7"
"$py" bench/hl7_parse_peer.py hl7apy "$corpus" "$seconds" | tee "$corpus.hl7apy"

field() { grep '^RESULT' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
split_ratio() { grep '^SPLIT' "$corpus.cuvette" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
obx5_ratio=$(split_ratio obx5_ratio); full_ratio=$(split_ratio full_ratio)
c_msg=$(field "$corpus.cuvette" msg_per_s); c_mb=$(field "$corpus.cuvette" mb_per_s)
p_msg=$(field "$corpus.python-hl7" msg_per_s); p_mb=$(field "$corpus.python-hl7" mb_per_s)
a_msg=$(field "$corpus.hl7apy" msg_per_s); a_mb=$(field "$corpus.hl7apy" mb_per_s)
for impl in python-hl7 hl7apy; do
  if [ "$(field "$corpus.$impl" obx_per_pass)" != "$(field "$corpus.cuvette" obx_per_pass)" ]; then
    echo "the implementations did not read the same number of OBX per pass" >&2
    exit 1
  fi
done
rm -f "$corpus.cuvette" "$corpus.python-hl7" "$corpus.hl7apy"
[ -n "${KEEP_CORPUS:-}" ] && echo "corpus kept in $corpus"

bytes=$(cat "$corpus"/* | wc -c)
obx=$(cat "$corpus"/* | tr '\r' '\n' | grep -c '^OBX|' || true)
echo
echo "HL7 ORU^R01 parse + read every OBX-5: $messages messages, $bytes bytes, $obx OBX, ~${seconds} s each"
python3 - "$c_msg" "$c_mb" "$p_msg" "$p_mb" "$a_msg" "$a_mb" "$obx5_ratio" "$full_ratio" <<'PY'
import sys
c_msg, c_mb, p_msg, p_mb, a_msg, a_mb, obx5_ratio, full_ratio = map(float, sys.argv[1:])
rows = [("cuvette-hl7 (Rust)", c_msg, c_mb), ("python-hl7 0.4.5", p_msg, p_mb), ("hl7apy 1.3.5", a_msg, a_mb)]
print(f"{'parser':<20} {'messages/s':>12} {'MB/s':>10} {'Cuvette/this (msg/s)':>21} {'(MB/s)':>9}")
for name, m, mb in rows:
    print(f"{name:<20} {m:>12,.0f} {mb:>10.2f} {c_msg / m:>20,.0f}x {c_mb / mb:>8,.0f}x")
print()
print(f"ratio Cuvette/python-hl7: {c_msg / p_msg:,.0f}x (project aim: >= 100x)  {'MET' if c_msg / p_msg >= 100 else 'NOT MET'}")
print(f"ratio Cuvette/hl7apy:     {c_msg / a_msg:,.0f}x")
print()
print("Cuvette / plain memchr split of the same bytes (same run, raw bytes):")
print(f"  every OBX-5:               {obx5_ratio:.2f}")
print(f"  every field and component: {full_ratio:.2f} (project aim: >= 0.8)  {'MET' if full_ratio >= 0.8 else 'NOT MET'}")
PY
