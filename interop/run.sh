#!/usr/bin/env bash
# The interoperability suite: Cuvette against software nobody on this project wrote —
# python-hl7's mllp_send, hl7apy's validator, the `astm` package and fhir.resources' R4B
# models (every FHIR answer validated) — installed by the shared
# peers script. Starts a fresh demo lab on free ports and runs interop_test.py against it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
shared="${CUVETTE_SHARED_DIR:-$root/../shared}"
if [ ! -x "$shared/tools/peers.sh" ]; then
  echo "the shared peers script is missing ($shared/tools/peers.sh): set CUVETTE_SHARED_DIR" >&2
  exit 1
fi
py=$("$shared/tools/peers.sh" | tail -n 1)
bindir=$(dirname "$py")

cargo build --locked -p cuvette
data=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http=$(free_port); mllp=$(free_port); astm=$(free_port); ehr=$(free_port)
log="$data/server.log"
# The suite plays the EHR on $ehr: released results are sent there.
target/debug/cuvette demo --data "$data/lab" --listen "127.0.0.1:$http" --mllp "127.0.0.1:$mllp" \
  --astm "127.0.0.1:$astm" --ehr "127.0.0.1:$ehr" >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$http/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 $server 2>/dev/null; then cat "$log"; echo "the demo server stopped" >&2; exit 1; fi
  sleep 1
done
key=$(grep -o 'cuv_[0-9a-f]*' "$log" | head -n 1)
# The suite enters and releases results with an API key, and a key is not a person: the demo
# lab's qualification gates would refuse it. They have their own tests; here a supervisor's key
# switches them off, as a lab does before its staff records are complete.
admin=$(target/debug/cuvette apikey create --data "$data/lab" --name interop-setup --role supervisor | grep -o 'cuv_[0-9a-f]*' | head -n 1)
curl -fsS -X PUT -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
  -d '{"enforce": false}' "http://127.0.0.1:$http/api/v1/staff-policy" >/dev/null
# The EHR reads FHIR with a key scoped to every resource; a second key, scoped to patients
# only, must be refused observations.
fhir_key=$(target/debug/cuvette apikey create --data "$data/lab" --name interop-fhir --role technologist --scope 'system/*.read' | grep -o 'cuv_[0-9a-f]*' | head -n 1)
fhir_patient_key=$(target/debug/cuvette apikey create --data "$data/lab" --name interop-fhir-patients --role technologist --scope system/Patient.read | grep -o 'cuv_[0-9a-f]*' | head -n 1)
CUVETTE_URL="http://127.0.0.1:$http" CUVETTE_MLLP_PORT="$mllp" CUVETTE_ASTM_PORT="$astm" CUVETTE_EHR_PORT="$ehr" \
CUVETTE_API_KEY="$key" CUVETTE_ADMIN_KEY="$admin" CUVETTE_FHIR_KEY="$fhir_key" CUVETTE_FHIR_PATIENT_KEY="$fhir_patient_key" CORPUS_DIR="$shared/corpus" MLLP_SEND="$bindir/mllp_send" \
CUVETTE_BIN="$root/target/debug/cuvette" CUVETTE_DATA="$data/lab" \
  "$py" interop/interop_test.py -v
