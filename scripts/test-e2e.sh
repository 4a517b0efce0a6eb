#!/usr/bin/env bash
# The end-to-end scenarios (tests/e2e/pipeline.py), each on the real state
# machine, Lambdas, moto and EasyBuild; scripts/local-pipeline.sh sets it up.
# They build on each other in order: a name runs only that one.
exec "$(dirname "$0")/local-pipeline.sh" test "$@"
