import Foundation

/// `ghostrun profile show`: a resolved profile for this host, like `systemd-analyze syscall-filter` — per syscall
/// of the native table the action and the profile rule (or the stub, or the default) that decides it, the names
/// skipped, the entries left out, the ENOSYS stub range.
public struct ProfileReport: Codable, Equatable, Sendable {
    public var profile: String
    public var runtime: String
    public var architecture: String
    public var kernel: String
    public var capabilities: [String]
    public var defaultAction: String
    public var defaultOrigin: String
    public var enosysAbove: Int32?
    public var flags: [String]
    public var syscalls: [Decision]
    public var skipped: [ResolvedProfile.SkippedName]
    public var excluded: [ResolvedProfile.ExcludedEntry]
    /// The kernel tables the names come from.
    public var syscallTables: String

    public struct Decision: Codable, Equatable, Sendable {
        public var name: String
        public var number: Int32
        public var action: String
        public var decidedBy: String
        enum CodingKeys: String, CodingKey {
            case name, number, action
            case decidedBy = "decided_by"
        }
    }

    enum CodingKeys: String, CodingKey {
        case profile, runtime, architecture, kernel, capabilities
        case defaultAction = "default_action"
        case
            defaultOrigin = "default_origin"
        case enosysAbove = "enosys_above"
        case flags, syscalls, skipped, excluded
        case
            syscallTables = "syscall_tables"
    }

    public init(_ resolved: ResolvedProfile, context: ProfileResolutionContext) {
        profile = resolved.label
        runtime = resolved.runtime.rawValue
        architecture = resolved.architecture.rawValue
        kernel = context.kernel.description
        capabilities = context.capabilities.names
        defaultAction = resolved.defaultAction.description
        defaultOrigin = resolved.defaultOrigin
        enosysAbove = resolved.enosysAbove
        flags = resolved.flags
        let table = SyscallTable.table(for: resolved.architecture)
        syscalls = table.allNames.map { name in
            let decision = resolved.decision(for: name)
            return Decision(
                name: name, number: table.number(of: name) ?? -1, action: decision.action,
                decidedBy: decision.origin)
        }
        skipped = resolved.skipped
        excluded = resolved.excluded
        syscallTables = SyscallTable.source
    }

    /// The text form: a header, one line per syscall, then what was skipped and left out.
    public var text: String {
        var lines: [String] = []
        lines.append("profile \(profile): runtime \(runtime), \(architecture), kernel \(kernel)")
        lines.append(
            "capabilities of the go command: "
                + (capabilities.isEmpty ? "none" : capabilities.joined(separator: ",")))
        lines.append("default: \(defaultAction) (\(defaultOrigin))")
        if let enosysAbove {
            let name = SyscallTable.native.name(of: enosysAbove).map { " (\($0))" } ?? ""
            lines.append(
                "ENOSYS stub: syscalls numbered above \(enosysAbove)\(name) answer ENOSYS before any rule (runc)")
        } else {
            lines.append("ENOSYS stub: none" + (runtime == "crun" ? " (crun applies the profile as written)" : ""))
        }
        if !flags.isEmpty { lines.append("flags: \(flags.joined(separator: ", "))") }
        lines.append("")
        let width = max(8, syscalls.map(\.name.count).max() ?? 8)
        let actionWidth = min(48, max(6, syscalls.map(\.action.count).max() ?? 6))
        func pad(_ text: String, _ count: Int) -> String {
            text.padding(toLength: max(count, text.count), withPad: " ", startingAt: 0)
        }
        lines.append("\(pad("syscall", width))  \(pad("nr", 4))  \(pad("action", actionWidth))  decided by")
        for decision in syscalls {
            lines.append(
                "\(pad(decision.name, width))  \(pad(String(decision.number), 4))  "
                    + "\(pad(decision.action, actionWidth))  \(decision.decidedBy)")
        }
        lines.append("")
        lines.append("names skipped (\(skipped.count)), as runc skips them:")
        for name in skipped { lines.append("  \(name.name): \(name.reason) (\(name.origin))") }
        lines.append("entries left out on this host (\(excluded.count)):")
        for entry in excluded {
            let names = entry.names.prefix(6).joined(separator: ",") + (entry.names.count > 6 ? ",..." : "")
            lines.append("  \(entry.origin) [\(names)]: \(entry.reason)")
        }
        lines.append("syscall numbers from \(syscallTables)")
        return lines.joined(separator: "\n")
    }
}
