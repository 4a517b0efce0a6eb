"""Checks on infra/template.yaml and statemachine/pipeline.asl.json that
cfn-lint and asl-validator do not make: every path out of a platform's
iteration releases its instances, every Task retries Lambda's transient
errors and outlives its function's timeout, every function is a binary under
functions/, and IAM stays narrow. Prints one line per problem; exit 1 if any.

Usage: python3 infra/check.py [TEMPLATE [DEFINITION]]   (needs PyYAML;
scripts/test-infra.sh runs it with cfn-lint's virtual environment, and on
broken copies to see it fail)
"""

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
problems = []


def problem(msg):
    problems.append(msg)


# ------------------------------------------------------------------ reading


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags read as their long form."""


def _tag(loader, suffix, node):
    name = "Ref" if suffix in ("Ref", "Condition") else "Fn::" + suffix
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)

args = sys.argv[1:] + [None, None]
template_path = Path(args[0] or ROOT / "infra/template.yaml")
definition_path = Path(args[1] or ROOT / "statemachine/pipeline.asl.json")
template = yaml.load(template_path.read_text(), Loader=CfnLoader)
definition = json.loads(definition_path.read_text())
resources = template["Resources"]


def of_type(kind):
    return {n: r for n, r in resources.items() if r["Type"] == kind}


def as_list(v):
    return v if isinstance(v, list) else [v]


# ------------------------------------------------------------ state machine

LAMBDA_TRANSIENT = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


def successors(state):
    out = []
    if "Next" in state:
        out.append(state["Next"])
    for c in state.get("Choices", []):
        out.append(c["Next"])
    if "Default" in state:
        out.append(state["Default"])
    for c in state.get("Catch", []):
        out.append(c["Next"])
    return out


def terminal(state):
    return state.get("End") is True or state["Type"] in ("Succeed", "Fail")


def ends_without(states, start, avoid):
    """Terminal states reachable from `start` without passing `avoid`."""
    seen, todo, ends = set(), [start], []
    while todo:
        name = todo.pop()
        if name in seen or name == avoid:
            continue
        seen.add(name)
        s = states[name]
        if terminal(s):
            ends.append(name)
        todo.extend(successors(s))
    return ends


def check_states(states, where):
    for name, s in states.items():
        for n in successors(s):
            if n not in states:
                problem(f"{where}: {name} goes to unknown state {n!r}")
        if s["Type"] == "Task":
            retried = {e for r in s.get("Retry", []) for e in r["ErrorEquals"]}
            if not LAMBDA_TRANSIENT <= retried:
                problem(f"{where}: Task {name} does not retry {sorted(LAMBDA_TRANSIENT - retried)}")
            if not any("States.ALL" in c["ErrorEquals"] for c in s.get("Catch", [])):
                problem(f"{where}: Task {name} has no Catch for States.ALL")
            if not re.fullmatch(r"\$\{\w+FunctionArn\}", s.get("Resource", "")):
                problem(f"{where}: Task {name} does not name a function by substitution")
        if s["Type"] == "Map" and not any("States.ALL" in c["ErrorEquals"] for c in s.get("Catch", [])):
            problem(f"{where}: Map {name} has no Catch for States.ALL")


top = definition["States"]
check_states(top, "top level")
loop = top["Platforms"]["ItemProcessor"]["States"]
check_states(loop, "platform loop")
check_states(top["Release every platform"]["ItemProcessor"]["States"], "release-all loop")

# Once Capacity may have run, no path ends the iteration without Release;
# and every Catch of the loop leads to Release.
if "Release" not in loop or "Capacity" not in loop:
    problem("platform loop: no Capacity or no Release state")
else:
    for end in ends_without(loop, "Capacity", "Release"):
        problem(f"platform loop: {end} ends the iteration after Capacity without Release")
    for name, s in loop.items():
        for c in s.get("Catch", []):
            if name == "Release":
                continue
            for end in ends_without(loop, c["Next"], "Release"):
                problem(f"platform loop: {name}'s Catch reaches {end} without Release")
    reach = set()
    todo = [loop["Release"]["Next"]] + [c["Next"] for c in loop["Release"].get("Catch", [])]
    while todo:
        n = todo.pop()
        if n in reach:
            continue
        reach.add(n)
        if loop[n]["Type"] == "Task":
            problem(f"platform loop: Task {n} runs after Release")
        todo.extend(successors(loop[n]))

# The Plan's failure is the only way out before any instance exists.
if top["Plan"]["Catch"][0]["Next"] != "Plan failed" or top["Plan failed"]["Type"] != "Fail":
    problem("top level: a failed Plan must end in the Fail state 'Plan failed'")
if top["Platforms"]["Catch"][0]["Next"] != "Release every platform":
    problem("top level: a failed platform Map must go to 'Release every platform'")
if definition.get("QueryLanguage", "JSONPath") != "JSONPath":
    problem("definition: JSONPath only (aws-local-stepfunctions 3 runs no JSONata)")
for name in ("Sync", "Build", "Tar", "Upload", "Record", "Release"):
    if name not in loop:
        problem(f"platform loop: no state named {name!r} (the console history reads as the workflow)")

# ------------------------------------------------------------ the functions

glob = template["Globals"]["Function"]
functions = of_type("AWS::Serverless::Function")
by_logical = {}
for name, f in functions.items():
    p, meta = f["Properties"], f.get("Metadata", {})
    runtime = p.get("Runtime", glob.get("Runtime"))
    arch = p.get("Architectures", glob.get("Architectures"))
    if runtime != "provided.al2023" or arch != ["arm64"]:
        problem(f"{name}: runtime {runtime} on {arch}, not provided.al2023 on arm64")
    if meta.get("BuildMethod") != "rust-cargolambda":
        problem(f"{name}: BuildMethod is not rust-cargolambda")
    binary = meta.get("BuildProperties", {}).get("Binary")
    manifest = ROOT / "functions" / str(binary) / "Cargo.toml"
    if not binary or not manifest.exists():
        problem(f"{name}: binary {binary!r} has no functions/{binary}/Cargo.toml")
    elif not re.search(r'\[\[bin\]\]\s*name\s*=\s*"%s"' % re.escape(binary), manifest.read_text()):
        problem(f"{name}: functions/{binary} builds no binary named {binary}")
    by_logical[name] = p.get("Timeout", glob.get("Timeout", 3))

subs = resources["Pipeline"]["Properties"]["DefinitionSubstitutions"]
every_state = dict(loop)
every_state.update(top)
every_state.update(top["Release every platform"]["ItemProcessor"]["States"])
for name, s in every_state.items():
    if s["Type"] != "Task":
        continue
    key = s["Resource"][2:-1]
    target = subs.get(key, {}).get("Fn::GetAtt", [None])[0]
    if target not in by_logical:
        problem(f"Task {name}: {key} is not a function of the template")
    elif s.get("TimeoutSeconds", 99999999) <= by_logical[target]:
        problem(f"Task {name}: TimeoutSeconds {s.get('TimeoutSeconds')} <= {target}'s Timeout {by_logical[target]}")

# ---------------------------------------------------------------------- IAM

# Actions that accept no resource but "*" (each use is commented in the template).
STAR_OK = re.compile(
    r"^(ec2:Describe\w+|ssm:DescribeInstanceInformation|ssm:GetCommandInvocation"
    r"|logs:(Create|Get|Update|Delete|List)LogDelivery|logs:ListLogDeliveries"
    r"|logs:PutResourcePolicy|logs:DescribeResourcePolicies|logs:DescribeLogGroups"
    r"|xray:\w+)$"
)


def statements(node, where):
    """Every IAM statement under `node`, with where it is."""
    if isinstance(node, dict):
        if "Effect" in node and "Action" in node:
            yield where, node
        for k, v in node.items():
            yield from statements(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from statements(v, f"{where}[{i}]")


for where, st in statements(resources, "Resources"):
    actions = as_list(st["Action"])
    for a in actions:
        if a == "*" or (st["Effect"] == "Allow" and a.endswith(":*")):
            problem(f"{where}: Action {a}")
    if st["Effect"] == "Allow" and "*" in as_list(st.get("Resource", [])):
        wide = [a for a in actions if not STAR_OK.match(a)]
        if wide:
            problem(f"{where}: Resource '*' for {wide}, which can be scoped")
    if st["Effect"] == "Allow" and st.get("Resource") is None and "NotResource" not in st \
            and "AssumeRolePolicyDocument" not in where:
        problem(f"{where}: no Resource")

for name, action in [("CapacityFunction", "ec2:RunInstances"), ("ReleaseFunction", "ec2:TerminateInstances")]:
    allows = [st for _, st in statements(resources[name], name)
              if st["Effect"] == "Allow" and action in as_list(st["Action"])]
    instance = [st for st in allows if any("instance/*" in json.dumps(r) for r in as_list(st["Resource"]))]
    if not instance or not all("Condition" in st for st in instance):
        problem(f"{name}: {action} on instances must be conditioned on ebfleet's tags")

# --------------------------------------------------------------- the rest

bucket = resources["Bucket"]["Properties"]
if bucket["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is not True:
    problem("Bucket: EventBridge notifications off")
if not all(bucket["PublicAccessBlockConfiguration"].values()):
    problem("Bucket: public access not fully blocked")
if "BucketEncryption" not in bucket:
    problem("Bucket: no default encryption")
expiring = {r.get("Prefix") for r in bucket["LifecycleConfiguration"]["Rules"] if "ExpirationInDays" in r}
if not {"plans/", "logs/"} <= expiring:
    problem(f"Bucket: lifecycle expires {sorted(expiring)}, not plans/ and logs/")
tls = [st for _, st in statements(resources["BucketPolicy"], "BucketPolicy")
       if st["Effect"] == "Deny" and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
if not tls:
    problem("BucketPolicy: no TLS-only deny")

lt = resources["NodeLaunchTemplate"]["Properties"]["LaunchTemplateData"]
if lt.get("MetadataOptions", {}).get("HttpTokens") != "required" or "KeyName" in lt:
    problem("NodeLaunchTemplate: IMDSv2 must be required and no key pair set")
sg = resources["NodeSecurityGroup"]["Properties"]
if sg.get("SecurityGroupIngress") or of_type("AWS::EC2::SecurityGroupIngress"):
    problem("NodeSecurityGroup: has an inbound rule")
for rule in sg.get("SecurityGroupEgress", []):
    if (rule["FromPort"], rule["ToPort"], rule["IpProtocol"]) != (443, 443, "tcp"):
        problem(f"NodeSecurityGroup: egress other than HTTPS: {rule}")


def event_rules():
    for name, f in functions.items():
        for ev, e in f["Properties"].get("Events", {}).items():
            yield f"{name}.{ev}", e["Properties"].get("Pattern", {}), name
    for name, r in of_type("AWS::Events::Rule").items():
        yield name, r["Properties"].get("EventPattern", {}), None


rules = list(event_rules())
s3 = [(p, t) for _, p, t in rules if p.get("detail-type") == ["Object Created"]]
if not any(t == "TriggerFunction" and "easyconfigs/*.eb" in json.dumps(p) for p, t in s3):
    problem("no Object Created rule for easyconfigs/*.eb to TriggerFunction")
if not any(p.get("detail-type") == ["EC2 Spot Instance Interruption Warning"] for _, p, _ in rules):
    problem("no rule for EC2 spot interruption warnings")
failed = [(p, t) for _, p, t in rules
          if p.get("source") == ["aws.states"] and t == "ReleaseFunction"]
if not failed or not {"FAILED", "ABORTED", "TIMED_OUT"} <= set(failed[0][0]["detail"]["status"]):
    problem("no rule releasing instances when an execution fails, is aborted or times out")
schedule = resources["Pipeline"]["Properties"]["Events"]
sched = [e for e in schedule.values() if e["Type"] in ("Schedule", "ScheduleV2")]
if not sched:
    problem("Pipeline: no schedule")

for p in problems:
    print(p)
print(f"infra/check.py: {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
