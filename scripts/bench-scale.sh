#!/usr/bin/env bash
# The full-scale execution, measured on a virtual clock (a benchmark, not a
# test: it prints figures):
#
#   scripts/bench-scale.sh [--easyconfigs DIR] [--platform P]... [--nodes N]
#                          [--durations FILE] [--json] [--fast] [--debug]
#
# The real state machines (statemachine/*.asl.json) in the ASL interpreter,
# the real Lambda handlers (one process, tests/lambdas), moto, and simulated
# build nodes whose steps take modelled time (tests/scale/): the plan of
# the easyconfigs (default: EasyBuild 5.4.1's), built for the platforms
# (default: epyc-gen-4) by pools of N nodes (default 32), each module
# taking its time in the durations file (default: the shipped model,
# crates/ebfleet-scheduler/data/durations.json; {"default_s", "by_name",
# "by_module"}). Beside each platform: the same scheduler without moto
# (the fast mode) and a model of the old design (one node, batches of 50 in
# order, polled).
#
# --fast: only the fast mode (no moto, no Step Functions): every platform of
# the real plan in seconds.
#
# The handlers run from a release build (about 13 minutes to build once on
# two cores; a run is then about a fifth faster than from the debug
# build); --debug runs the debug build the tests already made (what the
# scale scenario, scripts/test-scale.sh, does).
#
# With --json the last stdout line is {"platforms": [{"platform",
# "modules", "recorded_built", "recorded_twice", "makespan_s",
# "critical_path_s", "work_s", "node_seconds", "nodes_max",
# "instances_launched", "instances_running_at_end", "max_history_events",
# "executions", "wall_s", "fast": {...}, "old_design": {...}}]}.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/env.sh"
. "$here/tools.sh"

easyconfigs= nodes=32 durations= json=0 fast=0 profile=release
platforms=()
while [ $# -gt 0 ]; do
  case $1 in
    --easyconfigs) easyconfigs=$2; shift 2 ;;
    --platform) platforms+=("$2"); shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --durations) durations=$2; shift 2 ;;
    --json) json=1; shift ;;
    --fast) fast=1; shift ;;
    --debug) profile=debug; shift ;;
    -h | --help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "bench-scale.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$easyconfigs" ]; then
  ensure_easybuild
  easyconfigs=$EB_EASYCONFIGS
fi
durations=${durations:-$root/crates/ebfleet-scheduler/data/durations.json}
[ ${#platforms[@]} -gt 0 ] || { [ $fast = 1 ] || platforms=(epyc-gen-4); }
pargs=()
for p in "${platforms[@]}"; do pargs+=(--platform "$p"); done

log "the fast mode: cargo build --release --example simulate"
(cd "$root" && cargo build --release --quiet -p ebfleet-scheduler --example simulate)
simulate="$CARGO_TARGET_DIR/release/examples/simulate"
if [ $fast = 1 ]; then
  exec "$simulate" --easyconfigs "$easyconfigs" "${pargs[@]}" --nodes "$nodes" --durations "$durations" \
    $([ $json = 1 ] && echo --json)
fi
fast_json=$("$simulate" --easyconfigs "$easyconfigs" "${pargs[@]}" --nodes "$nodes" --durations "$durations" --json | tail -n 1)

. "$here/moto.sh"
ensure_infra_tools
log "cargo build -p ebfleet-lambdas ($profile; the handlers, in one process)"
(cd "$root" && cargo build $([ $profile = release ] && echo --release) --quiet -p ebfleet-lambdas)
start_moto
log "the run: ${platforms[*]}, $nodes nodes a platform"
full_json=$(EBFLEET_NODE_MODULES="$INFRA_NODE_MODULES" EBFLEET_LAMBDAS_BIN="$CARGO_TARGET_DIR/$profile/ebfleet-lambdas" \
  "$INFRA_NODE" "$root/tests/scale/bench.mjs" --easyconfigs "$easyconfigs" "${pargs[@]}" --nodes "$nodes" \
  --durations "$durations" --json | tail -n 1)

# Each platform's run, with the fast mode's and the old design's figures beside.
python3 - "$full_json" "$fast_json" "$json" "$nodes" <<'PY'
import json, sys
full, fast, as_json, nodes = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
by_name = {p["platform"]: p for p in fast["platforms"]}
h = lambda s: f"{s / 3600:.1f} h"
for p in full["platforms"]:
    f = by_name.get(p["platform"], {})
    p["fast"] = {k: f.get(k) for k in ("makespan_s", "node_seconds", "nodes_max", "instances_launched")}
    p["old_design"] = f.get("old_design")
    bound = max(p["critical_path_s"], p["work_s"] / nodes)
    old = p["old_design"] or {}
    print(f"{p['platform']}: {p['modules']} modules, recorded built {p['recorded_built']}, twice {p['recorded_twice']}")
    print(f"  makespan   {h(p['makespan_s']):>9}  (bound {h(bound)}: x{p['makespan_s'] / bound:.3f}; fast mode {h(f.get('makespan_s', 0))}; old design {h(old.get('makespan_s', 0))})")
    print(f"  node time  {h(p['node_seconds']):>9}  (work {h(p['work_s'])}: x{p['node_seconds'] / max(1, p['work_s']):.3f}; fast mode {h(f.get('node_seconds', 0))})")
    print(f"  nodes {p['nodes_max']}, launched {p['instances_launched']}, running at the end {p['instances_running_at_end']}")
    print(f"  histories: at most {p['max_history_events']} events over {p['executions']} executions (old design: {old.get('history_events')} in 1)")
if as_json:
    print(json.dumps(full))
PY
