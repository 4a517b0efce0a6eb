#!/usr/bin/env python3
"""The whole pipeline, locally, end to end.

statemachine/pipeline.asl.json runs in aws-local-stepfunctions (execute.mjs);
its Lambda tasks invoke the real Rust functions under `cargo lambda watch`,
which talk to a moto server for S3, DynamoDB, EC2, SSM parameters and
documents, and Step Functions. Only SSM Run Command and SSM's managed-node
list are played by this machine (nodes.py): each command the real dispatch
Lambda sent to moto runs the real `ebfleet-node`, which builds with real
EasyBuild and Lmod. `scripts/test-e2e.sh` installs and starts all of it.

    pipeline.py setup       create the stack in moto; print KEY=VALUE lines
    pipeline.py platforms   the platforms file the Lambdas get
    pipeline.py demo        one run on two platforms, and what it left
    pipeline.py test [NAME] the scenarios (they build on each other, in order)

Every scenario asserts on DynamoDB, S3 and EC2 afterwards.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
from pathlib import Path

import boto3
import yaml

import fixtures as fx
from nodes import Nodes, SsmProxy

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "template.yaml"
DEFINITION = REPO / "statemachine" / "pipeline.asl.json"
SHIPPED_PLATFORMS = REPO / "crates" / "ebfleet-core" / "data" / "platforms.toml"

# Four x86_64 platforms, so this machine can build for all of them (the
# fixtures use the SYSTEM toolchain: no -march flags).
CPUS = ["epyc-gen-4", "xeon-gen-4", "epyc-gen-3", "xeon-gen-3"]
A, B, C, D = (f"amzn-2023_{c}" for c in CPUS)
# Where capacity expects the x86_64 agent (infra/OPERATOR.md).
NODE_KEY = "tools/ebfleet-node/x86_64/ebfleet-node"


def env(name):
    v = os.environ.get(name)
    if not v:
        sys.exit(f"{name} is not set (run scripts/test-e2e.sh)")
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
        return json.dumps(v)

    out = []
    for c in CPUS:
        out.append(f"[cpu.{c}]")
        out += [f"{k} = {value(v)}" for k, v in cpus[c].items()]
        out.append("")
    for c in CPUS:
        out += ["[[platform]]", 'os = "amzn-2023"', f'cpu = "{c}"', ""]
    return "\n".join(out)


def setup():
    """The stack's resources, from infra/template.yaml where it defines
    them: bucket (versioned, so a second write of a tarball shows), table,
    the SSM document, the state machine, a subnet and a security group."""
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
    sfn = s.client("stepfunctions").create_state_machine(
        name=name,
        definition=DEFINITION.read_text(),
        roleArn="arn:aws:iam::123456789012:role/ebfleet-sfn",
    )
    # The agent the nodes would download (bootstrap.sh checks its sha256).
    node = Path(env("EBFLEET_NODE_BIN")).read_bytes()
    s3.put_object(
        Bucket=name,
        Key=NODE_KEY,
        Body=node,
        Metadata={"sha256": hashlib.sha256(node).hexdigest()},
    )
    ec2 = s.client("ec2")
    subnet = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]
    sg = ec2.create_security_group(GroupName=name, Description="no inbound", VpcId=subnet["VpcId"])
    settings = {
        "EBFLEET_BUCKET": name,
        "EBFLEET_TABLE": name,
        "EBFLEET_SSM_DOCUMENT": f"{name}-node-step",
        "EBFLEET_STATE_MACHINE_ARN": sfn["stateMachineArn"],
        "EBFLEET_INSTANCE_PROFILE_ARN": "arn:aws:iam::123456789012:instance-profile/ebfleet-node",
        "EBFLEET_SUBNET_IDS": subnet["SubnetId"],
        "EBFLEET_SECURITY_GROUP_ID": sg["GroupId"],
        "EBFLEET_MAX_BATCH_MODULES": "2",
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
        self.sfn = s.client("stepfunctions")
        self.bucket = env("EBFLEET_BUCKET")
        self.table = env("EBFLEET_TABLE")
        self.state_machine = env("EBFLEET_STATE_MACHINE_ARN")
        self.invoke_port = env("EBFLEET_LAMBDA_INVOKE_PORT")
        self.work = Path(tempfile.mkdtemp(prefix="ebfleet-e2e-"))
        self.nodes = Nodes(s, self.work, env("EBFLEET_NODE_BIN"), env("EBFLEET_EB"), self.bucket)
        self.proxy = SsmProxy(int(env("EBFLEET_SSM_PROXY_PORT")), env("EBFLEET_MOTO_ENDPOINT"), self.nodes)
        threading.Thread(target=self.proxy.serve_forever, daemon=True).start()
        self.runs = 0

    # -- input

    def upload(self, modules):
        for m in modules:
            self.s3.put_object(Bucket=self.bucket, Key=m.source_key, Body=m.source())
            self.s3.put_object(Bucket=self.bucket, Key=m.easyconfig_key, Body=m.easyconfig().encode())

    # -- executions

    def start(self, input, name=None):
        """Start one execution in the ASL interpreter; returns a handle for
        `finish`."""
        self.runs += 1
        name = name or f"e2e-{self.runs}-{int(time.time())}"
        req = self.work / f"{name}.request.json"
        req.write_text(
            json.dumps(
                {
                    "definition": str(DEFINITION),
                    "name": name,
                    "input": input,
                    "invoke_port": self.invoke_port,
                    "substitutions": {"MapConcurrency": 4, "MaxNodeAttempts": 3, "MaxInstancesPerPlatform": 6},
                    "wait_ms": 250,
                }
            )
        )
        proc = subprocess.Popen(
            [env("NODE"), str(Path(__file__).with_name("execute.mjs")), str(req)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return name, proc

    def finish(self, handle, timeout=1200):
        name, proc = handle
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(f"execute.mjs failed for {name}:\n{err[-4000:]}")
        result = json.loads(out.strip().splitlines()[-1])
        result["name"] = name
        return result

    def execute(self, input, name=None):
        return self.finish(self.start(input, name))

    def invoke(self, function, payload):
        url = f"http://127.0.0.1:{self.invoke_port}/2015-03-31/functions/{function}/invocations"
        req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read())

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

    def manifests(self, platform, execution):
        prefix = f"{platform}/manifests/{execution}/"
        keys = sorted(self.versions(prefix))
        return [self.json_object(k) for k in keys]


# -------------------------------------------------------------- assertions


def succeeded(r):
    assert r["status"] == "SUCCEEDED", f"{r['name']}: {r.get('error')}: {r.get('cause')}\ntasks: {r['tasks'][-12:]}"
    return r["output"]


def platform_summary(output, platform):
    for p in output["platforms"]:
        if p.get("platform") == platform:
            return p
    raise AssertionError(f"no summary for {platform} in {json.dumps(output)[:2000]}")


def all_terminated(w, execution):
    mine = w.instances(execution)
    running = {i: s for i, (s, _) in mine.items() if s not in ("terminated", "shutting-down")}
    assert not running, f"{execution}: instances left running: {running}"
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


# --------------------------------------------------------------- scenarios

SCENARIOS = []


def scenario(f):
    SCENARIOS.append(f)
    return f


@scenario
def happy_path(w):
    """Two platforms, two batches each: every module recorded once,
    tarballs, module files and manifests in S3, every instance terminated."""
    w.upload(fx.STACK)
    r = w.execute({"platforms": [A, B]})
    out = succeeded(r)
    for p in (A, B):
        s = platform_summary(out, p)
        assert s["built"] == len(fx.STACK) and s["failed"] == 0, f"{p}: {s}"
        assert s["batches_done"] == 2, f"{p}: {s['batches_done']} batches, expected 2 (2 modules a batch)"
        built_once(w, p, fx.STACK, r["name"])
        manifests = w.manifests(p, r["name"])
        assert [m["batch"] for m in manifests] == [0, 1], f"{p}: manifests {[m['batch'] for m in manifests]}"
        assert sorted(e["module"] for m in manifests for e in m["modules"]) == sorted(m.module for m in fx.STACK)
    mine = all_terminated(w, r["name"])
    assert sorted(p for _, p in mine.values()) == [A, B], f"one node per platform: {mine}"
    assert w.versions(f"plans/{r['name']}/plan.json"), "no plan written"


@scenario
def nothing_new(w):
    """A second run over the same easyconfigs starts no instance."""
    before = w.instances()
    r = w.execute({"platforms": [A, B]})
    out = succeeded(r)
    assert w.instances() == before, "an instance was started"
    assert not w.instances(r["name"]), "an instance is tagged with the run"
    assert "Capacity" not in [t[0] for t in r["tasks"]], f"Capacity ran: {r['tasks']}"
    assert out is not None


@scenario
def node_lost(w):
    """The node is reclaimed during batch 1's build: the batch is retried on
    a new node (which syncs batch 0's tarballs), nothing is built twice."""
    w.upload(fx.STACK)
    w.nodes.lose = lambda step, params, instance: (
        step == "build" and params["platform"] == C and params["batchKey"].endswith("/1.json") and not w.nodes.lost
    )
    try:
        r = w.execute({"platforms": [C]})
    finally:
        w.nodes.lose = None
    out = succeeded(r)
    s = platform_summary(out, C)
    assert s["nodes_started"] == 2 and s["nodes_lost"] == 1, f"{C}: {s}"
    assert s["built"] == len(fx.STACK), f"{C}: {s}"
    built_once(w, C, fx.STACK, r["name"])
    mine = all_terminated(w, r["name"])
    assert len(mine) == 2, f"{C}: {len(mine)} instances"
    # The replacement ran batch 1 from its sync on: it downloaded batch 0's
    # tarballs (alpha, beta) instead of building them again.
    second = next(i for i in mine if i not in w.nodes.lost)
    syncs = [json.loads(p.read_text()) for p in (w.work / "nodes" / second / "commands").glob("*.sync.out")]
    assert len(syncs) == 1 and syncs[0]["needs"]["downloaded"] == 2, f"{second}: syncs {syncs}"


@scenario
def two_at_once(w):
    """Two executions for the same platform at the same time: leases keep
    every module built exactly once."""
    w.upload(fx.STACK)
    first = w.start({"platforms": [D]})
    second = w.start({"platforms": [D]})
    r1, r2 = w.finish(first), w.finish(second)
    o1, o2 = succeeded(r1), succeeded(r2)
    built = platform_summary(o1, D)["built"] + platform_summary(o2, D)["built"]
    recs = built_once(w, D, fx.STACK)
    assert built == len(fx.STACK), f"{D}: {built} builds between the two runs for {len(fx.STACK)} modules"
    assert {r["execution"] for r in recs.values()} <= {r1["name"], r2["name"]}
    all_terminated(w, r1["name"])
    all_terminated(w, r2["name"])


@scenario
def new_easyconfig(w):
    """A new easyconfig lands in the bucket: the trigger starts an execution
    that plans only it (its dependency is built) on every platform."""
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
    running = w.sfn.list_executions(stateMachineArn=w.state_machine, statusFilter="RUNNING")["executions"]
    assert len(running) == 1, f"trigger {started}: {len(running)} executions running"
    desc = w.sfn.describe_execution(executionArn=running[0]["executionArn"])
    input = json.loads(desc["input"])
    assert input.get("changed_keys") == [fx.EPSILON.easyconfig_key], f"trigger input {input}"
    # moto only records the execution; the interpreter runs it, under its name.
    r = w.execute(input, name=desc["name"])
    w.sfn.stop_execution(executionArn=desc["executionArn"])
    out = succeeded(r)
    for p in (A, B, C, D):
        s = platform_summary(out, p)
        assert s["built"] == 1, f"{p}: built {s['built']}, expected epsilon only"
        recs = built_once(w, p, [fx.EPSILON], r["name"])
        assert recs[fx.ALPHA.module]["attempts"] == "1", f"{p}: alpha rebuilt"
        assert w.versions(recs[fx.ALPHA.module]["tarball_key"])[recs[fx.ALPHA.module]["tarball_key"]] == 1
    all_terminated(w, r["name"])


@scenario
def failing_build(w):
    """A build fails: its dependent is skipped with the reason, the
    independent module is still built, the instance terminated."""
    w.upload(fx.FAILING)
    r = w.execute({"platforms": [A]})
    out = succeeded(r)
    s = platform_summary(out, A)
    assert (s["built"], s["failed"], s["skipped"]) == (1, 1, 1), f"{A}: {s}"
    recs = w.records(A)
    broken = recs[fx.BROKEN.module]
    assert broken["status"] == "failed" and broken["error_class"] == "compile_error", f"broken: {broken}"
    assert broken.get("error_log_key", "").startswith(f"{A}/logs/broken/1.0/"), f"broken: {broken}"
    assert w.versions(broken["error_log_key"]), "the failed build's log is not in S3"
    built_once(w, A, [fx.SOLO], r["name"])
    assert recs[fx.DEPENDENT.module]["status"] == "planned", f"dependent: {recs[fx.DEPENDENT.module]}"
    entries = {e["module"]: e for m in w.manifests(A, r["name"]) for e in m["modules"]}
    outcome = entries[fx.DEPENDENT.module]["outcome"]
    assert outcome["status"] == "skipped" and "broken/1.0" in outcome.get("reason", ""), outcome
    assert not w.versions(f"{A}/software/broken/"), "a tarball of the failed build was published"
    all_terminated(w, r["name"])


@scenario
def batch_lost_for_good(w):
    """Every node a batch runs on is lost: after MaxNodeAttempts nodes its
    modules are recorded failed (node_lost), the next batch runs on a new
    node and skips what needed them, the run still succeeds and releases
    everything."""
    w.nodes.lose = lambda step, params, instance: (
        step == "build" and params["platform"] == B and params["batchKey"].endswith("/0.json")
    )
    try:
        r = w.execute({"platforms": [B]})
    finally:
        w.nodes.lose = None
    out = succeeded(r)
    s = platform_summary(out, B)
    assert (s["nodes_lost"], s["nodes_started"], s["batches_failed"]) == (3, 4, 1), f"{B}: {s}"
    recs = w.records(B)
    for m in (fx.BROKEN, fx.SOLO):
        rec = recs[m.module]
        assert (rec["status"], rec.get("error_class")) == ("failed", "node_lost"), f"{m.module}: {rec}"
        assert "lease_owner" not in rec, f"{m.module} still leased"
    entries = {e["module"]: e for m in w.manifests(B, r["name"]) for e in m["modules"]}
    outcome = entries[fx.DEPENDENT.module]["outcome"]
    assert outcome["status"] == "skipped" and "broken/1.0" in outcome["reason"], outcome
    assert not w.versions(f"{B}/software/solo/"), "a lost batch published a tarball"
    all_terminated(w, r["name"])


def demo():
    """What an operator sees after a run: the execution's output, the
    records, the objects."""
    w = World()
    w.upload(fx.STACK)
    print(f"easyconfigs in s3://{w.bucket}/easyconfigs/: " + ", ".join(m.module for m in fx.STACK))
    print(f"starting an execution for {A} and {B} (input {{\"platforms\": [...]}})", flush=True)
    t = time.monotonic()
    r = w.execute({"platforms": [A, B]})
    print(f"execution {r['name']}: {r['status']} in {time.monotonic() - t:.0f} s, {len(r['tasks'])} Lambda calls")
    if r["status"] != "SUCCEEDED":
        print(f"  {r.get('error')}: {r.get('cause')}")
        return 1
    for p in r["output"]["platforms"]:
        print(
            f"  {p['platform']}: built {p['built']}, failed {p['failed']}, skipped {p['skipped']}, "
            f"{p['batches_done']} batches on {p['nodes_started']} node(s) ({p['instance_type']}), instances {p['release']}"
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
    print(f"\nEC2: the run's instances are {', '.join(sorted(states))}")
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
            print(f"ok   {f.__name__} ({time.monotonic() - t:.0f} s)", flush=True)
        except AssertionError as e:
            failures += 1
            print(f"FAIL {f.__name__} ({time.monotonic() - t:.0f} s): {e}", flush=True)
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
