#!/usr/bin/env bash
# Publish an ebfleet-node binary for the build nodes: upload it to
# s3://BUCKET/tools/ebfleet-node/<arch>/ebfleet-node with its SHA-256 as
# the object's `sha256` metadata, which the Capacity Lambda hands to each
# node's bootstrap with a presigned download (see infra/OPERATOR.md,
# "Publish ebfleet-node"). Builds nothing: give it a Linux binary built for
# the architecture. The architecture is read from the binary's ELF header.
#
#   scripts/publish-node.sh --bucket BUCKET PATH [--dry-run]
#
# BUCKET defaults to $EBFLEET_BUCKET. Needs the AWS CLI with credentials
# that may s3:PutObject there.
set -euo pipefail

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

bucket=${EBFLEET_BUCKET-}
file=
dry_run=0
while (($#)); do
  case $1 in
    --bucket) (($# >= 2)) || usage; bucket=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage ;;
    -*) echo "publish-node: unknown option $1" >&2; usage ;;
    *) [[ -z $file ]] || usage; file=$1; shift ;;
  esac
done
[[ -n $bucket ]] || { echo "publish-node: --bucket (or EBFLEET_BUCKET) is required" >&2; exit 2; }
[[ $bucket =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || { echo "publish-node: invalid bucket name '$bucket'" >&2; exit 2; }
[[ -n $file ]] || usage
[[ -f $file ]] || { echo "publish-node: no file $file" >&2; exit 2; }

# ELF magic, 64-bit little-endian, then e_machine at offset 18.
header=$(od -An -tx1 -N20 -v "$file" | tr -d ' \n')
[[ ${header:0:8} == 7f454c46 ]] || { echo "publish-node: $file is not an ELF binary" >&2; exit 2; }
[[ ${header:8:4} == 0201 ]] || { echo "publish-node: $file is not a 64-bit little-endian binary" >&2; exit 2; }
case ${header:36:4} in
  3e00) arch=x86_64 ;;
  b700) arch=aarch64 ;;
  *) echo "publish-node: $file is neither x86_64 nor aarch64 (e_machine ${header:36:4})" >&2; exit 2 ;;
esac

sha256=$(sha256sum "$file" | cut -d' ' -f1)
key="tools/ebfleet-node/$arch/ebfleet-node"
echo "s3://$bucket/$key  ($arch, $(stat -c %s "$file") bytes, sha256 $sha256)"
if ((dry_run)); then
  exit 0
fi
# S3 also checks the body against the SHA-256 the CLI computes on the way.
aws s3api put-object --bucket "$bucket" --key "$key" --body "$file" \
  --content-type application/octet-stream --metadata "sha256=$sha256" \
  --checksum-algorithm SHA256 >/dev/null
stored=$(aws s3api head-object --bucket "$bucket" --key "$key" --query 'Metadata.sha256' --output text)
[[ $stored == "$sha256" ]] || { echo "publish-node: s3://$bucket/$key has sha256 metadata '$stored', expected $sha256" >&2; exit 1; }
echo "published; nodes launched from now on install it"
