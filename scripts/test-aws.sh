#!/usr/bin/env bash
# The AWS adapters (crates/ebfleet-aws) against a local moto server over
# HTTP: starts moto on a free port of 127.0.0.1 (scripts/moto.sh), runs the
# tests of tests/aws, and always stops the server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
. "$here/moto.sh"
start_moto
log "cargo test --test moto (tests/aws)"
# --workspace, not -p: the features resolve as for `cargo test --workspace`,
# so what it compiled is reused (with -p the AWS SDK compiles again).
cargo test --manifest-path "$here/../Cargo.toml" --workspace --test moto
