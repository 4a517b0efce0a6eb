#!/usr/bin/env bash
# Produce EasyBuild's reference answers for both architectures, with timings.
#
#   make_reference.sh EB_PYTHON EASYCONFIGS OUTDIR [JOBS]
#
# EB_PYTHON    the python of the virtual environment that has EasyBuild 5.4.1
# EASYCONFIGS  the easyconfigs directory (the only robot path)
# OUTDIR       where the outputs go (keep it outside the repository)
# JOBS         worker processes / parallel eb runs (default 2)
#
# Lmod must be usable: either $LMOD_CMD is set (source Lmod's init script
# first) or $EBFLEET_LMOD_INIT names that init script.
#
# Writes OUTDIR/parse-<arch>.jsonl and OUTDIR/robot-<arch>.json for the samples
# beside this script, the same for the synthetic fixture tree
# (fixtures-parse-<arch>.jsonl, fixtures-robot-<arch>.json), the x86_64 parse
# with --minimal-toolchains (parse-x86_64-minimal.jsonl, for make_sample.py),
# and timings.txt.
set -euo pipefail

if [ $# -lt 3 ]; then
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
eb_python=$1
easyconfigs=$2
outdir=$3
jobs=${4:-2}
here=$(cd "$(dirname "$0")" && pwd)
ref="$here/eb_reference.py"
mkdir -p "$outdir"
timings="$outdir/timings.txt"
: > "$timings"

step() {
    local label=$1
    shift
    local start end
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    printf '%-40s %8.1f s\n' "$label" "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" | tee -a "$timings"
}

for arch in x86_64 aarch64; do
    step "parse all ($arch, jobs $jobs)" \
        "$eb_python" "$ref" parse --easyconfigs "$easyconfigs" --arch "$arch" --jobs "$jobs" \
        --out "$outdir/parse-$arch.jsonl"
    step "robot sample-$arch.txt (jobs $jobs)" \
        "$eb_python" "$ref" robot --easyconfigs "$easyconfigs" --arch "$arch" --jobs "$jobs" \
        --targets-file "$here/sample-$arch.txt" --out "$outdir/robot-$arch.json"
    step "fixtures parse ($arch)" \
        "$eb_python" "$ref" parse --easyconfigs "$here/fixtures/easyconfigs" --arch "$arch" --jobs 1 \
        --out "$outdir/fixtures-parse-$arch.jsonl"
    step "fixtures robot ($arch, jobs $jobs)" \
        "$eb_python" "$ref" robot --easyconfigs "$here/fixtures/easyconfigs" --arch "$arch" --jobs "$jobs" \
        --targets-file "$here/fixtures/targets.txt" --out "$outdir/fixtures-robot-$arch.json"
done
step "parse all (x86_64, --minimal-toolchains)" \
    "$eb_python" "$ref" parse --easyconfigs "$easyconfigs" --arch x86_64 --jobs "$jobs" --minimal-toolchains \
    --out "$outdir/parse-x86_64-minimal.jsonl"
cat "$timings"
