#!/usr/bin/env bash
# Every test: the Rust unit and integration tests, then the comparison with
# EasyBuild itself on the real easyconfigs. Installs what it needs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
log "cargo test"
cargo test --workspace --manifest-path "$here/../Cargo.toml"
"$here/test-aws.sh"
"$here/test-easybuild.sh"
