#!/usr/bin/env bash
# Tests of the build-node bootstrap (crates/ebfleet-core/data/bootstrap.sh): shellcheck on
# it and every script under bootstrap/, a dry run per supported OS, the build-path
# decisions, IMDSv2, a real run into a temporary --root on this machine
# (Debian 12) and a second one that must change nothing, the CPU check, and
# hostile values. Installs shellcheck if missing; EasyBuild comes from PyPI
# (PIP_CACHE_DIR defaults to a cache outside the clone, so reruns are fast).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/env.sh"
BOOT=$repo/crates/ebfleet-core/data/bootstrap.sh
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$EBFLEET_CACHE/pip}
# Settings come from the flags below only, not from the caller's environment.
for v in "${!EBFLEET_@}"; do [[ $v == EBFLEET_CACHE ]] || unset "$v"; done
# Not on EC2, whatever this machine is: instance metadata from a closed port.
closed_port=$(free_port)
export EBFLEET_IMDS_URL="http://127.0.0.1:$closed_port"

# In memory when there is room: a venv is ~15,000 files, slow to write and
# remove on a busy disk. The bootstrap's own scratch goes there too.
tmp_base=${TMPDIR:-/tmp}
if [[ -d /dev/shm && -w /dev/shm ]] && (($(df -Pk /dev/shm | awk 'NR == 2 { print $4 }') > 1048576)); then
  tmp_base=/dev/shm
fi
work=$(mktemp -d "$tmp_base/ebfleet-test-bootstrap.XXXXXX")
export TMPDIR=$work
imds_pid=""
cleanup() {
  [[ -z $imds_pid ]] || kill "$imds_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
ok() {
  passed=$((passed + 1))
  printf 'ok - %s\n' "$1"
}
not_ok() {
  failed=$((failed + 1))
  printf 'FAIL - %s\n' "$1"
  [[ -z ${2-} ]] || printf '%s\n' "$2" | sed 's/^/    /' | tail -n 40
}
# expect NAME COMMAND...: the command succeeds.
expect() {
  local name=$1
  shift
  if "$@"; then ok "$name"; else not_ok "$name" "${out-}"; fi
}
has() { grep -qF -- "$1" <<<"$out"; }
lacks() { ! grep -qE -- "$1" <<<"$out"; }
has_all() {
  local s
  for s in "$@"; do has "$s" || return 1; done
}
# exited CODE [STRING...]: the last run exited CODE and printed every STRING.
exited() {
  [[ $rc == "$1" ]] || return 1
  shift
  has_all "$@"
}
# Run the bootstrap; output in $out, exit code in $rc.
boot() {
  rc=0
  out=$("$BOOT" "$@" 2>&1) || rc=$?
}
# Everything under a directory: path, type, mode, size, mtime, content hash.
fingerprint() {
  (cd "$1" && find . -printf '%p %y %m %s %T@\n' | sort &&
    find . -type f -print0 | sort -z | xargs -0r sha256sum)
}
empty_dir() { [[ -z $(ls -A "$1") ]]; }
# node.env lines: KEY=VALUE, the value of characters that need no quoting.
plain_lines() { ! grep -vE '^[A-Z_][A-Z0-9_]*=[A-Za-z0-9_./:=,;+ -]*$' "$1"; }
dirs_exist() {
  local d
  for d in "$@"; do [[ -d $d ]] || return 1; done
}
# The paths a run on the default root would write.
host_state() { ls -d /opt/eb /opt/ebfleet /etc/ebfleet /etc/profile.d/ebfleet-easybuild.sh 2>&1 || true; }

t0=$SECONDS
log "shellcheck"
command -v shellcheck >/dev/null || { apt-get update -q && apt-get install -y -q shellcheck; }
scripts=("$here/test-bootstrap.sh" "$BOOT" "$repo/crates/ebfleet-core/data/nvidia-driver.sh" "$here/bench-bootstrap.sh")
while IFS= read -r -d '' f; do
  if [[ $f == *.sh ]] || head -n1 "$f" | grep -qE '^#!.*\b(ba|da)?sh\b'; then scripts+=("$f"); fi
done < <(find "$repo/bootstrap" -type d \( -name target -o -name .git \) -prune -o -type f -print0)
out=$(shellcheck -x -P SCRIPTDIR "${scripts[@]}" 2>&1) && rc=0 || rc=$?
expect "shellcheck clean on ${#scripts[@]} script(s): the bootstrap, the node image's driver install, those under bootstrap/, this test and its benchmark" test "$rc" = 0

common=(--platform amzn-2023_graviton-3 --archspec neoverse_v1 --optarch GCC:mcpu=neoverse-v1)

log "maximum lifetime"
# Dry runs only: a real one on this machine's root would power it off.
boot --dry-run --os amzn-2023 "${common[@]}" --max-lifetime-hours 168
expect "a node powers off 168 h after boot (EC2 then terminates it)" \
  has "+ shutdown -h +10080 ebfleet:"
boot --dry-run --os amzn-2023 --root "$work" "${common[@]}" --max-lifetime-hours 168
expect "... not when installing under another root" has "no power-off scheduled"
expect "... nothing scheduled there" lacks "shutdown -h"
boot --dry-run --os amzn-2023 "${common[@]}"
expect "... and without the setting, nothing" lacks "shutdown|maximum lifetime"

log "build user"
boot --dry-run --os amzn-2023 "${common[@]}"
expect "eb gets a user of its own, named in node.env" \
  has_all "+ useradd --system --user-group --create-home --home-dir /var/lib/ebfleet-build" \
  "    EBFLEET_BUILD_USER=ebfleet-build" "fs.protected_hardlinks = 1"
expect "... and a unit that blocks metadata again at every boot" \
  has_all "would write /etc/systemd/system/ebfleet-metadata-block.service" "    Before=network-pre.target" \
  "+ systemctl enable --quiet ebfleet-metadata-block.service"
expect "... which may not reach instance metadata" \
  has_all "+ iptables -I OUTPUT -d 169.254.169.254/32 -m owner --uid-owner ebfleet-build -j REJECT" \
  "+ ip6tables -I OUTPUT -d fd00:ec2::254/128 -m owner --uid-owner ebfleet-build -j REJECT"
boot --dry-run --os amzn-2023 --root "$work" "${common[@]}"
expect "... not when installing under another root" lacks "useradd|iptables -I|EBFLEET_BUILD_USER"
# The rules themselves, in a network namespace of their own with the
# metadata address on its loopback: the user is refused, root is not.
probe_user=ebfleet-test-imds
id -u "$probe_user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$probe_user"
command -v iptables >/dev/null || { apt-get update -q && apt-get install -y -q iptables; } >/dev/null
# shellcheck disable=SC2016 # $1 and $2 are bash -c's own arguments
out=$(unshare --net bash -c '
  set -euo pipefail
  . "$1"
  BUILD_USER=$2 DRY_RUN=0
  ip link set lo up
  ip addr add 169.254.169.254/32 dev lo
  python3 -m http.server --bind 169.254.169.254 8080 >/dev/null 2>&1 &
  trap "kill $!" EXIT
  for _ in $(seq 50); do curl -s -o /dev/null http://169.254.169.254:8080/ && break; sleep 0.1; done
  # As at boot: the unit'"'"'s commands, then the bootstrap again.
  DRY_RUN=1 persist_metadata_block | sed -n "s/^ *ExecStart=//p" >"$3"
  [[ $(wc -l <"$3") == 2 ]]
  while IFS= read -r cmd; do eval "$cmd"; done <"$3"
  iptables -C OUTPUT -d 169.254.169.254/32 -m owner --uid-owner "$2" -j REJECT && echo "unit: rule set"
  block_metadata
  iptables -S OUTPUT
  ask() { "$@" curl -s -m 5 -o /dev/null -w "%{http_code}" http://169.254.169.254:8080/ || true; }
  echo "root: $(ask env)"
  echo "user: $(ask setpriv --reuid "$2" --regid "$2" --clear-groups)"
' bash "$BOOT" "$probe_user" "$work/metadata-unit" 2>&1) || true
userdel "$probe_user" 2>/dev/null || true
expect "instance metadata: the boot unit sets the rule" has "unit: rule set"
expect "... root gets an answer" has "root: 200"
expect "... the build user is refused" has "user: 000"
expect "... by one rule, however often the bootstrap and its boot unit run" \
  test "$(grep -c -- "-A OUTPUT -d 169.254.169.254/32 -m owner --uid-owner" <<<"$out")" = 1

log "dry run per OS"
before=$(host_state)
for os in amzn-2023 ubuntu-22.04 ubuntu-24.04 debian-12 rocky-9; do
  boot --dry-run --os "$os" "${common[@]}"
  expect "$os: dry run succeeds" test "$rc" = 0
  expect "$os: says nothing changed" has "dry run for $os: nothing was changed"
  expect "$os: EasyBuild and archspec pinned in the venv" \
    has "+ /opt/eb/venv/bin/pip install --quiet --disable-pip-version-check easybuild==5.4.1 archspec==0.2.7"
  expect "$os: lays out /opt/eb" has "+ mkdir -p /opt/eb/modules/all"
  expect "$os: shows node.env" has "    EASYBUILD_OPTARCH=GCC:mcpu=neoverse-v1"
  expect "$os: no CUDA setting on a CPU platform" lacks "CUDA_COMPUTE_CAPABILITIES"
  case $os in
    amzn-2023)
      expect "$os: dnf with Lmod's build dependencies and rdma-core" \
        has "+ dnf install -y -q python3 python3-pip gcc gcc-c++ make"
      expect "$os: lua-posix and rdma-core-devel" has_all " lua lua-devel lua-posix tcl" "rdma-core-devel"
      expect "$os: never apt, no EPEL, no curl package" lacks "apt-get|epel|dnf install .* curl( |$)"
      expect "$os: Lmod built from the checksummed tarball" has_all "https://github.com/TACC/Lmod/archive/8.7.67.tar.gz" \
        "+ check: sha256" "./configure --prefix=/opt --with-fastTCLInterp=no" "+ ln -sfn /opt/lmod/lmod/init/profile /etc/profile.d/z00_lmod.sh"
      expect "$os: LMOD_CMD of the source build" has "    LMOD_CMD=/opt/lmod/lmod/libexec/lmod"
      expect "$os: SSM agent from dnf if missing" has "+ dnf install -y -q amazon-ssm-agent"
      ;;
    ubuntu-22.04)
      expect "$os: apt with Lmod's build dependencies (its lmod is 6.6)" \
        has_all "+ apt-get update -q" " lua5.3 liblua5.3-dev lua-posix lua-filesystem tcl"
      expect "$os: not the old lmod package, never dnf" lacks " lmod( |$)|dnf "
      expect "$os: Lmod built from source" has "./configure --prefix=/opt --with-fastTCLInterp=no"
      expect "$os: SSM agent as a snap" has "+ snap install amazon-ssm-agent --classic"
      ;;
    ubuntu-24.04 | debian-12)
      expect "$os: apt with lmod and libibverbs-dev" has_all " libibverbs-dev libc6-dev iptables lmod" \
        "+ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-venv"
      expect "$os: never dnf, no source build" lacks "dnf |configure"
      expect "$os: LMOD_CMD of the package" has "    LMOD_CMD=/usr/share/lmod/lmod/libexec/lmod"
      if [[ $os == ubuntu-24.04 ]]; then
        expect "$os: SSM agent as a snap" has "+ snap install amazon-ssm-agent --classic"
      else
        expect "$os: SSM agent from AWS's regional .deb" \
          has_all "amazon-ssm-REGION/latest/debian_ARCH/amazon-ssm-agent.deb" "+ dpkg -i "
        expect "$os: no snap" lacks "snap "
      fi
      ;;
    rocky-9)
      expect "$os: EPEL and CRB enabled before Lmod" \
        has_all "+ dnf install -y -q dnf-plugins-core epel-release" "+ dnf config-manager --set-enabled crb"
      expect "$os: Lmod from EPEL" has " rdma-core-devel glibc-devel iptables-nft Lmod"
      expect "$os: never apt, no source build" lacks "apt-get|configure"
      expect "$os: SSM agent from AWS's regional rpm" \
        has "+ dnf install -y -q https://s3.REGION.amazonaws.com/amazon-ssm-REGION/latest/linux_ARCH/amazon-ssm-agent.rpm"
      ;;
  esac
done
expect "dry runs wrote nothing on the default root" test "$(host_state)" = "$before"
mkdir "$work/dry-root"
boot --dry-run --os amzn-2023 --root "$work/dry-root" "${common[@]}" --cuda-compute-capabilities 9.0 \
  --node-file "$BOOT"
expect "dry run into --root: paths under it, GPU setting" \
  has_all "+ mkdir -p $work/dry-root/opt/eb/software" "    EASYBUILD_CUDA_COMPUTE_CAPABILITIES=9.0"
expect "dry run into --root writes nothing there" empty_dir "$work/dry-root"

# EC2 user data: settings as exported variables in front of the script.
out=$({ printf 'export EBFLEET_PLATFORM=ubuntu-24.04_zen4 EBFLEET_ARCHSPEC=zen4 EBFLEET_OPTARCH=GCC:march=znver4\n'
  printf 'export EBFLEET_DRY_RUN=1 EBFLEET_OS=ubuntu-24.04\n'
  cat "$BOOT"; } | bash 2>&1) && rc=0 || rc=$?
expect "user data: settings from the environment" exited 0 "    EBFLEET_PLATFORM=ubuntu-24.04_zen4"
out=$(EBFLEET_PLATFORM=from-env_x "$BOOT" --dry-run --os debian-12 "${common[@]}" 2>&1) || true
expect "flags win over the environment" has "EBFLEET_PLATFORM=amzn-2023_graviton-3"
expect "... the environment's value is unused" lacks from-env
size=$(gzip -9c "$BOOT" | wc -c)
expect "gzipped script fits EC2's 16 KiB user data ($size bytes)" test "$size" -lt 16384

log "build path: instance store, tmpfs or root disk"
model() { mkdir -p "$work/sys/$1/block/$2/device" && printf '%-40s\n' "$3" >"$work/sys/$1/block/$2/device/model"; }
model one nvme0n1 "Amazon Elastic Block Store"
model one nvme1n1 "Amazon EC2 NVMe Instance Storage"
model two nvme1n1 "Amazon EC2 NVMe Instance Storage"
model two nvme2n1 "Amazon EC2 NVMe Instance Storage"
mkdir -p "$work/sys/none/block"
printf 'MemTotal:       268435456 kB\n' >"$work/big"
printf 'MemTotal:        16777216 kB\n' >"$work/small"
storage() { out=$(EBFLEET_SYSFS=$work/sys/$1 EBFLEET_MEMINFO=$work/$2 "$BOOT" --dry-run --os debian-12 "${common[@]}" 2>&1) || true; }
storage one small
expect "one instance store: formatted and mounted" \
  has_all "+ mkfs.ext4 -q -F -L ebfleet-build -E nodiscard /dev/nvme1n1" "+ mount -o noatime /dev/nvme1n1 /opt/eb/build"
expect "... the EBS volume left alone" lacks nvme0n1
storage two big
expect "two instance stores: striped, even with plenty of memory" has_all "/dev/md/ebfleet-build /opt/eb/build" \
  "+ mdadm --create /dev/md/ebfleet-build --run --level=0 --raid-devices=2 /dev/nvme1n1 /dev/nvme2n1"
expect "... and no tmpfs" lacks tmpfs
storage none big
expect "no instance store, 256 GiB: tmpfs of half" has "+ mount -t tmpfs -o size=134217728k,mode=0755 ebfleet-build /opt/eb/build"
storage none small
expect "no instance store, 16 GiB: root disk" has "on the root disk"
expect "... nothing mounted" lacks "mount "

log "IMDSv2 (a local stand-in)"
cat >"$work/imds.py" <<'PY'
import http.server, sys
TOKEN = "t0ken"
class H(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body=""):
        self.send_response(code); self.end_headers(); self.wfile.write(body.encode())
    def do_PUT(self):
        ok = self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        self.reply(200, TOKEN) if ok else self.reply(400)
    def do_GET(self):
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            return self.reply(401)  # IMDSv1 (no token) is refused, as on a hardened instance
        data = {"instance-id": "i-0123456789abcdef0", "instance-type": "c7g.large", "placement/region": "us-west-2"}
        key = self.path.removeprefix("/latest/meta-data/")
        self.reply(200, data[key]) if key in data else self.reply(404)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 "$work/imds.py" >"$work/imds.port" &
imds_pid=$!
for _ in $(seq 50); do [[ -s $work/imds.port ]] && break; sleep 0.1; done
out=$(EBFLEET_IMDS_URL="http://127.0.0.1:$(cat "$work/imds.port")" "$BOOT" --dry-run "${common[@]}" 2>&1) || true
expect "instance type read with an IMDSv2 token" has "    EBFLEET_INSTANCE_TYPE=c7g.large"
expect "on EC2 without an agent: AWS's package for the instance's region" \
  has "https://s3.us-west-2.amazonaws.com/amazon-ssm-us-west-2/latest/debian_amd64/amazon-ssm-agent.deb"
kill "$imds_pid" 2>/dev/null || true
imds_pid=""

log "hostile values are refused before anything is done"
marker=$work/pwned
hostile() { # NAME ARGS...: exit 2, nothing printed on stdout, nothing written
  local name=$1 root=$work/hostile-root stdout rc=0
  shift
  rm -rf "$root" && mkdir "$root"
  stdout=$("$BOOT" --root "$root" "$@" 2>"$work/stderr") || rc=$?
  out="exit $rc; stdout: $stdout; stderr: $(cat "$work/stderr")"
  if [[ $rc == 2 && -z $stdout && ! -e $marker ]] && empty_dir "$root" && grep -q "invalid\|needs\|required" "$work/stderr"; then
    ok "refused: $name"
  else
    not_ok "refused: $name" "$out"
  fi
}
x86=(--archspec x86_64 --optarch GCC:march=x86-64-v3)
hostile "platform with ; and a command" --platform 'x;rm -rf /' "${x86[@]}"
hostile "optarch with \$(...)" --platform test_x86 --archspec x86_64 --optarch "GCC:march=\$(touch $marker)"
hostile "optarch with backticks" --platform test_x86 --archspec x86_64 --optarch "GCC:march=\`touch $marker\`"
hostile "optarch with a newline" --platform test_x86 --archspec x86_64 --optarch $'GCC:march=x86-64\nEBFLEET_PLATFORM=evil'
hostile "optarch with a quote" --platform test_x86 --archspec x86_64 --optarch "GCC:march=x'; touch $marker; '"
hostile "optarch with a trailing space (node.env would not parse)" --platform test_x86 --archspec x86_64 --optarch 'GCC:march=x86-64 '
hostile "archspec with a path" --platform test_x86 --archspec ../../etc --optarch GCC:march=x86-64-v3
hostile "CUDA capabilities with a command" --platform test_x86 "${x86[@]}" --cuda-compute-capabilities '9.0;reboot'
hostile "node URL that is not https" --platform test_x86 "${x86[@]}" --node-url http://example.com/n --node-sha256 "$(printf '0%.0s' {1..64})"
hostile "node sha256 that is not hex" --platform test_x86 "${x86[@]}" --node-file "$BOOT" --node-sha256 "\$(touch $marker)"
hostile "relative root" --platform test_x86 "${x86[@]}" --root relative/dir
hostile "maximum lifetime with a command" --platform test_x86 "${x86[@]}" --max-lifetime-hours '1;reboot'
hostile "maximum lifetime of 0 hours" --platform test_x86 "${x86[@]}" --max-lifetime-hours 0
hostile "unknown OS for a dry run" --platform test_x86 "${x86[@]}" --dry-run --os 'debian-12;id'
out=$(EBFLEET_PLATFORM="x\$(touch $marker)_y" "$BOOT" --root "$work/hostile-root" "${x86[@]}" 2>&1) && rc=0 || rc=$?
expect "refused: hostile platform from the environment" exited 2 "invalid platform"
expect "... nothing run or written" test ! -e "$marker" -a -z "$(ls -A "$work/hostile-root")"

log "real run into a temporary root"
root=$work/root
mkdir "$root"
printf '#!/bin/sh\necho "ebfleet-node stand-in $*"\n' >"$work/ebfleet-node"
real=(--root "$root" --platform test_x86 --archspec x86_64 --optarch GCC:march=x86-64-v3 --build-storage disk
  --node-file "$work/ebfleet-node")
t=$SECONDS
boot "${real[@]}"
first_run=$((SECONDS - t))
expect "first run succeeds (${first_run}s)" test "$rc" = 0
expect "first run reports changes" has "changed: installed EasyBuild 5.4.1 and archspec 0.2.7"
env_file=$root/etc/ebfleet/node.env
expected_keys="EASYBUILD_BUILDPATH EASYBUILD_INSTALLPATH EASYBUILD_MODULES_TOOL EASYBUILD_MODULE_SYNTAX EASYBUILD_OPTARCH EASYBUILD_PARALLEL EASYBUILD_PREFIX EASYBUILD_ROBOT_PATHS EASYBUILD_SOURCEPATH EBFLEET_ARCHSPEC EBFLEET_EB EBFLEET_INSTANCE_TYPE EBFLEET_PLATFORM EB_PYTHON LMOD_CMD"
keys=$(cut -d= -f1 "$env_file" | sort | xargs)
out=$(cat "$env_file")
expect "node.env has exactly the expected keys" test "$keys" = "$expected_keys"
expect "node.env: plain KEY=VALUE lines, no quotes or shell syntax" plain_lines "$env_file"
value() { sed -n "s/^$1=//p" "$env_file"; }
values_are() { # KEY VALUE ...
  while (($#)); do
    [[ $(value "$1") == "$2" ]] || return 1
    shift 2
  done
}
expect "node.env values" values_are EASYBUILD_OPTARCH GCC:march=x86-64-v3 EBFLEET_PLATFORM test_x86 \
  EBFLEET_ARCHSPEC x86_64 EASYBUILD_PARALLEL "$(nproc)" EBFLEET_INSTANCE_TYPE unknown \
  EASYBUILD_MODULES_TOOL Lmod EASYBUILD_MODULE_SYNTAX Lua EASYBUILD_PREFIX "$root/opt/eb" \
  EASYBUILD_INSTALLPATH "$root/opt/eb" EASYBUILD_SOURCEPATH "$root/opt/eb/sources" \
  EASYBUILD_BUILDPATH "$root/opt/eb/build" EBFLEET_EB "$root/opt/eb/venv/bin/eb"
expect "layout under the root" dirs_exist "$root"/opt/eb/{software,modules/all,sources,easyconfigs,build}
expect "robot paths: the batch's easyconfigs, then EasyBuild's" \
  values_are EASYBUILD_ROBOT_PATHS "$root/opt/eb/easyconfigs:$root/opt/eb/venv/easybuild/easyconfigs"
expect "... which ship GCCcore" test -d "$root/opt/eb/venv/easybuild/easyconfigs/g/GCCcore"
out=$("$(value LMOD_CMD)" --version 2>&1) || true
expect "LMOD_CMD is Lmod" has "Modules based on Lua"
mapfile -t vars <"$env_file"
out=$(env -i PATH=/usr/bin:/bin HOME="$work" "${vars[@]}" "$(value EBFLEET_EB)" --version 2>&1) || true
expect "eb --version from EBFLEET_EB with node.env only" has "This is EasyBuild 5.4.1"
# shellcheck disable=SC2016 # $1 is bash -c's own argument
out=$(env -i bash -c '. "$1" && env' _ "$root/etc/profile.d/ebfleet-easybuild.sh" | grep -E '^(EASYBUILD_|EBFLEET_|EB_PYTHON=|LMOD_CMD=)' | sort)
expect "profile.d exports the same settings" test "$out" = "$(sort "$env_file")"
node=$root/opt/ebfleet/bin/ebfleet-node
expect "--node-file installs the agent at the path SSM runs" cmp -s "$node" "$work/ebfleet-node"
expect "... mode 0755" test "$(stat -c %a "$node")" = 755
out=$("$node" sync 2>&1) || true
expect "... and it runs" has "ebfleet-node stand-in sync"

log "second run: nothing changes"
before=$(fingerprint "$root")
t=$SECONDS
boot "${real[@]}"
second_run=$((SECONDS - t))
expect "second run succeeds (${second_run}s)" test "$rc" = 0
expect "second run says nothing changed" has "nothing changed: this node was already set up for test_x86"
expect "... and reports no change" lacks "^changed:"
expect "second run leaves every file, mode and mtime as it was" test "$(fingerprint "$root")" = "$before"

log "checksums and the CPU check"
printf '#!/bin/sh\necho other\n' >"$work/other-node"
boot "${real[@]:0:10}" --node-file "$work/other-node" --node-sha256 "$(sha256sum "$work/ebfleet-node" | cut -d' ' -f1)"
expect "a node binary with the wrong sha256: exit 5" exited 5 "sha256"
expect "... and the installed agent is untouched" test "$(fingerprint "$root")" = "$before"

host_cpu=$("$root/opt/eb/venv/bin/python" -c 'import archspec.cpu; print(archspec.cpu.host().name)')
fresh=$work/fresh-root
mkdir "$fresh"
boot --root "$fresh" --platform amzn-2023_graviton-3 --archspec neoverse_v1 --optarch GCC:mcpu=neoverse-v1
expect "neoverse_v1 on this $(uname -m) host: refused with exit 4" \
  exited 4 "refusing platform amzn-2023_graviton-3: it is built for neoverse_v1, but this host's CPU is $host_cpu"
expect "... and nothing written under the root" empty_dir "$fresh"
boot "${real[@]:0:4}" --archspec "$host_cpu" --optarch GCC:march=native --build-storage disk
expect "the host's own name ($host_cpu) is accepted" exited 0 "host CPU: $host_cpu, matches $host_cpu"
boot "${real[@]:0:4}" --archspec no_such_cpu --optarch GCC:march=native
expect "a name archspec does not know: exit 2" exited 2 "knows no microarchitecture named no_such_cpu"
boot "${real[@]:0:4}" --archspec neoverse_v1 --optarch GCC:mcpu=neoverse-v1 --skip-arch-check --build-storage disk
expect "--skip-arch-check lets it through, with a warning" exited 0 "CPU check skipped"

log "bootstrap: $passed passed, $failed failed in $((SECONDS - t0))s (first real run ${first_run}s, second ${second_run}s)"
((failed == 0))
