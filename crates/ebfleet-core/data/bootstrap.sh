#!/usr/bin/env bash
# ebfleet build-node bootstrap: turns a fresh Amazon Linux 2023, Ubuntu
# 22.04/24.04, Debian 12 or Rocky 9 instance into an EasyBuild build node for
# one platform: OS packages, Lmod, a pinned EasyBuild in its own venv, the
# /opt/eb layout with the build path on instance store or tmpfs, the
# platform's EasyBuild settings (/etc/ebfleet/node.env for ebfleet-node,
# /etc/profile.d/ebfleet-easybuild.sh for people), the ebfleet-node agent and
# the SSM agent. Idempotent; refuses a CPU that does not match the platform.
#
# One file on purpose: EC2 user data is a single script and takes no
# arguments, so every setting is also an EBFLEET_* environment variable
# (flags win). See bootstrap/README.md; `bootstrap.sh --help` lists flags.
set -euo pipefail
umask 022

readonly EXIT_USAGE=2 EXIT_OS=3 EXIT_ARCH=4 EXIT_CHECKSUM=5

readonly SUPPORTED_OS="amzn-2023 ubuntu-22.04 ubuntu-24.04 debian-12 rocky-9"
readonly DEFAULT_EASYBUILD_VERSION=5.4.1
readonly DEFAULT_ARCHSPEC_VERSION=0.2.7
# Built from source where the distribution has no Lmod >= 8.0 (EasyBuild 5's
# minimum). Checksum of GitHub's tag archive as recorded by Spack's lmod
# package; override both to use a mirror of the same tarball.
readonly LMOD_VERSION=8.7.67
readonly DEFAULT_LMOD_URL="https://github.com/TACC/Lmod/archive/$LMOD_VERSION.tar.gz"
readonly DEFAULT_LMOD_SHA256=50c8d265e47eb6661ebe3af13df819b35db84cda3474ea0a7427c33b5767aaab
readonly PACKAGED_LMOD_CMD=/usr/share/lmod/lmod/libexec/lmod
# ebfleet's SSM document passes parameters as environment variables, which
# older agents do not do.
readonly SSM_AGENT_MIN_VERSION=3.3.2746.0
readonly INSTANCE_STORE_MODEL="Amazon EC2 NVMe Instance Storage"
readonly BUILD_LABEL=ebfleet-build

# ---------------------------------------------------------------- output

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }
warn() { printf 'ebfleet bootstrap: warning: %s\n' "$*" >&2; }
die() {
  local code=$1
  shift
  printf 'ebfleet bootstrap: error: %s\n' "$*" >&2
  exit "$code"
}

CHANGES=()
changed() {
  CHANGES+=("$*")
  say "changed: $*"
}

# A command as it would be typed: arguments that need it shell-quoted.
show_cmd() {
  local out="" arg
  for arg in "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then out+=" $arg"; else out+=" $(printf '%q' "$arg")"; fi
  done
  printf '+%s\n' "$out"
}

# Print a command; run it unless this is a dry run.
run() {
  show_cmd "$@"
  ((DRY_RUN)) || "$@"
}

# run, inside directory $1.
run_in() {
  local dir=$1
  shift
  printf '+ (cd %q &&%s)\n' "$dir" "$(show_cmd "$@" | cut -c2-)"
  ((DRY_RUN)) || (cd "$dir" && "$@")
}

TMP_DIRS=()
cleanup() { ((${#TMP_DIRS[@]} == 0)) || rm -rf "${TMP_DIRS[@]}"; }
trap cleanup EXIT

# Sets SCRATCH to a new temporary directory, removed on exit (not in a
# subshell, so that the cleanup list keeps it).
new_scratch() {
  if ((DRY_RUN)); then
    SCRATCH=/tmp/ebfleet-bootstrap.XXXXXX
    return
  fi
  SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/ebfleet-bootstrap.XXXXXX")
  TMP_DIRS+=("$SCRATCH")
}

# Whether a path exists on the machine being set up (a dry run for another
# OS describes a fresh machine).
exists_here() { ((ON_HOST)) && [[ -e $1 || -L $1 ]]; }

# ---------------------------------------------------------------- settings

usage() {
  cat <<'EOF'
Usage: bootstrap.sh --platform NAME --archspec NAME --optarch FLAGS [options]

Every option is also an environment variable (for EC2 user data); flags win.
  --platform NAME            EBFLEET_PLATFORM       e.g. amzn-2023_graviton-3
  --archspec NAME            EBFLEET_ARCHSPEC       archspec microarchitecture, e.g. neoverse_v1
  --optarch FLAGS            EBFLEET_OPTARCH        EasyBuild --optarch, e.g. GCC:mcpu=neoverse-v1
  --cuda-compute-capabilities LIST  EBFLEET_CUDA_COMPUTE_CAPABILITIES  GPU platforms, e.g. 9.0
  --easybuild-version V      EBFLEET_EASYBUILD_VERSION   (default 5.4.1)
  --archspec-version V       EBFLEET_ARCHSPEC_VERSION    (default 0.2.7)
  --node-url URL             EBFLEET_NODE_URL       https URL of the ebfleet-node binary
  --node-sha256 HEX          EBFLEET_NODE_SHA256    its sha256 (required with --node-url)
  --node-file PATH           EBFLEET_NODE_FILE      install a local ebfleet-node binary instead
  --build-storage MODE       EBFLEET_BUILD_STORAGE  auto|instance-store|tmpfs|disk (default auto)
  --parallel N               EBFLEET_PARALLEL       build parallelism (default: core count)
  --lmod MODE                EBFLEET_LMOD           auto|package|source (default auto)
  --max-lifetime-hours H     EBFLEET_MAX_LIFETIME_HOURS  power off H hours after boot (EC2
                                                    terminates a node that powers off)
  --skip-arch-check          EBFLEET_SKIP_ARCH_CHECK=1   tests and emulation only
  --root DIR                 EBFLEET_ROOT           write everything under DIR (default /)
  --dry-run                  EBFLEET_DRY_RUN=1      print what would be done, change nothing
  --os OS                    EBFLEET_OS             with --dry-run: amzn-2023 ubuntu-22.04
                                                    ubuntu-24.04 debian-12 rocky-9
Exit codes: 2 invalid option or value, 3 unsupported OS, 4 CPU does not match
--archspec, 5 checksum mismatch, 1 anything else.
EOF
}

# Environment first, so that flags parsed afterwards win.
load_env() {
  PLATFORM=${EBFLEET_PLATFORM-}
  ARCHSPEC=${EBFLEET_ARCHSPEC-}
  OPTARCH=${EBFLEET_OPTARCH-}
  CUDA_CC=${EBFLEET_CUDA_COMPUTE_CAPABILITIES-}
  EASYBUILD_VERSION=${EBFLEET_EASYBUILD_VERSION:-$DEFAULT_EASYBUILD_VERSION}
  ARCHSPEC_VERSION=${EBFLEET_ARCHSPEC_VERSION:-$DEFAULT_ARCHSPEC_VERSION}
  NODE_URL=${EBFLEET_NODE_URL-}
  NODE_SHA256=${EBFLEET_NODE_SHA256-}
  NODE_FILE=${EBFLEET_NODE_FILE-}
  BUILD_STORAGE=${EBFLEET_BUILD_STORAGE:-auto}
  PARALLEL=${EBFLEET_PARALLEL-}
  LMOD_MODE=${EBFLEET_LMOD:-auto}
  MAX_LIFETIME_HOURS=${EBFLEET_MAX_LIFETIME_HOURS-}
  SKIP_ARCH_CHECK=${EBFLEET_SKIP_ARCH_CHECK:-0}
  ROOT=${EBFLEET_ROOT:-/}
  DRY_RUN=${EBFLEET_DRY_RUN:-0}
  OS_OVERRIDE=${EBFLEET_OS-}
  LMOD_URL=${EBFLEET_LMOD_URL:-$DEFAULT_LMOD_URL}
  LMOD_SHA256=${EBFLEET_LMOD_SHA256:-$DEFAULT_LMOD_SHA256}
  TMPFS_MIN_GIB=${EBFLEET_TMPFS_MIN_GIB:-64}
  # Test hooks: where hardware and instance metadata are read from.
  IMDS_URL=${EBFLEET_IMDS_URL:-http://169.254.169.254}
  SYSFS=${EBFLEET_SYSFS:-/sys}
  MEMINFO=${EBFLEET_MEMINFO:-/proc/meminfo}
}

parse_args() {
  while (($#)); do
    local opt=$1
    case $opt in
      -h | --help) usage; exit 0 ;;
      --skip-arch-check) SKIP_ARCH_CHECK=1; shift; continue ;;
      --dry-run) DRY_RUN=1; shift; continue ;;
    esac
    (($# >= 2)) || die "$EXIT_USAGE" "$opt needs a value (see --help)"
    case $opt in
      --platform) PLATFORM=$2 ;;
      --archspec) ARCHSPEC=$2 ;;
      --optarch) OPTARCH=$2 ;;
      --cuda-compute-capabilities) CUDA_CC=$2 ;;
      --easybuild-version) EASYBUILD_VERSION=$2 ;;
      --archspec-version) ARCHSPEC_VERSION=$2 ;;
      --node-url) NODE_URL=$2 ;;
      --node-sha256) NODE_SHA256=$2 ;;
      --node-file) NODE_FILE=$2 ;;
      --build-storage) BUILD_STORAGE=$2 ;;
      --parallel) PARALLEL=$2 ;;
      --lmod) LMOD_MODE=$2 ;;
      --max-lifetime-hours) MAX_LIFETIME_HOURS=$2 ;;
      --root) ROOT=$2 ;;
      --os) OS_OVERRIDE=$2 ;;
      *) die "$EXIT_USAGE" "unknown option $(printf '%q' "$opt") (see --help)" ;;
    esac
    shift 2
  done
}

# check WHAT VALUE REGEX HINT: values end up in files, commands and URLs, so
# everything is held to a strict pattern (no quotes, '$', backticks or
# newlines) before anything runs.
check() {
  local what=$1 value=$2 re=$3 hint=$4
  [[ $value =~ $re ]] && return 0
  die "$EXIT_USAGE" "invalid $what $(printf '%q' "${value:0:100}"): $hint"
}

flag() { # normalise a boolean setting to 0/1
  case ${2,,} in
    1 | true | yes) printf 1 ;;
    0 | false | no | "") printf 0 ;;
    *) die "$EXIT_USAGE" "invalid $1 $(printf '%q' "${2:0:100}"): expected 1 or 0" ;;
  esac
}

validate() {
  DRY_RUN=$(flag EBFLEET_DRY_RUN "$DRY_RUN")
  SKIP_ARCH_CHECK=$(flag EBFLEET_SKIP_ARCH_CHECK "$SKIP_ARCH_CHECK")
  local part='[a-z0-9][a-z0-9.-]*' path='^[A-Za-z0-9._+/@:-]+$'
  local url_chars="[A-Za-z0-9._~:/?#@!&*+,;=%-]"
  [[ -n $PLATFORM ]] || die "$EXIT_USAGE" "--platform (EBFLEET_PLATFORM) is required"
  [[ -n $ARCHSPEC ]] || die "$EXIT_USAGE" "--archspec (EBFLEET_ARCHSPEC) is required"
  [[ -n $OPTARCH ]] || die "$EXIT_USAGE" "--optarch (EBFLEET_OPTARCH) is required"
  check platform "$PLATFORM" "^$part(_$part){1,2}\$" "expected <os>_<cpu>[_<gpu>] of a-z 0-9 . -"
  ((${#PLATFORM} <= 128)) || die "$EXIT_USAGE" "platform name longer than 128 bytes"
  check archspec "$ARCHSPEC" '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' "expected an archspec name like neoverse_v1"
  # Spaces separate flags, but none at the end: ebfleet-node refuses values
  # with trailing spaces.
  check optarch "$OPTARCH" '^[A-Za-z0-9]([A-Za-z0-9:=,;._+ -]{0,254}[A-Za-z0-9:=,;._+-])?$' \
    "only A-Z a-z 0-9 : = , ; . _ + - and inner spaces (e.g. GCC:march=znver4)"
  [[ -z $CUDA_CC ]] || check "CUDA compute capabilities" "$CUDA_CC" \
    '^[0-9]{1,3}\.[0-9]{1,3}(,[0-9]{1,3}\.[0-9]{1,3})*$' "expected e.g. 9.0 or 8.0,9.0"
  check "EasyBuild version" "$EASYBUILD_VERSION" '^[0-9][A-Za-z0-9.]{0,31}$' "expected e.g. 5.4.1"
  check "archspec version" "$ARCHSPEC_VERSION" '^[0-9][A-Za-z0-9.]{0,31}$' "expected e.g. 0.2.7"
  check "build storage" "$BUILD_STORAGE" '^(auto|instance-store|tmpfs|disk)$' "auto, instance-store, tmpfs or disk"
  check "Lmod mode" "$LMOD_MODE" '^(auto|package|source)$' "auto, package or source"
  [[ -z $PARALLEL ]] || check parallelism "$PARALLEL" '^[1-9][0-9]{0,3}$' "expected a positive number"
  [[ -z $MAX_LIFETIME_HOURS ]] || check "maximum lifetime" "$MAX_LIFETIME_HOURS" '^[1-9][0-9]{0,4}$' \
    "expected hours, a number from 1"
  check "tmpfs threshold" "$TMPFS_MIN_GIB" '^[0-9]{1,6}$' "expected GiB as a number"
  check root "$ROOT" '^/[A-Za-z0-9._+/@:-]*$' "expected an absolute path"
  [[ -d $ROOT ]] || die "$EXIT_USAGE" "root directory $ROOT does not exist"
  check "Lmod URL" "$LMOD_URL" "^(https|file)://$url_chars+\$" "expected an https:// or file:// URL"
  check "Lmod sha256" "$LMOD_SHA256" '^[0-9a-fA-F]{64}$' "expected 64 hex digits"
  LMOD_SHA256=${LMOD_SHA256,,}
  check "metadata URL" "$IMDS_URL" '^http://[A-Za-z0-9.:-]+$' "expected http://HOST[:PORT]"
  check "sysfs path" "$SYSFS" "$path" "expected a path"
  check "meminfo path" "$MEMINFO" "$path" "expected a path"
  if [[ -n $OS_OVERRIDE ]]; then
    ((DRY_RUN)) || die "$EXIT_USAGE" "--os is only for --dry-run (a real run detects the OS)"
    [[ " $SUPPORTED_OS " == *" $OS_OVERRIDE "* ]] ||
      die "$EXIT_USAGE" "invalid OS $(printf '%q' "${OS_OVERRIDE:0:100}"): expected one of $SUPPORTED_OS"
  fi
  if [[ -n $NODE_URL && -n $NODE_FILE ]]; then
    die "$EXIT_USAGE" "--node-url and --node-file exclude each other"
  fi
  if [[ -n $NODE_URL ]]; then
    check "node URL" "$NODE_URL" "^https://$url_chars+\$" "expected an https:// URL"
    ((${#NODE_URL} <= 2048)) || die "$EXIT_USAGE" "node URL longer than 2048 bytes"
    [[ -n $NODE_SHA256 ]] || die "$EXIT_USAGE" "--node-url needs --node-sha256"
  fi
  if [[ -n $NODE_FILE ]]; then
    check "node file" "$NODE_FILE" "$path" "expected a path of A-Z a-z 0-9 . _ + / @ : -"
    [[ -f $NODE_FILE ]] || die "$EXIT_USAGE" "node file $NODE_FILE is not a file"
  fi
  [[ -z $NODE_SHA256 ]] || check "node sha256" "$NODE_SHA256" '^[0-9a-fA-F]{64}$' "expected 64 hex digits"
  NODE_SHA256=${NODE_SHA256,,}
  ((DRY_RUN)) || ((EUID == 0)) || die 1 "must run as root (or use --dry-run)"
}

# Every path the run writes, under --root.
derive_paths() {
  R=${ROOT%/}
  EB_PREFIX=$R/opt/eb
  VENV=$EB_PREFIX/venv
  EB=$VENV/bin/eb
  BUILD_PATH=$EB_PREFIX/build
  NODE_BIN=$R/opt/ebfleet/bin/ebfleet-node
  NODE_ENV=$R/etc/ebfleet/node.env
  PROFILE=$R/etc/profile.d/ebfleet-easybuild.sh
  SOURCE_LMOD_PREFIX=$R/opt
}

# ---------------------------------------------------------------- the OS

detect_os() {
  if [[ -n $OS_OVERRIDE ]]; then
    OS=$OS_OVERRIDE
    ON_HOST=0 # describing another machine: assume a fresh one
    return
  fi
  ON_HOST=1
  [[ -r /etc/os-release ]] || die "$EXIT_OS" "no /etc/os-release: cannot tell the OS"
  local id version
  id=$(sed -n 's/^ID=//p' /etc/os-release | tr -d '"')
  version=$(sed -n 's/^VERSION_ID=//p' /etc/os-release | tr -d '"')
  case "$id-$version" in
    amzn-2023 | ubuntu-22.04 | ubuntu-24.04 | debian-12) OS="$id-$version" ;;
    rocky-9 | rocky-9.*) OS=rocky-9 ;;
    *) die "$EXIT_OS" "unsupported OS '$id $version' (supported: $SUPPORTED_OS)" ;;
  esac
}

pkg_family() {
  case $OS in
    debian-* | ubuntu-*) printf apt ;;
    *) printf dnf ;;
  esac
}

# Lmod: the distribution's package where it is new enough, else a source
# build. Ubuntu 22.04's lmod is 6.6 and Amazon Linux 2023 has no Lmod package
# (and does not support EPEL), but it does ship lua, lua-devel and lua-posix,
# which is all Lmod's build needs (it bundles luafilesystem and lua-term).
lmod_plan() {
  if [[ $LMOD_MODE == auto ]]; then
    case $OS in
      amzn-2023 | ubuntu-22.04) LMOD_MODE=source ;;
      *) LMOD_MODE=package ;;
    esac
  fi
  if [[ $LMOD_MODE == package ]]; then
    case $OS in
      amzn-2023) die "$EXIT_USAGE" "Amazon Linux 2023 has no Lmod package: use --lmod source" ;;
      ubuntu-22.04) die "$EXIT_USAGE" "Ubuntu 22.04's lmod (6.6) is older than EasyBuild 5 accepts (8.0): use --lmod source" ;;
    esac
  fi
  if [[ $LMOD_MODE == package ]]; then
    LMOD_CMD=$PACKAGED_LMOD_CMD
  else
    LMOD_CMD=$SOURCE_LMOD_PREFIX/lmod/lmod/libexec/lmod
  fi
}

# What EasyBuild and its SYSTEM-toolchain builds (GCCcore first) need, plus
# rdma-core headers: 46 easyconfigs, OpenMPI and UCX among them, list them as
# an OS dependency. The dnf lists leave out curl: both images ship
# curl-minimal, which conflicts with the curl package.
os_packages() {
  case $OS in
    debian-* | ubuntu-*)
      PACKAGES=(python3 python3-venv python3-pip gcc g++ make patch perl file tar gzip
        bzip2 xz-utils unzip zstd git curl ca-certificates bc procps libibverbs-dev libc6-dev
        iptables)
      if [[ $LMOD_MODE == package ]]; then
        PACKAGES+=(lmod)
      else
        PACKAGES+=(lua5.3 liblua5.3-dev lua-posix lua-filesystem tcl)
      fi
      ;;
    amzn-2023 | rocky-9)
      PACKAGES=(python3 python3-pip gcc gcc-c++ make patch perl file tar gzip bzip2 xz
        unzip zstd git bc procps-ng which rdma-core-devel glibc-devel iptables-nft)
      if [[ $LMOD_MODE == package ]]; then
        PACKAGES+=(Lmod)
      else
        PACKAGES+=(lua lua-devel lua-posix tcl)
      fi
      ;;
  esac
}

pkg_installed() {
  ((ON_HOST)) || return 1
  case $(pkg_family) in
    apt) [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]] ;;
    dnf) rpm -q --quiet "$1" 2>/dev/null ;;
  esac
}

APT_UPDATED=0
pkg_install() {
  case $(pkg_family) in
    apt)
      if ((!APT_UPDATED)); then
        run apt-get update -q
        APT_UPDATED=1
      fi
      run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
      ;;
    dnf) run dnf install -y -q "$@" ;;
  esac
}

# Install whichever of the given packages are missing.
ensure_packages() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  if ((${#missing[@]} == 0)); then
    say "packages: all $# present"
    return
  fi
  pkg_install "${missing[@]}"
  ((DRY_RUN)) || changed "installed packages: ${missing[*]}"
}

# Rocky's Lmod (and lua-posix, for --lmod source) is in EPEL, whose packages
# may need CRB (CodeReady Builder).
ensure_epel() {
  ensure_packages dnf-plugins-core epel-release
  if ((ON_HOST)) && dnf repolist --enabled 2>/dev/null | grep -q '^crb[[:space:]]'; then
    say "CRB repository: enabled"
    return
  fi
  run dnf config-manager --set-enabled crb
  ((DRY_RUN)) || changed "enabled the CRB repository"
}

install_packages() {
  step "OS packages ($OS, $(pkg_family))"
  [[ $OS != rocky-9 ]] || ensure_epel
  os_packages
  ensure_packages "${PACKAGES[@]}"
}

# ---------------------------------------------------------------- EC2

# IMDSv2: one token per run, asked for once (off EC2 that costs one short
# timeout), valid for the longest TTL (6 h) so that it outlives a slow run.
IMDS_TOKEN=""
imds_probe() {
  ((ON_HOST)) || return 0
  IMDS_TOKEN=$(curl -fsS --connect-timeout 1 --max-time 3 -X PUT \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600' "$IMDS_URL/latest/api/token" 2>/dev/null) ||
    IMDS_TOKEN=""
}

imds() {
  [[ -n $IMDS_TOKEN ]] || return 1
  curl -fsS --connect-timeout 1 --max-time 3 -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" \
    "$IMDS_URL/latest/meta-data/$1" 2>/dev/null
}

on_ec2() { [[ -n $IMDS_TOKEN ]]; }

instance_type() {
  local t
  if t=$(imds instance-type) && [[ $t =~ ^[a-z0-9][a-z0-9.-]{0,63}$ ]]; then
    printf '%s\n' "$t"
  else
    printf 'unknown\n'
  fi
}

ssm_agent_version() {
  if [[ $OS == ubuntu-* ]]; then
    snap list amazon-ssm-agent 2>/dev/null | awk 'NR == 2 { print $2 }'
  elif command -v amazon-ssm-agent >/dev/null; then
    amazon-ssm-agent --version 2>/dev/null | grep -oE '[0-9]+(\.[0-9]+)+' | head -n1
  fi
}

version_at_least() { [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1) == "$2" ]]; }

# AL2023 AMIs carry the agent (an RPM), Canonical's Ubuntu AMIs carry it as
# a snap; Debian and Rocky images have none: AWS's regional package is used.
install_ssm_agent() {
  local region arch url
  case $OS in
    amzn-2023) run dnf install -y -q amazon-ssm-agent ;;
    ubuntu-*)
      if snap list amazon-ssm-agent >/dev/null 2>&1; then
        run snap refresh amazon-ssm-agent
      else
        run snap install amazon-ssm-agent --classic
      fi
      return
      ;;
    debian-12 | rocky-9)
      # A dry run for another machine shows REGION and ARCH as placeholders.
      region=$(imds placement/region || true)
      [[ $region =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || region=REGION
      arch=ARCH
      if ((ON_HOST)); then
        case $(uname -m) in aarch64) arch=arm64 ;; *) arch=amd64 ;; esac
      fi
      if [[ $OS == debian-12 ]]; then
        url="https://s3.$region.amazonaws.com/amazon-ssm-$region/latest/debian_$arch/amazon-ssm-agent.deb"
        new_scratch
        run curl -fsSL --retry 3 -o "$SCRATCH/amazon-ssm-agent.deb" "$url"
        run dpkg -i "$SCRATCH/amazon-ssm-agent.deb"
      else
        run dnf install -y -q "https://s3.$region.amazonaws.com/amazon-ssm-$region/latest/linux_$arch/amazon-ssm-agent.rpm"
      fi
      ;;
  esac
  run systemctl enable --now amazon-ssm-agent
}

ensure_ssm_agent() {
  step "SSM agent (>= $SSM_AGENT_MIN_VERSION)"
  case $OS in
    amzn-2023) say "Amazon Linux 2023 AMIs include the agent; installed with dnf if missing" ;;
    ubuntu-*) say "Ubuntu AMIs include the agent as a snap; installed with snap if missing" ;;
    *) say "$OS images have no agent: AWS's regional package is installed" ;;
  esac
  if [[ -n ${AWS_SSM_INSTANCE_ID-} ]]; then
    say "running under SSM Run Command: agent left alone (an upgrade would end this command)"
    return
  fi
  if ((ON_HOST)) && ! on_ec2; then
    say "not on EC2 (no instance metadata): agent left alone"
    return
  fi
  local have=""
  if ((ON_HOST)); then have=$(ssm_agent_version || true); fi
  if [[ -n $have ]] && version_at_least "$have" "$SSM_AGENT_MIN_VERSION"; then
    say "agent $have: fine"
    return
  fi
  [[ -z $have ]] || say "agent $have is older than $SSM_AGENT_MIN_VERSION: upgrading"
  install_ssm_agent
  ((DRY_RUN)) || changed "installed the SSM agent"
}

# ---------------------------------------------------------------- the CPU

# Exit 0: the host is the expected microarchitecture or a descendant of it;
# 1: it is not; 2: archspec has no such name. Prints the host's name.
readonly ARCH_CHECK_PY='
import sys
import archspec.cpu as cpu
host = cpu.host()
print(host.name)
expected = cpu.TARGETS.get(sys.argv[1])
if expected is None:
    sys.exit(2)
sys.exit(0 if host == expected or expected in host.ancestors else 1)
'

check_cpu() {
  step "CPU check: the host must be $ARCHSPEC or a descendant (archspec $ARCHSPEC_VERSION)"
  if ((SKIP_ARCH_CHECK)); then
    warn "CPU check skipped (--skip-arch-check): builds may not run on this host"
    return
  fi
  if ((DRY_RUN)); then
    say "would compare archspec.cpu.host() with $ARCHSPEC and refuse (exit $EXIT_ARCH) on a mismatch"
    return
  fi
  # Checked before anything is written under the root: use the node's venv
  # if a previous run made it, else a throwaway one.
  local py=$VENV/bin/python host rc=0
  if ! { [[ -x $py ]] && "$py" -c 'import archspec.cpu' 2>/dev/null; }; then
    new_scratch
    say "archspec is not installed yet: checking from a temporary venv"
    python3 -m venv "$SCRATCH/venv"
    "$SCRATCH/venv/bin/pip" install --quiet --disable-pip-version-check "archspec==$ARCHSPEC_VERSION"
    py=$SCRATCH/venv/bin/python
  fi
  host=$(PYTHONDONTWRITEBYTECODE=1 "$py" -c "$ARCH_CHECK_PY" "$ARCHSPEC") || rc=$?
  case $rc in
    0) say "host CPU: $host, matches $ARCHSPEC" ;;
    1) die "$EXIT_ARCH" "refusing platform $PLATFORM: it is built for $ARCHSPEC, but this host's CPU is ${host:-unknown}, which is neither $ARCHSPEC nor a descendant of it (--skip-arch-check only for tests or emulation)" ;;
    2) die "$EXIT_USAGE" "archspec $ARCHSPEC_VERSION knows no microarchitecture named $ARCHSPEC" ;;
    *) die 1 "the archspec CPU check failed (exit $rc)" ;;
  esac
}

# ---------------------------------------------------------------- files

ensure_dir() {
  local d
  for d in "$@"; do
    exists_here "$d" && continue
    run mkdir -p "$d"
    ((DRY_RUN)) || changed "created $d"
  done
}

# put_file PATH MODE, content on stdin. The file is replaced (atomically)
# only when its content or mode differ, so a rerun leaves it untouched.
put_file() {
  local path=$1 mode=$2 content tmp
  content=$(cat)$'\n'
  if ((DRY_RUN)); then
    say "would write $path (mode $mode):"
    printf '%s' "$content" | sed 's/^/    /'
    return
  fi
  if [[ -f $path && ! -L $path && $(stat -c %a "$path") == "$mode" ]] &&
    printf '%s' "$content" | cmp -s - "$path"; then
    say "unchanged: $path"
    return
  fi
  ensure_dir "$(dirname "$path")"
  tmp=$(mktemp "$path.XXXXXX")
  printf '%s' "$content" >"$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$path"
  changed "wrote $path"
}

ensure_symlink() {
  local target=$1 link=$2
  exists_here "$link" && [[ -L $link && $(readlink "$link") == "$target" ]] && return
  ensure_dir "$(dirname "$link")"
  run ln -sfn "$target" "$link"
  ((DRY_RUN)) || changed "linked $link"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

fetch() { # URL DEST
  run curl -fsSL --retry 3 --connect-timeout 10 -o "$2" "$1"
}

verify_sha256() { # FILE EXPECTED WHAT
  say "+ check: sha256 of $1 is $2"
  ((DRY_RUN)) && return 0
  local got
  got=$(sha256_of "$1")
  [[ $got == "$2" ]] || die "$EXIT_CHECKSUM" "$3: sha256 $got, expected $2"
}

# ---------------------------------------------------------------- Lmod

install_lmod() {
  step "Lmod ($LMOD_MODE)"
  if [[ $LMOD_MODE == package ]]; then
    say "the distribution's package; LMOD_CMD=$LMOD_CMD"
    ((DRY_RUN)) || [[ -x $LMOD_CMD ]] || die 1 "Lmod package installed but $LMOD_CMD is missing"
    return
  fi
  local installed=$SOURCE_LMOD_PREFIX/lmod/$LMOD_VERSION/libexec/lmod
  if exists_here "$installed"; then
    say "Lmod $LMOD_VERSION already built in $SOURCE_LMOD_PREFIX/lmod"
  else
    build_lmod
  fi
  # Packaged Lmod brings its own profile.d script; a source build does not.
  ensure_symlink "$SOURCE_LMOD_PREFIX/lmod/lmod/init/profile" "$R/etc/profile.d/z00_lmod.sh"
}

build_lmod() {
  local work
  new_scratch
  work=$SCRATCH
  say "building Lmod $LMOD_VERSION from source"
  fetch "$LMOD_URL" "$work/Lmod-$LMOD_VERSION.tar.gz"
  verify_sha256 "$work/Lmod-$LMOD_VERSION.tar.gz" "$LMOD_SHA256" "Lmod tarball $LMOD_URL"
  run tar -xzf "$work/Lmod-$LMOD_VERSION.tar.gz" -C "$work"
  # Only Lua modulefiles are written here: no need for the Tcl headers.
  run_in "$work/Lmod-$LMOD_VERSION" ./configure --prefix="$SOURCE_LMOD_PREFIX" --with-fastTCLInterp=no
  run_in "$work/Lmod-$LMOD_VERSION" make install
  ((DRY_RUN)) || changed "built Lmod $LMOD_VERSION into $SOURCE_LMOD_PREFIX/lmod"
}

# ---------------------------------------------------------------- EasyBuild

venv_versions() {
  "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("easybuild"), m.version("archspec"))' 2>/dev/null
}

install_easybuild() {
  step "EasyBuild $EASYBUILD_VERSION and archspec $ARCHSPEC_VERSION in $VENV"
  if exists_here "$VENV/bin/python" && [[ $(venv_versions) == "$EASYBUILD_VERSION $ARCHSPEC_VERSION" ]]; then
    say "already installed"
    return
  fi
  exists_here "$VENV/bin/python" || run python3 -m venv "$VENV"
  run "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "easybuild==$EASYBUILD_VERSION" "archspec==$ARCHSPEC_VERSION"
  ((DRY_RUN)) || changed "installed EasyBuild $EASYBUILD_VERSION and archspec $ARCHSPEC_VERSION"
}

lay_out_prefix() {
  step "layout of $EB_PREFIX"
  ensure_dir "$EB_PREFIX/software" "$EB_PREFIX/modules/all" "$EB_PREFIX/sources" \
    "$EB_PREFIX/easyconfigs" "$BUILD_PATH" "$(dirname "$NODE_BIN")" "$(dirname "$NODE_ENV")"
}

# ---------------------------------------------------------------- build path

# NVMe instance-store devices that nothing uses yet (no mount, no holder).
instance_store_devices() {
  local dev name model
  for dev in "$SYSFS"/block/nvme*n*; do
    [[ -r $dev/device/model ]] || continue
    model=$(sed 's/[[:space:]]*$//' "$dev/device/model")
    [[ $model == "$INSTANCE_STORE_MODEL" ]] || continue
    name=${dev##*/}
    if [[ -e /dev/$name ]] && { findmnt -rn -S "/dev/$name" >/dev/null ||
      [[ -n $(ls -A "$dev/holders" 2>/dev/null) ]]; }; then
      warn "instance store /dev/$name is already in use: left alone"
      continue
    fi
    printf '/dev/%s\n' "$name"
  done
}

mem_total_kib() { awk '/^MemTotal:/ { print $2 }' "$MEMINFO"; }

prepare_build_storage() {
  step "build path $BUILD_PATH"
  if ((ON_HOST)) && findmnt -rn "$BUILD_PATH" >/dev/null 2>&1; then
    say "already mounted: $(findmnt -rn -o SOURCE,FSTYPE "$BUILD_PATH")"
    return
  fi
  local devices=() mem_kib mode=$BUILD_STORAGE
  mapfile -t devices < <(instance_store_devices)
  mem_kib=$(mem_total_kib)
  if [[ $mode == auto ]]; then
    if ((${#devices[@]})); then
      mode=instance-store
    elif ((mem_kib >= TMPFS_MIN_GIB * 1024 * 1024)); then
      mode=tmpfs
    else
      mode=disk
    fi
  fi
  case $mode in
    instance-store)
      ((${#devices[@]})) || die 1 "no unused NVMe instance store on this machine"
      mount_instance_store "${devices[@]}"
      ;;
    tmpfs)
      # Half the memory: the compilers need the other half.
      say "no instance store, $((mem_kib / 1024 / 1024)) GiB of memory: tmpfs of half of it"
      run mount -t tmpfs -o "size=$((mem_kib / 2))k,mode=0755" "$BUILD_LABEL" "$BUILD_PATH"
      ((DRY_RUN)) || changed "mounted tmpfs on $BUILD_PATH"
      ;;
    disk) say "on the root disk (no instance store, less than $TMPFS_MIN_GIB GiB of memory, or asked for)" ;;
  esac
}

# One device is formatted as is; several are striped (RAID 0) first.
mount_instance_store() {
  local dev
  say "instance store: $*"
  if (($# == 1)); then
    dev=$1
  else
    dev=/dev/md/$BUILD_LABEL
    ensure_packages mdadm
    if [[ ! -e $dev ]] || ! ((ON_HOST)); then
      run mdadm --create "$dev" --run --level=0 --raid-devices=$# "$@"
    fi
  fi
  # An existing ebfleet file system (e.g. after a reboot) is kept.
  if ! { ((ON_HOST)) && [[ $(blkid -s LABEL -o value "$dev" 2>/dev/null) == "$BUILD_LABEL" ]]; }; then
    ensure_packages e2fsprogs
    run mkfs.ext4 -q -F -L "$BUILD_LABEL" -E nodiscard "$dev"
  fi
  run mount -o noatime "$dev" "$BUILD_PATH"
  ((DRY_RUN)) || changed "mounted instance store $dev on $BUILD_PATH"
}

# ---------------------------------------------------------------- settings

# KEY=VALUE lines in a fixed order. Every value was validated (or is a path
# built from validated parts), so none has a quote, '$' or a newline.
settings() {
  say "EASYBUILD_PREFIX=$EB_PREFIX"
  say "EASYBUILD_INSTALLPATH=$EB_PREFIX"
  say "EASYBUILD_SOURCEPATH=$EB_PREFIX/sources"
  say "EASYBUILD_BUILDPATH=$BUILD_PATH"
  say "EASYBUILD_ROBOT_PATHS=$EB_PREFIX/easyconfigs:$VENV/easybuild/easyconfigs"
  say "EASYBUILD_OPTARCH=$OPTARCH"
  [[ -z $CUDA_CC ]] || say "EASYBUILD_CUDA_COMPUTE_CAPABILITIES=$CUDA_CC"
  say "EASYBUILD_PARALLEL=${PARALLEL:-$(nproc)}"
  say "EASYBUILD_MODULES_TOOL=Lmod"
  say "EASYBUILD_MODULE_SYNTAX=Lua"
  say "LMOD_CMD=$LMOD_CMD"
  # The eb wrapper takes the first python3 on PATH that imports EasyBuild;
  # this names the venv's.
  say "EB_PYTHON=$VENV/bin/python"
  say "EBFLEET_EB=$EB"
  say "EBFLEET_PLATFORM=$PLATFORM"
  say "EBFLEET_ARCHSPEC=$ARCHSPEC"
  say "EBFLEET_INSTANCE_TYPE=$INSTANCE_TYPE"
  ((!HAS_BUILD_USER)) || say "EBFLEET_BUILD_USER=$BUILD_USER"
}

write_settings() {
  step "settings for $PLATFORM"
  INSTANCE_TYPE=$(instance_type)
  local lines line
  lines=$(settings)
  put_file "$NODE_ENV" 644 <<<"$lines"
  {
    say "# ebfleet: EasyBuild settings of this build node (platform $PLATFORM)."
    say "# Written by ebfleet's bootstrap.sh; $NODE_ENV holds the same for ebfleet-node."
    while IFS= read -r line; do say "export ${line%%=*}='${line#*=}'"; done <<<"$lines"
  } | put_file "$PROFILE" 644
}

# ---------------------------------------------------------------- ebfleet-node

install_node_agent() {
  step "ebfleet-node agent"
  if [[ -z $NODE_URL && -z $NODE_FILE ]]; then
    say "none given (--node-url or --node-file): skipped"
    return
  fi
  local want=$NODE_SHA256 tmp
  if [[ -n $NODE_FILE ]]; then
    [[ -n $want ]] || want=$(sha256_of "$NODE_FILE")
    verify_sha256 "$NODE_FILE" "$want" "node file $NODE_FILE"
  fi
  if exists_here "$NODE_BIN" && [[ -f $NODE_BIN && $(sha256_of "$NODE_BIN") == "$want" && $(stat -c %a "$NODE_BIN") == 755 ]]; then
    say "$NODE_BIN is already that binary"
    return
  fi
  ensure_dir "$(dirname "$NODE_BIN")"
  # Into a temporary file beside it, then renamed: a running agent keeps its
  # old inode, and a bad download never reaches the path SSM runs.
  if ((DRY_RUN)); then tmp=$NODE_BIN.XXXXXX; else tmp=$(mktemp "$NODE_BIN.XXXXXX"); fi
  if [[ -n $NODE_URL ]]; then
    fetch "$NODE_URL" "$tmp"
  else
    run cp "$NODE_FILE" "$tmp"
  fi
  if ! ((DRY_RUN)) && [[ $(sha256_of "$tmp") != "$want" ]]; then
    rm -f "$tmp"
    die "$EXIT_CHECKSUM" "ebfleet-node from ${NODE_URL:-$NODE_FILE}: sha256 differs from $want; not installed"
  fi
  run chmod 755 "$tmp"
  run mv -f "$tmp" "$NODE_BIN"
  ((DRY_RUN)) || changed "installed $NODE_BIN ($want)"
}

# ---------------------------------------------------------------- lifetime

# The node's own end, whatever else fails (a lost release, a run that never
# ends): it powers off this long after boot, and EC2 terminates it (the
# launch template's shutdown behaviour). Only on the machine's own root.
schedule_end_of_life() {
  [[ -n $MAX_LIFETIME_HOURS ]] || return 0
  step "maximum lifetime: $MAX_LIFETIME_HOURS h after boot"
  if [[ $ROOT != / ]]; then
    say "not this machine's own root ($ROOT): no power-off scheduled"
    return
  fi
  local up_minutes=0 minutes
  ((DRY_RUN)) || up_minutes=$(awk '{ print int($1 / 60) }' /proc/uptime)
  minutes=$((MAX_LIFETIME_HOURS * 60 - up_minutes))
  ((minutes > 0)) || minutes=1
  run shutdown -h "+$minutes" "ebfleet: this node's maximum lifetime ($MAX_LIFETIME_HOURS h) is reached"
}

# ---------------------------------------------------------------- build user

# ebfleet-node runs eb as this user, never as root: a build runs the code of
# its easyconfig and of every source it compiles. The user owns nothing of
# the stack (the agent hands it each module's own directories for the
# build) and cannot reach instance metadata, so not the node role's
# credentials. Only on the machine's own root.
BUILD_USER=ebfleet-build
BUILD_HOME=/var/lib/ebfleet-build
HAS_BUILD_USER=0

ensure_build_user() {
  step "build user $BUILD_USER"
  if [[ $ROOT != / ]]; then
    say "not this machine's own root ($ROOT): eb runs as whoever runs ebfleet-node"
    return
  fi
  HAS_BUILD_USER=1
  if ((DRY_RUN)) || ! id -u "$BUILD_USER" >/dev/null 2>&1; then
    run useradd --system --user-group --create-home --home-dir "$BUILD_HOME" \
      --shell /usr/sbin/nologin "$BUILD_USER"
    ((DRY_RUN)) || changed "created user $BUILD_USER"
  fi
  # No hard link to a file the user could not write itself (the agent
  # reads what a build leaves, as root), whatever the distribution's default.
  put_file /etc/sysctl.d/90-ebfleet.conf 644 <<<$'fs.protected_hardlinks = 1\nfs.protected_symlinks = 1'
  run sysctl -q -p /etc/sysctl.d/90-ebfleet.conf
  block_metadata
  persist_metadata_block
}

# The build user's connections to instance metadata (IPv4, and the Nitro
# IPv6 address) are rejected.
METADATA_ADDRESSES=(iptables=169.254.169.254/32 ip6tables=fd00:ec2::254/128)

block_metadata() {
  local tool_addr tool addr rule
  for tool_addr in "${METADATA_ADDRESSES[@]}"; do
    tool=${tool_addr%%=*} addr=${tool_addr#*=}
    rule=(OUTPUT -d "$addr" -m owner --uid-owner "$BUILD_USER" -j REJECT)
    if ! ((DRY_RUN)) && "$tool" -C "${rule[@]}" 2>/dev/null; then
      continue
    fi
    run "$tool" -I "${rule[@]}"
    ((DRY_RUN)) || changed "$tool: $BUILD_USER may not reach $addr"
  done
}

# Rules are not saved: a unit sets them again at every boot, before the
# network is up.
METADATA_UNIT=/etc/systemd/system/ebfleet-metadata-block.service

persist_metadata_block() {
  local tool_addr tool rule lines=""
  for tool_addr in "${METADATA_ADDRESSES[@]}"; do
    tool=${tool_addr%%=*}
    rule="OUTPUT -d ${tool_addr#*=} -m owner --uid-owner $BUILD_USER -j REJECT"
    lines+=$'\n'"ExecStart=/bin/sh -c '$tool -C $rule 2>/dev/null || $tool -I $rule'"
  done
  put_file "$METADATA_UNIT" 644 <<EOF
[Unit]
Description=ebfleet: the build user may not reach instance metadata
DefaultDependencies=no
Before=network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes$lines

[Install]
WantedBy=multi-user.target
EOF
  if ((DRY_RUN)) || [[ -d /run/systemd/system ]]; then
    run systemctl enable --quiet "$(basename "$METADATA_UNIT")"
  else
    warn "no systemd: the metadata rules hold until the next boot"
  fi
}

# ---------------------------------------------------------------- checks

# EasyBuild reads the settings exactly as ebfleet-node will hand them over.
verify_easybuild() {
  step "EasyBuild accepts the settings"
  if ((DRY_RUN)); then
    say "would run: env -i <node.env> $EB --show-config"
    return
  fi
  local vars env
  mapfile -t vars <"$NODE_ENV"
  new_scratch
  # A clean environment and an empty HOME: no personal EasyBuild config.
  env=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$SCRATCH" TMPDIR="$SCRATCH"
    PYTHONDONTWRITEBYTECODE=1 "${vars[@]}")
  "${env[@]}" "$EB" --show-config >"$SCRATCH/show-config" 2>&1 ||
    die 1 "eb --show-config fails with these settings: $(tail -n 5 "$SCRATCH/show-config")"
  "${env[@]}" "$EB" --version
}

summary() {
  step "done"
  if ((DRY_RUN)); then
    say "dry run for $OS: nothing was changed"
  elif ((${#CHANGES[@]} == 0)); then
    say "nothing changed: this node was already set up for $PLATFORM"
  else
    say "${#CHANGES[@]} change(s) for $PLATFORM"
  fi
}

main() {
  load_env
  parse_args "$@"
  validate
  derive_paths
  detect_os
  lmod_plan
  imds_probe
  schedule_end_of_life
  if ((DRY_RUN)); then
    say "ebfleet bootstrap DRY RUN for $OS (root $ROOT): nothing will be changed"
  else
    say "ebfleet bootstrap for $PLATFORM on $OS (root $ROOT)"
  fi
  install_packages
  check_cpu
  ensure_ssm_agent
  install_lmod
  install_easybuild
  lay_out_prefix
  prepare_build_storage
  ensure_build_user
  write_settings
  install_node_agent
  verify_easybuild
  summary
}

# Sourced (by the tests, for one function): define, run nothing.
[[ ${BASH_SOURCE[0]-$0} != "$0" ]] || main "$@"
