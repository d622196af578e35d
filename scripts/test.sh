#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, integration on the real go, CLI end to end).
# Integration tests need root; with GHOSTRUN_REQUIRE_HOST=1 (CI) a missing host feature fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
bash scripts/bootstrap.sh
swift build --build-tests
# The CLI tests run the built binary; they find it through GHOSTRUN_BINARY.
export GHOSTRUN_BINARY="$PWD/.build/debug/ghostrun"
swift test --skip-build "$@"
# Parser fuzz (issue 14): a few hundred mutated catalog files end with exit 0/1/2 only, never a signal or a hang,
# and an exit 2 starts nothing. ~20 s.
python3 scripts/fuzz-scenarios.py "$GHOSTRUN_BINARY" --count 300
