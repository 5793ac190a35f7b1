#!/usr/bin/env bash
# The whole test suite, as the README gives it: install the system packages
# the tests use (Debian packages; apt-get, as root or through sudo), then run
# `go test ./...` with any arguments passed on. .ci/run calls this same script.
#
# Each package the tests need is listed once below with the test that uses
# it; a package already on the machine is not installed again.
set -euo pipefail
cd "$(dirname "$0")/.."

# need COMMAND PACKAGE WHY: install PACKAGE unless COMMAND is on the PATH.
missing=()
need() {
  if ! command -v "$1" >/dev/null 2>&1; then missing+=("$2"); fi
}
need chromium chromium  # the console's browser test (cmd/dcep/console_browser_test.go)
need nft nftables       # the fault campaign's partitions (deploy/chaos)
need ip iproute2        # the fault campaign's network namespaces (deploy/chaos)

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing the system packages the tests use: ${missing[*]}"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

go test ./... "$@"
