#!/usr/bin/env bash
# Builds ghostrun's BPF program (Sources/CGhostrunBPF/bpf/ghostrun.bpf.c) into the libbpf skeleton that the
# CGhostrunBPF target embeds: Sources/CGhostrunBPF/generated/ghostrun_bpf.skel.h (gitignored, never committed).
# SwiftPM cannot compile for the BPF target itself, so this runs before `swift build` (scripts/bootstrap.sh calls
# it). vmlinux.h comes from the running kernel's BTF (/sys/kernel/btf/vmlinux); the program is CO-RE, so the object
# runs on other kernels with BTF too. Without clang, bpftool or BTF it leaves no skeleton and says why: ghostrun
# then builds without the BPF backend and traces through seccomp user notification.
# Rebuilds only when the program or the shared header is newer than the skeleton (GHOSTRUN_BPF_REBUILD=1 forces it).
set -euo pipefail
cd "$(dirname "$0")/.."

source_file=Sources/CGhostrunBPF/bpf/ghostrun.bpf.c
shared_header=Sources/CGhostrunBPF/include/ghostrun_bpf_shared.h
out_dir=Sources/CGhostrunBPF/generated
skeleton=$out_dir/ghostrun_bpf.skel.h
work=.build/bpf
btf=${GHOSTRUN_BTF:-/sys/kernel/btf/vmlinux}

log() { printf 'build-bpf: %s\n' "$*" >&2; }

if [[ ${GHOSTRUN_BPF_REBUILD:-0} != 1 && -s $skeleton && $skeleton -nt $source_file && $skeleton -nt $shared_header ]]; then
    exit 0
fi

# Any clang with the BPF target: Swift's own (/opt/swift/usr/bin/clang) or Debian's.
clang=
for candidate in ${GHOSTRUN_BPF_CLANG:-} clang /opt/swift/usr/bin/clang clang-16 clang-15 clang-14; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -print-targets 2>/dev/null | grep -qw bpf; then
        clang=$(command -v "$candidate"); break
    fi
done
bpftool=$(command -v bpftool || ls /usr/sbin/bpftool 2>/dev/null || true)
missing=()
[[ -n $clang ]] || missing+=("a clang with the BPF target (apt-get install clang)")
[[ -n $bpftool ]] || missing+=("bpftool (apt-get install bpftool)")
[[ -r $btf ]] || missing+=("kernel BTF at $btf (CONFIG_DEBUG_INFO_BTF)")
[[ -r /usr/include/bpf/bpf_helpers.h ]] || missing+=("libbpf headers (apt-get install libbpf-dev)")
if ((${#missing[@]})); then
    log "not building the BPF program, missing: ${missing[*]}; tracing will use seccomp user notification"
    rm -f "$skeleton"
    exit 0
fi

case $(uname -m) in
    x86_64) arch=x86 ;;
    *) log "the BPF program supports x86_64 only (syscall numbers, registers); not building it"; rm -f "$skeleton"; exit 0 ;;
esac

mkdir -p "$work" "$out_dir"
"$bpftool" btf dump file "$btf" format c > "$work/vmlinux.h.tmp"
mv "$work/vmlinux.h.tmp" "$work/vmlinux.h"
# -mcpu=v3: atomic compare-and-swap (Linux 5.12+).
"$clang" -target bpf -mcpu=v3 -D__TARGET_ARCH_$arch -O2 -g -Wall -Wno-unknown-warning-option \
    -Wno-default-const-init-var-unsafe -I "$work" -c "$source_file" -o "$work/ghostrun.bpf.o"
# `gen object` drops the DWARF (the skeleton embeds the object; BTF stays for CO-RE).
"$bpftool" gen object "$work/ghostrun.o" "$work/ghostrun.bpf.o"
"$bpftool" gen skeleton "$work/ghostrun.o" name ghostrun_bpf > "$skeleton.tmp"
mv "$skeleton.tmp" "$skeleton"
log "built $skeleton with $clang"
