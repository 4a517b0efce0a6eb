#!/usr/bin/env bash
# The whole pipeline, locally, end to end: the three state machines
# (statemachine/*.asl.json) in a local Step Functions service
# (tests/sfn/serve.mjs: the aws-local-stepfunctions interpreter, its time
# scaled by $EBFLEET_TIME_SCALE), the real Lambdas under `cargo lambda
# watch`, moto for S3, DynamoDB, EC2, Auto Scaling and SSM's documents and
# parameters, and this machine as the build nodes (real ebfleet-node,
# EasyBuild and Lmod) for the SSM commands the dispatch Lambda sends, each
# node's S3, DynamoDB and KMS calls decided by the node role's IAM as simulated
# (@cloud-copilot/iam-simulate); tests/e2e/pipeline.py says how.
#
#   scripts/local-pipeline.sh demo           one run on two platforms, shown
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
ensure_iam_simulate
# The operator scenario checks its report page in headless Chromium.
if [ "$mode" = test ]; then ensure_chromium; fi

packages=(-p ebfleet-node -p ebfleet-cli)
for dir in "$root"/functions/*/; do
  packages+=(-p "ebfleet-fn-$(basename "$dir")")
done
log "cargo build (the functions as watch runs them, ebfleet-node and ebfleet)"
(cd "$root" && cargo build --quiet "${packages[@]}")

export EBFLEET_NODE_BIN="$CARGO_TARGET_DIR/debug/ebfleet-node" EBFLEET_EB="$EB_VENV/bin/eb"
export EBFLEET_CLI_BIN="$CARGO_TARGET_DIR/debug/ebfleet"
start_moto
python="$MOTO_VENV/bin/python"
e2e="$root/tests/e2e/pipeline.py"
while IFS= read -r setting; do
  export "${setting?}"
done < <("$python" "$e2e" setup)
EBFLEET_PLATFORMS_TOML=$("$python" "$e2e" platforms)
export EBFLEET_PLATFORMS_TOML

# Step Functions for everyone (the Lambdas, the nodes, the scenarios); the
# functions' SSM client goes to the harness's proxy (tests/e2e/nodes.py),
# which forwards to moto all but what moto cannot do.
sfn_port=$(free_port)
export AWS_ENDPOINT_URL_SFN="http://127.0.0.1:$sfn_port"
EBFLEET_SSM_PROXY_PORT=$(free_port)
# A node beats on its step's task every second: the state machines'
# heartbeats are scaled down with their time.
export EBFLEET_HEARTBEAT_INTERVAL=1
watch_log="$EBFLEET_CACHE/e2e-cargo-lambda-watch.log"
sfn_log="$EBFLEET_CACHE/e2e-sfn.log"
sfn_pid=
stop_all() {
  [ -n "$sfn_pid" ] && kill "$sfn_pid" 2>/dev/null || true
  stop_lambda_watch
  stop_moto
}
trap stop_all EXIT
AWS_ENDPOINT_URL_SSM="http://127.0.0.1:$EBFLEET_SSM_PROXY_PORT" start_lambda_watch "$root" "$watch_log"

export NODE="$INFRA_NODE" EBFLEET_NODE_MODULES="$INFRA_NODE_MODULES"
# The node role's policies, which the harness enforces on every S3 and
# DynamoDB call of a build node (tests/e2e/iam_gate.py).
EBFLEET_IAM_POLICIES="$EBFLEET_CACHE/e2e-node-policies.json"
AWS_DEFAULT_REGION=us-east-1 "$INFRA_VENV/bin/python" "$root/infra/iam/policies.py" "$root/infra/template.yaml" \
  >"$EBFLEET_IAM_POLICIES"
export EBFLEET_IAM_POLICIES EBFLEET_IAM_SIMULATE_MODULES="$IAM_SIMULATE_MODULES"
# 0.01: a 300 s wait is 3 s, a 900 s heartbeat 9 s.
log "Step Functions (local) on 127.0.0.1:$sfn_port, time x${EBFLEET_TIME_SCALE:-0.01}"
"$NODE" "$root/tests/sfn/serve.mjs" --port "$sfn_port" --invoke-port "$LAMBDA_WATCH_PORT" \
  --time-scale "${EBFLEET_TIME_SCALE:-0.01}" >"$sfn_log.out" 2>"$sfn_log" &
sfn_pid=$!
for _ in $(seq 1 100); do
  grep -q listening "$sfn_log.out" 2>/dev/null && break
  kill -0 "$sfn_pid" 2>/dev/null || { cat "$sfn_log" >&2; echo "the Step Functions service exited" >&2; exit 1; }
  sleep 0.1
done

export EBFLEET_SSM_PROXY_PORT EBFLEET_LAMBDA_INVOKE_PORT=$LAMBDA_WATCH_PORT
[ "$mode" = test ] && log "end-to-end scenarios"
if ! "$python" "$e2e" "$mode" "$@"; then
  echo "--- cargo lambda watch log (last 60 lines)" >&2
  tail -60 "$watch_log" >&2
  echo "--- Step Functions log (last 60 lines)" >&2
  tail -60 "$sfn_log" >&2
  exit 1
fi
