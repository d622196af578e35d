#!/usr/bin/env bash
# A mount table that keeps changing, as on a host where containers start and stop: creates and removes tmpfs
# mounts and bind mounts in a loop, all under a directory of its own, and removes everything it made when it stops
# (on stop, on exit, on SIGINT/SIGTERM). For tests and benchmarks/busy-host.sh (issue 18: ghostrun's hermetic view
# must not depend on a static host).
#
#   bash scripts/mount-churn.sh start [DIR]   # background churner; prints its pid; DIR default /tmp/ghostrun-mount-churn
#   bash scripts/mount-churn.sh stop [DIR]    # stops it and checks nothing of it is left mounted
#   bash scripts/mount-churn.sh run [DIR]     # in the foreground until interrupted
#
# MOUNT_CHURN_INTERVAL (seconds between steps, default 0.05) and MOUNT_CHURN_SLOTS (mounts alive at once, 8).
# Only DIR is touched: DIR must not exist (start/run make it) or be a churner's own directory (it has .mount-churn).
set -euo pipefail

action=${1:-}
dir=${2:-/tmp/ghostrun-mount-churn}
interval=${MOUNT_CHURN_INTERVAL:-0.05}
slots=${MOUNT_CHURN_SLOTS:-8}
pidfile=$dir/.mount-churn

usage() { echo "usage: $0 start|stop|run [DIR]" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "mount-churn: needs root (mount)" >&2; exit 2; }

# Every mount at or below DIR, deepest first.
mounts_under() { findmnt -rn -o TARGET | awk -v d="$dir" '$0 == d || index($0, d "/") == 1' | sort -r; }

remove_all() {
    local target
    # Repeated: a bind of a directory that itself held a mount can leave a second layer.
    for _ in 1 2 3; do
        mounts_under | while read -r target; do umount -l "$target" 2>/dev/null || true; done
        [[ -z $(mounts_under) ]] && break
    done
    if [[ -n $(mounts_under) ]]; then
        echo "mount-churn: still mounted under $dir:" >&2
        mounts_under >&2
        return 1
    fi
    rm -rf --one-file-system "$dir"
}

churn() {
    if [[ -e $dir && ! -e $pidfile ]]; then
        echo "mount-churn: $dir exists and is not a churner's directory; not touching it" >&2
        exit 2
    fi
    mkdir -p "$dir/src" "$dir/tmpfs" "$dir/bind"
    echo $$ > "$pidfile"
    echo "a file the bind mounts show" > "$dir/src/file"
    trap 'remove_all; exit 0' EXIT
    trap 'exit 0' INT TERM
    local step=0 slot
    while :; do
        slot=$((step % slots))
        # Replace the slot's mounts: the table changes at every step, mounts appear and disappear.
        umount -l "$dir/tmpfs/$slot" 2>/dev/null || true
        umount -l "$dir/bind/$slot" 2>/dev/null || true
        mkdir -p "$dir/tmpfs/$slot" "$dir/bind/$slot"
        mount -t tmpfs -o size=1m,mode=0755 "churn$slot" "$dir/tmpfs/$slot"
        mount --bind "$dir/src" "$dir/bind/$slot"
        step=$((step + 1))
        sleep "$interval"
    done
}

case $action in
    run) churn ;;
    start)
        if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "mount-churn: already running (pid $(cat "$pidfile"))" >&2
            exit 1
        fi
        setsid bash "$0" run "$dir" </dev/null >/dev/null 2>&1 &
        for _ in $(seq 50); do [[ -s $pidfile ]] && break; sleep 0.1; done
        [[ -s $pidfile ]] || { echo "mount-churn: did not start" >&2; exit 1; }
        echo "mount-churn: running (pid $(cat "$pidfile")) under $dir" >&2
        cat "$pidfile"
        ;;
    stop)
        if [[ -s $pidfile ]]; then
            pid=$(cat "$pidfile")
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        # Whatever a killed churner left (its trap did not run).
        if [[ -e $dir ]]; then
            [[ -e $pidfile ]] || { echo "mount-churn: $dir is not a churner's directory" >&2; exit 2; }
            remove_all
        fi
        echo "mount-churn: stopped; nothing left under $dir" >&2
        ;;
    *) usage ;;
esac
