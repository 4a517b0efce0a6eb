# Shared settings for the scripts; sourced, not run.
# Everything ebfleet installs for itself lives under one cache directory,
# outside the clone, so a second run reuses it and a fresh machine fills it.
EBFLEET_CACHE=${EBFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ebfleet}
EASYBUILD_VERSION=${EASYBUILD_VERSION:-5.4.1}
EB_VENV="$EBFLEET_CACHE/eb-$EASYBUILD_VERSION"
# The easyconfigs shipped with that EasyBuild (pip package easybuild-easyconfigs).
EB_EASYCONFIGS="$EB_VENV/easybuild/easyconfigs"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$EBFLEET_CACHE/target}
EBFLEET_BIN="$CARGO_TARGET_DIR/release/ebfleet"
mkdir -p "$EBFLEET_CACHE"

log() { printf '\n== [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
