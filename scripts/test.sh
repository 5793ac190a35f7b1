#!/usr/bin/env bash
# The whole test suite, as the README gives it: install the system packages
# the tests use (Debian packages; apt-get, as root or through sudo), then run
# `go test ./...` with any arguments passed on. .ci/run calls this same script.
#
# Each package the tests need is listed once below with the test that uses
# it; a package already on the machine is not installed again.
set -euo pipefail
cd "$(dirname "$0")/.."

# need COMMAND PACKAGES WHY: install PACKAGES (space-separated) unless
# COMMAND is on the PATH.
missing=()
need() {
  if ! command -v "$1" >/dev/null 2>&1; then read -ra pkgs <<<"$2"; missing+=("${pkgs[@]}"); fi
}
need gcc "gcc libc6-dev"  # cgo: PKCS#11 through miekg/pkcs11 (client/keystore/pkcs11key, deploy/hsm); Go builds without cgo when no C compiler is found
need chromium chromium  # the console's browser test (cmd/dcep/console_browser_test.go)
need nft nftables       # the fault campaign's partitions (deploy/chaos)
need ip iproute2        # the fault campaign's network namespaces (deploy/chaos)
need systemd-analyze systemd  # verifies the unit (deploy/systemd/unit_test.go)
need podman podman      # builds the image (deploy/container/container_test.go)
need promtool prometheus  # checks and unit-tests the alert rules and dashboard queries (deploy/observability)
need softhsm2-util softhsm2  # keys in a PKCS#11 token (client/keystore/pkcs11key, deploy/hsm)
need man man-db         # renders the generated man pages (internal/cmddoc, cmd/*/man_test.go)

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing the system packages the tests use: ${missing[*]}"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The packages above are installed now: a test that needs one of them fails
# instead of skipping when it is missing.
export DCEP_REQUIRE_TOOLS=1

go test ./... "$@"
