#!/usr/bin/env bash
# The privilege check per action with 500 staff and 100 test systems, against the role-only
# check in the same run: runs the criterion bench and prints each median with its ratio to
# the baseline. Extra arguments go to criterion (e.g. --measurement-time 10).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p cuvette-domain --bench privileges -- --noplot "$@" >&2
python3 - <<'PY'
import json, pathlib
root = pathlib.Path("target/criterion/privilege_check_per_action")
def median(name):
    return json.loads((root / name / "new" / "estimates.json").read_text())["median"]["point_estimate"]
base = median("baseline_role_only")
print(f"{'check':<22}{'median ns':>12}{'x baseline':>12}")
for name in ["baseline_role_only", "person_gate", "anyone_competent"]:
    m = median(name)
    print(f"{name:<22}{m:>12.1f}{m / base:>12.1f}")
PY
