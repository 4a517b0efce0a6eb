#!/usr/bin/env bash
# The whole pipeline, locally, end to end: statemachine/pipeline.asl.json in
# aws-local-stepfunctions, the real Lambdas under `cargo lambda watch`
# (127.0.0.1), moto for S3, DynamoDB, EC2, SSM and Step Functions, and this
# machine as the build nodes (real ebfleet-node, EasyBuild and Lmod) for the
# SSM commands the dispatch Lambda sends; tests/e2e/pipeline.py says how.
#
#   scripts/local-pipeline.sh demo          one run on two platforms, shown
#   scripts/local-pipeline.sh test [NAME]... the end-to-end scenarios
#
# Installs what it needs (cargo-lambda, EasyBuild, Lmod, moto, Node 22 and
# aws-local-stepfunctions) under the cache; every server is on 127.0.0.1 and
# stopped at the end. Runs as root (the nodes' disks are bind mounts).
set -euo pipefail
case ${1:-} in
  demo | test) mode=$1; shift ;;
  *) echo "usage: $0 demo | test [SCENARIO]..." >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/env.sh"
. "$here/moto.sh"
. "$here/tools.sh"

ensure_cargo_lambda
ensure_easybuild
ensure_lmod
ensure_infra_tools

packages=(-p ebfleet-node)
for dir in "$root"/functions/*/; do
  packages+=(-p "ebfleet-fn-$(basename "$dir")")
done
log "cargo build (the functions as watch runs them, and ebfleet-node)"
(cd "$root" && cargo build --quiet "${packages[@]}")

export EBFLEET_NODE_BIN="$CARGO_TARGET_DIR/debug/ebfleet-node" EBFLEET_EB="$EB_VENV/bin/eb"
start_moto
python="$MOTO_VENV/bin/python"
e2e="$root/tests/e2e/pipeline.py"
while IFS= read -r setting; do
  export "${setting?}"
done < <("$python" "$e2e" setup)
EBFLEET_PLATFORMS_TOML=$("$python" "$e2e" platforms)
EBFLEET_EASYCONFIG_CACHE=$(mktemp -d)
export EBFLEET_PLATFORMS_TOML EBFLEET_EASYCONFIG_CACHE

# The functions' SSM client goes to the harness's proxy (tests/e2e/nodes.py),
# which forwards everything to moto but the two calls moto cannot answer.
EBFLEET_SSM_PROXY_PORT=$(free_port)
watch_log="$EBFLEET_CACHE/e2e-cargo-lambda-watch.log"
trap 'stop_lambda_watch; rm -rf "$EBFLEET_EASYCONFIG_CACHE"; stop_moto' EXIT
AWS_ENDPOINT_URL_SSM="http://127.0.0.1:$EBFLEET_SSM_PROXY_PORT" start_lambda_watch "$root" "$watch_log"

export EBFLEET_SSM_PROXY_PORT EBFLEET_LAMBDA_INVOKE_PORT=$LAMBDA_WATCH_PORT
export NODE="$INFRA_NODE" EBFLEET_NODE_MODULES="$INFRA_NODE_MODULES"
[ "$mode" = test ] && log "end-to-end scenarios"
if ! "$python" "$e2e" "$mode" "$@"; then
  echo "--- cargo lambda watch log (last 60 lines)" >&2
  tail -60 "$watch_log" >&2
  exit 1
fi
