#!/usr/bin/env python3
"""Writes containerd's RuntimeDefault seccomp profile (the Kubernetes default) as Docker-format JSON.

    git -C containerd show COMMIT:contrib/seccomp/seccomp_default.go | \
        python3 scripts/containerd-profile-to-json.py > profiles/containerd-default.json

containerd has no JSON for this profile: `DefaultProfile(spec)` in contrib/seccomp/seccomp_default.go builds it in
Go, appending rules under conditions. Each condition maps onto a key of moby's profile format, which ghostrun
resolves the same way:
- `kernelversion.GreaterEqualThan(4.8)`           -> "includes": {"minKernel": "4.8"}
- `switch runtime.GOARCH { case "arm", "arm64": }` -> "includes": {"arches": ["arm", "arm64"]}
- `case "CAP_X":` in the loop over the bounding set -> "includes": {"caps": ["CAP_X"]}
- `if !admin {` (CAP_SYS_ADMIN not in the bounding set) -> "excludes": {"caps": ["CAP_SYS_ADMIN"]}
- `default:` of a GOARCH switch                    -> "excludes": {"arches": [the other cases' arches]}
- `arches()`                                       -> "archMap"
The script understands exactly the constructs that file uses and fails loudly on anything else.
"""

import json
import re
import sys

GOARCH_TO_MOBY = {"386": "x86", "amd64": "amd64", "arm": "arm", "arm64": "arm64", "ppc64le": "ppc64le",
                  "s390": "s390", "s390x": "s390x", "riscv64": "riscv64", "loong64": "loong64",
                  "mips64": "mips64", "mips64le": "mipsel64"}
CONSTANTS = {"unix.AF_ALG": 38, "unix.AF_VSOCK": 40, "unix.CLONE_NEWNS": 0x20000, "unix.CLONE_NEWUTS": 0x4000000,
             "unix.CLONE_NEWIPC": 0x8000000, "unix.CLONE_NEWUSER": 0x10000000, "unix.CLONE_NEWPID": 0x20000000,
             "unix.CLONE_NEWNET": 0x40000000, "unix.CLONE_NEWCGROUP": 0x2000000}
OPS = {"specs.OpLessThan": "SCMP_CMP_LT", "specs.OpEqualTo": "SCMP_CMP_EQ", "specs.OpGreaterThan": "SCMP_CMP_GT",
       "specs.OpMaskedEqual": "SCMP_CMP_MASKED_EQ", "specs.OpNotEqual": "SCMP_CMP_NE"}
ACTIONS = {"specs.ActAllow": "SCMP_ACT_ALLOW", "specs.ActErrno": "SCMP_ACT_ERRNO"}


def value(expression):
    total = 0
    for term in expression.split("|"):
        parts = [p.strip() for p in term.split("+")]
        number = 0
        for part in parts:
            if part in CONSTANTS:
                number += CONSTANTS[part]
            elif re.fullmatch(r"0x[0-9a-fA-F]+|\d+", part):
                number += int(part, 0)
            else:
                raise SystemExit(f"unknown constant {part!r}")
        total |= number
    return total


def main():
    lines = sys.stdin.read().splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("func DefaultProfile"))
    syscalls = []
    # A stack of (brace depth, filter) for the conditions around the current line.
    conditions = []
    switch_cases = []  # per GOARCH switch: the arches of its cases, for `default:`
    depth = 0
    entry = None
    in_names = False
    in_args = False
    arg = None
    goarch_switch_depth = None
    list_depth = None
    for raw in lines[start + 1:]:
        line = raw.split("//")[0].strip()
        opens, closes = line.count("{"), line.count("}")
        if entry is None:
            case = re.match(r'case (.*):$', line)
            if re.match(r"if ok, err := kernelversion.GreaterEqualThan\(", line):
                pass
            elif re.match(r"kernelversion.KernelVersion\{Kernel: (\d+), Major: (\d+)\}\); err == nil \{", line):
                m = re.match(r"kernelversion.KernelVersion\{Kernel: (\d+), Major: (\d+)\}", line)
                conditions.append((depth + 1, ("includes", "minKernel", f"{m.group(1)}.{m.group(2)}")))
            elif line == "switch runtime.GOARCH {":
                goarch_switch_depth = depth + 1
                switch_cases.append([])
            elif case and goarch_switch_depth == depth:
                conditions = [c for c in conditions if c[0] <= depth - 1 or c[1][0] != "case"]
                arches = [GOARCH_TO_MOBY[a.strip().strip('"')] for a in case.group(1).split(",")]
                switch_cases[-1] += arches
                conditions.append((depth, ("case", "includes", "arches", arches)))
            elif line == "default:" and goarch_switch_depth == depth:
                conditions = [c for c in conditions if c[0] <= depth - 1 or c[1][0] != "case"]
                conditions.append((depth, ("case", "excludes", "arches", list(switch_cases[-1]))))
            elif case and re.fullmatch(r'"CAP_[A-Z_]+"', case.group(1)):
                conditions = [c for c in conditions if c[0] <= depth - 1 or c[1][0] != "case"]
                conditions.append((depth, ("case", "includes", "caps", [case.group(1).strip('"')])))
            elif line == "if !admin {":
                conditions.append((depth + 1, ("excludes", "caps", ["CAP_SYS_ADMIN"])))
            elif "[]specs.LinuxSyscall{" in line:
                list_depth = depth + 1
            elif line == "{" and list_depth == depth:
                entry = {"names": [], "action": None, "args": []}
                entry_depth = depth + 1
            elif "specs.LinuxSyscall{" in line:
                entry = {"names": [], "action": None, "args": []}
                entry_depth = depth + 1
            elif line.startswith("case ") or line == "default:":
                raise SystemExit(f"unexpected case: {raw!r}")
        else:
            if line.startswith("Names:"):
                in_names = True
                entry["names"] += re.findall(r'"([a-z0-9_]+)"', line)
                if "}" in line:
                    in_names = False
            elif in_names:
                entry["names"] += re.findall(r'"([a-z0-9_]+)"', line)
                if line.startswith("}"):
                    in_names = False
            elif line.startswith("Action:"):
                entry["action"] = ACTIONS[line.split(":", 1)[1].strip().rstrip(",")]
            elif line.startswith("ErrnoRet:"):
                if line.split(":", 1)[1].strip().rstrip(",") != "&nosys":
                    raise SystemExit(f"unknown errno: {raw!r}")
                entry["errnoRet"] = 38
            elif line.startswith("Args:"):
                in_args = "{}" not in line
            elif in_args and line.startswith("Index:"):
                arg = {"index": int(line.split(":", 1)[1].strip().rstrip(","))}
            elif in_args and line.startswith("ValueTwo:"):
                arg["valueTwo"] = value(line.split(":", 1)[1].strip().rstrip(","))
            elif in_args and line.startswith("Value:"):
                arg["value"] = value(line.split(":", 1)[1].strip().rstrip(","))
            elif in_args and line.startswith("Op:"):
                arg["op"] = OPS[line.split(":", 1)[1].strip().rstrip(",")]
                entry["args"].append(arg)
        depth += opens - closes
        if entry is not None and depth < entry_depth:
            result = {"names": sorted(set(entry["names"]), key=entry["names"].index), "action": entry["action"]}
            if "errnoRet" in entry:
                result["errnoRet"] = entry["errnoRet"]
            result["args"] = entry["args"]
            for _, condition in conditions:
                kind, key, item = (condition[1], condition[2], condition[3]) if condition[0] == "case" else condition
                result.setdefault(kind, {})[key] = item
            if not result["names"] or not result["action"]:
                raise SystemExit(f"incomplete entry before: {raw!r}")
            syscalls.append(result)
            entry = None
            in_args = False
        conditions = [c for c in conditions if c[0] <= depth]
        if list_depth is not None and depth < list_depth:
            list_depth = None
        if goarch_switch_depth is not None and depth < goarch_switch_depth:
            goarch_switch_depth = None
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": syscalls,
    }
    print(json.dumps(profile, indent=1))


if __name__ == "__main__":
    main()
