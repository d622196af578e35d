#!/usr/bin/env python3
"""CI-matrix benchmark: the catalog × 3 toolchains with --jobs 1 and --jobs 2, and ghostrun's fixed cost per run.

1. Speedup: `ghostrun run scenarios/ --go-version V1 --go-version V2 --go-version V3 --jobs J` for J = 1 and 2,
   alternating, wall time of each; speedup = median(jobs 1) / median(jobs 2).
2. Fixed cost per run (spawn, cgroup, filter compile, sampling, teardown): K copies of a `go version` scenario with
   a small seccomp filter, run with --jobs 1 in one ghostrun invocation; cost = (ghostrun's wall / K) minus the
   bare `go version` time (median of K bare runs), paired by repeating both N times.

Usage: benchmarks/matrix.py [--rounds N] [--copies K] [--versions 1.19,1.23,1.27] [--skip-catalog]
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
GHOSTRUN = os.path.join(ROOT, ".build", "release", "ghostrun")

TRIVIAL = """name: version-{i}
run: [go, version]
sandbox:
  seccomp:
    rules:
      - {{syscalls: [kexec_load, ptrace], action: errno, errno: EPERM}}
expect:
  outcome: ok
"""


def timed(argv, **kwargs):
    start = time.monotonic()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kwargs)
    return time.monotonic() - start, proc


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--versions", default="1.19,1.23,1.27")
    parser.add_argument("--skip-catalog", action="store_true")
    args = parser.parse_args()
    versions = [v for v in args.versions.split(",") if v]
    version_args = [a for v in versions for a in ("--go-version", v)]

    if not args.skip_catalog:
        walls = {1: [], 2: []}
        for r in range(args.rounds):
            for jobs in ((1, 2) if r % 2 == 0 else (2, 1)):
                wall, proc = timed([GHOSTRUN, "run", os.path.join(ROOT, "scenarios")] + version_args +
                                   ["--jobs", str(jobs)])
                if proc.returncode != 0:
                    sys.exit(f"catalog run failed ({proc.returncode}): {proc.stderr[-2000:]}")
                walls[jobs].append(wall)
                print(f"catalog × {len(versions)} toolchains, --jobs {jobs}: {wall:.1f} s")
        speedup = statistics.median(walls[1]) / statistics.median(walls[2])
        print(f"speedup --jobs 2 over --jobs 1: {speedup:.2f}×")

    work = tempfile.mkdtemp(prefix="ghostrun-matrix-bench-")
    try:
        for i in range(args.copies):
            with open(os.path.join(work, f"v{i}.yaml"), "w") as f:
                f.write(TRIVIAL.format(i=i))
        costs = []
        for r in range(max(3, args.rounds)):
            for v in versions:
                result = os.path.join(os.path.dirname(work), os.path.basename(work) + "-r.json")
                wall, proc = timed([GHOSTRUN, "run", work, "--go-version", v, "--jobs", "1", "--json", result])
                if proc.returncode != 0:
                    sys.exit(f"trivial run failed: {proc.stderr}")
                with open(result) as f:
                    run = json.load(f)
                go = run["results"][0]["go_path"]
                bare = []
                for _ in range(args.copies):
                    t, _ = timed([go, "version"], env={"PATH": os.environ["PATH"], "GOTOOLCHAIN": "local"})
                    bare.append(t)
                per_run = run["harness"]["wall_ms"] / 1000 / args.copies
                cost = per_run - statistics.median(bare)
                costs.append(cost)
                print(f"go {v}: {per_run * 1000:.1f} ms per run under ghostrun, bare go version "
                      f"{statistics.median(bare) * 1000:.1f} ms: fixed cost {cost * 1000:.1f} ms")
        print(f"fixed cost per run: median {statistics.median(costs) * 1000:.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        try:
            os.remove(os.path.join(os.path.dirname(work), os.path.basename(work) + "-r.json"))
        except OSError:
            pass


if __name__ == "__main__":
    main()
