#!/usr/bin/env bash
# Install what ebfleet's real-data runs and tests need, idempotently:
# EasyBuild (with its ~11,900 easyconfigs) in a venv, Debian's Lmod, and a
# release build of the `ebfleet` command.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

if [ ! -x "$EB_VENV/bin/eb" ] || [ ! -d "$EB_EASYCONFIGS" ]; then
  log "installing EasyBuild $EASYBUILD_VERSION into $EB_VENV"
  rm -rf "$EB_VENV"
  python3 -m venv "$EB_VENV"
  "$EB_VENV/bin/pip" install --quiet --disable-pip-version-check "easybuild==$EASYBUILD_VERSION"
fi

if [ "${EBFLEET_SKIP_LMOD:-}" != 1 ] && [ ! -f /usr/share/lmod/lmod/init/bash ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian's lmod"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lmod >/dev/null
  else
    echo "warning: Lmod is not installed and cannot be installed here (need root and apt-get)" >&2
  fi
fi

log "building ebfleet (release)"
cargo build --release --quiet --manifest-path "$here/../Cargo.toml" -p ebfleet-cli
echo "ebfleet: $EBFLEET_BIN" >&2
echo "easyconfigs: $EB_EASYCONFIGS" >&2
