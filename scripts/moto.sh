# A local moto server for the integration tests; sourced, not run.
# `start_moto` installs moto in a venv under the cache (once), starts it on a
# free port of 127.0.0.1, waits until it answers, exports the endpoint for
# the SDK (AWS_ENDPOINT_URL) and the tests (EBFLEET_MOTO_ENDPOINT), and stops
# it when the calling script exits. It runs tests/moto/server.py: moto's
# server with CreateLaunchTemplateVersion fixed as explained there.
MOTO_VERSION=${MOTO_VERSION:-5.2.5}
MOTO_VENV="$EBFLEET_CACHE/moto-$MOTO_VERSION"

start_moto() {
  if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
    log "installing moto $MOTO_VERSION into $MOTO_VENV"
    python3 -m venv "$MOTO_VENV"
    "$MOTO_VENV/bin/pip" install --quiet "moto[server]==$MOTO_VERSION"
  fi
  local port
  port=$(free_port)
  log "moto server on 127.0.0.1:$port"
  MOTO_LOG="$EBFLEET_CACHE/moto-server.$port.log"
  "$MOTO_VENV/bin/python3" "$(dirname "${BASH_SOURCE[0]}")/../tests/moto/server.py" \
    -H 127.0.0.1 -p "$port" >"$MOTO_LOG" 2>&1 &
  MOTO_PID=$!
  trap 'stop_moto' EXIT
  local endpoint="http://127.0.0.1:$port"
  for _ in $(seq 1 150); do
    if curl -fs -o /dev/null "$endpoint/moto-api/"; then
      break
    fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
      cat "$MOTO_LOG" >&2
      echo "moto server exited" >&2
      return 1
    fi
    sleep 0.2
  done
  curl -fsS -o /dev/null "$endpoint/moto-api/" || { cat "$MOTO_LOG" >&2; echo "moto server does not answer" >&2; return 1; }
  export EBFLEET_MOTO_ENDPOINT="$endpoint"
  export AWS_ENDPOINT_URL="$endpoint"
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export AWS_ACCESS_KEY_ID=testing
  export AWS_SECRET_ACCESS_KEY=testing
  unset AWS_PROFILE AWS_SESSION_TOKEN
}

stop_moto() {
  if [ -n "${MOTO_PID:-}" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    rm -f "$MOTO_LOG"
    MOTO_PID=
  fi
}
