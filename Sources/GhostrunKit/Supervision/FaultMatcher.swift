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
    /// Matching calls seen so far, across the whole process tree (nth and probability count these).
    var matches: UInt64 = 0

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

    /// Counts a matching call and says whether to inject on it: the nth, every one, or by a draw that depends
    /// only on (seed, fault, match number), so the same calls are injected whenever the tree makes the same calls.
    func decide(seed: UInt64) -> Bool {
        matches += 1
        switch fault.when {
        case .nth(let n): return matches == UInt64(n)
        case .every: return true
        case .probability(let p):
            let draw = FaultMatcher.splitmix64(seed ^ (UInt64(index) << 48) ^ matches)
            return Double(draw >> 11) / Double(1 << 53) < p
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
