#!/usr/bin/env bash
# The main job: set up (EasyBuild's easyconfigs from PyPI, a release build)
# and plan the latest stack for every default platform. Extra arguments go
# to `ebfleet plan`, e.g. --platform graviton-3 --floor foss>=2023a --json.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
EBFLEET_SKIP_LMOD=1 "$here/setup.sh"
log "ebfleet plan on $(find "$EB_EASYCONFIGS" -name '*.eb' | wc -l) real easyconfigs"
exec "$EBFLEET_BIN" plan --easyconfigs "$EB_EASYCONFIGS" "$@"
