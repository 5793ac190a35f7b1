#!/usr/bin/env bash
# Build the dcep image: static binaries from this tree, then podman (or
# buildah) on deploy/container/Containerfile. Usage: build.sh [TAG] (default
# dcep:dev). CONTEXT_ONLY=DIR writes the build context to DIR and stops
# (what the test does where no container tool runs).
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:-dcep:dev}
ctx=${CONTEXT_ONLY:-$(mktemp -d)}
mkdir -p "$ctx/data"
for cmd in dcepd dcep; do
  CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/$cmd" "./cmd/$cmd"
done
cp deploy/container/Containerfile "$ctx/Containerfile"
if [ -n "${CONTEXT_ONLY:-}" ]; then exit 0; fi
if command -v podman >/dev/null; then
  podman build -t "$tag" -f "$ctx/Containerfile" "$ctx"
else
  buildah build -t "$tag" -f "$ctx/Containerfile" "$ctx"
fi
rm -rf "$ctx"
