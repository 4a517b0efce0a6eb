#!/usr/bin/env bash
# The pipeline, locally: one execution of the real state machine on two
# platforms, building a small stack with real EasyBuild (see
# scripts/local-pipeline.sh), then what it left in DynamoDB and S3.
exec "$(dirname "$0")/local-pipeline.sh" demo "$@"
