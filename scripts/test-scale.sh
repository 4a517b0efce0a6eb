#!/usr/bin/env bash
# The end-to-end suite's scale scenario: a plan larger than one execution's
# history could hold (a synthetic tree of 2,000 trivially built modules,
# tests/scale/synthetic.py) through the real state machines in the ASL
# interpreter, the real handlers and moto, its nodes simulated on a virtual
# clock (scripts/bench-scale.sh). It must build every module exactly once,
# keep every execution's history under Step Functions' 25,000 events,
# leave no instance running, and stay within 1.25 x its makespan's bound.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/env.sh"
modules=${1:-2000}
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
python3 "$root/tests/scale/synthetic.py" "$modules" "$tree"
log "scale scenario: $modules synthetic modules, 32 nodes"
result=$("$here/bench-scale.sh" --easyconfigs "$tree" --nodes 32 --debug --json | tail -n 1)
python3 - "$result" "$modules" <<'PY'
import json, sys
(p,) = json.loads(sys.argv[1])["platforms"]
n = int(sys.argv[2])
bound = max(p["critical_path_s"], p["work_s"] / 32)
checks = {
    f"{n} modules planned": p["modules"] == n,
    "every module recorded built": p["recorded_built"] == n,
    "none built twice": p["recorded_twice"] == 0,
    "no instance left": p["instances_running_at_end"] == 0,
    "every history under 25,000 events": p["max_history_events"] < 25_000,
    "the old design's one history would not be": p["old_design"]["history_events"] > 25_000,
    "makespan within 1.25 x its bound": p["makespan_s"] <= 1.25 * bound,
}
for what, ok in checks.items():
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
print(f"({p['executions']} executions, at most {p['max_history_events']} events; makespan {p['makespan_s']} s, bound {bound:.0f} s)")
sys.exit(0 if all(checks.values()) else 1)
PY
