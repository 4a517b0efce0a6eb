#!/usr/bin/env bash
# The Lambdas as Lambda runs them: each function builds with
# `cargo lambda build --release` (arm64 too when the aarch64 target is
# installed), then all of them run under `cargo lambda watch` on
# 127.0.0.1 against a local moto server, and the tests of
# tests/aws/tests/moto/lambdas.rs invoke them with `cargo lambda invoke` on
# the sample events in functions/*/events/ and check what they did in S3,
# DynamoDB, EC2, Auto Scaling, SSM and Step Functions.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/env.sh"
. "$here/moto.sh"
. "$here/tools.sh"

ensure_cargo_lambda

functions=()
for dir in "$root"/functions/*/; do
  functions+=("$(basename "$dir")")
done
packages=()
for f in "${functions[@]}"; do
  packages+=(-p "ebfleet-fn-$f")
done

log "cargo lambda build --release (x86_64): ${functions[*]}"
(cd "$root" && cargo lambda build --release --x86-64 "${packages[@]}")
if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  log "cargo lambda build --release --arm64"
  (cd "$root" && cargo lambda build --release --arm64 "${packages[@]}")
else
  log "aarch64-unknown-linux-gnu is not installed: arm64 build skipped (deployments build it with sam build)"
fi
# Lambda refuses a function over 250 MB (262,144,000 bytes) unzipped.
max_bytes=262144000
for f in "${functions[@]}"; do
  bin="$CARGO_TARGET_DIR/lambda/$f/bootstrap"
  [ -x "$bin" ] || { echo "no Lambda bootstrap for $f at $bin" >&2; exit 1; }
  size=$(stat -c %s "$bin")
  printf '%-10s %s bytes\n' "$f" "$size"
  [ "$size" -le "$max_bytes" ] || { echo "$f: $size bytes, over Lambda's 250 MB" >&2; exit 1; }
done

start_moto
# The stack's resources, as the SAM template names them for the functions;
# the tests create them in moto. The default VPC's subnet and security group
# stand in for the template's.
export EBFLEET_BUCKET=ebfleet-lambda-test
export EBFLEET_TABLE=ebfleet-lambda-test
export EBFLEET_STATE_MACHINE_ARN=arn:aws:states:us-east-1:123456789012:stateMachine:ebfleet-lambda-test
export EBFLEET_UNIT_STATE_MACHINE_ARN=arn:aws:states:us-east-1:123456789012:stateMachine:ebfleet-lambda-test-unit
export EBFLEET_NODE_ROLE_ID=AROALAMBDATESTNODE
# Made in moto by the test (its alias names it).
export EBFLEET_SIGNING_KEY=alias/ebfleet-lambda-test-signing
# Small pools: the test checks the group's size against it.
export EBFLEET_NODES_PER_PLATFORM=4
export EBFLEET_SSM_DOCUMENT=ebfleet-lambda-test-node-step
export EBFLEET_INSTANCE_PROFILE_ARN=arn:aws:iam::123456789012:instance-profile/ebfleet-node
read -r EBFLEET_SUBNET_IDS EBFLEET_SECURITY_GROUP_ID < <("$MOTO_VENV/bin/python" - <<'PY'
import boto3
ec2 = boto3.client("ec2")
subnet = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]
sg = ec2.create_security_group(GroupName="ebfleet-node", Description="no inbound", VpcId=subnet["VpcId"])
print(subnet["SubnetId"], sg["GroupId"])
PY
)
export EBFLEET_SUBNET_IDS EBFLEET_SECURITY_GROUP_ID

# Built once here so that watch's first invocation of each does not compile.
log "cargo build (the functions, as watch runs them)"
(cd "$root" && cargo build --quiet "${packages[@]}")
watch_log="$EBFLEET_CACHE/cargo-lambda-watch.log"
trap 'stop_lambda_watch; stop_moto' EXIT
start_lambda_watch "$root" "$watch_log"
export EBFLEET_LAMBDA_INVOKE_PORT=$LAMBDA_WATCH_PORT
export EBFLEET_FUNCTIONS_DIR="$root/functions"
export EBFLEET_FIXTURES="$root/tests/easybuild/fixtures/easyconfigs"
log "cargo test --test moto lambdas"
if ! cargo test --manifest-path "$root/Cargo.toml" --workspace --test moto lambdas -- --nocapture; then
  echo "--- cargo lambda watch log (last 80 lines)" >&2
  tail -80 "$watch_log" >&2
  exit 1
fi
