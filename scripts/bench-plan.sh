#!/usr/bin/env bash
# Benchmark of the plan Lambda's handler on the full easyconfigs of
# EasyBuild (the release scripts/setup.sh installs) in a local S3 (moto),
# each invocation a new process as a Lambda cold start is: the first with
# no packed index (every easyconfig downloaded and parsed, the index
# written), then two that read the index. Prints time and peak RSS; the
# goals are under 5 s with the index and at most 512 MB.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
. "$here/moto.sh"
[ -d "$EB_EASYCONFIGS" ] || "$here/setup.sh"
start_moto
export EBFLEET_BUCKET=ebfleet-bench EBFLEET_TABLE=ebfleet-bench
bench() { cargo bench --quiet --manifest-path "$here/../Cargo.toml" -p ebfleet-control --bench plan_handler -- "$@"; }
log "building the benchmark (release)"
cargo bench --no-run --quiet --manifest-path "$here/../Cargo.toml" -p ebfleet-control --bench plan_handler
log "uploading $EB_EASYCONFIGS"
bench upload "$EB_EASYCONFIGS"
trap stop_moto EXIT
log "plan handler, no index yet"
bench run
log "plan handler, with the index (twice)"
bench run
bench run
