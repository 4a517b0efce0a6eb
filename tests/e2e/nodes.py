"""The two things moto cannot do, played by this machine.

moto's SSM Run Command is a stub (every command "succeeds" and runs
nothing) and DescribeInstanceInformation answers HTTP 500. The Lambdas' SSM
client is pointed at `SsmProxy` (AWS_ENDPOINT_URL_SSM), which forwards every
request to moto unchanged except those two:

* GetCommandInvocation: the first time a command is asked about, the proxy
  reads it back from moto (ListCommands: document, parameters, instance)
  and runs the document's own `runCommand` lines with bash, parameters as
  `SSM_<name>` environment variables as the SSM agent passes ENV_VAR
  parameters, the agent's path replaced by the locally built
  `ebfleet-node`, on a disk of its own per instance (a directory
  bind-mounted at the platform's root path in a private mount namespace:
  needs root, as a build node's agent has). It answers InProgress
  while that runs, then Success or Failed with the exit code and output.
* DescribeInstanceInformation: an instance is Online while moto's EC2 says
  it is running and the harness has not taken it away.

`lose` is the spot interruption: a rule that picks a command whose node is
terminated (in moto) instead of running it; from then on SSM no longer
knows the instance (InvalidInstanceId), as it would after a reclaim.
"""

import http.server
import json
import os
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

# Where bootstrap.sh installs the agent; the document runs it by this path.
NODE_PROGRAM = "/opt/ebfleet/bin/ebfleet-node"


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


class Nodes:
    def __init__(self, aws, work, node_bin, eb, bucket):
        self.ssm = aws.client("ssm")
        self.ec2 = aws.client("ec2")
        self.s3 = aws.client("s3")
        self.work = Path(work)
        self.node_bin = node_bin
        self.eb = eb
        self.bucket = bucket
        self.lock = threading.Lock()
        self.runs = {}
        self.lost = set()
        # (step, params, instance_id) -> bool: lose this node instead.
        self.lose = None

    # ------------------------------------------------------------- commands

    def invocation(self, command_id, instance_id):
        """GetCommandInvocation: (HTTP status, JSON body)."""
        with self.lock:
            if instance_id in self.lost:
                return 400, {
                    "__type": "InvalidInstanceId",
                    "message": f"Instance {instance_id} is not in a valid state for this operation",
                }
            run = self.runs.get(command_id)
            if run is None:
                run = self._start(command_id, instance_id)
                self.runs[command_id] = run
        if run.lost:
            return 400, {"__type": "InvalidInstanceId", "message": f"Instance {instance_id} is terminated"}
        body = {
            "CommandId": command_id,
            "InstanceId": instance_id,
            "DocumentName": "",
            "PluginName": "ebfleetNode",
        }
        if not run.done.is_set():
            body.update(Status="InProgress", StatusDetails="InProgress", ResponseCode=-1)
        elif run.exit_code == 0:
            body.update(Status="Success", StatusDetails="Success", ResponseCode=0)
        else:
            body.update(Status="Failed", StatusDetails="Failed", ResponseCode=run.exit_code)
        body["StandardOutputContent"] = run.stdout[-24000:]
        body["StandardErrorContent"] = run.stderr[-8000:]
        return 200, body

    def _start(self, command_id, instance_id):
        cmd = self.ssm.list_commands(CommandId=command_id)["Commands"][0]
        assert instance_id in cmd["InstanceIds"], f"{command_id} was not sent to {instance_id}"
        params = {k: v[0] for k, v in cmd["Parameters"].items()}
        step = params["step"]
        run = Run(command_id, instance_id, step, params)
        if self.lose and self.lose(step, params, instance_id):
            self.ec2.terminate_instances(InstanceIds=[instance_id])
            self.lost.add(instance_id)
            run.lost = True
            run.done.set()
            return run
        doc = json.loads(self.ssm.get_document(Name=cmd["DocumentName"])["Content"])
        threading.Thread(target=self._run, args=(run, doc), daemon=True).start()
        return run

    def _run(self, run, doc):
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
            # namespace of the command's own.
            disk = root / "root"
            disk.mkdir(exist_ok=True)
            mount_point = self.work / "mnt" / run.params["platform"]
            mount_point.mkdir(parents=True, exist_ok=True)
            env.update(
                EBFLEET_NODE_ROOT=str(mount_point),
                EBFLEET_NODE_ENV=str(root / "node.env"),
                PATH=f"{Path(self.eb).parent}:{env.get('PATH', '')}",
            )
            env.pop("EBFLEET_TASK_TOKEN", None)
            timeout = int(run.params.get("executionTimeout", "3600"))
            p = subprocess.run(
                ["unshare", "--mount", "bash", "-c", 'mount --bind "$0" "$1" && exec bash -c "$2"',
                 str(disk), str(mount_point), script],
                env=env, capture_output=True, text=True, timeout=timeout,
            )
            run.exit_code, run.stdout, run.stderr = p.returncode, p.stdout, p.stderr
            logs = root / "commands"
            logs.mkdir(exist_ok=True)
            (logs / f"{run.command_id}.{run.step}.out").write_text(p.stdout)
            (logs / f"{run.command_id}.{run.step}.err").write_text(p.stderr)
        except Exception as e:  # the step failed as SSM would report it
            run.exit_code, run.stderr = 1, f"harness: {e!r}"
        finally:
            run.done.set()

    def _node_root(self, instance_id, params):
        """The instance's directory, with the node.env bootstrap.sh would
        write for its platform (archspec from the batch file)."""
        root = self.work / "nodes" / instance_id
        env_file = root / "node.env"
        if not env_file.exists():
            root.mkdir(parents=True, exist_ok=True)
            batch = json.loads(
                self.s3.get_object(Bucket=self.bucket, Key=params["batchKey"])["Body"].read()
            )
            itype = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
                "Instances"
            ][0]["InstanceType"]
            env_file.write_text(
                "# written by the e2e harness, as bootstrap.sh would\n"
                "EASYBUILD_ALLOW_USE_AS_ROOT_AND_ACCEPT_CONSEQUENCES=1\n"
                "LMOD_CMD=/usr/share/lmod/lmod/libexec/lmod\n"
                f"EBFLEET_EB={self.eb}\n"
                f"EBFLEET_ARCHSPEC={batch['archspec']}\n"
                f"EBFLEET_INSTANCE_TYPE={itype}\n"
            )
        return root

    # ------------------------------------------------------------ instances

    def instance_information(self, ids):
        online = []
        if ids:
            found = self.ec2.describe_instances(
                Filters=[{"Name": "instance-id", "Values": ids}]
            )["Reservations"]
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
    """SSM's JSON API on 127.0.0.1:port: two operations answered by `nodes`,
    everything else forwarded to moto."""

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
        target = self.headers.get("X-Amz-Target", "")
        op = target.rsplit(".", 1)[-1]
        nodes = self.server.nodes
        try:
            if op == "GetCommandInvocation":
                req = json.loads(body)
                status, out = nodes.invocation(req["CommandId"], req["InstanceId"])
                return self._json(status, out)
            if op == "DescribeInstanceInformation":
                req = json.loads(body)
                # Filters: [{Key, Values}]; the older filter list: [{key, valueSet}].
                ids = [v for f in req.get("Filters", []) if f.get("Key") == "InstanceIds" for v in f.get("Values", [])]
                ids += [
                    v
                    for f in req.get("InstanceInformationFilterList", [])
                    if f.get("key") == "InstanceIds"
                    for v in f.get("valueSet", [])
                ]
                return self._json(*nodes.instance_information(ids))
        except Exception as e:
            return self._json(500, {"__type": "InternalServerError", "message": repr(e)})
        self._forward(body)

    def _json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _forward(self, body):
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        req = urllib.request.Request(self.server.moto + self.path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, data, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, data, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        self.send_response(status)
        self.send_header("Content-Type", ctype or "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
