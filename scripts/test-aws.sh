#!/usr/bin/env bash
# The AWS adapters (crates/ebfleet-aws) against a local moto server over
# HTTP: installs moto in a venv under the cache, starts it on a free port,
# runs the tests of tests/aws, and always stops the server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
MOTO_VERSION=${MOTO_VERSION:-5.2.5}
MOTO_VENV="$EBFLEET_CACHE/moto-$MOTO_VERSION"

if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
  log "installing moto $MOTO_VERSION into $MOTO_VENV"
  python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install --quiet "moto[server]==$MOTO_VERSION"
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log "moto server on 127.0.0.1:$port"
moto_log="$EBFLEET_CACHE/moto-server.log"
"$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$moto_log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true' EXIT

endpoint="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  if curl -fs -o /dev/null "$endpoint/moto-api/"; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    cat "$moto_log" >&2
    echo "moto server exited" >&2
    exit 1
  fi
  sleep 0.2
done
curl -fsS -o /dev/null "$endpoint/moto-api/" || { cat "$moto_log" >&2; echo "moto server does not answer" >&2; exit 1; }

export EBFLEET_MOTO_ENDPOINT="$endpoint"
export AWS_ENDPOINT_URL="$endpoint"
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
unset AWS_PROFILE AWS_SESSION_TOKEN
log "cargo test -p ebfleet-aws-integration"
cargo test --manifest-path "$here/../Cargo.toml" -p ebfleet-aws-integration
