# shellcheck shell=bash
# Installers of the tools the tests run, each once into the cache; sourced
# after env.sh, not run. Each `ensure_*` is a no-op when the tool is there.

CARGO_LAMBDA_VERSION=${CARGO_LAMBDA_VERSION:-1.9.2}
CARGO_LAMBDA_VENV="$EBFLEET_CACHE/cargo-lambda-$CARGO_LAMBDA_VERSION"

# cargo-lambda (PyPI, with zig) on PATH.
ensure_cargo_lambda() {
  if [ ! -x "$CARGO_LAMBDA_VENV/bin/cargo-lambda" ]; then
    log "installing cargo-lambda $CARGO_LAMBDA_VERSION into $CARGO_LAMBDA_VENV"
    python3 -m venv "$CARGO_LAMBDA_VENV"
    "$CARGO_LAMBDA_VENV/bin/pip" install --quiet "cargo-lambda==$CARGO_LAMBDA_VERSION"
  fi
  export PATH="$CARGO_LAMBDA_VENV/bin:$PATH"
}

# EasyBuild (pinned, pip, with its easyconfigs) in $EB_VENV.
ensure_easybuild() {
  if [ ! -x "$EB_VENV/bin/eb" ] || [ ! -d "$EB_EASYCONFIGS" ]; then
    log "installing EasyBuild $EASYBUILD_VERSION into $EB_VENV"
    rm -rf "$EB_VENV"
    python3 -m venv "$EB_VENV"
    "$EB_VENV/bin/pip" install --quiet --disable-pip-version-check "easybuild==$EASYBUILD_VERSION"
  fi
}

# Debian's Lmod and zstd (apt, as root), for real builds.
ensure_lmod() {
  local missing=()
  [ -x /usr/share/lmod/lmod/libexec/lmod ] || missing+=(lmod)
  command -v zstd >/dev/null || missing+=(zstd)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "installing ${missing[*]}"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      echo "error: ${missing[*]} missing and cannot be installed here (need root and apt-get)" >&2
      return 1
    fi
  fi
}

# Debian's Chromium (apt, as root), headless, for the report page's browser
# check (tests/report/check.py). No recommends: headless needs none of them,
# and fontconfig brings a font.
ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "installing chromium"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
      echo "error: chromium missing and cannot be installed here (need root and apt-get)" >&2
      return 1
    fi
  fi
}

INFRA_CFN_LINT_VERSION=1.58.0
INFRA_SAM_CLI_VERSION=1.170.0
INFRA_ASL_VALIDATOR_VERSION=4.0.0
INFRA_LOCAL_SFN_VERSION=3.0.0
INFRA_NODE_VERSION=22
# The AWS SDK for JavaScript: the scale benchmark's harness talks to moto.
INFRA_AWS_SDK_JS_VERSION=3.1178.0
INFRA_TOOLS="$EBFLEET_CACHE/infra-tools"
INFRA_CHECKOV_VERSION=3.3.30
INFRA_IAM_SIMULATE_VERSION=0.1.173

# checkov (PyPI) in a venv of its own (its pins are not aws-sam-cli's).
# Sets CHECKOV (the program).
ensure_checkov() {
  local venv="$INFRA_TOOLS/checkov-$INFRA_CHECKOV_VERSION"
  CHECKOV="$venv/bin/checkov"
  if [[ ! -x $CHECKOV ]]; then
    log "installing checkov $INFRA_CHECKOV_VERSION (PyPI) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "checkov==$INFRA_CHECKOV_VERSION"
  fi
}

# @cloud-copilot/iam-simulate (npm), the IAM policy simulator, in a
# directory of its own. Sets IAM_SIMULATE_MODULES (its node_modules).
ensure_iam_simulate() {
  local dir="$INFRA_TOOLS/iam-simulate-$INFRA_IAM_SIMULATE_VERSION"
  IAM_SIMULATE_MODULES="$dir/node_modules"
  if [[ ! -e $dir/installed ]]; then
    log "installing @cloud-copilot/iam-simulate $INFRA_IAM_SIMULATE_VERSION (npm) into $dir"
    mkdir -p "$dir"
    (cd "$dir" && npm install --no-audit --no-fund --silent "@cloud-copilot/iam-simulate@$INFRA_IAM_SIMULATE_VERSION")
    touch "$dir/installed"
  fi
}

# cfn-lint and aws-sam-cli (PyPI) in $INFRA_TOOLS/venv; asl-validator,
# aws-local-stepfunctions, Node 22 and the AWS SDK for JavaScript's S3,
# DynamoDB and EC2 clients (npm) in $INFRA_TOOLS/npm. Sets
# INFRA_VENV, INFRA_NODE_MODULES and INFRA_NODE (the node binary).
ensure_infra_tools() {
  INFRA_VENV="$INFRA_TOOLS/venv"
  local npm_dir="$INFRA_TOOLS/npm"
  INFRA_NODE_MODULES="$npm_dir/node_modules"
  INFRA_NODE="$INFRA_NODE_MODULES/.bin/node"
  local stamp="$INFRA_TOOLS/installed-$INFRA_CFN_LINT_VERSION-$INFRA_SAM_CLI_VERSION-$INFRA_ASL_VALIDATOR_VERSION-$INFRA_LOCAL_SFN_VERSION-$INFRA_NODE_VERSION-$INFRA_AWS_SDK_JS_VERSION"
  if [[ ! -e $stamp ]]; then
    log "installing cfn-lint $INFRA_CFN_LINT_VERSION, aws-sam-cli $INFRA_SAM_CLI_VERSION (PyPI) into $INFRA_VENV"
    python3 -m venv "$INFRA_VENV"
    "$INFRA_VENV/bin/pip" install -q "cfn-lint==$INFRA_CFN_LINT_VERSION" "aws-sam-cli==$INFRA_SAM_CLI_VERSION"
    log "installing asl-validator, aws-local-stepfunctions $INFRA_LOCAL_SFN_VERSION, node $INFRA_NODE_VERSION, AWS SDK for JavaScript $INFRA_AWS_SDK_JS_VERSION (npm) into $npm_dir"
    mkdir -p "$npm_dir"
    (cd "$npm_dir" && npm install --no-audit --no-fund --silent \
      "asl-validator@$INFRA_ASL_VALIDATOR_VERSION" "aws-local-stepfunctions@$INFRA_LOCAL_SFN_VERSION" "node@$INFRA_NODE_VERSION" \
      "@aws-sdk/client-s3@$INFRA_AWS_SDK_JS_VERSION" "@aws-sdk/client-dynamodb@$INFRA_AWS_SDK_JS_VERSION" \
      "@aws-sdk/client-ec2@$INFRA_AWS_SDK_JS_VERSION")
    touch "$stamp"
  fi
  "$INFRA_NODE" --version | grep -q "^v$INFRA_NODE_VERSION\." || { echo "Node $INFRA_NODE_VERSION expected at $INFRA_NODE" >&2; return 1; }
}

# `cargo lambda watch` of the workspace at $1 on 127.0.0.1 and a free port,
# its output in $2; returns once it answers. Sets LAMBDA_WATCH_PORT and
# LAMBDA_WATCH_PID (stop it with stop_lambda_watch). Variables given on the
# call (`X=1 start_lambda_watch ...`) reach the functions.
start_lambda_watch() {
  local workspace=$1 log_file=$2
  LAMBDA_WATCH_PORT=$(free_port)
  log "cargo lambda watch on 127.0.0.1:$LAMBDA_WATCH_PORT"
  (cd "$workspace" && exec cargo lambda watch --invoke-address 127.0.0.1 \
    --invoke-port "$LAMBDA_WATCH_PORT" --ignore-changes >"$log_file" 2>&1) &
  LAMBDA_WATCH_PID=$!
  for _ in $(seq 1 150); do
    curl -s -o /dev/null "http://127.0.0.1:$LAMBDA_WATCH_PORT/" && return 0
    kill -0 "$LAMBDA_WATCH_PID" 2>/dev/null || { cat "$log_file" >&2; echo "cargo lambda watch exited" >&2; return 1; }
    sleep 0.2
  done
  echo "cargo lambda watch does not answer on 127.0.0.1:$LAMBDA_WATCH_PORT" >&2
  return 1
}

stop_lambda_watch() {
  if [ -n "${LAMBDA_WATCH_PID:-}" ]; then
    kill "$LAMBDA_WATCH_PID" 2>/dev/null || true
    wait "$LAMBDA_WATCH_PID" 2>/dev/null || true
    LAMBDA_WATCH_PID=
  fi
}
