"""What moto cannot do of SSM, played by this machine.

moto's SSM Run Command is a stub (every command "succeeds" and runs
nothing), EventBridge does not tell anyone when a command ends, and
DescribeInstanceInformation answers HTTP 500. The Lambdas' SSM client is
pointed at `SsmProxy` (AWS_ENDPOINT_URL_SSM), which forwards every request
to moto unchanged except these:

* SendCommand: forwarded to moto (which gives the CommandId and keeps the
  command for ListCommands), then run here: the document's own
  `runCommand` lines with bash, parameters as `SSM_<name>` environment
  variables as the SSM agent passes ENV_VAR parameters (the task token
  among them: the real `ebfleet-node` beats on it and completes it against
  the local Step Functions service), the agent's path replaced by the
  locally built `ebfleet-node`, on a disk of its own per instance (a
  directory bind-mounted at the platform's root path in a private mount
  namespace: needs root, as a build node's agent has). `eb` runs as a
  build user of the instance's own (`EBFLEET_BUILD_USER`, as bootstrap.sh
  sets up), created here and deleted by `close`, with EasyBuild's venv
  bind-mounted where that user can reach it. When it ends, the
  "EC2 Command Invocation Status-change Notification" EventBridge would
  deliver goes to the dispatch Lambda.
* GetCommandInvocation: the status and output of a command run here.
* DescribeInstanceInformation: an instance is Online while moto's EC2 says
  it is running and the harness has not taken it away.

`lose` is the spot interruption: a rule that picks a command whose node is
reclaimed a moment after the command started: the command's processes
cannot reach Step Functions and are killed, the instance is terminated (in
moto), no event comes (the node is gone before it could report), and from
then on SSM no longer knows it.
"""

import http.server
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

# Where bootstrap.sh installs the agent; the document runs it by this path.
NODE_PROGRAM = "/opt/ebfleet/bin/ebfleet-node"
# How long a lost node's command runs before the node goes.
LOSE_AFTER_S = 2.0
# The build users of this harness's instances: this prefix and a number.
BUILD_USER_PREFIX = "ebfleet-e2e-"


class Run:
    """One command on one instance."""

    def __init__(self, command_id, instance_id, step, params):
        self.command_id = command_id
        self.instance_id = instance_id
        self.step = step
        self.params = params
        self.done = threading.Event()
        self.exit_code = None
        self.stdout = ""
        self.stderr = ""
        self.lost = False
        self.started = time.monotonic()
        self.ended = None


class Nodes:
    def __init__(self, aws, work, node_bin, eb, bucket, emit, endpoint):
        """`emit(event)`: deliver an SSM command event (to the dispatch
        Lambda); `endpoint(instance_id)`: the S3, DynamoDB and KMS endpoint of
        that node's calls (its gate, tests/e2e/iam_gate.py)."""
        self.ssm = aws.client("ssm")
        self.ec2 = aws.client("ec2")
        self.s3 = aws.client("s3")
        self.work = Path(work)
        self.node_bin = node_bin
        self.eb = eb
        self.bucket = bucket
        self.emit = emit
        self.endpoint = endpoint
        self.lock = threading.Lock()
        self.runs = {}
        self.lost = set()
        # (step, params, instance_id) -> bool: lose this node meanwhile.
        self.lose = None
        # Whether new instances run eb as a build user of their own (False:
        # as the agent, as a node set up without one).
        self.build_users = True
        self.users = {}
        # The build user cannot reach EasyBuild's venv where the tests
        # install it (under root's home, its Python too): each command
        # bind-mounts the venv here, and eb runs on the system's python3
        # with the venv's packages (EasyBuild is pure Python).
        self.work.chmod(0o755)
        self.eb_mount = self.work / "eb"
        self.eb_mount.mkdir(exist_ok=True)
        self.eb_venv = Path(eb).parent.parent
        site = sorted(self.eb_venv.glob("lib/python3*/site-packages"))
        assert site, f"no site-packages in {self.eb_venv}"
        self.eb_site = self.eb_mount / site[0].relative_to(self.eb_venv)

    # ------------------------------------------------------------- commands

    def sent(self, request, answer):
        """moto took a SendCommand: run it."""
        command_id = answer["Command"]["CommandId"]
        params = {k: v[0] for k, v in request.get("Parameters", {}).items()}
        doc = json.loads(self.ssm.get_document(Name=request["DocumentName"])["Content"])
        for instance_id in request["InstanceIds"]:
            run = Run(command_id, instance_id, params["step"], params)
            doomed = bool(self.lose and self.lose(run.step, params, instance_id))
            with self.lock:
                if instance_id in self.lost:
                    doomed = True
                self.runs[(command_id, instance_id)] = run
            threading.Thread(target=self._run, args=(run, doc, doomed), daemon=True).start()

    def invocation(self, command_id, instance_id):
        """GetCommandInvocation: (HTTP status, JSON body), or None: not ours."""
        with self.lock:
            run = self.runs.get((command_id, instance_id))
            if run is None:
                return None
            if run.lost or instance_id in self.lost:
                return 400, {"__type": "InvalidInstanceId", "message": f"Instance {instance_id} is terminated"}
        body = {"CommandId": command_id, "InstanceId": instance_id, "DocumentName": "", "PluginName": "ebfleetNode"}
        if not run.done.is_set():
            body.update(Status="InProgress", StatusDetails="InProgress", ResponseCode=-1)
        elif run.exit_code == 0:
            body.update(Status="Success", StatusDetails="Success", ResponseCode=0)
        else:
            body.update(Status="Failed", StatusDetails="Failed", ResponseCode=run.exit_code)
        body["StandardOutputContent"] = run.stdout[-24000:]
        body["StandardErrorContent"] = run.stderr[-8000:]
        return 200, body

    def _run(self, run, doc, doomed):
        try:
            inputs = doc["mainSteps"][0]["inputs"]
            script = "\n".join(inputs["runCommand"])
            assert NODE_PROGRAM in script, "the document no longer runs the agent"
            script = script.replace(NODE_PROGRAM, self.node_bin)
            env = dict(os.environ)
            for name, spec in doc["parameters"].items():
                if spec.get("interpolationType") == "ENV_VAR" and name in run.params:
                    env[f"SSM_{name}"] = run.params[name]
            root = self._node_root(run.instance_id, run.params)
            # Every node of a platform installs under the same path (module
            # files and RPATHs hold it), each on its own disk: the
            # instance's directory is bind-mounted there, in a mount
            # namespace of the command's own. A CUDA overlay
            # (`<os>_<cpu>_<gpu>`) installs into its layer under its base's
            # root, where its needs from the base unpack: on EC2 every node's
            # root is /opt/eb.
            disk = root / "root"
            disk.mkdir(exist_ok=True)
            base = "_".join(run.params["platform"].split("_")[:2])
            mount_point = self.work / "mnt" / base
            mount_point.mkdir(parents=True, exist_ok=True)
            env.update(
                EBFLEET_NODE_ROOT=str(mount_point),
                EBFLEET_NODE_ENV=str(root / "node.env"),
                PATH=f"{self.eb_mount / 'bin'}:{env.get('PATH', '')}",
                # S3, DynamoDB and KMS through the node role's IAM.
                AWS_ENDPOINT_URL=self.endpoint(run.instance_id),
            )
            for service in ("S3", "DYNAMODB", "KMS"):
                env.pop(f"AWS_ENDPOINT_URL_{service}", None)
            env.pop("EBFLEET_TASK_TOKEN", None)
            if doomed:
                # Whatever it gets done before it goes, it cannot tell.
                env["AWS_ENDPOINT_URL_SFN"] = "http://127.0.0.1:9"
            timeout = int(run.params.get("executionTimeout", "3600"))
            p = subprocess.Popen(
                ["unshare", "--mount", "bash", "-c",
                 'mount --bind "$0" "$1" && mount --bind "$3" "$4" && exec bash -c "$2"',
                 str(disk), str(mount_point), script, str(self.eb_venv), str(self.eb_mount)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            )
            if doomed:
                self._lose(run, p)
                return
            try:
                out, err = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                out, err = p.communicate()
            run.exit_code, run.stdout, run.stderr = p.returncode, out, err
            logs = root / "commands"
            logs.mkdir(exist_ok=True)
            (logs / f"{run.command_id}.{run.step}.out").write_text(out)
            (logs / f"{run.command_id}.{run.step}.err").write_text(err)
        except Exception as e:  # the step failed as SSM would report it
            run.exit_code, run.stderr = 1, f"harness: {e!r}"
        finally:
            run.ended = time.monotonic()
            run.done.set()
        self.emit(self._event(run, "Success" if run.exit_code == 0 else "Failed"))

    def _lose(self, run, p):
        """The node goes while the command runs: no result, no event."""
        try:
            p.wait(timeout=LOSE_AFTER_S)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.communicate()
        with self.lock:
            self.lost.add(run.instance_id)
            run.lost = True
        self.ec2.terminate_instances(InstanceIds=[run.instance_id])
        run.ended = time.monotonic()
        run.done.set()

    def _event(self, run, status):
        return {
            "version": "0",
            "id": f"e2e-{run.command_id}-{run.instance_id}",
            "detail-type": "EC2 Command Invocation Status-change Notification",
            "source": "aws.ssm",
            "account": "123456789012",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": "us-east-1",
            "resources": [f"arn:aws:ec2:us-east-1:123456789012:instance/{run.instance_id}"],
            "detail": {
                "command-id": run.command_id,
                "document-name": "",
                "instance-id": run.instance_id,
                "requested-date-time": "",
                "status": status,
            },
        }

    def _node_root(self, instance_id, params):
        """The instance's directory, with the node.env bootstrap.sh would
        write for its platform (archspec from the unit file)."""
        root = self.work / "nodes" / instance_id
        env_file = root / "node.env"
        with self.lock:
            if env_file.exists():
                return root
            root.mkdir(parents=True, exist_ok=True)
        unit = json.loads(self.s3.get_object(Bucket=self.bucket, Key=params["batchKey"])["Body"].read())
        itype = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["InstanceType"]
        user = self._build_user(instance_id) if self.build_users else None
        env_file.write_text(
            "# written by the e2e harness, as bootstrap.sh would\n"
            "LMOD_CMD=/usr/share/lmod/lmod/libexec/lmod\n"
            f"EBFLEET_EB={self.eb_mount / 'bin' / 'eb'}\n"
            "EB_PYTHON=/usr/bin/python3\n"
            f"PYTHONPATH={self.eb_site}\n"
            f"EBFLEET_ARCHSPEC={unit['archspec']}\n"
            f"EBFLEET_INSTANCE_TYPE={itype}\n"
            # What a big node would run; fx.HUNGRY runs out of "memory" at 4.
            "EASYBUILD_PARALLEL=4\n"
            + (f"EBFLEET_BUILD_USER={user}\n" if user else "")
        )
        return root

    def _build_user(self, instance_id):
        """A user of this instance's own, as bootstrap.sh makes on a node
        (the agent kills every process of it after each build: instances
        running at once must not share one)."""
        with self.lock:
            name = f"{BUILD_USER_PREFIX}{len(self.users)}"
            self.users[instance_id] = name
        home = self.work / "homes" / name
        exists = subprocess.run(["id", "-u", name], capture_output=True).returncode == 0
        if exists:  # left by a harness that did not end: its home is gone
            subprocess.run(["usermod", "--home", str(home), name], check=True, capture_output=True)
        else:
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(home),
                            "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True)
        return name

    def close(self):
        """Delete the build users."""
        for name in self.users.values():
            subprocess.run(["userdel", name], capture_output=True)
        self.users = {}

    # -------------------------------------------------------------- figures

    def commands(self, step=None):
        with self.lock:
            return [r for r in self.runs.values() if step is None or r.step == step]

    # ------------------------------------------------------------ instances

    def instance_information(self, ids):
        online = []
        if ids:
            found = self.ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": ids}])["Reservations"]
            for r in found:
                for i in r["Instances"]:
                    if i["State"]["Name"] == "running" and i["InstanceId"] not in self.lost:
                        online.append(
                            {
                                "InstanceId": i["InstanceId"],
                                "PingStatus": "Online",
                                "PlatformType": "Linux",
                                "ResourceType": "EC2Instance",
                                "AgentVersion": "3.3.2746.0",
                            }
                        )
        return 200, {"InstanceInformationList": online}


class SsmProxy(http.server.ThreadingHTTPServer):
    """SSM's JSON API on 127.0.0.1:port: what `nodes` plays, the rest
    forwarded to moto."""

    daemon_threads = True

    def __init__(self, port, moto, nodes):
        self.moto = moto
        self.nodes = nodes
        super().__init__(("127.0.0.1", port), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        op = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        nodes = self.server.nodes
        try:
            if op == "SendCommand":
                status, ctype, data = self._forward(body)
                if status == 200:
                    nodes.sent(json.loads(body), json.loads(data))
                return self._reply(status, ctype, data)
            if op == "GetCommandInvocation":
                req = json.loads(body)
                answer = nodes.invocation(req["CommandId"], req["InstanceId"])
                if answer is not None:
                    return self._json(*answer)
            if op == "DescribeInstanceInformation":
                req = json.loads(body)
                ids = [v for f in req.get("Filters", []) if f.get("Key") == "InstanceIds" for v in f.get("Values", [])]
                return self._json(*nodes.instance_information(ids))
        except Exception as e:
            return self._json(500, {"__type": "InternalServerError", "message": repr(e)})
        self._reply(*self._forward(body))

    def _json(self, status, obj):
        self._reply(status, "application/x-amz-json-1.1", json.dumps(obj).encode())

    def _reply(self, status, ctype, data):
        self.send_response(status)
        self.send_header("Content-Type", ctype or "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _forward(self, body):
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        req = urllib.request.Request(self.server.moto + self.path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", ""), e.read()
