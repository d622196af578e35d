import CCap
import CGhostrun
import CSeccomp
import Foundation

/// A set of capability numbers as the kernel's 64-bit mask.
public struct CapabilitySet: OptionSet, Sendable, Hashable, ExpressibleByArrayLiteral {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(arrayLiteral elements: Int...) {
        self.rawValue = elements.reduce(0) { $0 | (1 << UInt64($1)) }
    }
    public init(numbers: [Int]) {
        self.rawValue = numbers.reduce(0) { $0 | (1 << UInt64($1)) }
    }
    public func contains(number: Int) -> Bool { rawValue & (1 << UInt64(number)) != 0 }
    public var numbers: [Int] { (0..<64).filter { contains(number: $0) } }
    /// Every capability this kernel knows.
    public static var all: CapabilitySet {
        let last = CapabilityName.lastCapability
        return CapabilitySet(rawValue: last >= 63 ? UInt64.max : (UInt64(1) << UInt64(last + 1)) - 1)
    }
    /// `CAP_CHOWN,CAP_KILL` style names, for display.
    public var names: [String] { numbers.map { CapabilityName.name(of: $0) } }
}

/// Capability names through libcap, so they match what `capsh` and `getpcaps` print.
public enum CapabilityName {
    /// The highest capability number the running kernel knows.
    public static let lastCapability: Int = {
        if let text = try? String(contentsOfFile: "/proc/sys/kernel/cap_last_cap", encoding: .utf8),
            let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
        {
            return value
        }
        return Int(cap_max_bits()) - 1
    }()

    /// Resolves `CAP_SYS_ADMIN`, `sys_admin` or `SYS_ADMIN`; nil when unknown.
    public static func number(of name: String) -> Int? {
        var lowered = name.lowercased()
        if !lowered.hasPrefix("cap_") { lowered = "cap_" + lowered }
        var value: cap_value_t = 0
        guard cap_from_name(lowered, &value) == 0, value >= 0, Int(value) <= max(lastCapability, 40) else {
            return nil
        }
        return Int(value)
    }

    /// `CAP_SYS_ADMIN` for 21; `CAP_41` for numbers libcap has no name for.
    public static func name(of number: Int) -> String {
        guard let pointer = cap_to_name(cap_value_t(number)) else { return "CAP_\(number)" }
        defer { cap_free(pointer) }
        let text = String(cString: pointer)
        return text.allSatisfy({ $0.isNumber }) ? "CAP_\(text)" : text.uppercased()
    }

    /// Every known capability name, for hints.
    public static var allNames: [String] { (0...lastCapability).map { name(of: $0) } }
}

public enum ErrnoName {
    private static let table: [(name: String, value: Int32)] = {
        var result: [(String, Int32)] = []
        var index: Int32 = 0
        var value: Int32 = 0
        while let name = ghostrun_errno_name(index, &value) {
            result.append((String(cString: name), value))
            index += 1
        }
        return result
    }()

    /// `EPERM` → 1; a decimal number is accepted when it is an errno this libc knows (1–133 on Linux): a
    /// number outside them (`4095`) would be accepted by the parser and then refused or mangled at run time.
    public static func value(of name: String) -> Int32? {
        if let number = Int32(name) { return table.contains(where: { $0.value == number }) ? number : nil }
        let upper = name.uppercased()
        return table.first(where: { $0.name == upper })?.value
    }

    /// 1 → `EPERM` (the first name listed for that value).
    public static func name(of value: Int32) -> String? {
        table.first(where: { $0.value == value })?.name
    }

    public static var allNames: [String] { table.map(\.name) }

    /// The highest errno value this libc names.
    public static var largestValue: Int32 { table.map(\.value).max() ?? 133 }
}

/// Syscall names and numbers of the native architecture, from ghostrun's own tables of the kernel's syscalls
/// (`SyscallTable`), so names newer than the host's libseccomp resolve too.
public enum SyscallName {
    public static func number(of name: String) -> Int32? {
        SyscallTable.native.number(of: name)
    }

    public static func name(of number: Int) -> String? {
        guard let number = Int32(exactly: number) else { return nil }
        return SyscallTable.native.name(of: number)
    }

    /// The libseccomp version in use, e.g. "2.5.4".
    public static var libraryVersion: String {
        guard let version = seccomp_version() else { return "unknown" }
        return "\(version.pointee.major).\(version.pointee.minor).\(version.pointee.micro)"
    }
}

/// `rlimits:` keys.
public enum ResourceLimitName {
    // Numbers from <sys/resource.h> through the C target: Glibc imports RLIMIT_* into Swift as an enum type, not
    // as the plain int setrlimit takes.
    public static let table: [(name: String, resource: Int32)] = [
        ("cpu", GHOSTRUN_RLIMIT_CPU), ("fsize", GHOSTRUN_RLIMIT_FSIZE), ("data", GHOSTRUN_RLIMIT_DATA),
        ("stack", GHOSTRUN_RLIMIT_STACK), ("core", GHOSTRUN_RLIMIT_CORE), ("nproc", GHOSTRUN_RLIMIT_NPROC),
        ("nofile", GHOSTRUN_RLIMIT_NOFILE), ("memlock", GHOSTRUN_RLIMIT_MEMLOCK), ("as", GHOSTRUN_RLIMIT_AS),
    ]
    public static func resource(of name: String) -> Int32? {
        table.first(where: { $0.name == name.lowercased() })?.resource
    }
    public static var allNames: [String] { table.map(\.name) }
}

/// Signal names for reports and `expect.signal`.
public enum SignalName {
    private static let names: [Int32: String] = [
        1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE",
        9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM",
        16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU",
        23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO",
        30: "SIGPWR", 31: "SIGSYS",
    ]
    public static func name(of number: Int32) -> String { names[number] ?? "SIG\(number)" }
    public static func number(of name: String) -> Int32? {
        var upper = name.uppercased()
        if !upper.hasPrefix("SIG") { upper = "SIG" + upper }
        if upper == "SIGIOT" { return 6 }
        return names.first(where: { $0.value == upper })?.key
    }
    public static var allNames: [String] { names.keys.sorted().compactMap { names[$0] } }
}

/// Closest candidates for a misspelt name, for "did you mean" hints.
public func closestNames(to word: String, in candidates: [String], limit: Int = 3) -> [String] {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
    let lowered = Array(word.lowercased())
    let scored = candidates.map { ($0, distance(lowered, Array($0.lowercased()))) }
    let threshold = max(2, lowered.count / 3)
    return scored.filter { $0.1 <= threshold }.sorted { $0.1 < $1.1 }.prefix(limit).map(\.0)
}
