#!/usr/bin/env bash
# Install what ebfleet's real-data runs and tests need, idempotently:
# EasyBuild (with its ~11,900 easyconfigs) in a venv, Debian's Lmod and zstd, and a
# release build of the `ebfleet` command.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
. "$here/tools.sh"

ensure_easybuild
if [ "${EBFLEET_SKIP_LMOD:-}" != 1 ]; then
  ensure_lmod || echo "warning: continuing without Lmod" >&2
fi

log "building ebfleet (release)"
cargo build --release --quiet --manifest-path "$here/../Cargo.toml" -p ebfleet-cli
echo "ebfleet: $EBFLEET_BIN" >&2
echo "easyconfigs: $EB_EASYCONFIGS" >&2
