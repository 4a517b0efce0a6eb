"""moto's server (`moto_server`), with CreateLaunchTemplateVersion made to
behave as EC2's does in what ebfleet uses of it (moto 5.2.5):

- the new version starts from `SourceVersion`'s data, with what the call
  gives on top (moto ignores SourceVersion: the version had only the new
  user data, and instances launched from it no type and no image);
- its UserData is stored parsed, as CreateLaunchTemplate stores it (moto
  stores the raw string, and the next instance an Auto Scaling group
  launches from that version fails inside moto with an AssertionError:
  HTTP 500).

The schedule Lambda adds such a version every half hour (the nodes'
download URL, `$Latest` plus new user data): without these a pool could
not grow after its first half hour.

And CreateImage with a `snapshot` TagSpecification (the bake tags the
image's snapshots, so that its IAM lets it delete only its own): moto
raises NotImplementedError (HTTP 500); here the image is made with the
other specifications and its snapshot gets the snapshot's tags, as EC2
does.
"""

import sys
import threading

from moto.ec2.models.amis import AmiBackend
from moto.ec2.models.launch_templates import LaunchTemplate
from moto.ec2.responses.launch_templates import LaunchTemplates
from moto.ec2.utils import parse_user_data
from moto.server import main

_call = threading.local()
_respond = LaunchTemplates.create_launch_template_version
_create_version = LaunchTemplate.create_version


def create_launch_template_version(self):
    _call.source = self._get_param("SourceVersion")
    try:
        return _respond(self)
    finally:
        _call.source = None


def create_version(self, data, description):
    source = getattr(_call, "source", None)
    if source:
        data = {**self.get_version(source).data, **data}
    if isinstance(data.get("UserData"), (str, bytes)):
        data = {**data, "UserData": parse_user_data(data["UserData"])}
    return _create_version(self, data, description)


_create_image = AmiBackend.create_image


def create_image(self, instance_id, name, description, tag_specifications):
    snapshot = [s for s in tag_specifications if s["ResourceType"] == "snapshot"]
    rest = [s for s in tag_specifications if s["ResourceType"] != "snapshot"]
    ami = _create_image(self, instance_id, name, description, rest)
    for spec in snapshot:
        for tag in spec["Tags"]:
            ami.ebs_snapshot.add_tag(tag["Key"], tag["Value"])
    return ami


AmiBackend.create_image = create_image
LaunchTemplates.create_launch_template_version = create_launch_template_version
LaunchTemplate.create_version = create_version

if __name__ == "__main__":
    sys.exit(main())
