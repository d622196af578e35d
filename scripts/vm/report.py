#!/usr/bin/env python3
"""Judges what scripts/vm/guest-tests.sh recorded in the VM and prints the outcome table.

Usage: report.py RESULTS_DIR [--vm-seconds N] [--total-seconds N]
Exit status 0 when every row passed, 1 otherwise.

Every result must be the scenario's expected outcome and its evidence must show cgroup v2 at work: the run's
cgroup under /sys/fs/cgroup and no v1 cgroup beside it, in a delegated scope or service (never
/sys/fs/cgroup/ghostrun, except in the GHOSTRUN_CGROUP_SCOPE=never check), plus the controller's own evidence
(pids.events max, memory.events oom_kill, cpu.max/cpu.stat via v2, cgroup.freeze via v2).
"""
import argparse
import json
import os
import re
import sys

V2 = "/sys/fs/cgroup/"
STANDALONE_PARENT = "/sys/fs/cgroup/ghostrun/"


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def controller_evidence(result):
    """(ok, text) for what the result's scenario exercises."""
    cg = result.get("evidence", {}).get("cgroup") or {}
    name = result["name"]
    notes, ok = [], True
    path = cg.get("path", "")
    if not path.startswith(V2) or cg.get("extra_paths"):
        return False, f"not v2 only: {path} + {cg.get('extra_paths')}"
    notes.append("v2 only")
    if name == "pids-max":
        hits = cg.get("pids_max_hits")
        ok &= bool(hits)
        notes.append(f"pids.events max {hits}")
    if name == "vm-oom-kill":
        kills = cg.get("oom_kills")
        ok &= bool(kills)
        notes.append(f"memory.events oom_kill {kills}")
    if name.startswith("memory-max"):
        notes.append(f"oom_kill {cg.get('oom_kills')}")
    if name == "cpu-max-half":
        cpu = cg.get("cpu") or {}
        ok &= cpu.get("via") == "v2" and bool(cpu.get("nr_throttled") or cpu.get("throttled_periods"))
        notes.append(f"cpu.max via {cpu.get('via')}, throttled {cpu.get('nr_throttled', cpu.get('throttled_periods'))}"
                     f" of {cpu.get('nr_periods', cpu.get('periods'))} periods")
    if "freeze" in result.get("tags", []):
        freeze = [e for e in cg.get("events", []) if e.get("event") == "freeze-requested"]
        via = {e.get("detail") for e in freeze}
        ok &= via == {"v2"} and cg.get("frozen_seen") is True
        notes.append(f"freeze via {','.join(sorted(via)) or '-'}, frozen seen {cg.get('frozen_seen')}")
    return ok, "; ".join(notes)


def placement(path):
    if path.startswith(STANDALONE_PARENT):
        return "ghostrun/ (standalone)"
    m = re.search(r"/([^/]+\.(scope|service))/", path)
    if not m:
        return path
    unit = m.group(1) if len(m.group(1)) <= 22 else m.group(1)[:14] + "…" + m.group(1)[-7:]
    return f"{m.group(2)} {unit}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("--vm-seconds", type=int)
    parser.add_argument("--total-seconds", type=int)
    args = parser.parse_args()
    checks = os.path.join(args.results, "checks")
    facts = os.path.join(args.results, "facts")
    rows = []  # (check, item, expected, got, evidence, where, seconds, ok)

    def status(name):
        text = read(os.path.join(checks, name + ".status")).strip()
        return int(text) if text.isdigit() else None

    def seconds(name):
        text = read(os.path.join(checks, name + ".ms")).strip()
        return f"{int(text) / 1000:.0f}" if text.isdigit() else "-"

    for name, must in [("doctor", r"cgroup placement\s+undelegated: .*re-exec in"),
                       ("delegated-doctor", r"cgroup placement\s+delegated: ")]:
        out = read(os.path.join(checks, name + ".out"))
        v2 = re.search(r"cgroup v2\s+mounted at /sys/fs/cgroup;", out)
        line = next((l for l in out.splitlines() if "cgroup placement" in l), "no placement line")
        ok = status(name) == 0 and bool(v2) and bool(re.search(must, out))
        rows.append((name, "ghostrun doctor", "exit 0, v2, placement", f"exit {status(name)}",
                     re.sub(r"\s+", " ", line.strip())[:110], "-", seconds(name), ok))

    for name in ["xctest-delegated", "xctest-undelegated"]:
        if status(name) is None:
            continue
        text = read(os.path.join(checks, name + ".out")) + read(os.path.join(checks, name + ".err"))
        summary = re.findall(r"Executed (\d+) tests?, with (?:\d+ tests? skipped and )?(\d+) failures?", text)
        failed_cases = re.findall(r"Test Case '([^']+)' failed", text)
        skipped = re.findall(r"Test Case '([^']+)' skipped", text)
        total = summary[-1] if summary else ("?", "?")
        rows.append((name, "XCTest cgroup cases", "0 failures", f"{total[0]} tests, {total[1]} failures",
                     ("failed: " + ", ".join(failed_cases)) if failed_cases
                     else (f"{len(skipped)} skipped: " + ", ".join(s.split(".")[-1] for s in skipped)) if skipped
                     else "", "service" if name == "xctest-delegated" else "-", seconds(name),
                     status(name) == 0 and bool(summary) and total[1] == "0"))

    for check, expect_where in [("hermetic-first", "scope"), ("standalone-undo", "standalone"), ("catalog", "scope"), ("vm-scenarios", "scope"),
                                ("delegated-service", "service"), ("sigterm", "scope")]:
        data = read(os.path.join(checks, check + ".json"))
        if not data:
            rows.append((check, "-", "-", f"no results (exit {status(check)})", read(os.path.join(checks, check + ".err"))[-100:],
                         "-", seconds(check), False))
            continue
        for result in json.loads(data)["results"]:
            expected = result.get("expected") or {}
            outcomes = expected.get("outcome", [])
            expected_text = "|".join(outcomes if isinstance(outcomes, list) else [outcomes])
            if expected.get("hang_kind"):
                expected_text += f" ({expected['hang_kind']})"
            got = result["outcome"] + (f" ({result['hang_kind']})" if result.get("hang_kind") else "")
            path = (result.get("evidence", {}).get("cgroup") or {}).get("path", "")
            where = placement(path)
            ev_ok, evidence = controller_evidence(result)
            where_ok = expect_where in where
            if check == "sigterm":
                passed = bool(result.get("interrupted")) or "interrupted" in result.get("summary", "")
                got += " (interrupted)" if passed else ""
                expected_text = "interrupted by SIGTERM"
                ev_ok = True
            else:
                passed = result.get("passed") is True
            rows.append((check, result["name"] + "@" + result["go_version"], expected_text, got, evidence, where,
                         f"{result.get('duration_ms', 0) / 1000:.0f}", passed and ev_ok and where_ok))

    # Host changes.
    before = read(os.path.join(facts, "standalone-subtree-before")).split()
    after = read(os.path.join(facts, "standalone-subtree-after")).split()
    parent_after = read(os.path.join(facts, "standalone-parent-after")).strip()
    during = sorted({" ".join(l.split()) for l in read(os.path.join(facts, "standalone-subtree-during")).splitlines()})
    rows.append(("standalone-undo", "root cgroup.subtree_control", " ".join(before) or "(empty)",
                 " ".join(after) or "(empty)",
                 ("during the run: " + " / ".join(during)) if "cpu" not in before
                 else "cpu was on before: nothing to undo",
                 "ghostrun/ gone" if not parent_after else "ghostrun/ LEFT", "-",
                 before == after and not parent_after))
    seen = read(os.path.join(facts, "standalone-parent-seen")).split()
    rows.append(("host", "/sys/fs/cgroup/ghostrun after the standalone check", "never", f"seen {len(seen)} times",
                 "", "-", "-", not seen))
    sigterm_out = read(os.path.join(checks, "sigterm.out"))
    leftovers = {k: v for k, v in re.findall(r"^(run cgroups after|scopes after|go processes after): (\d+)",
                                              sigterm_out, re.M)}
    rows.append(("sigterm", "cgroups, scopes, processes after", "0, 0, 0",
                 ", ".join(leftovers.get(k, "?") for k in ["run cgroups after", "scopes after", "go processes after"]),
                 re.search(r"ghostrun exit status: \d+", sigterm_out).group(0) if "exit status" in sigterm_out else "",
                 "-", seconds("sigterm"), leftovers and all(v == "0" for v in leftovers.values())))
    host_before = read(os.path.join(facts, "host-before"))
    host_after = read(os.path.join(facts, "host-after"))
    def field(text, key):
        m = re.search(rf"^{re.escape(key)}: (.*)$", text, re.M)
        return m.group(1).strip() if m else "?"
    entries_before = set(field(host_before, "root entries").split())
    entries_after = set(field(host_after, "root entries").split())
    added, removed = sorted(entries_after - entries_before), sorted(entries_before - entries_after)
    after_first = set(field(read(os.path.join(facts, "host-after-hermetic-first")), "root entries").split())
    rows.append(("host", "v2 root entries before/after", "unchanged",
                 ("+" + " +".join(added) if added else "") + (" -" + " -".join(removed) if removed else "")
                 or "unchanged",
                 "appeared with the first hermetic run" if added and set(added) <= after_first - entries_before
                 else "", "-", "-", not added and not removed))
    for key in ["ghostrun scopes", "run cgroups"]:
        rows.append(("host", key + " before/after", field(host_before, key), field(host_after, key), "", "-", "-",
                     field(host_before, key) == field(host_after, key)))
    for key in ["subtree_control", "system.slice subtree_control"]:
        b, a = field(host_before, key), field(host_after, key)
        # systemd itself enables controllers along the path of a Delegate=yes unit: informational.
        rows.append(("host", key + " before/after (systemd's)", b, a, "info: systemd manages these", "-", "-", True))

    rows = [tuple(" ".join(c.split()) if isinstance(c, str) else c for c in r) for r in rows]
    rows = [tuple(c[:70] + "…" if isinstance(c, str) and len(c) > 71 else c for c in r) for r in rows]
    widths = [max(len(str(r[i])) for r in rows + [("check", "item", "expected", "got", "evidence", "cgroup", "s", "")])
              for i in range(7)]
    header = ("check", "item", "expected", "got", "evidence", "cgroup", "s")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  result")
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r[:7], widths)) + "  " + ("PASS" if r[7] else "FAIL"))
    failed = sum(1 for r in rows if not r[7])
    kernel = read(os.path.join(facts, "kernel")).strip()
    systemd = read(os.path.join(facts, "systemd")).strip()
    print(f"\n{len(rows)} rows, {failed} failed | guest: Linux {kernel}, {systemd}, "
          f"{read(os.path.join(facts, 'cpus')).strip()} CPUs (TCG)"
          + (f" | VM {args.vm_seconds} s" if args.vm_seconds else "")
          + (f", whole script {args.total_seconds} s" if args.total_seconds else ""))
    guest_status = read(os.path.join(args.results, "guest.status")).strip()
    if guest_status != "0":
        print(f"guest-tests.sh exited {guest_status}; see guest.log")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
