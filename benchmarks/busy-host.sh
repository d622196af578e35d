#!/usr/bin/env bash
# Same verdict on a busy host (issue 18, item 6): runs a catalog subset quiet at --jobs 1, then at --jobs 4 while
# `stress-ng --cpu 4` and scripts/mount-churn.sh (tmpfs and bind mounts made and removed in a loop under a
# directory of its own) run, compares the outcomes per result id from the two --json files, prints every outcome
# that differs and the harness errors, and exits 1 if any outcome differs or any run was a harness error.
#
#   bash benchmarks/busy-host.sh                         # 1.19 and 1.27.3 (GO_VERSIONS="1.19 1.23" to choose)
#   bash benchmarks/busy-host.sh --timeout-scale 2       # extra arguments go to both `ghostrun run`s
#
# The subset covers each kind of verdict load can change: blocked and spinning hangs (hang_after against build
# time), freezes (frozen, thawed), hermetic mounts (a tmpfs /tmp, a read-only root, with the churner changing the
# table under the view), seeded and nth faults, a CPU quota and pids.max. BUSY_FILTER replaces it (a --filter
# regex). Results stay in $BUSY_OUT (default results/busy-host/, gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
ghostrun=${GHOSTRUN:-$repo/.build/release/ghostrun}
out=${BUSY_OUT:-$repo/results/busy-host}
read -r -a versions <<< "${GO_VERSIONS:-1.19 1.27.3}"
filter=${BUSY_FILTER:-'^(program-blocked|program-spins|frozen|go-version-frozen|freeze-thaw|go-run-noexec-tmp|readonly-root-home-root|seeded-openat-go-env|nth-openat-compile|gocache-openat-eacces|cpu-max-half|pids-max|pidfd-open-trap)$'}
hogs=${BUSY_CPU_HOGS:-4}
churn_dir=/tmp/ghostrun-busy-host-churn.$$

log() { printf 'busy-host: %s\n' "$*" >&2; }
[[ $(id -u) == 0 ]] || { log "run as root"; exit 2; }
[[ -x $ghostrun ]] || { log "no $ghostrun: swift build -c release --product ghostrun"; exit 2; }
if ! command -v stress-ng >/dev/null; then
    log "installing stress-ng"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends stress-ng >/dev/null \
        || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            stress-ng >/dev/null; }
fi

stress_pid=
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $stress_pid ]]; then
        kill -TERM "$stress_pid" 2>/dev/null || true
        wait "$stress_pid" 2>/dev/null || true
    fi
    bash scripts/mount-churn.sh stop "$churn_dir" 2>/dev/null || true
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$out"
version_args=()
for v in "${versions[@]}"; do version_args+=(--go-version "$v"); done
run_args=(run scenarios/ "${version_args[@]}" --filter "$filter" "$@")

log "quiet: ghostrun ${run_args[*]} --jobs 1"
quiet_start=$(date +%s)
"$ghostrun" "${run_args[@]}" --jobs 1 --json "$out/quiet.json" > "$out/quiet.txt" 2>&1 || true
quiet_seconds=$(( $(date +%s) - quiet_start ))

log "busy: stress-ng --cpu $hogs, scripts/mount-churn.sh under $churn_dir, --jobs 4"
stress-ng --cpu "$hogs" --timeout 0 --quiet &
stress_pid=$!
bash scripts/mount-churn.sh start "$churn_dir" > /dev/null
busy_start=$(date +%s)
"$ghostrun" "${run_args[@]}" --jobs 4 --json "$out/busy.json" > "$out/busy.txt" 2>&1 || true
busy_seconds=$(( $(date +%s) - busy_start ))
kill -TERM "$stress_pid" 2>/dev/null || true
wait "$stress_pid" 2>/dev/null || true
stress_pid=
bash scripts/mount-churn.sh stop "$churn_dir" 2>/dev/null

python3 - "$out/quiet.json" "$out/busy.json" "$quiet_seconds" "$busy_seconds" <<'EOF'
import json, sys

def load(path):
    try:
        with open(path) as f:
            return {r["name"] + "@" + r["go_version"]: r for r in json.load(f)["results"]}
    except (OSError, ValueError, KeyError) as error:
        print(f"busy-host: cannot read {path}: {error}")
        sys.exit(2)

def verdict(r):
    return r["outcome"] + (f" ({r['hang_kind']})" if r.get("hang_kind") else "")

quiet, busy = load(sys.argv[1]), load(sys.argv[2])
differ = []
for rid in sorted(set(quiet) | set(busy)):
    q, b = quiet.get(rid), busy.get(rid)
    if q is None or b is None or verdict(q) != verdict(b) or q.get("passed") != b.get("passed"):
        differ.append((rid, q, b))
print(f"{'result':45}  {'quiet (--jobs 1)':28}  {'busy (--jobs 4, stress-ng, mount churn)':40}")
for rid in sorted(set(quiet) | set(busy)):
    q, b = quiet.get(rid), busy.get(rid)
    mark = "DIFFERS" if any(d[0] == rid for d in differ) else ""
    qt = f"{verdict(q)} {q['duration_ms'] / 1000:.1f}s" if q else "missing"
    bt = f"{verdict(b)} {b['duration_ms'] / 1000:.1f}s" if b else "missing"
    print(f"{rid:45}  {qt:28}  {bt:40}  {mark}")
for rid, q, b in differ:
    print(f"\nDIFFERS {rid}:\n  quiet: {q['summary'] if q else 'missing'}\n  busy:  {b['summary'] if b else 'missing'}")
harness = {name: sum(1 for r in runs.values() if r["outcome"] == "harness-error")
           for name, runs in [("quiet", quiet), ("busy", busy)]}
for name, runs in [("quiet", quiet), ("busy", busy)]:
    for rid, r in sorted(runs.items()):
        if r["outcome"] == "harness-error":
            print(f"harness error ({name}) {rid}: {r['summary']}")
print(f"\n{len(quiet)} results quiet ({sys.argv[3]} s), {len(busy)} busy ({sys.argv[4]} s): "
      f"{len(differ)} outcomes differ, harness errors: {harness['quiet']} quiet, {harness['busy']} busy")
sys.exit(1 if differ or harness["quiet"] or harness["busy"] else 0)
EOF
