#!/usr/bin/env bash
# Bytes `ebfleet-node sync` downloads for one batch against every tarball of
# the platform (what a node mirroring the platform downloads), printed as a
# ratio. A real plan (`ebfleet plan --json` over EasyBuild's easyconfigs), a
# local moto server (127.0.0.1, stopped at the end) holding a tarball for each
# module of the plan's first batches (at least MIN_BUILT modules, default 300),
# then a real sync of the next batch into a fresh root.
#   scripts/bench-sync.sh [MIN_BUILT] [PLATFORM]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
. "$here/moto.sh"
min_built=${1:-300}
platform=${2:-epyc-gen-4}

"$here/setup.sh"
log "building ebfleet-node and the bench"
cargo build --quiet --manifest-path "$here/../Cargo.toml" -p ebfleet-node --bin ebfleet-node --example bench_sync
node="$CARGO_TARGET_DIR/debug/ebfleet-node"
bench="$CARGO_TARGET_DIR/debug/examples/bench_sync"

work=$(mktemp -d)
trap 'stop_moto; rm -rf "$work"' EXIT
log "planning $platform over $EB_EASYCONFIGS"
"$EBFLEET_BIN" plan --json --easyconfigs "$EB_EASYCONFIGS" --platform "$platform" --floor 'foss>=2023a' > "$work/plan.json"

start_moto
trap 'stop_moto; rm -rf "$work"' EXIT
bucket="ebfleet-bench-sync"
"$MOTO_VENV/bin/python" -c "import boto3; boto3.client('s3', endpoint_url='$AWS_ENDPOINT_URL').create_bucket(Bucket='$bucket')"
"$bench" --plan "$work/plan.json" --easyconfigs "$EB_EASYCONFIGS" --node "$node" \
  --work "$work" --bucket "$bucket" --min-built "$min_built"
