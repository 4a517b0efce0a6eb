"""The template's IAM, as a simulator reads it: SAM's own translator turns
`infra/template.yaml` into CloudFormation (policy templates such as
`LambdaInvokePolicy` become statements), and every intrinsic function is
resolved against one made-up deployment (account 111122223333, us-east-1,
the parameters' defaults). Writes, as JSON on stdout:

    {"account": ..., "names": {"bucket": arn, "table": arn},
     "principals": {role: {"arn", "policies": [doc],
     "managed": [arn]}}, "resource_policies": {arn: doc}}

and, given infra/iam/cases.yaml, its rows (`cases`). Run with the Python
that has aws-sam-cli (scripts/tools.sh's venv):
    python3 infra/iam/policies.py infra/template.yaml infra/iam/cases.yaml
"""

import json
import os
import re
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ACCOUNT = "111122223333"
REGION = "us-east-1"
# The node role's unique id, and the principal of one node (aws:userid).
NODE_ROLE_ID = "AROANODEROLEEXAMPLE"
NODE_USERID = f"{NODE_ROLE_ID}:i-0123456789abcdef0"
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::StackName": "ebfleet",
    "AWS::URLSuffix": "amazonaws.com",
}
# Parameters without a usable default.
PARAMETERS = {
    "VpcId": "vpc-0123456789abcdef0",
    "SubnetIds": ["subnet-0123456789abcdef0"],
}
NO_VALUE = object()


class Deployment:
    def __init__(self, template):
        self.resources = template["Resources"]
        self.parameters = {
            name: PARAMETERS.get(name, spec.get("Default", ""))
            for name, spec in template.get("Parameters", {}).items()
        }
        for name, v in list(self.parameters.items()):
            if template["Parameters"][name]["Type"].startswith(("List<", "CommaDelimitedList")) and isinstance(v, str):
                self.parameters[name] = [x for x in v.split(",") if x]
        self.conditions_spec = template.get("Conditions", {})
        self.conditions = {}

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.conditions_spec[name]))
        return self.conditions[name]

    def ref(self, name):
        if name in PSEUDO:
            return PSEUDO[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        kind = self.resources[name]["Type"]
        return {
            "AWS::S3::Bucket": f"ebfleet-{name.lower()}",
            "AWS::DynamoDB::Table": f"ebfleet-{name.lower()}",
            "AWS::Lambda::Function": self.name_of(name),
            "AWS::StepFunctions::StateMachine": self.arn(name, "Arn"),
            "AWS::IAM::Role": name,
            "AWS::IAM::InstanceProfile": name,
            "AWS::SQS::Queue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}",
            "AWS::EC2::LaunchTemplate": "lt-0123456789abcdef0",
            "AWS::EC2::SecurityGroup": "sg-0123456789abcdef0",
            "AWS::Logs::LogGroup": name,
            "AWS::SSM::Document": name,
        }.get(kind, name)

    def name_of(self, name):
        """A resource's name: the one its template gives, else its logical id."""
        props = self.resources[name].get("Properties", {})
        given = props.get("StateMachineName") or props.get("FunctionName")
        return self.resolve(given) if given else name

    def arn(self, name, attribute):
        kind = self.resources[name]["Type"]
        name = self.name_of(name)
        if attribute == "Name":
            return name
        if attribute == "GroupId":
            return "sg-0123456789abcdef0"
        if attribute == "RoleId":
            return NODE_ROLE_ID
        return {
            "AWS::S3::Bucket": f"arn:aws:s3:::ebfleet-{name.lower()}",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/ebfleet-{name.lower()}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
            "AWS::StepFunctions::StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{name}",
            "AWS::IAM::InstanceProfile": f"arn:aws:iam::{ACCOUNT}:instance-profile/{name}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
            "AWS::Events::Rule": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}",
            "AWS::KMS::Key": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0f0e0d0c-{name.lower()}",
        }.get(kind, f"arn:aws:unknown:{REGION}:{ACCOUNT}:{name}")

    def sub(self, text, variables):
        def one(m):
            key = m.group(1)
            if key in variables:
                return str(self.resolve(variables[key]))
            if "." in key and key.split(".")[0] in self.resources:
                return self.arn(*key.split(".", 1))
            value = self.ref(key)
            return ",".join(value) if isinstance(value, list) else str(value)

        # ${!x} is a literal ${x}: an IAM policy variable.
        return re.sub(r"\$\{!", "${", re.sub(r"\$\{([^}!]+)\}", one, text))

    def resolve(self, v):
        if isinstance(v, list):
            return [x for x in (self.resolve(i) for i in v) if x is not NO_VALUE]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (fn, arg), = v.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.arn(name, attribute)
            if fn == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                return self.sub(text, variables)
            if fn == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if fn == "Fn::Join":
                return arg[0].join(str(x) for x in self.resolve(arg[1]))
            if fn == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if fn == "Fn::Split":
                return self.resolve(arg[1]).split(arg[0])
            if fn == "Fn::Equals":
                a, b = self.resolve(arg)
                return a == b
            if fn == "Fn::Not":
                return not self.resolve(arg[0])
            if fn == "Fn::And":
                return all(self.resolve(arg))
            if fn == "Fn::Or":
                return any(self.resolve(arg))
            if fn == "Condition":
                return self.condition(arg)
        out = {}
        for k, x in v.items():
            r = self.resolve(x)
            if r is not NO_VALUE:
                out[k] = r
        return out


def main():
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    template = yaml_parse(open(sys.argv[1]).read())
    # The translator wants code and definitions in S3; policies do not
    # depend on where they are.
    template.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = "s3://code/functions.zip"
    for r in template["Resources"].values():
        props = r.get("Properties", {})
        if "DefinitionUri" in props:
            props["DefinitionUri"] = "s3://code/definition.json"

    class NoManagedPolicies:
        def load(self):
            return {}

    cfn = transform(template, {}, NoManagedPolicies())
    d = Deployment(cfn)
    principals = {}
    resource_policies = {}
    for name, r in cfn["Resources"].items():
        props = r.get("Properties", {})
        if r["Type"] == "AWS::IAM::Role":
            principals[name] = {
                "arn": d.arn(name, "Arn"),
                "policies": [p["PolicyDocument"] for p in d.resolve(props.get("Policies", []))],
                "managed": d.resolve(props.get("ManagedPolicyArns", [])),
            }
        elif r["Type"] == "AWS::S3::BucketPolicy":
            bucket = d.resolve(props["Bucket"])
            resource_policies[f"arn:aws:s3:::{bucket}"] = d.resolve(props["PolicyDocument"])
        elif r["Type"] == "AWS::KMS::Key":
            resource_policies[d.arn(name, "Arn")] = d.resolve(props["KeyPolicy"])
    json.dump(
        {
            "account": ACCOUNT,
            # What the stack's bucket and table are called here, for
            # requests made against another deployment's (the end-to-end
            # tests' gate, tests/e2e/iam_gate.py).
            "names": {
                "bucket": d.arn("Bucket", "Arn"),
                "table": d.arn("Table", "Arn"),
                "signing_key": d.arn("SigningKey", "Arn"),
            },
            "principals": principals,
            "resource_policies": resource_policies,
            "cases": cases(sys.argv[2], d) if len(sys.argv) > 2 else [],
        },
        sys.stdout,
        indent=1,
    )


def cases(path, d):
    """The rows of infra/iam/cases.yaml, placeholders filled in."""
    import yaml

    fill = {
        "bucket": d.arn("Bucket", "Arn"),
        "table": d.arn("Table", "Arn"),
        "account": ACCOUNT,
        "region": REGION,
        "group": "0f0e0d0c-0b0a-4009-8008-070605040302",
        "node": NODE_USERID,
        "signing_key": d.arn("SigningKey", "Arn"),
    }
    out = []
    for principal, kinds in yaml.safe_load(open(path)).items():
        for expect, rows in kinds.items():
            for row in rows:
                action, resource, why, *rest = row
                context = {
                    k: v.format(**fill) if isinstance(v, str) else v
                    for k, v in (rest[0] if rest and rest[0] else {}).items()
                }
                if principal == "NodeRole":
                    # The node's own credentials: IAM's aws:userid of an
                    # instance role is <role id>:<instance id>.
                    context = {"aws:userid": NODE_USERID, **context}
                out.append({
                    "principal": principal,
                    "action": action,
                    "resource": resource.format(**fill),
                    "context": context,
                    "expect": expect,
                    "why": why,
                    "gap": rest[1] if len(rest) > 1 else None,
                })
    return out


if __name__ == "__main__":
    main()
