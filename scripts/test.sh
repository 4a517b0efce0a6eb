#!/usr/bin/env bash
# Every test (what CI runs). Installs what it needs under the cache
# (scripts/env.sh) and starts local servers on 127.0.0.1 only.
#  1. cargo's tests: the domain, the adapters over aws-smithy-mocks, the
#     handlers, the node agent's units, the template contract;
#  2. the adapters against a moto server over HTTP;
#  3. the Lambdas built with cargo lambda and run under cargo lambda watch
#     against moto;
#  4. the template and the state machine: cfn-lint, sam validate,
#     asl-validator, infra/check.py, the ASL interpreter;
#  5. the node bootstrap: shellcheck, dry runs per OS, a real run twice;
#  6. the node agent with real EasyBuild, Lmod and moto;
#  7. the planner against EasyBuild itself on the real easyconfigs;
#  8. the whole pipeline end to end: the state machines in a local Step
#     Functions service over an ASL interpreter, the Lambdas under cargo
#     lambda watch, moto, and real ebfleet-node + EasyBuild as the build
#     nodes; then a synthetic plan of 2,000 modules on simulated nodes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
log "cargo test"
cargo test --workspace --manifest-path "$here/../Cargo.toml"
"$here/test-aws.sh"
"$here/test-lambda.sh"
"$here/test-infra.sh" --no-cargo
"$here/test-bootstrap.sh"
"$here/test-node.sh"
"$here/test-easybuild.sh"
"$here/test-e2e.sh"
"$here/test-scale.sh"
