#!/usr/bin/env bash
# Benchmark of the plan Lambda's handler on the full easyconfigs of
# EasyBuild (the release scripts/setup.sh installs) in a local S3 (moto):
# a cold invocation (empty /tmp cache, every easyconfig downloaded) and a
# warm one (read from the cache by ETag). Prints time and peak RSS; the
# goal is at most 512 MB.
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
cache=$(mktemp -d)
trap 'rm -rf "$cache"; stop_moto' EXIT
log "plan handler, cold cache"
bench run "$cache"
log "plan handler, warm cache"
bench run "$cache"
