#!/usr/bin/env bash
# Runs inside scripts/vm-test.sh's VM, as root, from the unit ghostrun-vm.service (its cgroup,
# /system.slice/ghostrun-vm.service, is not delegated: ghostrun has to find a delegated one itself). Writes raw
# results into /mnt/share/results; scripts/vm/report.py judges them on the host. Each check is one ghostrun
# command; its stdout, stderr, exit status and time go to results/checks/NAME.*.
set -u
share=/mnt/share
results=$share/results
checks=$results/checks
facts=$results/facts
mkdir -p "$checks" "$facts"
scale=$(cat "$share/timeout-scale")
only=$(cat "$share/only" 2>/dev/null || true)
progress() { echo "ghostrun-vm: $*" > /dev/console; echo "== $*"; }

# ghostrun from the local disk, not the share (a 9p mount in the table the hermetic view replicates is not what
# CI hosts have).
rm -rf /opt/ghostrun && mkdir -p /opt/ghostrun && cp -a "$share/payload/." /opt/ghostrun/
cd /opt/ghostrun
ghostrun=/opt/ghostrun/bin/ghostrun
export GHOSTRUN_TOOLCHAINS=/opt/ghostrun/.toolchains

# The host as ghostrun sees it, recorded (CgroupPlacementTests uses these).
cp /proc/self/mountinfo "$facts/mountinfo"
cp /proc/self/cgroup "$facts/self-cgroup"
cp /proc/1/comm "$facts/pid1-comm"
ls /sys/fs/cgroup > "$facts/root-entries"
uname -r > "$facts/kernel"
systemctl --version | head -1 > "$facts/systemd"
nproc > "$facts/cpus"
snapshot() {  # the host's cgroup state outside ghostrun's own cgroups
    {
        echo "subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
        echo "system.slice subtree_control: $(cat /sys/fs/cgroup/system.slice/cgroup.subtree_control)"
        echo "root entries: $(ls /sys/fs/cgroup | tr '\n' ' ')"
        echo "ghostrun scopes: $(systemctl list-units --all --plain --no-legend 'run-*.scope' | wc -l)"
        echo "run cgroups: $(find /sys/fs/cgroup -name 'r[0-9]*-*' -type d | wc -l)"
    } > "$1"
}

# check NAME COMMAND...: runs it with a time limit, records status, time, output.
check() {
    local name=$1; shift
    if [[ -n $only ]] && ! [[ $name =~ $only ]]; then return; fi
    progress "check $name"
    local begin; begin=$(date +%s%N)
    timeout --kill-after=30 "$(( 1800 * scale / 10 + 600 ))" "$@" > "$checks/$name.out" 2> "$checks/$name.err"
    echo $? > "$checks/$name.status"
    echo $(( ($(date +%s%N) - begin) / 1000000 )) > "$checks/$name.ms"
    progress "check $name: exit $(cat "$checks/$name.status")"
}

snapshot "$facts/host-before"
check doctor "$ghostrun" doctor

# The catalog is a copy without .git: fixtures may come from the directory given on the command line
# (scenarios/), so each check names that directory and a --filter.

# 1. GHOSTRUN_CGROUP_SCOPE=never: ghostrun stays in its undelegated service and makes /sys/fs/cgroup/ghostrun
#    (the old behaviour, kept as the fallback). The cpu quota may need +cpu in the root's subtree_control; it must
#    be off again afterwards if it was off before.
# 0. The first hermetic run on a fresh systemd host: /proc/sys/fs/binfmt_misc is an autofs automount point there
#    (systemd's proc-sys-fs-binfmt_misc.automount); replicating it into the run's namespace must not fail, nor
#    trigger the mount on the host.
check hermetic-first "$ghostrun" run vm-scenarios/go-version.yaml --go-version 1.19 --timeout-scale "$scale" \
    --json "$checks/hermetic-first.json"
snapshot "$facts/host-after-hermetic-first"

cat /sys/fs/cgroup/cgroup.subtree_control > "$facts/standalone-subtree-before"
(
    while sleep 0.2; do cat /sys/fs/cgroup/cgroup.subtree_control >> "$facts/standalone-subtree-during"; done
) &
subtree_sampler=$!
check standalone-undo env GHOSTRUN_CGROUP_SCOPE=never "$ghostrun" run scenarios/ --filter '^cpu-max-half$' \
    --go-version 1.19 --timeout-scale "$scale" --jobs 1 --json "$checks/standalone-undo.json"
kill "$subtree_sampler"; wait "$subtree_sampler" 2>/dev/null
sort -u -o "$facts/standalone-subtree-during" "$facts/standalone-subtree-during"
cat /sys/fs/cgroup/cgroup.subtree_control > "$facts/standalone-subtree-after"
[[ -d /sys/fs/cgroup/ghostrun ]] && echo present > "$facts/standalone-parent-after"

# From here on ghostrun re-executes itself in a delegated scope: /sys/fs/cgroup/ghostrun must never appear.
(
    while sleep 0.5; do
        [[ -d /sys/fs/cgroup/ghostrun ]] && date +%s >> "$facts/standalone-parent-seen"
        find /sys/fs/cgroup -maxdepth 4 -name 'r[0-9]*-*' -type d 2>/dev/null >> "$facts/run-cgroups-seen"
    done
) &
sampler=$!

# 2. The catalog's cgroup scenarios plus hangs that end in a kill of the tree.
check catalog "$ghostrun" run scenarios/ --go-version 1.19 --timeout-scale "$scale" --jobs 1 \
    --filter '^(pids-max|memory-max-precompiled-std|cpu-max-half|freeze-thaw|frozen|go-version-frozen|program-blocked|program-spins|pidfd-open-trap-before-1.23)$' \
    --json "$checks/catalog.json"
# 3. memory.events: an OOM kill.
check vm-scenarios "$ghostrun" run vm-scenarios/vm-oom-kill.yaml --go-version 1.19 --timeout-scale "$scale" --jobs 1 \
    --json "$checks/vm-scenarios.json"
# 4. Started in a service with Delegate=yes: ghostrun works in that cgroup directly, no re-exec.
check delegated-service systemd-run --quiet --wait --pipe --collect -p Delegate=yes \
    -E GHOSTRUN_TOOLCHAINS="$GHOSTRUN_TOOLCHAINS" --working-directory=/opt/ghostrun -- \
    "$ghostrun" run scenarios/ --filter '^pids-max$' --go-version 1.19 --timeout-scale "$scale" --jobs 1 \
    --json "$checks/delegated-service.json"
check delegated-doctor systemd-run --quiet --wait --pipe --collect -p Delegate=yes -- "$ghostrun" doctor

# 5. The cgroup XCTest cases (RunCgroup live: v2 pids.max, memory.max, freeze, kill, sweep; the placement
#    decision; the undo of a controller enabled in the root) in a Delegate=yes service and, undelegated, here.
tests="GhostrunKitTests.CgroupPlacementTests,GhostrunKitTests.CgroupHierarchyTests,GhostrunKitTests.CgroupHostChangeTests,GhostrunKitTests.SystemLayerTests"
if [[ -x /opt/ghostrun/tests/ghostrunPackageTests.xctest ]]; then
    check xctest-delegated systemd-run --quiet --wait --pipe --collect -p Delegate=yes \
        --working-directory=/opt/ghostrun -- /opt/ghostrun/tests/ghostrunPackageTests.xctest "$tests"
    check xctest-undelegated /opt/ghostrun/tests/ghostrunPackageTests.xctest "$tests"
fi

# 6. SIGTERM during a run: the run's cgroup, its processes and the scope go.
sigterm_check() {
    "$ghostrun" run scenarios/seed/program-spins.yaml --go-version 1.19 --timeout-scale "$scale" \
        --json "$checks/sigterm.json" &
    local pid=$! i
    for i in $(seq 600); do
        find /sys/fs/cgroup -name "r$pid-*" -type d | grep -q . && break
        sleep 0.5
    done
    sleep 5
    echo "run cgroups before SIGTERM: $(find /sys/fs/cgroup -name "r$pid-*" -type d | tr '\n' ' ')"
    kill -TERM "$pid"
    wait "$pid"
    local status=$?
    sleep 3
    echo "ghostrun exit status: $status"
    echo "run cgroups after: $(find /sys/fs/cgroup -name "r$pid-*" -type d | wc -l)"
    echo "scopes after: $(systemctl list-units --all --plain --no-legend 'run-*.scope' | wc -l)"
    echo "go processes after: $(pgrep -c -x go || true)"
}
export ghostrun checks scale
check sigterm bash -c "$(declare -f sigterm_check); sigterm_check"

kill "$sampler" 2>/dev/null
wait "$sampler" 2>/dev/null
sort -u -o "$facts/run-cgroups-seen" "$facts/run-cgroups-seen" 2>/dev/null
sleep 2
snapshot "$facts/host-after"
journalctl -b --no-pager -o short-monotonic > "$results/journal.txt" 2>&1
progress "done"
