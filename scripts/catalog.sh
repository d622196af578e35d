#!/usr/bin/env bash
# Installs what is missing, builds ghostrun, and runs the scenario catalog on every installed toolchain.
# Extra arguments go to `ghostrun run` (e.g. --jobs 1, --junit r.xml, --markdown r.md, --filter pidfd).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
bash scripts/bootstrap.sh
swift build -c release --product ghostrun
exec .build/release/ghostrun run scenarios/ --go-version all "$@"
