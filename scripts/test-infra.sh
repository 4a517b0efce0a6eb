#!/usr/bin/env bash
# The static half of the pipeline: infra/template.yaml and the three state
# machines statemachine/build.py writes (pipeline, platform, unit .asl.json).
#
#  1. cfn-lint, `sam validate --lint` and checkov on the template (every
#     check checkov skips is justified beside its resource, under
#     Metadata: checkov: skip);
#     an IAM simulation of the template's policies (infra/iam: every call
#     the code makes allowed, what must be refused denied, known gaps
#     listed), which must also fail a broken copy;
#  2. `statemachine/build.py --check` (the committed definitions are what it
#     writes), then asl-validator on the three definitions;
#  3. infra/check.py (every path holding a pool or a node passes Release,
#     retries, timeouts, substitutions, functions, IAM), and the same check on
#     broken copies, which it must refuse;
#  4. the definition run in aws-local-stepfunctions 3 against models of the
#     Lambdas (statemachine/test/simulate.mjs);
#  5. the Rust contract test: SSM document, environment, TTL, every state's
#     input and output against the handlers' types
#     (cargo test -p ebfleet-control --test template).
#
# Installs cfn-lint, aws-sam-cli, checkov, @cloud-copilot/iam-simulate, asl-validator,
# aws-local-stepfunctions and Node 22 under $EBFLEET_CACHE/infra-tools on
# the first run (~70 s); later
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

log "checkov infra/template.yaml"
ensure_checkov
"$CHECKOV" -f infra/template.yaml --framework cloudformation --compact --quiet --skip-download

log "IAM simulation: infra/iam/cases.yaml (@cloud-copilot/iam-simulate $INFRA_IAM_SIMULATE_VERSION)"
ensure_iam_simulate
iam_sim() {
  local template=$1 out
  out=$(mktemp)
  AWS_DEFAULT_REGION=us-east-1 "$venv/bin/python" infra/iam/policies.py "$template" infra/iam/cases.yaml >"$out"
  EBFLEET_IAM_SIMULATE_MODULES="$IAM_SIMULATE_MODULES" "$node" infra/iam/simulate.mjs "$out"
  local rc=$?
  rm -f "$out"
  return $rc
}
iam_sim infra/template.yaml
# A node role whose upload grant reaches past its staging prefix (the
# whole bucket) must fail it: it could publish tarballs itself.
broken=$(mktemp -d)
mkdir -p "$broken/infra"
python3 - infra/template.yaml "$broken/infra/template.yaml" <<'PY'
import sys
text = open(sys.argv[1]).read()
head, sid, tail = text.partition("Sid: WriteOutputs")
grant = "                  - !Sub '${Bucket.Arn}/staging/*/${!aws:userid}/*'\n"
assert sid and tail.count(grant) >= 1, "the node role's staging grant moved: update this check"
open(sys.argv[2], "w").write(head + sid + tail.replace(grant, "                  - !Sub '${Bucket.Arn}/*'\n", 1))
PY
if iam_sim "$broken/infra/template.yaml" >/dev/null; then
  echo "the IAM simulation passed a node role that may write the platforms' prefixes" >&2
  exit 1
fi
rm -rf "$broken"
echo "refused: a node role that may write the platforms' prefixes"

log "statemachine/build.py --check"
python3 statemachine/build.py --check

log "asl-validator on statemachine/{pipeline,platform,unit,bake}.asl.json"
"$modules/.bin/asl-validator" \
  --json-path statemachine/pipeline.asl.json \
  --json-path statemachine/platform.asl.json \
  --json-path statemachine/unit.asl.json \
  --json-path statemachine/bake.asl.json

log "infra/check.py"
"$venv/bin/python" infra/check.py

log "infra/check.py refuses broken copies"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$venv/bin/python" - "$scratch" <<'PY'
# Each broken copy (of one definition, or of the template) must be refused
# for a problem check.py does not find in the good copies.
import json, subprocess, sys
from pathlib import Path

scratch = Path(sys.argv[1])
NAMES = ("pipeline", "platform", "unit", "bake")
template = Path("infra/template.yaml").read_text()
good = {n: json.loads(Path(f"statemachine/{n}.asl.json").read_text()) for n in NAMES}


def loop(d):
    return d["pipeline"]["States"]["Platforms"]["ItemProcessor"]["States"]


def unit_step_without_catch(d):
    del d["unit"]["States"]["Build"]["Catch"]


def unit_step_without_heartbeat(d):
    del d["unit"]["States"]["Sync"]["HeartbeatSeconds"]


def unit_step_without_its_token(d):
    del d["unit"]["States"]["Tar"]["Parameters"]["Payload"]["task_token.$"]


def unit_ends_without_release(d):
    d["unit"]["States"]["Skipped"] = {"Type": "Succeed"}
    d["unit"]["States"]["Leased?"]["Default"] = "Skipped"


def unit_release_with_catch(d):
    d["unit"]["States"]["Release"]["Catch"] = [{"ErrorEquals": ["States.ALL"], "Next": "Release"}]


def unit_short_timeout(d):
    d["unit"]["States"]["Record"]["TimeoutSeconds"] = 30


def platform_schedule_catch_skips_release(d):
    d["platform"]["States"]["Schedule"]["Catch"][0]["Next"] = "Go on in a new execution"


def platform_goes_on_without_its_pool(d):
    go_on = d["platform"]["States"]["Go on in a new execution"]["Parameters"]
    del go_on.get("Input", go_on)["pool.$"]


def platform_tick_reads_as_failure(d):
    d["platform"]["States"]["Wait for nodes"]["Catch"][0]["ResultPath"] = "$.failure"


def pipeline_lambda_without_transient_retry(d):
    plan = d["pipeline"]["States"]["Plan"]
    plan["Retry"] = plan["Retry"][1:]


def pipeline_platform_catch_skips_release(d):
    loop(d)["Build platform"]["Catch"][0]["Next"] = "Platform failed"


def pipeline_map_catch_skips_release(d):
    d["pipeline"]["States"]["Platforms"]["Catch"][0]["Next"] = "Summarise"


def pipeline_start_without_retry(d):
    del loop(d)["Build platform"]["Retry"]


def pipeline_overlay_catch_skips_release(d):
    overlays = loop(d)["Overlays"]["ItemProcessor"]["States"]
    overlays["Build overlay"]["Catch"][0]["Next"] = "Overlay failed"


def bake_iteration(d):
    return d["bake"]["States"]["Bake each image"]["Iterator"]["States"]


def bake_catch_skips_clean_up(d):
    bake_iteration(d)["Create image"]["Catch"][0]["Next"] = "Not baked"


def bake_failure_aborts_the_map(d):
    bake_iteration(d)["Not baked"] = {"Type": "Fail", "Error": "ebfleet.BakeFailed"}


def bake_ends_without_terminating(d):
    bake_iteration(d)["Record"]["End"] = True
    del bake_iteration(d)["Record"]["Next"]


broken_definitions = [
    bake_catch_skips_clean_up, bake_failure_aborts_the_map, bake_ends_without_terminating,
    unit_step_without_catch, unit_step_without_heartbeat, unit_step_without_its_token,
    unit_ends_without_release, unit_release_with_catch, unit_short_timeout,
    platform_schedule_catch_skips_release, platform_goes_on_without_its_pool, platform_tick_reads_as_failure,
    pipeline_lambda_without_transient_retry, pipeline_platform_catch_skips_release,
    pipeline_map_catch_skips_release, pipeline_start_without_retry, pipeline_overlay_catch_skips_release,
]
broken_templates = {
    "Action '*'": template.replace("Action: ssm:DescribeInstanceInformation", "Action: '*'"),
    "Resource '*' on a scoped action": template.replace(
        "Resource: !Sub '${Bucket.Arn}/staging/*'\n", "Resource: '*'\n"),
    "a binary that does not exist": template.replace("Binary: plan\n", "Binary: planner\n"),
    "an inbound rule": template.replace(
        "      SecurityGroupEgress:",
        "      SecurityGroupIngress:\n        - {IpProtocol: tcp, FromPort: 22, ToPort: 22, CidrIp: 0.0.0.0/0}\n      SecurityGroupEgress:"),
    "IMDSv1": template.replace("HttpTokens: required", "HttpTokens: optional"),
    "bake instances of any stack": template.replace(
        "                  aws:RequestTag/ebfleet:node-image: !Ref AWS::StackName\n            # What the launch uses",
        "                  aws:RequestTag/Name: x\n            # What the launch uses"),
    "terminate anything": template.replace(
        "              Action: ec2:TerminateInstances\n              Resource: !Sub 'arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*'\n              Condition:\n                'Null':\n                  aws:ResourceTag/ebfleet:execution: 'false'\n",
        "              Action: ec2:TerminateInstances\n              Resource: !Sub 'arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*'\n"),
    "an unused DefinitionSubstitution": template.replace(
        "      DefinitionUri: ../statemachine/unit.asl.json\n      DefinitionSubstitutions:\n",
        "      DefinitionUri: ../statemachine/unit.asl.json\n      DefinitionSubstitutions:\n"
        "        PlanFunctionArn: !GetAtt PlanFunction.Arn\n"),
    "a substitution not given": template.replace(
        "        DispatchFunctionArn: !GetAtt DispatchFunction.Arn\n", ""),
    "a state machine may invoke a function it does not use": template.replace(
        "            FunctionName: !Ref DispatchFunction\n",
        "            FunctionName: !Ref DispatchFunction\n        - LambdaInvokePolicy:\n            FunctionName: !Ref PlanFunction\n"),
    "the run may not start its platforms": template.replace(
        "              Action: states:StartExecution\n              Resource: !Ref Platform\n",
        "              Action: states:StartExecution\n              Resource: !Ref Unit\n"),
    "a platform may start any state machine": template.replace(
        "stateMachine:${AWS::StackName}-platform'", "stateMachine:*'"),
    "the scheduler may not beat the run's task": template.replace(
        "Action: [states:SendTaskSuccess, states:SendTaskHeartbeat]", "Action: states:SendTaskSuccess"),
    "an EXPRESS state machine": template.replace(
        "      Type: STANDARD\n      DefinitionUri: ../statemachine/unit.asl.json",
        "      Type: EXPRESS\n      DefinitionUri: ../statemachine/unit.asl.json"),
}


def write_definitions(d, where):
    where.mkdir()
    for n in NAMES:
        (where / f"{n}.asl.json").write_text(json.dumps(d[n]))
    return where


def check(t, machines):
    r = subprocess.run([sys.executable, "infra/check.py", str(t), str(machines)], capture_output=True, text=True)
    if r.stderr:
        print(r.stderr, end="")
    return r.returncode, [line for line in r.stdout.splitlines() if not line.startswith("infra/check.py:")]


good_t = scratch / "template.yaml"
good_t.write_text(template)
good_d = write_definitions(good, scratch / "good")
rc, baseline = check(good_t, good_d)
baseline = set(baseline)
failures = 0
cases = [(f.__name__, None, f) for f in broken_definitions] + \
        [(name, text, None) for name, text in broken_templates.items()]
for i, (name, text, mutate) in enumerate(cases):
    if mutate:
        d = json.loads(json.dumps(good))
        try:
            mutate(d)
        except (KeyError, IndexError, TypeError) as e:
            d = good
        path_t, path_d = good_t, write_definitions(d, scratch / f"broken-{i}")
        made = d != good
    else:
        path_t, path_d = scratch / f"broken-{i}.yaml", good_d
        path_t.write_text(text)
        made = text != template
    if not made:
        print(f"BROKEN COPY NOT MADE: {name} (the definitions or the template changed; update this script)")
        failures += 1
        continue
    rc, lines = check(path_t, path_d)
    new = [line for line in lines if line not in baseline]
    if rc == 0 or not new:
        print(f"NOT REFUSED: {name}")
        failures += 1
    else:
        print(f"refused: {name}: {new[0]}")
sys.exit(1 if failures else 0)
PY

log "statemachine/test/simulate.mjs (aws-local-stepfunctions $INFRA_LOCAL_SFN_VERSION)"
EBFLEET_NODE_MODULES="$modules" "$node" statemachine/test/simulate.mjs
log "statemachine/test/bake.mjs (the bake state machine, aws-local-stepfunctions $INFRA_LOCAL_SFN_VERSION)"
EBFLEET_NODE_MODULES="$modules" "$node" statemachine/test/bake.mjs

if [[ $cargo == 1 ]]; then
  log "cargo test -p ebfleet-control --test template"
  cargo test -q -p ebfleet-control --test template
fi
log "infra: all checks passed"
