#!/usr/bin/env bash
# Benchmark of planning speed, beside EasyBuild's robot, in one run:
#
#   scripts/bench.sh [--no-handler]
#
# 1. Resolve the first 50 and the first 600 latest easyconfigs (default
#    policy, CUDA variants included, x86_64): `ebfleet resolve` with an
#    empty parse cache (cold) and again with the cache it wrote (warm), and
#    EasyBuild's `eb --dry-run --robot` on the same targets in one run.
# 2. `ebfleet plan --json` of every default platform, cold and warm.
# 3. The Plan Lambda's handler in moto (scripts/bench-plan.sh): with no
#    packed index yet, then reading it. --no-handler skips this part.
# Prints wall time and peak RSS of each, and the ratios. Not a test: it
# asserts nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
handler=1
[ "${1:-}" = --no-handler ] && handler=0
EBFLEET_SKIP_LMOD=${EBFLEET_SKIP_LMOD:-0} "$here/setup.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

measure() { # label, command... ; prints "label: S s, M MB" and stores secs in $secs
  local label=$1; shift
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" > "$work/out" 2> "$work/err" || true
  # GNU time prepends "Command exited with non-zero status N" on failure.
  read -r secs kb < <(tail -n 1 "$work/time")
  printf "%-58s %8.2f s %8.1f MB\n" "$label" "$secs" "$(python3 -c "print($kb/1024)")"
}
ratio() { python3 -c "print(f'{$1/max($2,0.001):.0f}x')"; }

"$EBFLEET_BIN" latest --no-cache --arch x86_64 --cuda --easyconfigs "$EB_EASYCONFIGS" > "$work/latest.txt" 2>/dev/null
echo "latest easyconfigs (default policy, CUDA variants included): $(wc -l < "$work/latest.txt") of $(find "$EB_EASYCONFIGS" -name '*.eb' | wc -l) files"

export EASYBUILD_ALLOW_USE_AS_ROOT_AND_ACCEPT_CONSEQUENCES=1 MODULEPATH= PATH="$EB_VENV/bin:$PATH"
[ -f /usr/share/lmod/lmod/init/bash ] && . /usr/share/lmod/lmod/init/bash && export MODULEPATH=
for n in 50 600; do
  head -n "$n" "$work/latest.txt" > "$work/targets.txt"
  echo
  cache="$work/resolve-$n.bin"
  measure "ebfleet resolve $n targets, cold cache" \
    "$EBFLEET_BIN" resolve --json --parse-cache "$cache" --easyconfigs "$EB_EASYCONFIGS" --targets-file "$work/targets.txt"
  cold=$secs
  python3 - "$work/out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = [x for x in r if 'closure' in x]
print(f"  resolved {len(ok)}/{len(r)}, {len({m for x in ok for m in x['closure']})} distinct modules")
PY
  measure "ebfleet resolve $n targets, warm cache" \
    "$EBFLEET_BIN" resolve --json --parse-cache "$cache" --easyconfigs "$EB_EASYCONFIGS" --targets-file "$work/targets.txt"
  warm=$secs
  mapfile -t targets < "$work/targets.txt"
  measure "EasyBuild eb --dry-run --robot, $n targets" \
    "$EB_VENV/bin/eb" --dry-run --prefix "$work/eb-$n" --robot-paths "$EB_EASYCONFIGS" "${targets[@]}" --robot
  grep -c '^ \* \[' "$work/out" | sed 's/^/  eb listed modules: /' || tail -3 "$work/err"
  echo "  EasyBuild / ebfleet: $(ratio "$secs" "$cold") cold, $(ratio "$secs" "$warm") warm"
done

echo
measure "ebfleet plan --json, every default platform, cold cache" \
  "$EBFLEET_BIN" plan --json --parse-cache "$work/plan.bin" --easyconfigs "$EB_EASYCONFIGS"
echo "  plan JSON: $(python3 -c "import os; print(f'{os.path.getsize(\"$work/out\")/1e6:.1f} MB')")"
measure "ebfleet plan --json, every default platform, warm cache" \
  "$EBFLEET_BIN" plan --json --parse-cache "$work/plan.bin" --easyconfigs "$EB_EASYCONFIGS"
echo "  parse cache: $(python3 -c "import os; print(f'{os.path.getsize(\"$work/plan.bin\")/1e6:.1f} MB')")"

if [ "$handler" = 1 ]; then
  echo
  "$here/bench-plan.sh"
fi
