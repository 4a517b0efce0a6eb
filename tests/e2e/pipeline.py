#!/usr/bin/env python3
"""The whole pipeline, locally, end to end.

The three state machines (statemachine/*.asl.json) run in the local Step
Functions service (tests/sfn/serve.mjs, over the aws-local-stepfunctions
ASL interpreter, real time scaled down); their Lambda tasks invoke the real
Rust functions under `cargo lambda watch`, which talk to that service and
to a moto server for S3, DynamoDB, EC2, Auto Scaling and SSM's parameters
and documents. Only SSM Run Command, its command events and its
managed-node list are played by this machine (nodes.py): each command the
real dispatch Lambda sends runs the real `ebfleet-node`, which builds with
real EasyBuild and Lmod and completes its step's task itself.
`scripts/local-pipeline.sh` installs and starts all of it.

    pipeline.py setup       create the stack in moto; print KEY=VALUE lines
    pipeline.py platforms   the platforms file the Lambdas get
    pipeline.py demo        one run on two platforms, and what it left
    pipeline.py test [NAME] the scenarios (they build on each other, in order)

Every scenario asserts on DynamoDB, S3, EC2 and the executions afterwards.
"""

import gzip
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import subprocess
import threading
import time
import tomllib
import urllib.request
from pathlib import Path

import boto3
import yaml

import fixtures as fx
from iam_gate import Decider, Decisions, Gate
from nodes import BUILD_USER_PREFIX, Nodes, SsmProxy

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "template.yaml"
SHIPPED_PLATFORMS = REPO / "crates" / "ebfleet-core" / "data" / "platforms.toml"
ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:"
PIPELINE, PLATFORM, UNIT = (f"{ARN}ebfleet-{m}" for m in ("pipeline", "platform", "unit"))

# Four x86_64 platforms, so this machine can build for all of them (the
# fixtures use the SYSTEM toolchain: no -march flags).
CPUS = ["epyc-gen-4", "xeon-gen-4", "epyc-gen-3", "xeon-gen-3"]
A, B, C, D = (f"amzn-2023_{c}" for c in CPUS)
# A CUDA overlay on C.
GPU = "h100"
E = f"{C}_{GPU}"
# The node role's id: each unit file names its node as <this>:<instance>,
# the principal whose staging prefix the node writes.
NODE_ROLE_ID = "AROAE2ENODEROLE"
# Where capacity expects the x86_64 agent (infra/OPERATOR.md).
NODE_KEY = "tools/ebfleet-node/x86_64/ebfleet-node"
# A platform's pool: at most this many nodes at once.
NODES = 3
# Lost nodes a module is tried on before it is given up.
NODE_ATTEMPTS = 3
# A platform goes on in a new execution after this many ticks (300 in a
# stack; few here: the stack's chain alpha → gamma → delta takes at least
# four ticks, so every platform of the happy path crosses executions).
TICKS = 3
# AWS's limit of events in one execution's history.
HISTORY_LIMIT = 25_000


def env(name):
    v = os.environ.get(name)
    if not v:
        sys.exit(f"{name} is not set (run scripts/local-pipeline.sh)")
    return v


def aws():
    return boto3.session.Session(region_name="us-east-1")


# ------------------------------------------------------------------ setup


class _CfnLoader(yaml.SafeLoader):
    pass


for _tag in ("!Ref", "!Sub", "!GetAtt", "!If", "!Equals", "!Not", "!Join", "!Select", "!Split", "!FindInMap"):
    _CfnLoader.add_constructor(_tag, lambda loader, node: None)


def template_resources():
    with open(TEMPLATE) as f:
        return yaml.load(f, Loader=_CfnLoader)["Resources"]


def platforms_toml():
    """A platforms file of the four CPUs (their entries copied from the
    shipped file) and one amzn-2023 platform each."""
    cpus = tomllib.loads(SHIPPED_PLATFORMS.read_text())["cpu"]

    def value(v):
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        return json.dumps(v)

    out = []
    for c in CPUS:
        out.append(f"[cpu.{c}]")
        out += [f"{k} = {value(v)}" for k, v in cpus[c].items()]
        out.append("")
    gpu = tomllib.loads(SHIPPED_PLATFORMS.read_text())["gpu"][GPU]
    out.append(f"[gpu.{GPU}]")
    out += [f"{k} = {value(v)}" for k, v in gpu.items()]
    out.append("")
    for c in CPUS:
        out += ["[[platform]]", 'os = "amzn-2023"', f'cpu = "{c}"', ""]
    out += ["[[platform]]", 'os = "amzn-2023"', f'cpu = "{CPUS[2]}"', f'gpu = "{GPU}"', ""]
    return "\n".join(out)


def setup():
    """The stack's resources in moto, from infra/template.yaml where it
    defines them: bucket (versioned, so a second write of a tarball shows),
    table, the SSM document, a subnet and a security group; the state
    machines are the local service's (serve.mjs), and the signing key."""
    s = aws()
    res = template_resources()
    name = f"ebfleet-e2e-{int(time.time())}"
    s3 = s.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    t = res["Table"]["Properties"]
    s.client("dynamodb").create_table(
        TableName=name,
        AttributeDefinitions=t["AttributeDefinitions"],
        KeySchema=t["KeySchema"],
        BillingMode=t["BillingMode"],
    )
    doc = res["NodeStepDocument"]["Properties"]
    s.client("ssm").create_document(
        Name=f"{name}-node-step",
        Content=json.dumps(doc["Content"]),
        DocumentType=doc["DocumentType"],
        DocumentFormat="JSON",
    )
    key = res["SigningKey"]["Properties"]
    kms = s.client("kms")
    key_id = kms.create_key(KeySpec=key["KeySpec"], KeyUsage=key["KeyUsage"])["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=f"alias/{name}", TargetKeyId=key_id)
    # The agent the nodes would download (bootstrap.sh checks its sha256).
    node = Path(env("EBFLEET_NODE_BIN")).read_bytes()
    s3.put_object(Bucket=name, Key=NODE_KEY, Body=node, Metadata={"sha256": hashlib.sha256(node).hexdigest()})
    ec2 = s.client("ec2")
    subnet = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]
    sg = ec2.create_security_group(GroupName=name, Description="no inbound", VpcId=subnet["VpcId"])
    settings = {
        "EBFLEET_BUCKET": name,
        "EBFLEET_TABLE": name,
        "EBFLEET_SSM_DOCUMENT": f"{name}-node-step",
        "EBFLEET_STATE_MACHINE_ARN": PIPELINE,
        "EBFLEET_UNIT_STATE_MACHINE_ARN": UNIT,
        "EBFLEET_NODE_ROLE_ID": NODE_ROLE_ID,
        "EBFLEET_SIGNING_KEY": f"alias/{name}",
        "EBFLEET_INSTANCE_PROFILE_ARN": "arn:aws:iam::123456789012:instance-profile/ebfleet-node",
        "EBFLEET_SUBNET_IDS": subnet["SubnetId"],
        "EBFLEET_SECURITY_GROUP_ID": sg["GroupId"],
        "EBFLEET_NODES_PER_PLATFORM": NODES,
        "EBFLEET_MAX_INSTANCES_PER_PLATFORM": 4 * NODES,
        "EBFLEET_NODE_ATTEMPTS": NODE_ATTEMPTS,
        "EBFLEET_NODE_IDLE_SECONDS": 30,
        "EBFLEET_TICKS_PER_EXECUTION": TICKS,
        "EBFLEET_HELD_RETRY_SECONDS": 5,
    }
    for k, v in settings.items():
        print(f"{k}={v}")


# --------------------------------------------------------------- the world


class World:
    """The stack as the Lambdas see it, plus this machine's build nodes."""

    def __init__(self):
        s = aws()
        self.s3 = s.client("s3")
        self.ddb = s.client("dynamodb")
        self.ec2 = s.client("ec2")
        self.asg = s.client("autoscaling")
        # AWS_ENDPOINT_URL_SFN: the local Step Functions service.
        self.sfn = s.client("stepfunctions")
        self.sfn_endpoint = env("AWS_ENDPOINT_URL_SFN")
        self.bucket = env("EBFLEET_BUCKET")
        self.table = env("EBFLEET_TABLE")
        self.invoke_port = env("EBFLEET_LAMBDA_INVOKE_PORT")
        self.work = Path(tempfile.mkdtemp(prefix="ebfleet-e2e-"))
        # Each node's S3, DynamoDB and KMS calls meet the node role's IAM.
        self.decider = Decider(
            env("NODE"), str(REPO / "infra" / "iam" / "decide.mjs"), env("EBFLEET_IAM_POLICIES"), "NodeRole",
            env("EBFLEET_IAM_SIMULATE_MODULES"),
        )
        self.decisions = Decisions()
        # The decisions up to here were checked.
        self.checked = 0
        self.gates = {}
        self.nodes = Nodes(
            s, self.work, env("EBFLEET_NODE_BIN"), env("EBFLEET_EB"), self.bucket,
            lambda event: self.invoke("dispatch", event), self.gate,
        )
        self.proxy = SsmProxy(int(env("EBFLEET_SSM_PROXY_PORT")), env("EBFLEET_MOTO_ENDPOINT"), self.nodes)
        threading.Thread(target=self.proxy.serve_forever, daemon=True).start()
        self.runs = 0

    def gate(self, instance_id):
        """The endpoint of a node's S3, DynamoDB and KMS calls: its own gate,
        which decides them as the node role, for this node's principal."""
        if instance_id not in self.gates:
            self.gates[instance_id] = Gate(
                self.decider, self.decisions, env("EBFLEET_MOTO_ENDPOINT"), self.bucket, self.table,
                env("EBFLEET_SIGNING_KEY"), instance_id, f"{NODE_ROLE_ID}:{instance_id}",
            )
        return self.gates[instance_id].url

    def refused(self):
        """What the node role refused so far: (instance, action, resource, result)."""
        return [d for d in self.decisions.all if d[3] != "Allowed"]

    # -- input

    def upload(self, modules):
        for m in modules:
            self.s3.put_object(Bucket=self.bucket, Key=m.source_key, Body=m.source())
            self.s3.put_object(Bucket=self.bucket, Key=m.easyconfig_key, Body=m.easyconfig().encode())

    # -- executions

    def start(self, input, name=None):
        """Start a run (an execution of the pipeline); its name."""
        self.runs += 1
        name = name or f"e2e-{self.runs}-{int(time.time())}"
        self.sfn.start_execution(stateMachineArn=PIPELINE, name=name, input=json.dumps(input))
        return name

    def finish(self, name, timeout=1500):
        """Wait for run `name` to end: {name, status, output, error, cause,
        executions: every execution it started, directly or not}."""
        arn = f"{PIPELINE.replace(':stateMachine:', ':execution:')}:{name}"
        deadline = time.monotonic() + timeout
        while True:
            d = self.sfn.describe_execution(executionArn=arn)
            if d["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: still running after {timeout} s")
            time.sleep(0.5)
        # A platform reports before its last states end: let them.
        mine = self.executions(name)
        for _ in range(100):
            if all(x["status"] != "RUNNING" for x in mine):
                break
            time.sleep(0.2)
            mine = self.executions(name)
        return {
            "name": name,
            "status": d["status"],
            "output": json.loads(d["output"]) if "output" in d else None,
            "error": d.get("error"),
            "cause": d.get("cause"),
            "executions": mine,
        }

    def execute(self, input, name=None):
        return self.finish(self.start(input, name))

    def executions(self, run=None):
        """Every execution of the local service (of run `run`): name,
        state machine, status, history events."""
        req = urllib.request.Request(
            self.sfn_endpoint, data=b"{}", method="POST",
            headers={"X-Amz-Target": "Ebfleet.Executions", "Content-Type": "application/x-amz-json-1.0"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            xs = json.loads(r.read())["executions"]
        if run is None:
            return xs
        return [x for x in xs if x["name"] == run or (x.get("input") or {}).get("execution") == run]

    def invoke(self, function, payload):
        url = f"http://127.0.0.1:{self.invoke_port}/2015-03-31/functions/{function}/invocations"
        req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read())

    def stack(self):
        """The name of a CloudFormation stack (in moto) whose outputs name
        the resources, as infra/template.yaml's do."""
        name = "ebfleet-e2e"
        cfn = aws().client("cloudformation")
        try:
            cfn.describe_stacks(StackName=name)
        except cfn.exceptions.ClientError:
            outputs = {"BucketName": self.bucket, "TableName": self.table, "StateMachineArn": PIPELINE,
                       "SigningKeyArn": env("EBFLEET_SIGNING_KEY")}
            cfn.create_stack(StackName=name, TemplateBody=json.dumps({
                "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {k: {"Value": v} for k, v in outputs.items()},
            }))
        return name

    # -- what is there afterwards

    def records(self, platform):
        """module -> item (plain values) of a platform."""
        items = self.ddb.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"PLATFORM#{platform}"}},
            ConsistentRead=True,
        )["Items"]
        plain = lambda v: v.get("S", v.get("N"))  # noqa: E731
        return {i["sk"]["S"].removeprefix("MODULE#"): {k: plain(v) for k, v in i.items()} for i in items}

    def versions(self, prefix):
        """key -> number of versions written under `prefix`."""
        out = {}
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix):
            for v in page.get("Versions", []):
                out[v["Key"]] = out.get(v["Key"], 0) + 1
        return out

    def json_object(self, key):
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def instances(self, execution=None):
        """instance id -> (state, platform) of every instance (of an execution)."""
        filters = [{"Name": "tag:ebfleet:execution", "Values": [execution]}] if execution else []
        out = {}
        for r in self.ec2.describe_instances(Filters=filters)["Reservations"]:
            for i in r["Instances"]:
                tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
                out[i["InstanceId"]] = (i["State"]["Name"], tags.get("ebfleet:platform"))
        return out

    def pools(self, execution):
        """The Auto Scaling groups of an execution still there."""
        groups = self.asg.describe_auto_scaling_groups()["AutoScalingGroups"]
        return [g["AutoScalingGroupName"] for g in groups if execution in g["AutoScalingGroupName"]]

    def manifests(self, platform, execution):
        prefix = f"{platform}/manifests/{execution}/"
        return [self.json_object(k) for k in sorted(self.versions(prefix))]


# -------------------------------------------------------------- assertions


def succeeded(r):
    if r["status"] != "SUCCEEDED":
        failed = [f"{x['name']}: {x.get('error')}: {(x.get('cause') or '')[:300]}" for x in r["executions"] if x["status"] == "FAILED"]
        raise AssertionError(f"{r['name']}: {r['status']} {r.get('error')}: {r.get('cause')}\nfailed: {failed[:6]}")
    return r["output"]


def platform_summary(output, platform):
    every = [q for p in output["platforms"] for q in [p] + p.get("overlays", [])]
    for p in every:
        if p.get("platform") == platform:
            assert not p.get("failed"), f"{platform} failed: {p}"
            return p
    raise AssertionError(f"no summary for {platform} in {json.dumps(output)[:2000]}")


def units_of(r, platform):
    """The unit executions of `platform` in run `r`."""
    return [x for x in r["executions"] if x["stateMachine"] == "ebfleet-unit" and x["input"]["platform"] == platform]


def within_history_limit(r):
    """No execution of the run came near AWS's history limit, and every one ended."""
    for x in r["executions"]:
        assert x["status"] != "RUNNING", f"{x['name']} still running after its run ended"
        assert x["events"] < HISTORY_LIMIT // 10, f"{x['name']}: {x['events']} history events"


def released(w, execution):
    """Every instance the run started is terminated and its pools are gone."""
    mine = w.instances(execution)
    running = {i: s for i, (s, _) in mine.items() if s not in ("terminated", "shutting-down")}
    assert not running, f"{execution}: instances left running: {running}"
    assert not w.pools(execution), f"{execution}: pools left: {w.pools(execution)}"
    return mine


def built_once(w, platform, modules, execution=None):
    """Every module built on `platform`, recorded once, one tarball and one
    module file written exactly once."""
    recs = w.records(platform)
    tarballs = w.versions(f"{platform}/software/")
    module_files = w.versions(f"{platform}/modules/")
    for m in modules:
        r = recs.get(m.module)
        assert r, f"{platform}: {m.module} has no record"
        assert r["status"] == "built", f"{platform}: {m.module} is {r['status']}: {r.get('error_message')}"
        assert r["attempts"] == "1", f"{platform}: {m.module} attempted {r['attempts']} times"
        if execution:
            assert r["execution"] == execution, f"{platform}: {m.module} built by {r['execution']}"
        sha = hashlib.sha256(m.easyconfig().encode()).hexdigest()
        assert r["easyconfig_sha256"] == sha, f"{platform}: {m.module} recorded from another easyconfig"
        assert "lease_owner" not in r, f"{platform}: {m.module} still leased to {r['lease_owner']}"
        key = r["tarball_key"]
        assert tarballs.get(key) == 1, f"{platform}: {key} written {tarballs.get(key, 0)} times"
        head = w.s3.head_object(Bucket=w.bucket, Key=key)
        assert head["ContentLength"] == int(r["tarball_size"]), f"{key}: size differs from its record"
        assert head["Metadata"].get("sha256") == r["tarball_sha256"], f"{key}: sha256 differs from its record"
        assert module_files.get(r["module_file_key"]) == 1, f"{platform}: {r['module_file_key']} not written once"
    return recs


def after_its_dependencies(w, platform, execution, modules):
    """Each module's unit started after every dependency's ended (by their
    manifests), when both were built by `execution`."""
    when = {e["module"]: (m["started"], m["finished"]) for m in w.manifests(platform, execution) for e in m["modules"]}
    for m in modules:
        for d in m.deps:
            if m.module in when and d.module in when:
                assert when[m.module][0] >= when[d.module][1], f"{platform}: {m.module} started before {d.module} ended: {when}"


# --------------------------------------------------------------- scenarios

SCENARIOS = []


def scenario(f):
    SCENARIOS.append(f)
    return f


@scenario
def happy_path(w):
    """Two platforms, one unit per module: every module recorded once and
    signed, tarballs, module files and a manifest per unit in S3, each platform
    across several executions (its ticks), every instance terminated and
    every pool deleted."""
    w.upload(fx.STACK)
    r = w.execute({"platforms": [A, B]})
    out = succeeded(r)
    within_history_limit(r)
    for p in (A, B):
        s = platform_summary(out, p)
        assert s["units"]["built"] == len(fx.STACK) and s["units"]["failed"] == 0, f"{p}: {s}"
        assert 1 <= s["nodes_max"] <= NODES, f"{p}: {s}"
        recs = built_once(w, p, fx.STACK, r["name"])
        after_its_dependencies(w, p, r["name"], fx.STACK)
        # Every need a unit file names, built in this run, carries the
        # tarball sha256 its record holds: its node takes no other.
        listed = w.s3.list_objects_v2(Bucket=w.bucket, Prefix=f"plans/{r['name']}/{p}/")["Contents"]
        unit_files = [o["Key"] for o in listed if re.fullmatch(r"\d+\.json", o["Key"].rsplit("/", 1)[1])]
        needs = [n for k in unit_files for n in w.json_object(k)["needs"]]
        assert needs, f"{p}: no unit file names a need"
        for n in needs:
            assert n.get("tarball_sha256") == recs[n["module"]]["tarball_sha256"], f"{p}: {n}"
        # Every built record is signed.
        assert all(rec.get("tarball_signature") for rec in recs.values()), f"{p}: unsigned records"
        manifests = w.manifests(p, r["name"])
        assert sorted(e["module"] for m in manifests for e in m["modules"]) == sorted(m.module for m in fx.STACK)
        assert all(len(m["modules"]) == 1 for m in manifests), f"{p}: a manifest of more than one module"
        units = units_of(r, p)
        assert sorted(x["input"]["module"] for x in units) == sorted(m.module for m in fx.STACK), f"{p}: units {units}"
        generations = [x["name"] for x in r["executions"] if x["stateMachine"] == "ebfleet-platform" and x["input"]["platform"] == p]
        assert len(generations) >= 2, f"{p}: one platform execution ({generations}); it goes on after {TICKS} ticks"
    # A need a node did not build itself is synced: its signature checked
    # with the key first, through the node role's kms:Verify.
    assert any(d[1] == "kms:Verify" and d[3] == "Allowed" for d in w.decisions.all), "no node verified a signature"
    mine = released(w, r["name"])
    assert {p for _, p in mine.values()} == {A, B}, f"instances: {mine}"
    assert w.versions(f"plans/{r['name']}/plan.json"), "no plan written"
    # The run's summary, stored: node time per platform, in S3 and the table.
    summary = w.json_object(f"plans/{r['name']}/summary.json")
    by_platform = {p["platform"]: p for p in summary["platforms"]}
    for p in (A, B):
        assert by_platform[p]["instance_hours"] > 0, f"{p}: {by_platform[p]}"
        types = by_platform[p]["cost"]["types"]
        assert types and all(t["instance_type"] for t in types), f"{p}: node time of no instance type: {types}"
    item = w.ddb.get_item(TableName=w.table, Key={"pk": {"S": f"RUN#{r['name']}"}, "sk": {"S": "SUMMARY"}}, ConsistentRead=True)
    assert abs(float(item["Item"]["instance_hours"]["N"]) - summary["instance_hours"]) < 1e-5, item["Item"]


@scenario
def nothing_new(w):
    """A second run over the same easyconfigs starts no instance, no pool,
    no platform."""
    before = w.instances()
    r = w.execute({"platforms": [A, B]})
    out = succeeded(r)
    assert w.instances() == before, "an instance was started"
    assert [x["name"] for x in r["executions"]] == [r["name"]], f"started {[x['name'] for x in r['executions']]}"
    assert out["nothing_to_do"] is True or all(p.get("up_to_date") for p in out["platforms"]), out


@scenario
def two_at_once(w):
    """Two runs for the same platform at the same time: leases keep every
    module built exactly once."""
    w.upload(fx.STACK)
    first, second = w.start({"platforms": [C]}), w.start({"platforms": [C]})
    r1, r2 = w.finish(first), w.finish(second)
    o1, o2 = succeeded(r1), succeeded(r2)
    for o in (o1, o2):
        assert platform_summary(o, C)["units"]["built"] == len(fx.STACK), f"{C}: {o}"
    recs = built_once(w, C, fx.STACK)
    assert {recs[m.module]["execution"] for m in fx.STACK} <= {first, second}
    # They met: a unit of one found the other's lease, or its build done.
    outcomes = [x["output"]["outcome"] for r in (r1, r2) for x in units_of(r, C)]
    assert {"held", "already_built"} & set(outcomes), f"the runs never met: {outcomes}"
    released(w, first)
    released(w, second)


@scenario
def overlapping_builds(w):
    """Six independent modules and one on top of them (a run of the changed
    easyconfigs only), three nodes: builds run at once on different nodes,
    the top one after all of them, each module once."""
    w.upload(fx.FAN)
    before = len(w.nodes.commands("build"))
    r = w.execute({"platforms": [C], "changed_keys": [m.easyconfig_key for m in fx.FAN]})
    succeeded(r)
    within_history_limit(r)
    built_once(w, C, fx.FAN, r["name"])
    after_its_dependencies(w, C, r["name"], fx.FAN)
    builds = [c for c in w.nodes.commands("build")[before:] if c.params["platform"] == C]
    edges = sorted([(c.started, 1) for c in builds] + [(c.ended, -1) for c in builds])
    most = now = 0
    for _, d in edges:
        now += d
        most = max(most, now)
    nodes = {c.instance_id for c in builds}
    assert most >= 2, f"{C}: at most {most} build at once on {len(nodes)} node(s)"
    assert len(nodes) >= 2 and len(nodes) <= NODES + 1, f"{C}: builds on {len(nodes)} nodes"
    released(w, r["name"])


@scenario
def node_lost(w):
    """A node is reclaimed in the middle of a build while two other nodes
    build: only its module runs again, on another node (which syncs what it
    needs); the two builds beside it finish where they are, nothing is
    built twice."""
    w.upload(fx.STACK + fx.FAN)
    victim = {}

    def lose(step, params, instance):
        if step != "build" or params["platform"] != D or victim:
            return False
        beside = [c for c in w.nodes.commands("build")
                  if c.params["platform"] == D and c.ended is None and c.instance_id != instance]
        if len({c.instance_id for c in beside}) < 2:
            return False
        victim.update(module=unit_module(w, params), instance=instance, beside=beside)
        return True

    w.nodes.lose = lose
    try:
        r = w.execute({"platforms": [D]})
    finally:
        w.nodes.lose = None
    succeeded(r)
    within_history_limit(r)
    modules = fx.STACK + fx.FAN
    built_once(w, D, modules, r["name"])
    after_its_dependencies(w, D, r["name"], modules)
    assert victim, f"{D}: never three builds at once: no node lost"
    units = units_of(r, D)
    tries = {m.module: [x for x in units if x["input"]["module"] == m.module] for m in modules}
    redone = {m: len(t) for m, t in tries.items() if len(t) != 1}
    assert redone == {victim["module"]: 2}, f"unit executions other than one: {redone}"
    on = {x["input"]["attempt"]: x["input"]["instance_id"] for x in tries[victim["module"]]}
    assert set(on) == {1, 2}, f"{victim['module']}: attempts {on}"
    assert on[1] == victim["instance"] and on[2] != victim["instance"], f"tried again on the lost node: {on}"
    for c in victim["beside"]:
        assert not c.lost and c.exit_code == 0, f"the build beside on {c.instance_id} did not finish: {c.exit_code}"
    lost = [i for i in w.nodes.lost if w.instances(r["name"]).get(i)]
    assert lost == [victim["instance"]], f"lost {lost}"
    released(w, r["name"])


def unit_module(w, params):
    """The module a step's unit file builds."""
    return w.json_object(params["batchKey"])["builds"][0]["module"]


@scenario
def new_easyconfig(w):
    """A new easyconfig lands in the bucket: the trigger starts a run that
    plans only it (its dependency is built) on every platform."""
    w.upload([fx.EPSILON])
    event = {
        "version": "0",
        "id": "e2e-object-created",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{w.bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": w.bucket},
            "object": {"key": fx.EPSILON.easyconfig_key, "size": 1, "etag": "0", "sequencer": "1"},
            "reason": "PutObject",
        },
    }
    started = w.invoke("trigger", event)
    running = w.sfn.list_executions(stateMachineArn=PIPELINE, statusFilter="RUNNING")["executions"]
    assert len(running) == 1, f"trigger {started}: {len(running)} runs running"
    desc = w.sfn.describe_execution(executionArn=running[0]["executionArn"])
    assert json.loads(desc["input"]).get("changed_keys") == [fx.EPSILON.easyconfig_key], f"trigger input {desc['input']}"
    r = w.finish(desc["name"])
    out = succeeded(r)
    for p in (A, B, C, D):
        s = platform_summary(out, p)
        assert s["units"]["built"] == 1, f"{p}: built {s['units']}, expected epsilon only"
        recs = built_once(w, p, [fx.EPSILON], r["name"])
        alpha = recs[fx.ALPHA.module]
        assert alpha["execution"] != r["name"], f"{p}: alpha rebuilt"
        assert w.versions(alpha["tarball_key"])[alpha["tarball_key"]] == 1
    released(w, r["name"])


@scenario
def gpu_overlay(w):
    """A CUDA overlay's run: its base builds what the CUDA module needs
    first; the overlay builds only the CUDA modules, on CPU-only types of
    its base's generation, into its layer, with alpha synced from the
    base's prefix."""
    work = fx.CUDA_WORK + [fx.CUDA_ON_BROKEN]
    w.upload([fx.ALPHA, fx.BROKEN] + work)
    r = w.execute({"platforms": [E], "changed_keys": [m.easyconfig_key for m in work]})
    out = succeeded(r)
    # The overlay ran in its base's iteration, after it.
    base_entry = next(p for p in out["platforms"] if p["platform"] == C)
    assert [o["platform"] for o in base_entry["overlays"]] == [E], base_entry
    s = platform_summary(out, E)
    # The unit that needs what the base failed to build is held: not built.
    assert s["units"]["built"] == len(fx.CUDA_WORK) and s["units"]["failed"] == 1, s
    recs = built_once(w, E, fx.CUDA_WORK, r["name"])
    assert sorted(x["input"]["module"] for x in units_of(r, E)) == sorted(m.module for m in fx.CUDA_WORK)
    # alpha is the base's: built there (by this run or before), never here.
    assert fx.ALPHA.module not in w.records(E), "alpha recorded on the overlay"
    base = w.records(C)
    assert base[fx.ALPHA.module]["status"] == "built"
    # Laid over the base: alpha's tarball is the one its base record holds;
    # what needs broken, which the base failed to build, is skipped with
    # why, and no node was started for it.
    graph = w.json_object(f"plans/{r['name']}/{E}/graph.json")
    alpha = next(m for m in graph["modules"] if m["module"] == fx.ALPHA.module)
    assert alpha.get("from_base") and alpha["tarball_sha256"] == base[fx.ALPHA.module]["tarball_sha256"], alpha
    assert base[fx.BROKEN.module]["status"] == "failed", base[fx.BROKEN.module]
    skipped = w.records(E)[fx.CUDA_ON_BROKEN.module]
    assert skipped["status"] == "planned" and skipped.get("error_class") == "dependency_failed", skipped
    assert f"{fx.BROKEN.module} from its base platform {C}" in skipped.get("error_message", ""), skipped
    assert fx.CUDA_ON_BROKEN.module not in [x["input"]["module"] for x in units_of(r, E)]
    assert not any(fx.CUDA_APP.module == m for m in w.records(C)), "CUDA work on the base"
    gpu_families = set(tomllib.loads(SHIPPED_PLATFORMS.read_text())["gpu"][GPU]["families"])
    for m in fx.CUDA_WORK:
        rec = recs[m.module]
        family = rec["instance_type"].split(".")[0]
        assert family not in gpu_families, f"{m.module} built on {rec['instance_type']}, a GPU type"
        head = w.s3.head_object(Bucket=w.bucket, Key=rec["tarball_key"])
        assert head["Metadata"]["installpath"].endswith("/accel/nvidia/cc90"), head["Metadata"]
    # Compiled for the platform's compute capability on a GPU-less node,
    # as EasyBuild's own CUDA sanity check (with the fake cuobjdump) says.
    logs = w.s3.list_objects_v2(Bucket=w.bucket, Prefix=f"{E}/logs/{fx.CUDA_APP.name}/{fx.CUDA_APP.version}/")
    text = ""
    for o in logs.get("Contents", []):
        body = w.s3.get_object(Bucket=w.bucket, Key=o["Key"])["Body"].read()
        text += (gzip.decompress(body) if o["Key"].endswith(".gz") else body).decode(errors="replace")
    checked = re.search(r"Number of CUDA files checked: (\d+)", text)
    assert checked and int(checked.group(1)) >= 1, f"no CUDA sanity check in {[o['Key'] for o in logs.get('Contents', [])]}"
    assert "Number of files missing one or more CUDA Compute Capabilities: 0" in text
    released(w, r["name"])


@scenario
def failing_build(w):
    """A build fails: its dependent is skipped with the reason, the
    independent module is still built, everything released."""
    w.upload(fx.FAILING)
    r = w.execute({"platforms": [A], "changed_keys": [m.easyconfig_key for m in fx.FAILING]})
    out = succeeded(r)
    s = platform_summary(out, A)
    units = s["units"]
    assert (units["built"], units["failed"], units["skipped"]) == (1, 1, 1), f"{A}: {s}"
    recs = w.records(A)
    broken = recs[fx.BROKEN.module]
    assert broken["status"] == "failed" and broken["error_class"] == "compile_error", f"broken: {broken}"
    assert broken.get("error_log_key", "").startswith(f"{A}/logs/broken/1.0/"), f"broken: {broken}"
    assert w.versions(broken["error_log_key"]), "the failed build's log is not in S3"
    built_once(w, A, [fx.SOLO], r["name"])
    assert recs.get(fx.DEPENDENT.module, {}).get("status") != "built", f"dependent: {recs.get(fx.DEPENDENT.module)}"
    assert fx.DEPENDENT.module not in [x["input"]["module"] for x in units_of(r, A)], "the dependent was dispatched"
    assert not w.versions(f"{A}/software/broken/"), "a tarball of the failed build was published"
    released(w, r["name"])


@scenario
def hostile_build(w):
    """A build that tries to write, with its node's credentials, a new
    easyconfig (which would start builds of its code everywhere), another
    platform's tarball and that platform's record of it. As the build user
    bootstrap.sh sets up, it finds no credentials: not in its environment,
    not in any process above it. With them leaked (eb as the agent, as on
    a node set up without a build user) the node role refuses every write
    (the policy as simulated, at the node's endpoint). Either way nothing
    changes in S3 or DynamoDB, and the module is recorded failed with its
    build's error. Needs happy_path's alpha on A."""
    tarball = f"{A}/software/{fx.ALPHA.module}.tar.zst"
    key = {"pk": f"PLATFORM#{A}", "sk": f"MODULE#{fx.ALPHA.module}"}
    easyconfig = "easyconfigs/h/hostile/hostile-9.9.eb"
    targets = [("s3", easyconfig), ("s3", tarball), ("dynamodb", key)]
    item = lambda: w.ddb.get_item(  # noqa: E731
        TableName=w.table, Key={k: {"S": v} for k, v in key.items()}, ConsistentRead=True).get("Item")
    before = (w.versions(tarball), item())
    assert before[0] and before[1], f"nothing of {A}'s {fx.ALPHA.module} to attack: run happy_path first"

    def attack(hostile, build_users):
        """Build `hostile` on B; its failed build's log."""
        w.upload([hostile])
        w.nodes.build_users = build_users
        try:
            r = w.execute({"platforms": [B], "changed_keys": [hostile.easyconfig_key]})
        finally:
            w.nodes.build_users = True
        s = platform_summary(succeeded(r), B)
        assert (s["units"]["built"], s["units"]["failed"]) == (0, 1), f"{B}: {s}"
        rec = w.records(B)[hostile.module]
        assert rec["status"] == "failed" and rec["error_class"] == "compile_error", f"hostile: {rec}"
        assert not w.versions(f"{B}/software/hostile/"), "the hostile build published a tarball"
        assert not w.versions(easyconfig), "the easyconfig was written"
        assert (w.versions(tarball), item()) == before, "the other platform's tarball or record changed"
        released(w, r["name"])
        return w.s3.get_object(Bucket=w.bucket, Key=rec["error_log_key"])["Body"].read().decode()

    # As the build user: no credentials anywhere it can look, so no call.
    mark = len(w.decisions.all)
    log = attack(fx.Module("hostile", attack=targets), build_users=True)
    assert f"attack: running as {BUILD_USER_PREFIX}" in log, log[-2000:]
    assert "attack: no credentials found" in log, log[-2000:]
    assert not re.findall(r"attack: (.+): HTTP", log), log[-2000:]
    touched = [d for d in w.decisions.all[mark:] if easyconfig in d[2] or d[1].startswith("dynamodb:Put")]
    assert not touched, touched

    # Leaked: every write reaches the node role, which refuses it.
    mark = len(w.decisions.all)
    log = attack(fx.Module("hostile", version="2.0", attack=targets), build_users=False)
    assert "attack: running as root" in log, log[-2000:]
    answers = re.findall(r"attack: (.+): HTTP (\d+)", log)
    assert [a for a, _ in answers] == [f"PUT s3 {easyconfig}", f"PUT s3 {tarball}", f"PutItem {key['sk']}"], log[-2000:]
    assert [c for _, c in answers] == ["403", "403", "400"], answers
    refused = [(a, res.rsplit(":", 1)[-1] if a.startswith("dynamodb") else res.split("/", 1)[1], result)
               for _, a, res, result in w.decisions.all[mark:] if result != "Allowed"]
    assert refused == [
        ("s3:PutObject", easyconfig, "ExplicitlyDenied"),
        ("s3:PutObject", tarball, "ImplicitlyDenied"),
        ("dynamodb:PutItem", "table/ebfleet-table", "ImplicitlyDenied"),
    ], refused
    w.checked = len(w.decisions.all)


@scenario
def failure_memory(w):
    """A compile failure is not built again while nothing it is built from
    changed. A run with retry_failed builds it (and it fails again); the
    next run dispatches no unit for it, counts it failed and its dependent
    skipped (recorded as blocked), and builds what else is new."""
    w.upload(fx.FAILING + [fx.THETA])
    keys = [m.easyconfig_key for m in fx.FAILING]
    r = w.execute({"platforms": [A], "changed_keys": keys, "retry_failed": True})
    succeeded(r)
    assert fx.BROKEN.module in [x["input"]["module"] for x in units_of(r, A)], "retry_failed: broken not tried"
    before = w.records(A)[fx.BROKEN.module]
    assert (before["status"], before.get("error_class")) == ("failed", "compile_error"), before
    r = w.execute({"platforms": [A], "changed_keys": keys + [fx.THETA.easyconfig_key]})
    out = succeeded(r)
    units = platform_summary(out, A)["units"]
    assert (units["built"], units["failed"], units["skipped"]) == (1, 1, 1), units
    tried = [x["input"]["module"] for x in units_of(r, A)]
    assert tried == [fx.THETA.module], f"dispatched {tried}"
    after = w.records(A)
    assert after[fx.BROKEN.module]["attempts"] == before["attempts"], "broken was attempted again"
    assert after[fx.DEPENDENT.module].get("error_class") == "dependency_failed", after[fx.DEPENDENT.module]
    graph = w.json_object(f"plans/{r['name']}/{A}/graph.json")
    held = [m["module"] for m in graph["modules"] if m.get("held")]
    assert held == [fx.BROKEN.module], held
    released(w, r["name"])


@scenario
def retry_by_error_class(w):
    """A build that runs out of memory with 4 parallel jobs is tried again
    at once with half as many and is recorded built; the scheduler's
    retry table (crates/ebfleet-scheduler/src/retry.rs) decides."""
    w.upload([fx.HUNGRY])
    r = w.execute({"platforms": [A], "changed_keys": [fx.HUNGRY.easyconfig_key]})
    out = succeeded(r)
    units = platform_summary(out, A)["units"]
    assert (units["built"], units["failed"]) == (1, 0), units
    tries = [x for x in units_of(r, A) if x["input"]["module"] == fx.HUNGRY.module]
    assert len(tries) == 2, f"tried {len(tries)} times"
    assert w.json_object(tries[-1]["input"]["unit_key"]).get("jobs_halved") == 1, "the retry asked for no fewer jobs"
    rec = w.records(A)[fx.HUNGRY.module]
    assert (rec["status"], rec["attempts"], rec.get("error_class")) == ("built", "1", None), rec
    built_once(w, A, [fx.HUNGRY], r["name"])
    released(w, r["name"])


@scenario
def sizing_from_durations(w):
    """What a build used is recorded (its largest process, its CPU time)
    and sizes the next run: a serial build holding 300 MiB, built on a
    default node (8-32 vCPUs), is followed by its next version, whose pool
    is of 2-4 vCPU types (one CPU was busy), whose estimate is the recorded
    duration and whose unit file caps its jobs by the recorded memory."""
    w.upload([fx.SERIAL])
    r1 = w.execute({"platforms": [C], "changed_keys": [fx.SERIAL.easyconfig_key]})
    succeeded(r1)
    first = w.records(C)[fx.SERIAL.module]
    assert first["status"] == "built", first
    assert int(first["peak_memory_mib"]) >= 300, f"the 300 MiB process was not seen: {first}"
    assert int(first["cpu_s"]) >= 1 and int(first["cpus"]) >= 1, first
    w.upload([fx.SERIAL_NEXT])
    r2 = w.execute({"platforms": [C], "changed_keys": [fx.SERIAL_NEXT.easyconfig_key]})
    succeeded(r2)
    second = w.records(C)[fx.SERIAL_NEXT.module]
    assert second["status"] == "built", second

    def vcpus(instance_type):
        info = w.ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"][0]
        return info["VCpuInfo"]["DefaultVCpus"]

    before, after = vcpus(first["instance_type"]), vcpus(second["instance_type"])
    assert before >= 8, f"the first build (nothing recorded) ran on {first['instance_type']}"
    assert after <= 4, f"the serial build's next version ran on {second['instance_type']} ({after} vCPUs)"
    graph = w.json_object(f"plans/{r2['name']}/{C}/graph.json")
    [unit] = [m for m in graph["modules"] if m["module"] == fx.SERIAL_NEXT.module]
    assert unit["estimate_s"] == int(first["duration_s"]), f"estimate {unit['estimate_s']}, recorded {first['duration_s']}"
    assert unit["profile"]["peak_memory_mib"] == int(first["peak_memory_mib"]), unit
    [x] = units_of(r2, C)
    per_job = w.json_object(x["input"]["unit_key"])["builds"][0]["memory_per_job_mib"]
    assert per_job >= int(first["peak_memory_mib"]) * 3 // 2, f"{per_job} MiB a job for a {first['peak_memory_mib']} MiB process"
    released(w, r1["name"])
    released(w, r2["name"])


@scenario
def lost_for_good(w):
    """Every node a module runs on is lost: after NODE_ATTEMPTS nodes it is
    recorded failed (node_lost), its dependent is skipped, the independent
    module is built, the run still succeeds and releases everything."""
    w.upload(fx.FAILING)
    w.nodes.lose = lambda step, params, instance: (
        step == "build" and params["platform"] == B and unit_module(w, params) == fx.SOLO.module
    )
    try:
        r = w.execute({"platforms": [B], "changed_keys": [m.easyconfig_key for m in fx.FAILING]})
    finally:
        w.nodes.lose = None
    out = succeeded(r)
    units = platform_summary(out, B)["units"]
    recs = w.records(B)
    solo = recs[fx.SOLO.module]
    assert (solo["status"], solo.get("error_class")) == ("failed", "node_lost"), f"solo: {solo}"
    assert "lease_owner" not in solo, "solo still leased"
    tries = [x for x in units_of(r, B) if x["input"]["module"] == fx.SOLO.module]
    assert len(tries) == NODE_ATTEMPTS, f"solo tried {len(tries)} times"
    assert len({x["input"]["instance_id"] for x in tries}) == NODE_ATTEMPTS, "tried twice on one node"
    assert units["failed"] >= 1, f"{B}: {units}"
    assert not w.versions(f"{B}/software/solo/"), "a lost unit published a tarball"
    released(w, r["name"])


@scenario
def aborted_run(w):
    """A run stopped by hand in the middle of a build, its platform's and
    units' executions too (everything stopped in the console): no other
    path releases it, so one sweep terminates its instances, deletes its
    pool and launch template and frees the leases its units held."""
    w.upload(fx.HALTED)
    name = f"e2e-halt-{int(time.time())}"
    stopped = []

    def stop_everything(step, params, instance):
        if step == "build" and not stopped:
            for sm in (UNIT, PLATFORM, PIPELINE):
                for x in w.sfn.list_executions(stateMachineArn=sm, statusFilter="RUNNING")["executions"]:
                    if x["name"].startswith(name):
                        w.sfn.stop_execution(executionArn=x["executionArn"], cause="stopped by hand (e2e)")
                        stopped.append(x["name"])
        return False

    w.nodes.lose = stop_everything
    try:
        r = w.finish(w.start({"platforms": [A], "changed_keys": [m.easyconfig_key for m in fx.HALTED]}, name))
    finally:
        w.nodes.lose = None
    assert r["status"] == "ABORTED", r["status"]
    # The build the stop met finishes on its node, its task gone.
    deadline = time.monotonic() + 300
    while any(c.ended is None for c in w.nodes.commands()) and time.monotonic() < deadline:
        time.sleep(0.5)
    live = {i: s for i, (s, _) in w.instances(name).items() if s != "terminated"}
    leased = [m for m, rec in w.records(A).items() if rec.get("lease_owner", "").startswith(f"{name}#")]
    assert live and w.pools(name) and leased, f"nothing left to sweep: {live} {w.pools(name)} {leased}"
    out = w.invoke("sweep", {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})
    [swept] = [x for x in out["swept"] if x["execution"] == name]
    assert swept["status"] == "ABORTED" and swept["leases_freed"] == len(leased), swept
    assert sorted(swept["released"]["terminated"]) == sorted(live), (swept, live)
    assert all(s == "terminated" for s, _ in w.instances(name).values()), w.instances(name)
    assert not w.pools(name), w.pools(name)
    still = [m for m, rec in w.records(A).items() if rec.get("lease_owner", "").startswith(f"{name}#")]
    assert not still, f"leases of {name} left: {still}"
    assert all(w.records(A)[m]["status"] != "building" for m in leased), "a freed module still building"


def cli(w, *args, ok=(0,), environ=None):
    """Run the `ebfleet` command against the stack; (exit code, stdout)."""
    p = subprocess.run([env("EBFLEET_CLI_BIN"), *args, "--stack", w.stack()], capture_output=True, text=True,
                       timeout=900, env=environ)
    assert p.returncode in ok, f"ebfleet {' '.join(args)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.returncode, p.stdout


@scenario
def operator(w):
    """An operator's day with the `ebfleet` command, the stack found by its
    CloudFormation outputs: `run --wait` with the planner's options (only
    the included software is planned), `status` in every output format,
    `logs` of the failed build, `pull` of a module and what its module file
    loads (which then loads with Lmod and runs), `report` (a page checked
    in headless Chromium)."""
    w.upload(fx.STACK + fx.FAILING + [fx.ZETA, fx.ETA])
    # broken failed before from the same inputs: --retry-failed builds it again.
    code, out = cli(w, "run", "--platform", A, "--include", "zeta", "--include", "BROKEN", "--include", "dependent",
                    "--retry-failed", "--wait", "--poll", "1", "--output", "json", ok=(1,))
    s = json.loads(out)
    assert s["status"] == "SUCCEEDED", s
    [p] = s["platforms"]
    states = {m["module"]: m["state"] for m in p["modules"]}
    assert states == {fx.ZETA.module: "built", fx.BROKEN.module: "failed", fx.DEPENDENT.module: "skipped"}, states
    assert fx.ETA.module not in w.records(A), "eta was not included, yet built"
    broken = next(m for m in p["modules"] if m["module"] == fx.BROKEN.module)
    assert broken["error_class"] == "compile_error" and broken["log_key"].startswith(f"{A}/logs/broken/1.0/"), broken
    assert p["counts"]["built"] == 1 and p["build_seconds"] > 0, p
    # The same run by name, as a script reads it; the newest run is this one.
    code, text = cli(w, "status", "--execution", s["execution"], "--output", "text", ok=(1,))
    rows = [line.split("\t") for line in text.splitlines()]
    assert rows[0][:3] == ["RUN", s["execution"], "SUCCEEDED"], rows
    assert ["PLATFORM", A, "3", "1", "1", "1"] == rows[1][:6], rows
    assert {r[2] for r in rows if r[0] == "MODULE"} == {fx.BROKEN.module, fx.DEPENDENT.module}, rows
    _, table = cli(w, "status", "--last", ok=(1,))
    assert table.startswith(f"run {s['execution']}: SUCCEEDED") and "compile_error" in table, table
    # The aws CLI's habits: a named profile from the config files (and
    # nothing in the environment), a region (moto keeps one stack per region).
    profile_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS", "AWS_SECRET", "AWS_PROFILE"))}
    (w.work / "aws-config").write_text("[profile ops]\nregion = us-east-1\n")
    (w.work / "aws-credentials").write_text("[ops]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    profile_env.update(AWS_CONFIG_FILE=str(w.work / "aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(w.work / "aws-credentials"))
    _, text = cli(w, "status", "--profile", "ops", "--output", "text", ok=(1,), environ=profile_env)
    assert text.startswith(f"RUN\t{s['execution']}\t"), text
    cli(w, "status", "--region", "eu-west-1", ok=(2,))
    _, log = cli(w, "logs", fx.BROKEN.module, "--platform", A)
    assert "==> s3://" in log and "this is not C" in log, log[-2000:]
    # Pulled into the path the platform was built under, with what it loads.
    prefix = w.work / "mnt" / A
    _, pulled = cli(w, "pull", "--platform", A, fx.DELTA.module, "--prefix", str(prefix), "--output", "json")
    got = sorted(m["module"] for m in json.loads(pulled)["modules"])
    assert got == sorted(m.module for m in [fx.DELTA] + fx.DELTA.closure()), got
    run = subprocess.run(
        ["bash", "-c", f". /usr/share/lmod/lmod/init/bash && module use {prefix}/modules/all && module load {fx.DELTA.module} && delta"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0 and "delta 1.0" in run.stdout and "alpha 1.0" in run.stdout, run
    code, _ = cli(w, "pull", "--platform", A, fx.DELTA.module, "--prefix", str(w.work / "elsewhere"), ok=(2,))
    # What the next run would build and cost, from the stack's records and
    # the bucket's easyconfigs (a local copy, as `aws s3 sync` makes it).
    tree = w.work / "easyconfigs"
    for key in w.versions("easyconfigs/"):
        path = tree / key.removeprefix("easyconfigs/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(w.s3.get_object(Bucket=w.bucket, Key=key)["Body"].read())
    platforms_file = w.work / "platforms.toml"
    platforms_file.write_text(os.environ["EBFLEET_PLATFORMS_TOML"])
    _, out = cli(w, "plan", "--easyconfigs", str(tree), "--platforms-file", str(platforms_file), "--no-cache",
                 "--platform", A, "--recorded", "--estimate", "--json")
    [planned] = json.loads(out)["platforms"]
    built_on_a = {m for m, rec in w.records(A).items() if rec["status"] == "built"}
    assert planned["already_built"] == len(built_on_a & set(planned["targets"])) > 0, (planned["already_built"], built_on_a)
    assert planned["estimate"]["node_hours"] > 0, planned["estimate"]
    report = w.work / "report"
    cli(w, "report", "--execution", s["execution"], "--out", str(report))
    assert (report / "logs" / broken["log_key"]).parent.is_dir(), "the failed build's log is not beside the page"
    check = subprocess.run(
        [sys.executable, str(REPO / "tests" / "report" / "check.py"), str(report / "index.html"),
         "--platform", A, "--screenshot", str(report / "screenshot.png")],
        capture_output=True, text=True, timeout=300,
    )
    assert check.returncode == 0, f"{check.stdout}\n{check.stderr}"


def demo():
    """What an operator sees after a run: the executions, the records, the
    objects."""
    w = World()
    try:
        return _demo(w)
    finally:
        w.nodes.close()


def _demo(w):
    w.upload(fx.STACK)
    print(f"easyconfigs in s3://{w.bucket}/easyconfigs/: " + ", ".join(m.module for m in fx.STACK))
    print(f"starting a run for {A} and {B} (input {{\"platforms\": [...]}})", flush=True)
    t = time.monotonic()
    r = w.execute({"platforms": [A, B]})
    print(f"run {r['name']}: {r['status']} in {time.monotonic() - t:.0f} s, {len(r['executions'])} executions")
    if r["status"] != "SUCCEEDED":
        print(f"  {r.get('error')}: {r.get('cause')}")
        return 1
    for x in r["executions"]:
        print(f"  {x['stateMachine']:17} {x['name']:44} {x['status']:9} {x['events']:4} history events")
    for p in r["output"]["platforms"]:
        u = p.get("units", {})
        print(
            f"  {p['platform']}: built {u.get('built')}, failed {u.get('failed')}, skipped {u.get('skipped')}, "
            f"at most {p.get('nodes_max')} node(s), {p.get('instances_launched')} launched"
        )
    for p in (A, B):
        print(f"\nDynamoDB {w.table}, pk = PLATFORM#{p}:")
        for m, rec in sorted(w.records(p).items()):
            print(f"  {m:12} {rec['status']:7} {rec['tarball_key']}  {rec['tarball_size']} bytes, {rec['duration_s']} s on {rec['instance_type']}")
    print(f"\nS3 s3://{w.bucket}/ (by prefix):")
    counts = {}
    for key in w.versions(""):
        head = "/".join(key.split("/")[:2]) + "/"
        counts[head] = counts.get(head, 0) + 1
    for head, n in sorted(counts.items()):
        print(f"  {head:45} {n} object(s)")
    states = {s for s, _ in w.instances(r["name"]).values()}
    print(f"\nEC2: the run's instances are {', '.join(sorted(states))}; pools left: {w.pools(r['name']) or 'none'}")
    return 0


def test(only):
    w = World()
    failures = 0
    for f in SCENARIOS:
        if only and f.__name__ not in only:
            continue
        t = time.monotonic()
        try:
            f(w)
            # What a node does for its unit, the node role allows.
            refused = [d for d in w.decisions.all[w.checked:] if d[3] != "Allowed"]
            w.checked = len(w.decisions.all)
            assert not refused, f"the node role refused a node's own calls: {refused[:5]}"
            print(f"ok   {f.__name__} ({time.monotonic() - t:.0f} s)", flush=True)
        except AssertionError as e:
            failures += 1
            print(f"FAIL {f.__name__} ({time.monotonic() - t:.0f} s): {e}", flush=True)
    w.nodes.close()
    if failures:
        print(f"the nodes' disks and command output are kept in {w.work}", file=sys.stderr)
    else:
        shutil.rmtree(w.work, ignore_errors=True)
    return failures


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "test"
    if cmd == "setup":
        setup()
    elif cmd == "platforms":
        print(platforms_toml())
    elif cmd == "demo":
        sys.exit(demo())
    elif cmd == "test":
        sys.exit(1 if test(sys.argv[2:]) else 0)
    else:
        sys.exit(__doc__)
