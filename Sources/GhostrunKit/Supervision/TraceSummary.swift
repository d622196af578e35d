import Foundation

/// The toolchain component a process belongs to, so a trace says "compile made 40 000 openat calls".
public enum ProcessRole: String, Codable, Sendable, CaseIterable {
    case go, compile, link, asm, vet, cgo, tool, program, other

    /// From the process's comm and exe: tools under GOROOT/pkg/tool, the go binary, cgo's C compiler, and the
    /// program `go run`/`go test` built (an exe under the run's work tree).
    static func of(comm: String, exe: String?, goroot: String, workRoot: String) -> ProcessRole {
        if let exe {
            if exe.hasPrefix(goroot + "/pkg/tool/") {
                let name = (exe as NSString).lastPathComponent
                return ProcessRole(rawValue: name) ?? .tool
            }
            if exe == goroot + "/bin/go" { return .go }
            if exe.hasPrefix(workRoot) { return .program }
        }
        switch comm {
        case "go": return .go
        case "compile", "link", "asm", "vet", "cgo": return ProcessRole(rawValue: comm)!
        case "gcc", "cc", "cc1", "cc1plus", "as", "ld", "collect2", "clang", "g++": return .cgo
        default: return .other
        }
    }
}

/// What the supervisor saw of every notified syscall: the result's `evidence.trace`.
public struct TraceSummary: Codable, Equatable, Sendable {
    public struct ProcessCalls: Codable, Equatable, Sendable {
        public var pid: Int32
        public var comm: String
        public var role: String
        public var calls: Int
        public var firstMs: Int
        enum CodingKeys: String, CodingKey { case pid, comm, role, calls, firstMs = "first_ms" }
    }
    public struct SyscallCalls: Codable, Equatable, Sendable {
        public var syscall: String
        public var calls: Int
        /// Calls answered with an error (a policy errno or an injected fault).
        public var errors: Int
        public var firstMs: Int
        enum CodingKeys: String, CodingKey { case syscall, calls, errors, firstMs = "first_ms" }
    }
    /// `all`, or the syscall names that were notified.
    public var notified: [String]
    public var totalCalls: Int
    /// role → per-syscall counts, most called first.
    public var byRole: [String: [SyscallCalls]]
    public var byProcess: [ProcessCalls]
    public var injected: Int
    /// Mean time the supervisor spent per notification (receive to response), in microseconds.
    public var supervisorMicrosecondsPerCall: Double
    /// `bpf` when the calls were counted by ghostrun's BPF program (nothing notified), nil for the supervisor.
    public var backend: String?
    /// `--trace-out` records the BPF ring buffer had no room for (never silently dropped).
    public var lostRecords: Int?
    /// For the syscalls whose use Go keeps narrow (`recordedArguments`), the distinct values of the argument
    /// that matters, as notified calls showed them (`ghostrun record --args` restricts rules to them).
    public var arguments: [String: [UInt64]]?
    /// syscall → the index of the argument recorded: `socket`'s family, `clone`'s flags, `personality`'s persona,
    /// the arguments moby's default profile restricts.
    public static let recordedArguments: [String: Int] = ["socket": 0, "clone": 0, "personality": 0]
    /// Distinct values kept per syscall (beyond it the rule stays unconditional).
    public static let maxRecordedValues = 32
    enum CodingKeys: String, CodingKey {
        case notified, totalCalls = "total_calls", byRole = "by_role", byProcess = "by_process", injected,
            supervisorMicrosecondsPerCall = "supervisor_us_per_call", backend, lostRecords = "lost_records", arguments
    }
    public init(notified: [String], totalCalls: Int, byRole: [String: [SyscallCalls]], byProcess: [ProcessCalls],
                injected: Int, supervisorMicrosecondsPerCall: Double) {
        self.notified = notified
        self.totalCalls = totalCalls
        self.byRole = byRole
        self.byProcess = byProcess
        self.injected = injected
        self.supervisorMicrosecondsPerCall = supervisorMicrosecondsPerCall
    }

    /// `strace -c -f` style text, grouped by role then syscall.
    public func render(limitPerRole: Int = 15) -> String {
        var lines: [String] = []
        let roles = byRole.keys.sorted { (byRole[$0]?.reduce(0) { $0 + $1.calls } ?? 0) > (byRole[$1]?.reduce(0) { $0 + $1.calls } ?? 0) }
        let processes = "\(byProcess.count) process\(byProcess.count == 1 ? "" : "es")"
        if backend == "bpf" {
            lines.append("\(totalCalls) syscalls traced by BPF in \(processes)"
                + (injected > 0 ? ", \(injected) faults injected" : "")
                + ((lostRecords ?? 0) > 0 ? "; \(lostRecords!) --trace-out records lost (ring buffer full)" : ""))
        } else {
            lines.append("\(totalCalls) syscalls notified in \(processes)"
                + (injected > 0 ? ", \(injected) faults injected" : "")
                + String(format: "; supervisor %.1f µs per call", supervisorMicrosecondsPerCall))
        }
        for role in roles {
            let calls = byRole[role] ?? []
            let total = calls.reduce(0) { $0 + $1.calls }
            let processes = byProcess.filter { $0.role == role }.count
            lines.append("")
            // A pid's calls before its exec count under its old role, but the process is listed under its new one.
            lines.append("\(role): \(total) calls" + (processes == 0 ? " (before an exec)"
                : " in \(processes) process\(processes == 1 ? "" : "es")"))
            lines.append("  " + "calls".padding(toLength: 10, withPad: " ", startingAt: 0)
                + "errors".padding(toLength: 8, withPad: " ", startingAt: 0) + "syscall")
            for entry in calls.prefix(limitPerRole) {
                lines.append("  " + String(entry.calls).padding(toLength: 10, withPad: " ", startingAt: 0)
                    + (entry.errors > 0 ? String(entry.errors) : "").padding(toLength: 8, withPad: " ", startingAt: 0)
                    + entry.syscall)
            }
            if calls.count > limitPerRole { lines.append("  … \(calls.count - limitPerRole) more syscalls") }
        }
        return lines.joined(separator: "\n")
    }
}
