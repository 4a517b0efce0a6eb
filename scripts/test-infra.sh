#!/usr/bin/env bash
# The static half of the pipeline: infra/template.yaml and
# statemachine/pipeline.asl.json.
#
#  1. cfn-lint and `sam validate --lint` on the template;
#  2. asl-validator on the definition;
#  3. infra/check.py (every path out of a platform releases its instances,
#     retries, timeouts, functions, IAM), and the same check on broken
#     copies, which it must refuse;
#  4. the definition run in aws-local-stepfunctions 3 against models of the
#     Lambdas (statemachine/test/simulate.mjs);
#  5. the Rust contract test: SSM document, environment, TTL, every state's
#     input and output against the handlers' types
#     (cargo test -p ebfleet-control --test template).
#
# Installs cfn-lint, aws-sam-cli, asl-validator, aws-local-stepfunctions and
# Node 22 under $EBFLEET_CACHE/infra-tools on the first run (~40 s); later
# runs need no network. `--no-cargo` skips step 5.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=scripts/env.sh
. "$here/env.sh"
# shellcheck source=scripts/tools.sh
. "$here/tools.sh"

cargo=1
for arg in "$@"; do
  case $arg in
    --no-cargo) cargo=0 ;;
    *) echo "usage: $0 [--no-cargo]" >&2; exit 2 ;;
  esac
done

ensure_infra_tools
venv=$INFRA_VENV
modules=$INFRA_NODE_MODULES
node=$INFRA_NODE

export SAM_CLI_TELEMETRY=0
cd "$repo"

log "cfn-lint infra/template.yaml"
"$venv/bin/cfn-lint" infra/template.yaml

log "sam validate --lint"
(cd infra && "$venv/bin/sam" validate --lint --region us-east-1 --template template.yaml)

log "asl-validator --json-path statemachine/pipeline.asl.json"
"$modules/.bin/asl-validator" --json-path statemachine/pipeline.asl.json

log "infra/check.py"
"$venv/bin/python" infra/check.py

log "infra/check.py refuses broken copies"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$venv/bin/python" - "$scratch" <<'PY'
import json, subprocess, sys
from pathlib import Path

scratch = Path(sys.argv[1])
template = Path("infra/template.yaml").read_text()
definition = json.loads(Path("statemachine/pipeline.asl.json").read_text())


def loop(d):
    return d["States"]["Platforms"]["ItemProcessor"]["States"]


def no_catch(d):
    del loop(d)["Build"]["Catch"]


def skip_release(d):
    loop(d)["No capacity"]["Next"] = "Platform summary"


def end_early(d):
    loop(d)["Batch failed"]["Next"] = "Up to date"


def no_transient_retry(d):
    loop(d)["Record"]["Retry"] = loop(d)["Record"]["Retry"][1:]


def short_timeout(d):
    d["States"]["Plan"]["TimeoutSeconds"] = 60


broken_definitions = [no_catch, skip_release, end_early, no_transient_retry, short_timeout]
broken_templates = {
    "Action '*'": template.replace("Action: ssm:DescribeInstanceInformation", "Action: '*'"),
    "Resource '*' on a scoped action": template.replace(
        "Resource: !Sub '${Bucket.Arn}/*/manifests/*'", "Resource: '*'"),
    "a binary that does not exist": template.replace("Binary: plan", "Binary: planner"),
    "an inbound rule": template.replace(
        "      SecurityGroupEgress:",
        "      SecurityGroupIngress:\n        - {IpProtocol: tcp, FromPort: 22, ToPort: 22, CidrIp: 0.0.0.0/0}\n      SecurityGroupEgress:"),
    "IMDSv1": template.replace("HttpTokens: required", "HttpTokens: optional"),
    "terminate anything": template.replace(
        "              Action: ec2:TerminateInstances\n              Resource: !Sub 'arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*'\n              Condition:\n                'Null':\n                  aws:ResourceTag/ebfleet:execution: 'false'\n",
        "              Action: ec2:TerminateInstances\n              Resource: !Sub 'arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*'\n"),
}
good_t = scratch / "template.yaml"
good_t.write_text(template)
good_d = scratch / "good.asl.json"
good_d.write_text(json.dumps(definition))
failures = 0
cases = [(f.__name__, good_t, f) for f in broken_definitions] + \
        [(name, text, None) for name, text in broken_templates.items()]
for name, t, mutate in cases:
    if mutate:
        d = json.loads(json.dumps(definition))
        mutate(d)
        path_d = scratch / f"{name}.asl.json"
        path_d.write_text(json.dumps(d))
        path_t = good_t
    else:
        if t == template:
            print(f"BROKEN COPY NOT MADE: {name} (the template changed; update this script)")
            failures += 1
            continue
        path_t = scratch / "broken.yaml"
        path_t.write_text(t)
        path_d = good_d
    r = subprocess.run([sys.executable, "infra/check.py", str(path_t), str(path_d)],
                       capture_output=True, text=True)
    if r.returncode == 0:
        print(f"NOT REFUSED: {name}")
        failures += 1
    else:
        print(f"refused: {name}: {r.stdout.splitlines()[0]}")
sys.exit(1 if failures else 0)
PY

log "statemachine/test/simulate.mjs (aws-local-stepfunctions $INFRA_LOCAL_SFN_VERSION)"
EBFLEET_NODE_MODULES="$modules" "$node" statemachine/test/simulate.mjs

if [[ $cargo == 1 ]]; then
  log "cargo test -p ebfleet-control --test template"
  cargo test -q -p ebfleet-control --test template
fi
log "infra: all checks passed"
