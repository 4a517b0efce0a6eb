#!/usr/bin/env bash
# Equal to EasyBuild: compare ebfleet with EasyBuild 5.4.1 itself on the ~11,900
# real easyconfigs, for x86_64 and aarch64:
#  - every file evaluates to the same Python namespace as CPython's exec()
#    (the easyconfig evaluator), with the same constants as EasyBuild's;
#  - every file: name, version, versionsuffix, toolchain and direct dependencies
#    (after subtoolchain resolution) must agree for >= 99.9% of files;
#  - a fixed sample of targets: each closure's set of modules must equal what
#    `eb --dry-run --robot` prints, and ebfleet's order must put every
#    dependency first; a smaller sample again with --minimal-toolchains;
#  - a small synthetic tree (tests/easybuild/fixtures) with the forms the real
#    files do not use: hidden and external modules, multi_deps, iterated build
#    dependencies, False versions, arch= dicts, a missing toolchain easyconfig.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/env.sh"
"$here/setup.sh"

ref="$repo/tests/easybuild"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lmod_init=/usr/share/lmod/lmod/init/bash
jobs=$(nproc)

cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p ebfleet-python --example python_eval
python_eval="$CARGO_TARGET_DIR/release/examples/python_eval"

for arch in x86_64 aarch64; do
  log "python: every easyconfig against CPython, $arch"
  "$python_eval" --arch "$arch" "$EB_EASYCONFIGS" > "$work/eval-$arch.jsonl"
  "$python_eval" --arch "$arch" --dump-constants > "$work/constants-$arch.json"
  "$EB_VENV/bin/python" "$ref/python_eval_check.py" --arch "$arch" --rust-constants "$work/constants-$arch.json" \
    --easybuild-python "$EB_VENV/bin/python" "$EB_EASYCONFIGS" "$work/eval-$arch.jsonl"

  log "fixtures: synthetic tree, $arch"
  fixtures="$ref/fixtures/easyconfigs"
  "$EBFLEET_BIN" parse --json --arch "$arch" --easyconfigs "$fixtures" > "$work/ours-fx-parse-$arch.jsonl"
  "$EB_VENV/bin/python" "$ref/eb_reference.py" parse --easyconfigs "$fixtures" --arch "$arch" \
    --lmod-init "$lmod_init" --jobs 1 --out "$work/eb-fx-parse-$arch.jsonl"
  python3 "$ref/compare.py" parse "$work/eb-fx-parse-$arch.jsonl" "$work/ours-fx-parse-$arch.jsonl" --min-agree 100
  "$EBFLEET_BIN" resolve --json --arch "$arch" --easyconfigs "$fixtures" \
    --targets-file "$ref/fixtures/targets.txt" > "$work/ours-fx-robot-$arch.json" || true
  "$EB_VENV/bin/python" "$ref/eb_reference.py" robot --easyconfigs "$fixtures" --arch "$arch" \
    --lmod-init "$lmod_init" --jobs "$jobs" --targets-file "$ref/fixtures/targets.txt" --out "$work/eb-fx-robot-$arch.json"
  python3 "$ref/compare.py" robot "$work/eb-fx-robot-$arch.json" "$work/ours-fx-robot-$arch.json" \
    --deps "$work/eb-fx-parse-$arch.jsonl"

  log "parse: every easyconfig, $arch"
  "$EBFLEET_BIN" parse --json --arch "$arch" --easyconfigs "$EB_EASYCONFIGS" > "$work/ours-parse-$arch.jsonl"
  "$EB_VENV/bin/python" "$ref/eb_reference.py" parse --easyconfigs "$EB_EASYCONFIGS" --arch "$arch" \
    --lmod-init "$lmod_init" --jobs "$jobs" --out "$work/eb-parse-$arch.jsonl"
  python3 "$ref/compare.py" parse "$work/eb-parse-$arch.jsonl" "$work/ours-parse-$arch.jsonl" --min-agree 99.9

  log "robot: closures of the $arch sample"
  # ebfleet exits 1 when some targets do not resolve; the comparison judges that.
  "$EBFLEET_BIN" resolve --json --arch "$arch" --easyconfigs "$EB_EASYCONFIGS" \
    --targets-file "$ref/sample-$arch.txt" > "$work/ours-robot-$arch.json" || true
  "$EB_VENV/bin/python" "$ref/eb_reference.py" robot --easyconfigs "$EB_EASYCONFIGS" --arch "$arch" \
    --lmod-init "$lmod_init" --jobs "$jobs" --targets-file "$ref/sample-$arch.txt" --out "$work/eb-robot-$arch.json"
  python3 "$ref/compare.py" robot "$work/eb-robot-$arch.json" "$work/ours-robot-$arch.json" \
    --deps "$work/eb-parse-$arch.jsonl"
done

log "robot: --minimal-toolchains on part of the x86_64 sample"
grep -v '^\s*#' "$ref/sample-x86_64.txt" | grep . | awk 'NR % 8 == 1' > "$work/minimal.txt"
"$EBFLEET_BIN" resolve --json --minimal-toolchains --arch x86_64 --easyconfigs "$EB_EASYCONFIGS" \
  --targets-file "$work/minimal.txt" > "$work/ours-minimal.json" || true
"$EB_VENV/bin/python" "$ref/eb_reference.py" robot --minimal-toolchains --easyconfigs "$EB_EASYCONFIGS" \
  --arch x86_64 --lmod-init "$lmod_init" --jobs "$jobs" --targets-file "$work/minimal.txt" --out "$work/eb-minimal.json"
python3 "$ref/compare.py" robot "$work/eb-minimal.json" "$work/ours-minimal.json" --deps "$work/eb-parse-x86_64.jsonl"
