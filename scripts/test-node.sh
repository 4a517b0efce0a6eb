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
. "$here/tools.sh"

ensure_easybuild
ensure_lmod

start_moto
export EBFLEET_TEST_EB="$EB_VENV/bin/eb"
log "cargo test --test node (the binary against moto and EasyBuild)"
# Its unit tests ran with `cargo test --workspace`. The target by name
# within --workspace: features resolve as for that run, so its build is
# reused (scripts/test-aws.sh).
cargo test --manifest-path "$here/../Cargo.toml" --workspace --test node -- --nocapture "$@"
