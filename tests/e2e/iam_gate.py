"""The node role's IAM, enforced on every call a build node makes.

moto enforces no IAM. Here each node's S3, DynamoDB and KMS endpoint is a gate
of its own that asks @cloud-copilot/iam-simulate (infra/iam/decide.mjs)
whether the node role of infra/template.yaml (SAM's translation, resolved
by infra/iam/policies.py) allows the call, for that node's principal
(`aws:userid` = `<role id>:<instance id>`, as IAM gives an instance role),
and refuses it as AWS would (AccessDenied) when it does not; what it
allows goes on to moto. So every scenario checks that the policy lets a
node do its job, and a hostile build's writes meet the policy as
simulated. Each decision is kept (`Decisions`), for the tests to read.

The request becomes an IAM action and resource the way S3, DynamoDB and KMS
authorize it: GET/HEAD of an object s3:GetObject (s3:GetObjectVersion with
a versionId), PUT and multipart uploads s3:PutObject, DELETE of an upload
s3:AbortMultipartUpload, a listing s3:ListBucket with its `s3:prefix`,
`X-Amz-Target: DynamoDB_20120810.<Op>` dynamodb:<Op> on the table,
`TrentService.<Op>` kms:<Op> on the signing key. The bucket, table and key
of this run stand for the template's; anything else is refused, so a call
nobody mapped fails loudly.
"""

import http.server
import json
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from xml.sax.saxutils import escape

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "expect"}


class Decider:
    """One `node decide.mjs` process answering for one role, line by line."""

    def __init__(self, node, script, policies, role, modules):
        self.names = json.load(open(policies))["names"]
        self.proc = subprocess.Popen(
            [node, script, policies, role],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={"EBFLEET_IAM_SIMULATE_MODULES": modules, "PATH": "/usr/bin:/bin"},
        )
        self.lock = threading.Lock()

    def decide(self, action, resource, context):
        with self.lock:
            self.proc.stdin.write(json.dumps({"action": action, "resource": resource, "context": context}) + "\n")
            self.proc.stdin.flush()
            answer = json.loads(self.proc.stdout.readline())
        if "error" in answer:
            raise RuntimeError(f"iam-simulate: {answer['error']}")
        return answer["result"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


class Decisions:
    """Every decision of every gate: (instance, action, resource, result)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.all = []

    def add(self, row):
        with self.lock:
            self.all.append(row)

    def of(self, instance):
        with self.lock:
            return [r for r in self.all if r[0] == instance]


class Gate(http.server.ThreadingHTTPServer):
    """The endpoint of one node (`instance`): its calls, decided, then moto."""

    daemon_threads = True

    def __init__(self, decider, decisions, moto, bucket, table, signing_key, instance, userid):
        self.decider, self.decisions, self.moto = decider, decisions, moto
        self.bucket, self.table, self.signing_key = bucket, table, signing_key
        self.instance, self.userid = instance, userid
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def requests(self, method, path, headers, body):
        """The (action, resource, context) the call needs, or a reason it
        is not one the gate knows."""
        target = _header(headers, "x-amz-target")
        # JSON APIs: (service, the body's field naming the resource, this
        # run's resource, the template's).
        for prefix, (service, field, ours, name) in {
            "TrentService.": ("kms", "KeyId", self.signing_key, "signing_key"),
            "DynamoDB_20120810.": ("dynamodb", "TableName", self.table, "table"),
        }.items():
            if target.startswith(prefix):
                op, given = target[len(prefix):], json.loads(body or b"{}").get(field)
                if given != ours:
                    return f"{service} {op} on {given!r}"
                return [(f"{service}:{op}", self.decider.names[name], {})]
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        bucket, _, key = urllib.parse.unquote(url.path).lstrip("/").partition("/")
        if bucket != self.bucket:
            return f"S3 {method} {path}"
        arn = self.decider.names["bucket"]
        if not key:
            if method == "GET" and "uploads" in query:
                return [("s3:ListBucketMultipartUploads", arn, {})]
            if method == "GET" and not set(query) - {"list-type", "prefix", "delimiter", "continuation-token", "max-keys", "encoding-type", "x-id"}:
                return [("s3:ListBucket", arn, {"s3:prefix": query.get("prefix", [""])[0]})]
            return f"S3 {method} {path}"
        obj = f"{arn}/{key}"
        if method in ("GET", "HEAD"):
            if "uploadId" in query:
                return [("s3:ListMultipartUploadParts", obj, {})]
            return [("s3:GetObjectVersion" if "versionId" in query else "s3:GetObject", obj, {})]
        if method == "PUT" and _header(headers, "x-amz-copy-source"):
            return f"S3 copy to {key}"
        if method in ("PUT", "POST") and (method == "PUT" or "uploads" in query or "uploadId" in query):
            return [("s3:PutObject", obj, {})]
        if method == "DELETE":
            return [("s3:AbortMultipartUpload" if "uploadId" in query else "s3:DeleteObject", obj, {})]
        return f"S3 {method} {path}"


def _header(headers, name):
    """A request header by its name in any case (SDKs send lowercase)."""
    return next((v for k, v in headers.items() if k.lower() == name), "")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                chunk = self.rfile.read(size)
                self.rfile.readline()
                if size == 0:
                    return out
                out += chunk
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _handle(self):
        gate = self.server
        body = self._body()
        headers = dict(self.headers.items())
        needs = gate.requests(self.command, self.path, headers, body)
        if isinstance(needs, str):
            gate.decisions.add((gate.instance, "unmapped", needs, "Refused"))
            return self._denied(f"the gate does not know this call: {needs}", headers)
        for action, resource, context in needs:
            result = gate.decider.decide(action, resource, {"aws:userid": gate.userid, **context})
            gate.decisions.add((gate.instance, action, resource, result))
            if result != "Allowed":
                return self._denied(f"{gate.userid} is not authorized to perform {action} on {resource} ({result})", headers)
        fwd = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
        req = urllib.request.Request(gate.moto + self.path, data=body if self.command in ("PUT", "POST") else None,
                                     headers=fwd, method=self.command)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                status, rheaders, data = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, rheaders, data = e.code, e.headers, e.read()
        self.send_response(status)
        for k, v in rheaders.items():
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _denied(self, message, headers):
        target = _header(headers, "x-amz-target")
        if target.startswith(("DynamoDB_", "TrentService.")):
            status = 400
            ctype = "application/x-amz-json-1.0" if target.startswith("DynamoDB_") else "application/x-amz-json-1.1"
            data = json.dumps({"__type": "com.amazon.coral.service#AccessDeniedException", "message": message}).encode()
        else:
            status, ctype = 403, "application/xml"
            data = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>"
                    f"<Message>{escape(message)}</Message><RequestId>gate</RequestId></Error>").encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle
