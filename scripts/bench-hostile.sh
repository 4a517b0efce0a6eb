#!/usr/bin/env bash
# Figures of the hostile-input suite: each hostile easyconfig case
# (crates/ebfleet-planner/tests/hostile/cases.rs) laid in a tree among good
# files and planned by `ebfleet plan` (release build), one process a case.
# Prints a table of case, wall time and peak RSS (the child's own, from
# wait4's rusage); the suite asserts each case is reported and skipped, the
# good files planned, under 10 s and 256 MB.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cargo test --release --quiet --manifest-path "$here/../Cargo.toml" \
  -p ebfleet-cli --test hostile -- --nocapture --test-threads 1 2>&1 |
  sed -n '/^|/p; /panicked/,$p'
