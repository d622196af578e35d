import Foundation

/// What `ghostrun inspect PID` shows: the restrictions a live process really runs under.
public struct InspectReport: Codable, Equatable, Sendable {
    /// One capability set as the kernel's mask and its decoded names.
    public struct Capabilities: Codable, Equatable, Sendable {
        /// 16 hex digits, as in `/proc/PID/status`.
        public var hex: String
        public var names: [String]

        public init(mask: UInt64) {
            hex = Self.hex(mask)
            names = CapabilitySet(rawValue: mask).names
        }

        static func hex(_ mask: UInt64) -> String {
            let digits = String(mask, radix: 16)
            return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
        }

        /// `(none)`, `(all 41)` when every capability the kernel knows is there, `(all 41 except ...)` when
        /// most are, or the names.
        var summary: String {
            let mask = UInt64(hex, radix: 16) ?? 0
            if mask == 0 { return "(none)" }
            let all = CapabilitySet.all.rawValue
            let total = CapabilitySet.all.numbers.count
            if mask & all == all { return "(all \(total))" }
            // A nearly full set reads better as what is missing: "all 41 except CAP_SYS_RESOURCE".
            let missing = CapabilitySet(rawValue: all & ~mask).names
            if missing.count < names.count && mask & ~all == 0 {
                return "(all \(total) except " + missing.joined(separator: ", ") + ")"
            }
            return "(" + names.joined(separator: ", ") + ")"
        }
    }

    /// What can go wrong when inspecting a process.
    public enum InspectError: Error, CustomStringConvertible, Equatable {
        case noProcess(Int32)
        public var description: String {
            switch self {
            case .noProcess(let pid): return "no process \(pid)"
            }
        }
    }

    public var pid: Int32
    public var ppid: Int32
    public var name: String
    public var comm: String?
    public var exe: String?
    /// One-letter state and the kernel's word for it, e.g. `S` / `sleeping`.
    public var state: String
    public var stateDescription: String
    public var wchan: String?
    /// The syscall the process is blocked in, by name; `running`, or `none` (blocked outside a syscall).
    public var syscall: String?
    public var syscallNumber: Int?
    public var threads: Int
    public var uid: [UInt32]
    public var gid: [UInt32]
    public var capInh: Capabilities
    public var capPrm: Capabilities
    public var capEff: Capabilities
    public var capBnd: Capabilities
    public var capAmb: Capabilities
    public var noNewPrivs: Bool
    /// `disabled`, `strict` or `filter`.
    public var seccompMode: String
    public var seccompFilters: Int

    enum CodingKeys: String, CodingKey {
        case pid, ppid, name, comm, exe, state
        case stateDescription = "state_description"
        case wchan, syscall
        case
            syscallNumber = "syscall_number"
        case threads, uid, gid
        case capInh = "cap_inh"
        case capPrm = "cap_prm"
        case
            capEff = "cap_eff"
        case capBnd = "cap_bnd"
        case capAmb = "cap_amb"
        case noNewPrivs = "no_new_privs"
        case
            seccompMode = "seccomp_mode"
        case seccompFilters = "seccomp_filters"
    }

    /// Builds the report from parsed status plus the other files; pure, so it can be tested on recorded text.
    public init(status: ProcStatus, comm: String?, exe: String?, wchan: String?, syscallField: String?) {
        pid = status.pid
        ppid = status.ppid
        name = status.name
        self.comm = comm
        self.exe = exe
        state = status.state
        stateDescription = Self.stateDescriptions[status.state] ?? "unknown"
        self.wchan = wchan
        switch syscallField {
        case nil: syscall = nil
        case "running": syscall = "running"
        case "-1": syscall = "none"
        case let field?:
            if let number = Int(field) {
                syscallNumber = number
                syscall = SyscallName.name(of: number) ?? "syscall_\(number)"
            } else {
                syscall = field
            }
        }
        threads = status.threads
        uid = status.uid
        gid = status.gid
        capInh = Capabilities(mask: status.capInh)
        capPrm = Capabilities(mask: status.capPrm)
        capEff = Capabilities(mask: status.capEff)
        capBnd = Capabilities(mask: status.capBnd)
        capAmb = Capabilities(mask: status.capAmb)
        noNewPrivs = status.noNewPrivs != 0
        seccompMode = Self.seccompModes[status.seccomp] ?? "mode \(status.seccomp)"
        seccompFilters = status.seccompFilters
    }

    /// Reads `/proc/PID/{status,comm,exe,wchan,syscall}` of a live process.
    public static func make(pid: Int32) throws -> InspectReport {
        guard let status = ProcFiles.status(pid: pid) else { throw InspectError.noProcess(pid) }
        return InspectReport(
            status: status, comm: ProcFiles.comm(pid: pid), exe: ProcFiles.exe(pid: pid),
            wchan: ProcFiles.wchan(pid: pid), syscallField: ProcFiles.syscall(pid: pid))
    }

    static let stateDescriptions: [String: String] = [
        "R": "running", "S": "sleeping", "D": "disk sleep", "T": "stopped", "t": "tracing stop", "Z": "zombie",
        "X": "dead", "I": "idle", "P": "parked", "K": "wakekill", "W": "waking",
    ]
    static let seccompModes: [Int: String] = [
        0: "disabled", 1: "strict", 2: "filter", 3: "dead (its seccomp filter is killing it)",
    ]

    /// Aligned lines for the terminal.
    public func text() -> String {
        func ids(_ values: [UInt32]) -> String { values.map(String.init).joined(separator: " ") }
        var seccompText = seccompMode
        if seccompMode == "filter" {
            seccompText += " (\(seccompFilters) \(seccompFilters == 1 ? "filter" : "filters"))"
        }
        var syscallText = syscall ?? "-"
        if let syscallNumber { syscallText += " (\(syscallNumber))" }
        let rows: [(String, String)] = [
            ("Pid", String(pid)),
            ("PPid", String(ppid)),
            ("Name", name),
            ("Comm", comm ?? "-"),
            ("Exe", exe ?? "-"),
            ("State", "\(state) (\(stateDescription))"),
            ("Wchan", wchan ?? "-"),
            ("Syscall", syscallText),
            ("Threads", String(threads)),
            ("Uid", ids(uid)),
            ("Gid", ids(gid)),
            ("CapInh", "\(capInh.hex) \(capInh.summary)"),
            ("CapPrm", "\(capPrm.hex) \(capPrm.summary)"),
            ("CapEff", "\(capEff.hex) \(capEff.summary)"),
            ("CapBnd", "\(capBnd.hex) \(capBnd.summary)"),
            ("CapAmb", "\(capAmb.hex) \(capAmb.summary)"),
            ("NoNewPrivs", noNewPrivs ? "1" : "0"),
            ("Seccomp", seccompText),
        ]
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { label, value in
            label + String(repeating: " ", count: width - label.count + 2) + value
        }.joined(separator: "\n") + "\n"
    }
}
