#!/usr/bin/env bash
# The AWS adapters (crates/ebfleet-aws) against a local moto server over
# HTTP: starts moto on a free port of 127.0.0.1 (scripts/moto.sh), runs the
# tests of tests/aws, and always stops the server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
. "$here/moto.sh"
start_moto
log "cargo test -p ebfleet-aws-integration"
cargo test --manifest-path "$here/../Cargo.toml" -p ebfleet-aws-integration
