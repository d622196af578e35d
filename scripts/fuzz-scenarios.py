#!/usr/bin/env python3
"""Fuzz the scenario parser: mutate the catalog's scenario files and run `ghostrun run` on each mutant.

Each mutant must end with exit status 0, 1 or 2 -- never a signal (a crash such as the SIGILL of a huge duration)
and never a hang (a per-mutant deadline) -- and an exit 2 must start nothing: no /tmp/ghostrun-* directory and no
cgroup under /sys/fs/cgroup/ghostrun appears during the call and stays (work directories are named
ghostrun-PID-..., so only the fuzzed process's own count). Mutants that parse are not run: `--filter` matches no
scenario name, so the whole file is parsed and validated but no go command starts; ghostrun then says "no scenario
to run" with exit 2, which this script counts as "parsed" (shown as status 0 in the summary).
Mutants are written next to their source (hidden `.fuzz-*` files, removed at the end) so relative fixtures resolve.

usage: fuzz-scenarios.py GHOSTRUN [--count N] [--seed S] [--go GO]
"""
import argparse
import glob
import os
import random
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mutate(rng, text):
    lines = text.split("\n")
    kind = rng.choice(["delete", "duplicate", "swap", "bytes", "huge", "nest", "alias", "bomb", "truncate"])
    i = rng.randrange(len(lines)) if lines else 0
    if kind == "delete" and lines:
        del lines[i]
    elif kind == "duplicate" and lines:
        lines.insert(i, lines[i])
    elif kind == "swap" and len(lines) > 1:
        j = rng.randrange(len(lines))
        a, b = lines[i].partition(":"), lines[j].partition(":")
        if a[1] and b[1]:
            lines[i], lines[j] = a[0] + ":" + b[2], b[0] + ":" + a[2]
    elif kind == "bytes":
        raw = bytearray("\n".join(lines).encode())
        for _ in range(rng.randint(1, 8)):
            if raw:
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    elif kind == "huge" and lines:
        head, colon, _ = lines[i].partition(":")
        number = rng.choice(["9223372036854775807", "1e400", "-1", "99999999999999999999ms", "4095", "0x7fffffff"])
        lines[i] = head + (colon or ":") + " " + number
    elif kind == "nest":
        depth = rng.choice([50, 500, 5000])
        lines.append("x-nest: " + "[" * depth + "]" * depth)
    elif kind == "alias":
        lines.append("x-anchor: &a [1, 2]")
        lines.append("x-list: [" + ", ".join(["*a"] * rng.choice([10, 5000])) + "]")
    elif kind == "bomb":
        lines.append("x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]")
        for level in range(1, 9):
            prev = f"*x{level - 1}"
            lines.append(f"x{level}: &x{level} [" + ", ".join([prev] * 9) + "]")
    elif kind == "truncate":
        return "\n".join(lines)[: rng.randrange(max(1, len(text)))].encode()
    return "\n".join(lines).encode()


def leftovers(pid):
    return set(glob.glob(f"/tmp/ghostrun-{pid}-*")) | set(glob.glob(f"/sys/fs/cgroup/ghostrun/*{pid}*"))


def keep(mutant):
    """Copies a failing mutant to /tmp/fuzz-scenarios-failures to reproduce it."""
    os.makedirs("/tmp/fuzz-scenarios-failures", exist_ok=True)
    with open(mutant, "rb") as source, open(
        os.path.join("/tmp/fuzz-scenarios-failures", os.path.basename(mutant)), "wb"
    ) as copy:
        copy.write(source.read())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("ghostrun")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "14")))
    parser.add_argument("--deadline", type=float, default=20.0)
    parser.add_argument("--go", default=None, help="a go binary or GOROOT (default: the first installed)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    sources = sorted(glob.glob(os.path.join(ROOT, "scenarios", "**", "*.yaml"), recursive=True))
    if not sources:
        sys.exit("no scenario files under scenarios/")
    failures, statuses, slowest = [], {}, 0.0
    written = []
    try:
        for n in range(args.count):
            source = rng.choice(sources)
            with open(source, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            # Keep the mutant next to its source's fixtures' names: relative fixtures then resolve the same way.
            mutant = os.path.join(os.path.dirname(source), f".fuzz-{n:04d}-" + os.path.basename(source))
            written.append(mutant)
            with open(mutant, "wb") as f:
                f.write(mutate(rng, text))
            command = [args.ghostrun, "run", mutant, "--filter", "^no scenario is named this$"]
            if args.go:
                command += ["--go", args.go]
            start = time.monotonic()
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                _, err = process.communicate(timeout=args.deadline)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                failures.append(f"{mutant} (from {source}): hang, still running after {args.deadline} s")
                keep(mutant)
                continue
            took = time.monotonic() - start
            slowest = max(slowest, took)
            status = process.returncode
            stderr = err.decode("utf-8", "replace").strip().splitlines()
            parsed = status == 2 and any("no scenario to run" in line for line in stderr)
            shown = 0 if parsed else status
            statuses[shown] = statuses.get(shown, 0) + 1
            if status < 0:
                failures.append(f"{mutant} (from {source}): killed by {signal.Signals(-status).name}")
            elif status not in (0, 1, 2):
                failures.append(f"{mutant} (from {source}): exit {status}: {stderr[-1:] }")
            if status == 2:
                new = leftovers(process.pid)
                if new:
                    failures.append(f"{mutant} (from {source}): exit 2 but left {sorted(new)}")
            if failures and failures[-1].startswith(mutant):
                keep(mutant)
    finally:
        for path in written:
            if os.path.exists(path):
                os.remove(path)
    print(f"fuzz-scenarios: {args.count} mutants (seed {args.seed}), exit statuses {dict(sorted(statuses.items()))}, "
          f"slowest {slowest:.2f} s, {len(failures)} failures")
    for failure in failures:
        print("  " + failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
