#!/usr/bin/env bash
# Benchmark: ebfleet against EasyBuild's robot on the same targets.
#
#   scripts/bench.sh [EB_TARGETS]
#
# 1. ebfleet parses every easyconfig and resolves every latest easyconfig
#    (`ebfleet resolve` on the whole latest set, x86_64): wall time, peak RSS.
# 2. ebfleet plans every default platform (both architectures).
# 3. EasyBuild resolves the same targets in one `eb --dry-run --robot` run.
#    EB_TARGETS (default: all) limits EasyBuild to the first N targets, and
#    ebfleet is then timed again on exactly those, so the ratio is fair.
# Prints both times and the ratio. Not a test: it asserts nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
EBFLEET_SKIP_LMOD=${EBFLEET_SKIP_LMOD:-0} "$here/setup.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
limit=${1:-0}

measure() { # label, command... ; prints "label: S s, M MB" and stores secs in $secs
  local label=$1; shift
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" > "$work/out" 2> "$work/err" || true
  # GNU time prepends "Command exited with non-zero status N" on failure.
  read -r secs kb < <(tail -n 1 "$work/time")
  printf "%-52s %8.2f s %8.1f MB\n" "$label" "$secs" "$(python3 -c "print($kb/1024)")"
}

"$EBFLEET_BIN" latest --arch x86_64 --cuda --easyconfigs "$EB_EASYCONFIGS" > "$work/latest.txt" 2>/dev/null
total=$(wc -l < "$work/latest.txt")
echo "latest easyconfigs (default policy, CUDA variants included): $total of $(find "$EB_EASYCONFIGS" -name '*.eb' | wc -l) files"

measure "ebfleet parse all + resolve all $total latest" \
  "$EBFLEET_BIN" resolve --json --easyconfigs "$EB_EASYCONFIGS" --targets-file "$work/latest.txt"
ours_all=$secs
python3 - "$work/out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = [x for x in r if 'closure' in x]
mods = {m for x in ok for m in x['closure']}
print(f"  resolved {len(ok)}/{len(r)} targets, {len(mods)} distinct modules in their closures")
PY
measure "ebfleet plan, every default platform" \
  "$EBFLEET_BIN" plan --easyconfigs "$EB_EASYCONFIGS"

if [ "$limit" -gt 0 ] && [ "$limit" -lt "$total" ]; then
  head -n "$limit" "$work/latest.txt" > "$work/eb-targets.txt"
  measure "ebfleet parse all + resolve the first $limit" \
    "$EBFLEET_BIN" resolve --json --easyconfigs "$EB_EASYCONFIGS" --targets-file "$work/eb-targets.txt"
  ours=$secs
else
  cp "$work/latest.txt" "$work/eb-targets.txt"
  ours=$ours_all
fi
n=$(wc -l < "$work/eb-targets.txt")
export EASYBUILD_ALLOW_USE_AS_ROOT_AND_ACCEPT_CONSEQUENCES=1 MODULEPATH= PATH="$EB_VENV/bin:$PATH"
[ -f /usr/share/lmod/lmod/init/bash ] && . /usr/share/lmod/lmod/init/bash && export MODULEPATH=
mapfile -t targets < "$work/eb-targets.txt"
measure "EasyBuild eb --dry-run --robot on $n targets" \
  "$EB_VENV/bin/eb" --dry-run --prefix "$work/eb" --robot-paths "$EB_EASYCONFIGS" "${targets[@]}" --robot
eb=$secs
grep -c '^ \* \[' "$work/out" | sed 's/^/  eb listed modules: /' || tail -3 "$work/err"
python3 -c "print(f\"ratio EasyBuild / ebfleet on $n targets: {$eb/max($ours,0.001):.0f}x\")"
