#!/usr/bin/env bash
# What a baked node image saves at boot: bootstrap.sh timed for real in a
# fresh Debian 12 (minbase) chroot, as root, without touching this machine:
#   1. the first run, as on a stock AMI (OS packages, EasyBuild and archspec
#      from PyPI into /opt/eb/venv, the layout, the settings, the agent);
#   2. the same run again (what the bake's image already holds: nothing to do);
#   3. a run with another platform's settings, as a node booted from the
#      baked image runs it (only the settings are rewritten).
# Prints each run's seconds and the first run's phases. Needs root,
# debootstrap (installed with apt-get when missing) and the Debian and PyPI
# registries. Debian 12 uses its packaged Lmod; Amazon Linux 2023 builds
# Lmod from GitHub's tarball instead, which this does not time.
#
#   sudo scripts/bench-bootstrap.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/env.sh"
[[ $(id -u) == 0 ]] || { echo "bench-bootstrap: run as root (it builds a chroot)" >&2; exit 2; }
command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/ebfleet-bench-bootstrap.XXXXXX")
root=$work/root
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

log "debootstrap --variant=minbase bookworm"
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
  { tail -20 "$work/debootstrap.log" >&2; exit 1; }
cp /etc/resolv.conf "$root/etc/resolv.conf"
# pip inside trusts what this machine trusts (e.g. a proxy's CA).
cp /etc/ssl/certs/ca-certificates.crt "$root/root/host-ca.crt"
cp "$repo/crates/ebfleet-core/data/bootstrap.sh" "$root/root/bootstrap.sh"
printf '#!/bin/sh\necho "ebfleet-node stand-in $*"\n' >"$root/root/ebfleet-node"
mount -t proc proc "$root/proc"
cat >"$root/root/timed.sh" <<'EOF'
#!/bin/bash
start=$EPOCHREALTIME
bash /root/bootstrap.sh --platform "$1" --archspec x86_64 --optarch "$2" \
  --build-storage disk --node-file /root/ebfleet-node 2>&1 |
  while IFS= read -r l; do
    printf '%s %s\n' "$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%6.1f", b - a }')" "$l"
  done
rc=${PIPESTATUS[0]}
echo "rc=$rc seconds=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
EOF
chmod +x "$root/root/timed.sh"

run() { # LABEL PLATFORM OPTARCH
  log "$1"
  # Not on EC2: instance metadata from a port nothing listens on.
  chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    PIP_CERT=/root/host-ca.crt EBFLEET_IMDS_URL=http://127.0.0.1:9 \
    /root/timed.sh "$2" "$3" >"$work/$1.log" 2>&1 || true
  grep -q '^rc=0 ' "$work/$1.log" || { tail -30 "$work/$1.log" >&2; exit 1; }
}
run stock-ami amzn-2023_node-image-x86-64 GENERIC
run baked-same amzn-2023_node-image-x86-64 GENERIC
run baked-node amzn-2023_epyc-gen-3 GCC:march=znver3

echo "first run's phases (seconds since start):"
grep -E '^ *[0-9.]+ == ' "$work/stock-ami.log"
for r in stock-ami baked-same baked-node; do
  printf '%-11s %s s\n' "$r" "$(sed -n 's/^rc=0 seconds=//p' "$work/$r.log")"
done
first=$(sed -n 's/^rc=0 seconds=//p' "$work/stock-ami.log")
baked=$(sed -n 's/^rc=0 seconds=//p' "$work/baked-node.log")
awk -v a="$first" -v b="$baked" 'BEGIN { printf "a baked image saves %.0f s of bootstrap per boot\n", a - b }'
