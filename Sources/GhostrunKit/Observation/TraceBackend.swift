import Foundation

/// How the syscalls of a traced run are observed (`--trace-backend`).
public enum TraceBackendChoice: String, Sendable, CaseIterable {
    /// BPF when this host can load ghostrun's program, otherwise seccomp user notification.
    case automatic = "auto"
    case bpf
    case notify
}

/// The backend a run uses, and why: `doctor` prints it, a result carries it.
public struct TraceBackendDecision: Sendable, Equatable {
    public enum Backend: String, Sendable { case bpf, notify }
    public var backend: Backend
    public var reason: String
}

public enum TraceBackend {
    /// Whether ghostrun's BPF program loads and attaches here: tried once per process (a load costs ~10–30 ms),
    /// then remembered. nil when it does, else why not.
    public static let probeFailure: String? = BPFPrograms.shared.probe()

    /// Decides the backend for `choice` on this host. `bpf` asked for explicitly but unavailable is an error the
    /// caller reports as bad input (exit 2) before anything runs.
    public static func decide(_ choice: TraceBackendChoice) -> Result<TraceBackendDecision, BPFUnavailable> {
        switch choice {
        case .notify:
            return .success(TraceBackendDecision(backend: .notify, reason: "--trace-backend notify"))
        case .bpf:
            if let failure = probeFailure {
                return .failure(BPFUnavailable(description: "--trace-backend bpf: \(failure)"))
            }
            return .success(TraceBackendDecision(backend: .bpf, reason: "--trace-backend bpf"))
        case .automatic:
            if let failure = probeFailure {
                return .success(
                    TraceBackendDecision(
                        backend: .notify, reason: "BPF unavailable (\(failure)); seccomp user notification instead"))
            }
            return .success(
                TraceBackendDecision(
                    backend: .bpf, reason: "BPF program loads (BTF raw tracepoints, cgroup v2 filter)"))
        }
    }
}

extension BPFObservation {
    /// The role of each process, from its comm and the program it last exec'd.
    func roles(goroot: String, workRoot: String) -> [Int32: ProcessRole] {
        var roles: [Int32: ProcessRole] = [:]
        for process in processes {
            roles[process.pid] = ProcessRole.of(
                comm: process.comm, exe: process.exe, goroot: goroot,
                workRoot: workRoot)
        }
        return roles
    }

    /// The same summary the supervisor gives (`evidence.trace`), for the syscalls `request` names.
    /// A pid's calls count under the role of the program it ran last (the supervisor splits them at exec).
    public func traceSummary(request: TraceRequest, goroot: String, workRoot: String, injected: Int = 0)
        -> TraceSummary
    {
        let roles = roles(goroot: goroot, workRoot: workRoot)
        let comms = Dictionary(processes.map { ($0.pid, $0.comm) }, uniquingKeysWith: { a, _ in a })
        let wanted: Set<String>?
        switch request {
        case .syscalls(let names): wanted = Set(names)
        case .all, .off: wanted = nil
        }
        var perRole: [String: [String: TraceSummary.SyscallCalls]] = [:]
        var perProcess: [Int32: TraceSummary.ProcessCalls] = [:]
        var total = 0
        for entry in calls where wanted?.contains(entry.syscall) ?? true {
            let role = (roles[entry.pid] ?? .other).rawValue
            total += entry.calls
            var counts =
                perRole[role]?[entry.syscall]
                ?? TraceSummary.SyscallCalls(syscall: entry.syscall, calls: 0, errors: 0, firstMs: entry.firstMs)
            counts.calls += entry.calls
            counts.errors += entry.errors
            counts.firstMs = min(counts.firstMs, entry.firstMs)
            perRole[role, default: [:]][entry.syscall] = counts
            var process =
                perProcess[entry.pid]
                ?? TraceSummary.ProcessCalls(
                    pid: entry.pid, comm: comms[entry.pid] ?? "?", role: role, calls: 0,
                    firstMs: entry.firstMs)
            process.calls += entry.calls
            process.firstMs = min(process.firstMs, entry.firstMs)
            perProcess[entry.pid] = process
        }
        let byRole = perRole.mapValues { counts in
            counts.values.sorted { ($0.calls, $1.syscall) > ($1.calls, $0.syscall) }
        }
        let notified: [String]
        switch request {
        case .all, .off: notified = ["all"]
        case .syscalls(let names): notified = names.sorted()
        }
        var summary = TraceSummary(
            notified: notified, totalCalls: total, byRole: byRole,
            byProcess: perProcess.values.sorted { ($0.firstMs, $0.pid) < ($1.firstMs, $1.pid) }, injected: injected,
            supervisorMicrosecondsPerCall: 0)
        summary.backend = "bpf"
        summary.lostRecords = lostRecords
        return summary
    }

    /// The calls the policy failed with its errno, as denials (the first of each process, syscall and errno).
    /// Audit records of errno denials carry neither the errno nor the path: those are completed, not repeated.
    public func policyDenials(decisions: SeccompDecisionTable?, goroot: String, workRoot: String,
                              merging existing: [Denial]) -> [Denial]
    {
        /// The errno the policy answers every call of this syscall with (from the one decision table the filter
        /// was compiled from), and the rule that decided; nil when it allows it or decides by its arguments.
        func policyErrno(_ number: Int32) -> (errno: Int32, rule: String)? {
            guard let decisions, case .unconditional(let decision) = decisions.decision(number: number),
                case .errno(let value) = decision.action
            else { return nil }
            return (value, decision.origin.description)
        }
        let roles = roles(goroot: goroot, workRoot: workRoot)
        let byPid = Dictionary(processes.map { ($0.pid, $0) }, uniquingKeysWith: { a, _ in a })
        let work = workRoot + "/work"
        var denials = existing
        for error in errors {
            guard let decided = policyErrno(error.number), decided.errno == error.errnoValue else { continue }
            let path = error.path.map { $0.hasPrefix(work) ? "$WORK" + $0.dropFirst(work.count) : $0 }
            let process = byPid[error.pid]
            if let index = denials.firstIndex(where: {
                $0.source == "audit" && $0.action == "errno" && $0.syscall == error.syscall
                    && ($0.pid == error.pid || $0.pid == error.tid) && $0.errno == nil
            }) {
                denials[index].errno = error.errno
                denials[index].path = denials[index].path ?? path
                denials[index].role = denials[index].role ?? roles[error.pid]?.rawValue
                denials[index].rule = denials[index].rule ?? decided.rule
                continue
            }
            var denial = Denial(
                pid: error.pid, comm: process?.comm ?? "?", exe: process?.exe, syscall: error.syscall,
                syscallNumber: Int(error.number), action: "errno", errno: error.errno, timeMs: error.firstMs,
                source: "bpf", role: roles[error.pid]?.rawValue, path: path)
            denial.rule = decided.rule
            denials.append(denial)
        }
        return denials
    }
}
