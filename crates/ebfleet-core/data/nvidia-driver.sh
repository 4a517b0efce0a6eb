#!/usr/bin/env bash
# ebfleet node image, `nvidia` kind: the NVIDIA driver (open kernel modules,
# built by DKMS) on Amazon Linux 2023, after bootstrap.sh, for the GPU check
# step. Follows NVIDIA's Driver Installation Guide for Amazon Linux 2023
# (the CUDA repository, `dnf module enable nvidia-driver:open-dkms`,
# `dnf install nvidia-open`). Builds without a GPU: the module is compiled
# for the running kernel and loaded on the GPU instance that boots the image.
set -euo pipefail

# shellcheck source=/dev/null # the running system's
. /etc/os-release
[[ ${ID-}-${VERSION_ID-} == amzn-2023 ]] || {
  echo "ebfleet nvidia-driver: only Amazon Linux 2023 is supported (this is ${ID-}-${VERSION_ID-})" >&2
  exit 3
}
case $(uname -m) in
  x86_64) repo_arch=x86_64 ;;
  aarch64) repo_arch=sbsa ;;
  *) echo "ebfleet nvidia-driver: unsupported machine $(uname -m)" >&2; exit 4 ;;
esac
if command -v nvidia-smi >/dev/null 2>&1 && modinfo nvidia >/dev/null 2>&1; then
  echo "ebfleet nvidia-driver: already installed"
  exit 0
fi
kernel=$(uname -r)
dnf install -y "kernel-devel-$kernel" "kernel-modules-extra-$kernel" dkms
dnf config-manager --add-repo \
  "https://developer.download.nvidia.com/compute/cuda/repos/amzn2023/$repo_arch/cuda-amzn2023.repo"
dnf module enable -y nvidia-driver:open-dkms
dnf install -y nvidia-open
# The module must exist for the kernel the image boots.
modinfo -k "$kernel" nvidia >/dev/null
echo "ebfleet nvidia-driver: installed for kernel $kernel"
