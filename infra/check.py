"""Checks on infra/template.yaml and the state machines
(statemachine/pipeline.asl.json, platform.asl.json, unit.asl.json,
bake.asl.json) that
cfn-lint and asl-validator do not make: every path that may hold a pool or a
node passes Release, every Task retries Lambda's transient errors, has a
Catch and outlives its function's timeout, every substitution is given and
used, each state machine may invoke exactly the functions it uses, every
function is a binary under functions/, and IAM stays narrow. Prints one line
per problem (nothing when there is none); exit 1 if any.

Usage: python3 infra/check.py [TEMPLATE [STATEMACHINE_DIR]]   (needs PyYAML;
scripts/test-infra.sh runs it with cfn-lint's virtual environment, and on
broken copies to see it refuse them)
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
definitions_dir = Path(args[1] or ROOT / "statemachine")
template = yaml.load(template_path.read_text(), Loader=CfnLoader)
resources = template["Resources"]


def of_type(resource_type):
    return {n: r for n, r in resources.items() if r["Type"] == resource_type}


def as_list(v):
    return v if isinstance(v, list) else [v]


# The three state machines: template resource -> definition file.
MACHINES = {"Pipeline": "pipeline.asl.json", "Platform": "platform.asl.json", "Unit": "unit.asl.json",
            "Bake": "bake.asl.json"}
machines = of_type("AWS::Serverless::StateMachine")
if set(machines) != set(MACHINES):
    problem(f"template: state machines {sorted(machines)}, not {sorted(MACHINES)}")
definitions = {}
for sm, file in MACHINES.items():
    uri = machines.get(sm, {}).get("Properties", {}).get("DefinitionUri")
    if sm in machines and uri != f"../statemachine/{file}":
        problem(f"{sm}: DefinitionUri {uri!r}, not ../statemachine/{file}")
    definitions[sm] = json.loads((definitions_dir / file).read_text())

# ------------------------------------------------------------ the functions

glob = template["Globals"]["Function"]
functions = of_type("AWS::Serverless::Function")
timeout_of = {}
binaries = set()
for name, f in functions.items():
    p, meta = f["Properties"], f.get("Metadata", {})
    runtime = p.get("Runtime", glob.get("Runtime"))
    arch = p.get("Architectures", glob.get("Architectures"))
    if runtime != "provided.al2023" or arch != ["arm64"]:
        problem(f"{name}: runtime {runtime} on {arch}, not provided.al2023 on arm64")
    if meta.get("BuildMethod") != "rust-cargolambda":
        problem(f"{name}: BuildMethod is not rust-cargolambda")
    binary = meta.get("BuildProperties", {}).get("Binary")
    binaries.add(binary)
    manifest = ROOT / "functions" / str(binary) / "Cargo.toml"
    if not binary or not manifest.exists():
        problem(f"{name}: binary {binary!r} has no functions/{binary}/Cargo.toml")
    elif not re.search(r'\[\[bin\]\]\s*name\s*=\s*"%s"' % re.escape(binary), manifest.read_text()):
        problem(f"{name}: functions/{binary} builds no binary named {binary}")
    timeout_of[name] = p.get("Timeout", glob.get("Timeout", 3))
for manifest in sorted((ROOT / "functions").glob("*/Cargo.toml")):
    if manifest.parent.name not in binaries:
        problem(f"functions/{manifest.parent.name}: no function of the template deploys it")

# ------------------------------------------------------------ substitutions

SUB = re.compile(r"\$\{([^}]*)\}")
FUNCTION_SUB = re.compile(r"\$\{(\w+FunctionArn)\}")
MACHINE_SUB = re.compile(r"\$\{(\w+StateMachineArn)\}")


def substitutions(sm):
    return machines.get(sm, {}).get("Properties", {}).get("DefinitionSubstitutions") or {}


for sm, definition in definitions.items():
    given = substitutions(sm)
    used = set(SUB.findall(json.dumps(definition)))
    for key in sorted(used - set(given)):
        problem(f"{sm}: the definition uses ${{{key}}}, which DefinitionSubstitutions does not give")
    for key in sorted(set(given) - used):
        problem(f"{sm}: DefinitionSubstitutions gives {key}, which the definition does not use")
    for key, value in given.items():
        if key.endswith("FunctionArn"):
            target = value.get("Fn::GetAtt", [None, None]) if isinstance(value, dict) else [None, None]
            if target[0] not in functions or target[1] != "Arn":
                problem(f"{sm}: substitution {key} is not !GetAtt <a function of the template>.Arn")
        elif key.endswith("StateMachineArn"):
            if not isinstance(value, dict) or value.get("Ref") not in machines:
                problem(f"{sm}: substitution {key} is not !Ref <a state machine of the template>")


def function_of(sm, text):
    """The template function a `${XFunctionArn}` of `sm`'s definition names."""
    m = FUNCTION_SUB.fullmatch(text or "")
    value = substitutions(sm).get(m.group(1)) if m else None
    if isinstance(value, dict) and "Fn::GetAtt" in value and value["Fn::GetAtt"][0] in functions:
        return value["Fn::GetAtt"][0]
    return None


def machine_of(sm, text):
    """The template state machine a `${XStateMachineArn}` of `sm`'s definition names."""
    m = MACHINE_SUB.fullmatch(text or "")
    value = substitutions(sm).get(m.group(1)) if m else None
    if isinstance(value, dict) and value.get("Ref") in machines:
        return value["Ref"]
    return None


# ------------------------------------------------------------ state machines

LAMBDA_TRANSIENT = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
CALLBACK = "arn:aws:states:::lambda:invoke.waitForTaskToken"
START = "arn:aws:states:::states:startExecution"
START_SYNC = (START + ".sync:2", START + ".sync")
START_TOKEN = START + ".waitForTaskToken"
SEND = re.compile(r"arn:aws:states:::aws-sdk:sfn:sendTask(Success|Failure|Heartbeat)")
# The unit's steps a node runs (their names are what the console shows).
STEPS = ("Sync", "Build", "Tar", "Upload")


def kind(s):
    """What a Task does: lambda, callback (a Lambda and a task token), start
    (a state machine's execution), send (answer another execution's task)."""
    r = s.get("Resource", "")
    if FUNCTION_SUB.fullmatch(r):
        return "lambda"
    if r == CALLBACK:
        return "callback"
    if r == START or r == START_TOKEN or r in START_SYNC:
        return "start"
    if SEND.fullmatch(r):
        return "send"
    return None


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
    """Terminal states reachable from `start` without passing a state in `avoid`."""
    avoid = {avoid} if isinstance(avoid, str) else set(avoid)
    seen, todo, ends = set(), [start], []
    while todo:
        name = todo.pop()
        if name in seen or name in avoid or name not in states:
            continue
        seen.add(name)
        s = states[name]
        if terminal(s):
            ends.append(name)
        todo.extend(successors(s))
    return sorted(ends)


def reachable(states, start):
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        todo.extend(successors(states[name]))
    return seen


def catch_all(state):
    """The Catch for States.ALL of a state, or None."""
    return next((c for c in state.get("Catch", []) if "States.ALL" in c["ErrorEquals"]), None)


def scopes(machine, where):
    """(where, States, StartAt) of a definition and of every Map and Parallel in it."""
    yield where, machine["States"], machine["StartAt"]
    for name, s in machine["States"].items():
        for inner in [s.get("ItemProcessor"), s.get("Iterator")] + s.get("Branches", []):
            if inner:
                yield from scopes(inner, f"{where} {name}")


def tasks(sm):
    for where, states, _ in scopes(definitions[sm], sm):
        for name, s in states.items():
            if s["Type"] == "Task":
                yield where, name, s


def task_function(sm, s):
    """The template function a Lambda Task invokes (plain or callback), or None."""
    if kind(s) == "callback":
        return function_of(sm, s.get("Parameters", {}).get("FunctionName"))
    if kind(s) == "lambda":
        return function_of(sm, s.get("Resource"))
    return None


def task_machine(sm, s):
    """The template state machine a start Task starts (itself through $$.StateMachine.Id), or None."""
    params = s.get("Parameters", {})
    if params.get("StateMachineArn.$") == "$$.StateMachine.Id":
        return sm
    return machine_of(sm, params.get("StateMachineArn"))


def is_clock(s):
    """A callback Task whose timeout is its loop's clock: a failure goes where success goes."""
    c = catch_all(s)
    return kind(s) == "callback" and c is not None and c["Next"] == s.get("Next")


def input_keys(s):
    return {k[:-2] if k.endswith(".$") else k for k in s.get("Parameters", {}).get("Input", {})} \
        - {"AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"}


def token_key(s):
    """The Input key a start.waitForTaskToken Task passes its token as."""
    return next((k[:-2] for k, v in s.get("Parameters", {}).get("Input", {}).items()
                 if k.endswith(".$") and v == "$$.Task.Token"), None)


def check_task(sm, where, name, s):
    k = kind(s)
    params = s.get("Parameters", {})
    if k is None:
        problem(f"{where}: Task {name}: Resource {s.get('Resource')!r} is none of a ${{XFunctionArn}} "
                f"substitution, {CALLBACK}, {START}[.sync:2|.waitForTaskToken], aws-sdk:sfn:sendTask*")
    elif k == "callback":
        if not FUNCTION_SUB.fullmatch(str(params.get("FunctionName", ""))):
            problem(f"{where}: Task {name}: Parameters.FunctionName is not a ${{XFunctionArn}} substitution")
        if "$$.Task.Token" not in json.dumps(params.get("Payload", {})):
            problem(f"{where}: Task {name} waits for a task token it does not pass ($$.Task.Token)")
    elif k == "start":
        if task_machine(sm, s) is None:
            problem(f"{where}: Task {name}: Parameters.StateMachineArn is neither a ${{XStateMachineArn}} "
                    "substitution nor $$.StateMachine.Id")
        if s["Resource"] == START_TOKEN:
            if token_key(s) is None:
                problem(f"{where}: Task {name} waits for a task token it does not pass in its Input ($$.Task.Token)")
            if "HeartbeatSeconds" not in s:
                problem(f"{where}: Task {name} has no HeartbeatSeconds (an execution that dies without "
                        "answering would hold it until TimeoutSeconds)")
    elif k == "send":
        if "TaskToken.$" not in params:
            problem(f"{where}: Task {name} names no task token (Parameters 'TaskToken.$')")
    if k in ("lambda", "callback"):
        retried = {e for r in s.get("Retry", []) for e in r["ErrorEquals"]}
        if not LAMBDA_TRANSIENT <= retried:
            problem(f"{where}: Task {name} does not retry {sorted(LAMBDA_TRANSIENT - retried)}")
    elif not s.get("Retry"):
        problem(f"{where}: Task {name} has no Retry")
    if "TimeoutSeconds" not in s:
        problem(f"{where}: Task {name} has no TimeoutSeconds")
    if "HeartbeatSeconds" in s and s["HeartbeatSeconds"] >= s.get("TimeoutSeconds", 99999999):
        problem(f"{where}: Task {name}: HeartbeatSeconds {s['HeartbeatSeconds']} >= TimeoutSeconds {s.get('TimeoutSeconds')}")
    # Every Task but the unit's Release has a Catch; that one has none (a
    # failed Release fails the unit, which its scheduler reads as a lost node).
    if sm == "Unit" and name == "Release":
        if "Catch" in s:
            problem(f"{where}: Task Release has a Catch: a failed Release must fail the unit's execution")
    elif catch_all(s) is None:
        problem(f"{where}: Task {name} has no Catch for States.ALL")


for sm, definition in definitions.items():
    if definition.get("QueryLanguage", "JSONPath") != "JSONPath":
        problem(f"{sm}: JSONPath only (aws-local-stepfunctions 3 runs no JSONata)")
    for where, states, start in scopes(definition, sm):
        if start not in states:
            problem(f"{where}: StartAt {start!r} is no state")
        for name in sorted(set(states) - reachable(states, start)):
            problem(f"{where}: {name} is unreachable")
        for name, s in states.items():
            if s.get("QueryLanguage", "JSONPath") != "JSONPath":
                problem(f"{where}: {name}: JSONPath only")
            for n in successors(s):
                if n not in states:
                    problem(f"{where}: {name} goes to unknown state {n!r}")
            if s["Type"] == "Task":
                check_task(sm, where, name, s)
            # A Map or Parallel in another one fails that one, whose Catch
            # releases: only the outermost need their own.
            if s["Type"] in ("Map", "Parallel") and where == sm and catch_all(s) is None:
                problem(f"{where}: {s['Type']} {name} has no Catch for States.ALL")


def after(states, release):
    """The states that may run once `release` did (its success or its failure)."""
    return reachable(states, release) - {release}


def nothing_after(where, states, release):
    """Once Release ran, nothing invokes a function or starts an execution."""
    for n in sorted(after(states, release)):
        if states[n]["Type"] == "Task" and kind(states[n]) != "send":
            problem(f"{where}: Task {n} runs after {release}")


# The unit: from Capacity (its node) on, every path ends through Release,
# which is its only end; every Task's Catch leads to Release.
unit = definitions["Unit"]["States"]
if not {"Capacity", "Release"} <= set(unit):
    problem("Unit: no Capacity or no Release state")
else:
    for end in ends_without(unit, definitions["Unit"]["StartAt"], "Release"):
        problem(f"Unit: {end} ends the unit without Release")
    if unit["Release"]["Type"] != "Task" or not terminal(unit["Release"]):
        problem("Unit: Release must be the Task that ends the unit (its output is the unit's outcome)")
    for name, s in unit.items():
        c = catch_all(s)
        if s["Type"] == "Task" and name != "Release" and c:
            for end in ends_without(unit, c["Next"], "Release"):
                problem(f"Unit: {name}'s Catch reaches {end} without Release")
    nothing_after("Unit", unit, "Release")
for name in STEPS:
    s = unit.get(name)
    if not s or kind(s) != "callback":
        problem(f"Unit: no step state {name!r} waiting for its node ({CALLBACK})")
    elif "HeartbeatSeconds" not in s:
        problem(f"Unit: step {name} has no HeartbeatSeconds (a lost node would hold it until TimeoutSeconds)")

# The platform: a continuing execution holds its pool from its first state,
# a new one from Capacity on; every path ends through Release but the one
# that goes on in a new execution with the same pool. Every Catch before
# Release leads to Release, but the wait's, whose timeout is the loop's clock.
platform = definitions["Platform"]["States"]
GO_ON = "Go on in a new execution"
if not {"Capacity", "Release", GO_ON} <= set(platform):
    problem(f"Platform: no Capacity, Release or {GO_ON!r} state")
else:
    for end in ends_without(platform, definitions["Platform"]["StartAt"], "Release"):
        if end != GO_ON:
            problem(f"Platform: {end} ends the platform without Release")
    go_on = platform[GO_ON]
    passed = go_on.get("Parameters", {})
    if kind(go_on) == "start":
        passed = passed.get("Input", {})
        if task_machine("Platform", go_on) != "Platform":
            problem(f"Platform: {GO_ON} starts another state machine than Platform")
    if not terminal(go_on) or go_on["Type"] == "Fail" or "pool.$" not in passed:
        problem(f"Platform: {GO_ON} must end the execution handing on its pool ('pool.$')")
    released = after(platform, "Release")
    for name, s in platform.items():
        c = catch_all(s)
        if name == "Release" or name in released or c is None:
            continue
        if is_clock(s):
            # "Failed?" reads $.failure: a tick must not look like a failure.
            if c.get("ResultPath", "$") is not None:
                problem(f"Platform: {name}'s Catch loops back but keeps the error (ResultPath must be null)")
            continue
        for end in ends_without(platform, c["Next"], "Release"):
            problem(f"Platform: {name}'s Catch reaches {end} without Release")
    # Release's own failure fails the execution: the run releases again.
    for c in platform["Release"].get("Catch", []):
        for end in ends_without(platform, c["Next"], ()):
            if platform[end]["Type"] != "Fail":
                problem(f"Platform: Release's Catch ends in {end}, not in a Fail state")
    nothing_after("Platform", platform, "Release")
    if task_function("Platform", platform["Capacity"]) != "CapacityFunction":
        problem("Platform: Capacity does not invoke CapacityFunction")
    if task_function("Platform", platform["Release"]) != "ReleaseFunction":
        problem("Platform: Release does not invoke ReleaseFunction")

# The pipeline: the Plan's failure is the only way out before a pool exists;
# in the platform loop every Catch leads to a Release task; the Map's Catch
# goes to "Release every platform", and the run then fails.
top = definitions["Pipeline"]["States"]
plan_catch = catch_all(top.get("Plan", {}))
if not plan_catch or plan_catch["Next"] != "Plan failed" or top.get("Plan failed", {}).get("Type") != "Fail":
    problem("Pipeline: a failed Plan must end in the Fail state 'Plan failed'")
maps = {n: s for n, s in top.items() if s["Type"] == "Map"}
if list(maps) != ["Platforms"]:
    problem(f"Pipeline: Map states {sorted(maps)}, not ['Platforms']")


def check_loop(where, loop):
    """A platform iteration: it starts a Platform execution, has a Release
    task, and every Catch reaches a Release; its nested Maps (the CUDA
    overlays) likewise."""
    releases = {n for n, s in loop.items() if task_function("Pipeline", s) == "ReleaseFunction"}
    starts = {n for n, s in loop.items() if kind(s) == "start" and task_machine("Pipeline", s) == "Platform"}
    if not releases or not starts:
        problem(f"Pipeline: the {where} loop starts no Platform execution or has no Release task")
    for name, s in loop.items():
        if s["Type"] == "Map":
            check_loop(f"{where} / {name}", (s.get("ItemProcessor") or s.get("Iterator") or {}).get("States", {}))
        if name in releases:
            continue
        for c in s.get("Catch", []):
            for end in ends_without(loop, c["Next"], releases):
                problem(f"Pipeline: {where} loop: {name}'s Catch reaches {end} without a Release task")


if "Platforms" in top:
    c = catch_all(top["Platforms"])
    if not c or c["Next"] != "Release every platform":
        problem("Pipeline: a failed Platforms Map must go to 'Release every platform'")
    loop = (top["Platforms"].get("ItemProcessor") or top["Platforms"].get("Iterator") or {}).get("States", {})
    check_loop("Platforms", loop)
    if not any(s["Type"] == "Map" for s in loop.values()):
        problem("Pipeline: the Platforms loop has no Map of the CUDA overlays")
every = top.get("Release every platform")
if not every or every["Type"] != "Task" or task_function("Pipeline", every) != "ReleaseFunction":
    problem("Pipeline: no Task 'Release every platform' invoking ReleaseFunction")
else:
    for end in ends_without(top, "Release every platform", ()):
        if top[end]["Type"] != "Fail":
            problem(f"Pipeline: Release every platform ends in {end}, not in a Fail state (the run must fail)")

# Every start of a state machine hands it the same input.
inputs = {}
for sm in definitions:
    for where, name, s in tasks(sm):
        if kind(s) == "start" and task_machine(sm, s):
            inputs.setdefault(task_machine(sm, s), []).append((f"{where}: {name}", input_keys(s)))
for target, found in inputs.items():
    for (w1, k1), (w2, k2) in zip(found, found[1:]):
        if k1 != k2:
            problem(f"{w2} starts {target} with {sorted(k2)}, but {w1} with {sorted(k1)}")

# ----------------------------------------------------------------- timeouts

for sm in definitions:
    for where, name, s in tasks(sm):
        k = kind(s)
        if k == "start":
            child = task_machine(sm, s)
            if child is None:
                continue
            longest_task = max([t.get("TimeoutSeconds", 0) for _, _, t in tasks(child)] or [0])
            own = definitions[child].get("TimeoutSeconds")
            if s["Resource"] in START_SYNC and (own is None or s.get("TimeoutSeconds", 99999999) <= own):
                problem(f"{where}: Task {name}: TimeoutSeconds {s.get('TimeoutSeconds')} <= "
                        f"{child}'s TimeoutSeconds {own} (the child must time out first)")
            if s["Resource"] == START_TOKEN and s.get("HeartbeatSeconds", 99999999) <= longest_task:
                problem(f"{where}: Task {name}: HeartbeatSeconds {s.get('HeartbeatSeconds')} <= the longest "
                        f"TimeoutSeconds of a Task of {child} ({longest_task})")
            continue
        if k not in ("lambda", "callback"):
            continue
        target = task_function(sm, s)
        if target is None:
            problem(f"{where}: Task {name} invokes no function of the template")
            continue
        if not is_clock(s) and s.get("TimeoutSeconds", 99999999) <= timeout_of[target]:
            problem(f"{where}: Task {name}: TimeoutSeconds {s.get('TimeoutSeconds')} <= {target}'s Timeout {timeout_of[target]}")
        if "HeartbeatSeconds" in s and s["HeartbeatSeconds"] <= timeout_of[target]:
            problem(f"{where}: Task {name}: HeartbeatSeconds {s['HeartbeatSeconds']} <= {target}'s Timeout {timeout_of[target]}")


def longest(states, start, memo=None):
    """Most TimeoutSeconds of Tasks along one path (the unit has no loop)."""
    memo = {} if memo is None else memo
    if start in memo:
        return memo[start]
    memo[start] = 0  # a loop counts once
    s = states[start]
    own = s.get("TimeoutSeconds", 0) if s["Type"] == "Task" else 0
    memo[start] = own + max([longest(states, n, memo) for n in successors(s) if n in states] or [0])
    return memo[start]


if "TimeoutSeconds" not in definitions["Unit"]:
    problem("Unit: no TimeoutSeconds")
elif definitions["Unit"]["StartAt"] in unit:
    need = longest(unit, definitions["Unit"]["StartAt"])
    if definitions["Unit"]["TimeoutSeconds"] <= need:
        problem(f"Unit: TimeoutSeconds {definitions['Unit']['TimeoutSeconds']} <= its longest path's "
                f"TimeoutSeconds {need} (it may time out before Release)")

# ---------------------------------------------------------------------- IAM

# Actions that accept no resource but "*" (each use is commented in the template).
STAR_OK = re.compile(
    r"^(ec2:Describe\w+|autoscaling:Describe\w+"
    r"|ssm:DescribeInstanceInformation|ssm:GetCommandInvocation|ssm:ListCommands"
    r"|states:SendTask(Success|Failure|Heartbeat)"
    r"|ec2messages:\w+|ssmmessages:\w+"
    r"|logs:(Create|Get|Update|Delete|List)LogDelivery|logs:ListLogDeliveries"
    r"|logs:PutResourcePolicy|logs:DescribeResourcePolicies|logs:DescribeLogGroups"
    r"|xray:\w+)$"
)


def scoped_per_cfn_lint():
    """Actions with resource-level permissions per cfn-lint's IAM data (when cfn-lint is here)."""
    try:
        from importlib import resources as ir
        data = json.loads(ir.files("cfnlint.data.AdditionalSpecs").joinpath("Policies.json").read_text())
    except Exception:
        return None
    return lambda action: bool(
        data.get(action.split(":")[0], {}).get("Actions", {}).get(action.split(":")[-1].lower(), {}).get("Resources"))


scoped = scoped_per_cfn_lint()


def statements(node, where):
    """Every IAM statement under `node`, with where it is."""
    if isinstance(node, dict):
        if "Effect" in node and ("Action" in node or "NotAction" in node):
            yield where, node
        for k, v in node.items():
            yield from statements(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from statements(v, f"{where}[{i}]")


def allows(node, where, action):
    return [(w, st) for w, st in statements(node, where)
            if st["Effect"] == "Allow" and action in as_list(st.get("Action", []))]


def tag_guarded(st):
    """The statement's Condition requires one of ebfleet's tags on the resource or the request."""
    for op, keys in (st.get("Condition") or {}).items():
        for key, value in keys.items():
            if "tag/ebfleet:" in key.lower():
                if op != "Null" or value in ("false", False):
                    return True
    return False


for where, st in statements(resources, "Resources"):
    actions = as_list(st.get("Action", []))
    if st["Effect"] == "Allow" and "NotAction" in st:
        problem(f"{where}: Allow with NotAction")
    for a in actions:
        if a == "*" or (st["Effect"] == "Allow" and a.endswith(":*")):
            problem(f"{where}: Action {a}")
    # In a key policy, '*' is the key itself.
    if st["Effect"] == "Allow" and "*" in as_list(st.get("Resource", [])) and ".KeyPolicy." not in where:
        wide = [a for a in actions if not STAR_OK.match(a) or (scoped and scoped(a))]
        if wide:
            problem(f"{where}: Resource '*' for {wide}, which can be scoped")
    if st["Effect"] == "Allow" and st.get("Resource") is None and "NotResource" not in st \
            and "AssumeRolePolicyDocument" not in where:
        problem(f"{where}: no Resource")

def condition_keys(st):
    return {k.lower() for keys in (st.get("Condition") or {}).values() for k in keys}


def launch_guarded(st):
    """A RunInstances statement launches ebfleet's own nodes only: tagged;
    or from a launch template (which must itself be tagged to be used); or,
    granting images or subnets only, of an approved owner or the stack's VPC."""
    if tag_guarded(st) or "ec2:launchtemplate" in condition_keys(st):
        return True
    kinds = {json.dumps(r).rsplit(":", 1)[-1].split("/")[0] for r in as_list(st["Resource"])}
    return (kinds == {"image"} and "ec2:owner" in condition_keys(st)) or \
        (kinds == {"subnet"} and "ec2:vpc" in condition_keys(st))


# What launches, terminates or deletes acts on ebfleet's own resources only.
for action in ("ec2:RunInstances", "ec2:TerminateInstances", "ec2:CreateLaunchTemplate", "ec2:DeleteLaunchTemplate"):
    for where, st in allows(resources, "Resources", action):
        if not (launch_guarded(st) if action == "ec2:RunInstances" else tag_guarded(st)):
            problem(f"{where}: {action} must be conditioned on ebfleet's tags")
terminate = allows(resources, "Resources", "ec2:TerminateInstances")
if not terminate or not all(all("instance/*" in json.dumps(r) for r in as_list(st["Resource"])) for _, st in terminate):
    problem("ReleaseFunction: ec2:TerminateInstances must be allowed on instances (and only on instances)")
for action in ("autoscaling:CreateAutoScalingGroup", "autoscaling:DeleteAutoScalingGroup",
               "autoscaling:UpdateAutoScalingGroup", "autoscaling:SetDesiredCapacity",
               "autoscaling:TerminateInstanceInAutoScalingGroup", "autoscaling:CreateOrUpdateTags"):
    for where, st in allows(resources, "Resources", action):
        if not all("autoScalingGroupName/ebfleet-" in json.dumps(r) for r in as_list(st["Resource"])):
            problem(f"{where}: {action} on groups not named ebfleet-*")
for where, st in allows(resources, "Resources", "ssm:SendCommand"):
    if any("instance/" in json.dumps(r) for r in as_list(st["Resource"])) and not tag_guarded(st):
        problem(f"{where}: ssm:SendCommand on instances must be conditioned on ebfleet's tags")
for where, st in allows(resources, "Resources", "iam:PassRole"):
    if "iam:PassedToService" not in json.dumps(st.get("Condition", {})):
        problem(f"{where}: iam:PassRole without an iam:PassedToService condition")


def machine_target(r):
    """The state machine of the stack an IAM Resource names: !Ref X, or an ARN
    built from X's Name (a state machine cannot !Ref itself in its own role)."""
    if isinstance(r, dict) and r.get("Ref") in machines:
        return r["Ref"]
    sub = r.get("Fn::Sub") if isinstance(r, dict) else None
    sub = sub[0] if isinstance(sub, list) else sub
    if isinstance(sub, str) and ":stateMachine:" in sub:
        tail = sub.split(":stateMachine:", 1)[1]
        for sm, m in machines.items():
            name = m["Properties"].get("Name")
            name = name.get("Fn::Sub") if isinstance(name, dict) else name
            if tail == "${%s.Name}" % sm or (name and tail == name):
                return sm
    return None


# StartExecution only on the stack's state machines; each one is started by something.
started = set()
for where, st in allows(resources, "Resources", "states:StartExecution"):
    for r in as_list(st["Resource"]):
        if machine_target(r):
            started.add(machine_target(r))
        else:
            problem(f"{where}: states:StartExecution on {r}, not on one state machine of the stack")
for sm, r in machines.items():
    scheduled = any(e["Type"] in ("Schedule", "ScheduleV2") for e in r["Properties"].get("Events", {}).values())
    if sm not in started and not scheduled:
        problem(f"{sm}: nothing may start it (no states:StartExecution on it, no schedule)")


# Each state machine's role may do exactly what its definition does: invoke
# its functions, start its state machines, answer tasks.
def sam_policies(policies, where):
    """(where, policy) of a SAM Policies list, through Fn::If."""
    for i, p in enumerate(as_list(policies or [])):
        if isinstance(p, dict) and "Fn::If" in p:
            yield from sam_policies([x for x in p["Fn::If"][1:] if x != {"Ref": "AWS::NoValue"}], f"{where}[{i}]")
        else:
            yield f"{where}[{i}]", p


# What startExecution.sync:2 needs besides StartExecution: following and
# stopping the child, through the EventBridge rule Step Functions manages.
SYNC_ACTIONS = ("states:DescribeExecution", "states:StopExecution",
                "events:PutTargets", "events:PutRule", "events:DescribeRule")
SEND_ACTIONS = ("states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat")

for sm, r in machines.items():
    if r["Properties"].get("Type", "STANDARD") != "STANDARD":
        problem(f"{sm}: Type {r['Properties']['Type']}: callbacks and executions started with .sync "
                "or a task token need STANDARD")
    own = list(tasks(sm))
    used = {task_function(sm, s) for _, _, s in own} - {None}
    children = {task_machine(sm, s) for _, _, s in own if kind(s) == "start"} - {None}
    sync = any(s.get("Resource") in START_SYNC for _, _, s in own)
    sends = {"states:SendTask" + SEND.fullmatch(s["Resource"]).group(1) for _, _, s in own if kind(s) == "send"}
    invokable = set()
    policies = r["Properties"].get("Policies")
    for where, p in sam_policies(policies, f"{sm}.Policies"):
        if not isinstance(p, dict) or not set(p) <= {"LambdaInvokePolicy", "Statement"}:
            problem(f"{where}: a policy other than LambdaInvokePolicy or Statement: {p}")
            continue
        if "LambdaInvokePolicy" in p:
            fn = p["LambdaInvokePolicy"].get("FunctionName")
            if isinstance(fn, dict) and fn.get("Ref") in functions:
                invokable.add(fn["Ref"])
            else:
                problem(f"{where}: LambdaInvokePolicy's FunctionName is not !Ref <a function of the template>")
        for w, st in statements(p.get("Statement", []), where):
            if any(a.lower().startswith("lambda:") for a in as_list(st.get("Action", []))):
                problem(f"{w}: lambda actions outside LambdaInvokePolicy")
    for fn in sorted(used - invokable):
        problem(f"{sm}: its definition invokes {fn}, which its Policies do not allow (LambdaInvokePolicy)")
    for fn in sorted(invokable - used):
        problem(f"{sm}: its Policies may invoke {fn}, which its definition does not use")
    may_start = {machine_target(x) for _, st in allows(policies, sm, "states:StartExecution")
                 for x in as_list(st["Resource"])} - {None}
    for child in sorted(children - may_start):
        problem(f"{sm}: its definition starts {child}, which its Policies may not StartExecution")
    for child in sorted(may_start - children):
        problem(f"{sm}: its Policies may StartExecution {child}, which its definition does not start")
    for action in SYNC_ACTIONS:
        granted = allows(policies, sm, action)
        if sync and not granted:
            problem(f"{sm}: starts executions with .sync:2 but may not {action}")
        if granted and not sync:
            problem(f"{sm}: its Policies allow {action}, which only startExecution.sync needs, and it has none")
    for _, st in allows(policies, sm, "events:PutRule"):
        if "StepFunctionsGetEventsForStepFunctionsExecutionRule" not in json.dumps(st["Resource"]):
            problem(f"{sm}: events:PutRule on another rule than StepFunctionsGetEventsForStepFunctionsExecutionRule")
    for action in SEND_ACTIONS:
        granted = allows(policies, sm, action)
        if action in sends and not granted:
            problem(f"{sm}: its definition calls {action}, which its Policies do not allow")
        if granted and action not in sends:
            problem(f"{sm}: its Policies allow {action}, which its definition does not call")

# The tasks that wait for a token get answered (and beaten) by someone.
waits = [s for sm in definitions for _, _, s in tasks(sm)
         if kind(s) == "callback" or s.get("Resource") == START_TOKEN]
for action in ("states:SendTaskSuccess", "states:SendTaskFailure"):
    if waits and not allows(resources, "Resources", action):
        problem(f"no role may {action}: the tasks waiting for a token would wait until they time out")
if any("HeartbeatSeconds" in s for s in waits) and not allows(resources, "Resources", "states:SendTaskHeartbeat"):
    problem("no role may states:SendTaskHeartbeat: the heartbeats would time out")
# A run's task for a platform is beaten by the functions its token is handed to.
for sm in definitions:
    for where, name, s in tasks(sm):
        child, key = task_machine(sm, s), token_key(s)
        if s.get("Resource") != START_TOKEN or "HeartbeatSeconds" not in s or not child or not key:
            continue
        beaters = {task_function(child, t) for _, _, t in tasks(child)
                   if f"$.{key}" in json.dumps(t.get("Parameters", {}))} - {None}
        if not beaters:
            problem(f"{where}: Task {name} has HeartbeatSeconds, but no function of {child} gets its token ${key}")
        for fn in sorted(beaters):
            if not allows(resources[fn], fn, "states:SendTaskHeartbeat"):
                problem(f"{fn} gets {child}'s ${key} to beat {sm}'s {name!r}, but may not states:SendTaskHeartbeat")


# The bake: from Launch on, every path passes a clean-up of its instance
# ("Clean up" on success, "Clean up after failure" from every Catch), and
# no failure inside an iteration fails the Map (which would abort the other
# bakes before their clean-up).
if "Bake" in definitions:
    bake_map = definitions["Bake"]["States"].get("Bake each image", {})
    image = bake_map.get("Iterator", bake_map.get("ItemProcessor", {})).get("States", {})
    cleanups = {"Clean up", "Clean up after failure"}
    if not cleanups <= set(image) or "Launch" not in image:
        problem("Bake: the Map's iteration has no Launch, Clean up or Clean up after failure")
    else:
        for name in successors(image["Launch"]):
            for end in ends_without(image, name, cleanups):
                if name != catch_all(image["Launch"])["Next"]:
                    problem(f"Bake: {end} ends a bake without terminating its instance")
        for name, s in image.items():
            c = catch_all(s) if s["Type"] == "Task" else None
            if name in cleanups | {"Launch"} or c is None:
                continue
            if c["Next"] != "Clean up after failure":
                problem(f"Bake: {name}'s Catch goes to {c['Next']}, not 'Clean up after failure'")
        for name, s in image.items():
            if s["Type"] == "Fail":
                problem(f"Bake: Fail state {name} in the iteration aborts the other bakes before their clean-up")
        for name in ("Clean up", "Clean up after failure"):
            if task_function("Bake", image[name]) != "BakeFunction":
                problem(f"Bake: {name} does not invoke BakeFunction")

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
if not failed or not {"FAILED", "ABORTED", "TIMED_OUT"} <= set(failed[0][0]["detail"]["status"]) \
        or {"Ref": "Pipeline"} not in failed[0][0]["detail"].get("stateMachineArn", []):
    problem("no rule releasing instances when a run fails, is aborted or times out")
ended = [p for _, p, t in rules
         if p.get("detail-type") == ["EC2 Command Invocation Status-change Notification"] and t == "DispatchFunction"]
if not ended or {"Ref": "NodeStepDocument"} not in ended[0].get("detail", {}).get("document-name", []):
    problem("no rule completing a step's task when its command ends without the node (SSM status change to DispatchFunction)")
schedule = resources.get("Pipeline", {}).get("Properties", {}).get("Events", {})
if not any(e["Type"] in ("Schedule", "ScheduleV2") for e in schedule.values()):
    problem("Pipeline: no schedule")

if problems:
    for p in problems:
        print(p)
    print(f"infra/check.py: {len(problems)} problem(s)")
    sys.exit(1)
