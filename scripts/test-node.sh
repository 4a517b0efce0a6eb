#!/usr/bin/env bash
# The build node's agent (bootstrap/ebfleet-node) for real: EasyBuild (pinned,
# pip, in the cache's venv) and Debian's Lmod build tiny easyconfigs the tests
# write, against a local moto server (127.0.0.1, started here and always
# stopped). Installs what is missing: EasyBuild's venv, lmod and zstd (apt,
# as root), moto.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
. "$here/moto.sh"

if [ ! -x "$EB_VENV/bin/eb" ]; then
  log "installing EasyBuild $EASYBUILD_VERSION into $EB_VENV"
  rm -rf "$EB_VENV"
  python3 -m venv "$EB_VENV"
  "$EB_VENV/bin/pip" install --quiet --disable-pip-version-check "easybuild==$EASYBUILD_VERSION"
fi

missing=()
[ -x /usr/share/lmod/lmod/libexec/lmod ] || missing+=(lmod)
command -v zstd >/dev/null || missing+=(zstd)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "error: ${missing[*]} missing and cannot be installed here (need root and apt-get)" >&2
    exit 1
  fi
fi

start_moto
export EBFLEET_TEST_EB="$EB_VENV/bin/eb"
log "cargo test -p ebfleet-node (unit tests, then the binary against moto and EasyBuild)"
cargo test --manifest-path "$here/../Cargo.toml" -p ebfleet-node -- --nocapture "$@"
