import Foundation

/// A `faults:` entry ready for the per-call decision: glob compiled, counters kept.
///
/// `@unchecked Sendable`, justified: created by the supervisor's init and then used (its `matches` counter
/// included) only on the supervisor thread, under the supervisor's lock.
final class CompiledFault: @unchecked Sendable {
    let index: Int
    let fault: Fault
    let errno: Int32?
    let pathRegex: NSRegularExpression?
    /// Matching calls seen so far in each process, by the process's identity (`ProcessIdentity`), and for a call
    /// with a path, in each (process, path): nth counts the former, probability draws from the latter.
    private var matchesByProcess: [String: UInt64] = [:]
    private var matchesByProcessPath: [String: UInt64] = [:]

    init(index: Int, fault: Fault, pathGlob: String?) {
        self.index = index
        self.fault = fault
        self.errno = fault.errno
        self.pathRegex = pathGlob.flatMap { try? NSRegularExpression(pattern: FaultMatcher.regex(forGlob: $0)) }
    }

    var needsPath: Bool { pathRegex != nil }

    /// Whether this call matches the fault's process and path filters.
    func applies(comm: String, exe: String?, path: String?) -> Bool {
        if let process = fault.process {
            let base = exe.map { ($0 as NSString).lastPathComponent }
            guard comm == process || base == process else { return false }
        }
        if let pathRegex {
            guard let path else { return false }
            let range = NSRange(path.startIndex..., in: path)
            guard pathRegex.firstMatch(in: path, range: range) != nil else { return false }
        }
        return true
    }

    /// Counts a matching call and says whether to inject on it: the process's own nth matching call, every one, or
    /// a draw that depends only on (seed, fault, process identity, path, that process's own count of matching
    /// calls on that path). None of these depends on the order in which concurrent processes' calls reach the
    /// supervisor, so one seed injects into the same calls of the same processes on a quiet and on a loaded
    /// machine. What stays up to the scheduler: the order of calls among one process's own threads when they make
    /// matching calls without a path (or on one path) concurrently.
    ///
    /// Returns the count that decided (the process's own match number; for a probability draw on a call with a
    /// path, that process's match number on that path), or nil when the call is not injected.
    func decide(seed: UInt64, process: String, path: String?) -> UInt64? {
        let count = matchesByProcess[process, default: 0] + 1
        matchesByProcess[process] = count
        switch fault.when {
        case .nth(let n): return count == UInt64(n) ? count : nil
        case .every: return count
        case .probability(let p):
            let key = path.map { process + "\u{0}" + $0 } ?? process
            let drawCount = matchesByProcessPath[key, default: 0] + 1
            matchesByProcessPath[key] = drawCount
            return FaultMatcher.draw(seed: seed, fault: index, key: key, count: drawCount) < p
                ? (path == nil ? count : drawCount) : nil
        }
    }
}

enum FaultMatcher {
    /// `**` any characters including `/`, `*` any but `/`, `?` one character but `/`.
    static func regex(forGlob glob: String) -> String {
        var pattern = "^"
        var characters = Array(glob)[...]
        while let c = characters.popFirst() {
            switch c {
            case "*":
                if characters.first == "*" {
                    characters.removeFirst()
                    pattern += ".*"
                } else {
                    pattern += "[^/]*"
                }
            case "?": pattern += "[^/]"
            default: pattern += NSRegularExpression.escapedPattern(for: String(c))
            }
        }
        return pattern + "$"
    }

    /// A number in [0, 1) from the seed, the fault, a stable key and a count: the same inputs give the same number
    /// in every ghostrun process (FNV-1a, not Swift's per-process-seeded Hasher).
    static func draw(seed: UInt64, fault: Int, key: String, count: UInt64) -> Double {
        let mixed = splitmix64(seed ^ (UInt64(fault) << 48)) ^ splitmix64(fnv1a(key)) ^ count
        return Double(splitmix64(mixed) >> 11) / Double(1 << 53)
    }

    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    static func splitmix64(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The argument index holding the path, for the file syscalls whose paths faults and traces decode.
    static let pathArgument: [String: Int] = [
        "openat": 1, "openat2": 1, "mkdirat": 1, "unlinkat": 1, "renameat2": 1, "linkat": 1, "symlinkat": 2,
        "execve": 0, "execveat": 1, "faccessat2": 1, "faccessat": 1, "newfstatat": 1, "statx": 1, "readlinkat": 1,
        "chdir": 0, "open": 0, "stat": 0, "lstat": 0, "access": 0, "mkdir": 0, "unlink": 0, "rename": 0,
        "readlink": 0,
    ]
    /// Syscalls whose path argument is relative to a directory descriptor (argument 0).
    static let directoryArgument: Set<String> = [
        "openat", "openat2", "mkdirat", "unlinkat", "renameat2", "linkat", "execveat", "faccessat2", "faccessat",
        "newfstatat", "statx", "readlinkat",
    ]
}
