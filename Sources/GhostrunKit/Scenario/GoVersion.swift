import Foundation

/// A Go release number: `1.23.4` (also read from `go1.23.4`, `1.23`, `1.23rc1`).
public struct GoVersion: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public var patch: Int
    public init(major: Int, minor: Int, patch: Int = 0) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }
    public init?(_ text: String) {
        var t = Substring(text.trimmingCharacters(in: .whitespaces))
        if t.hasPrefix("go") { t = t.dropFirst(2) }
        // Cut pre-release suffixes such as rc1 or beta2.
        if let cut = t.firstIndex(where: { !($0.isNumber || $0 == ".") }) { t = t[..<cut] }
        let parts = t.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count >= 2, parts.count <= 4, parts.allSatisfy({ $0 != nil }) else { return nil }
        major = parts[0]!
        minor = parts[1]!
        patch = parts.count > 2 ? parts[2]! : 0
    }
    public var description: String { "\(major).\(minor).\(patch)" }
    public static func < (a: GoVersion, b: GoVersion) -> Bool {
        (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch)
    }
}

/// `go:` constraints: `>=1.21`, `<1.23`, `==1.22`, `1.21 - 1.23`, several joined by commas or spaces.
public struct VersionConstraint: Sendable, Equatable, CustomStringConvertible {
    public enum Op: String, Sendable { case eq = "==", ge = ">=", le = "<=", gt = ">", lt = "<" }
    public struct Term: Sendable, Equatable {
        public var op: Op
        public var version: GoVersion
        /// Whether the version was written without a patch number (`1.21` matches every 1.21.x for ==, <=).
        public var minorOnly: Bool
    }
    public var terms: [Term]
    public var text: String
    public var description: String { text }

    public init?(_ text: String) {
        self.text = text
        var terms: [Term] = []
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let dash = trimmed.range(of: " - ") {
            let low = String(trimmed[..<dash.lowerBound]), high = String(trimmed[dash.upperBound...])
            guard let l = GoVersion(low), let h = GoVersion(high) else { return nil }
            terms.append(Term(op: .ge, version: l, minorOnly: false))
            terms.append(Term(op: .le, version: h, minorOnly: high.split(separator: ".").count == 2))
        } else {
            let pieces = trimmed.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
            guard !pieces.isEmpty else { return nil }
            for piece in pieces {
                var op = Op.eq
                var rest = Substring(piece)
                for candidate in [Op.ge, .le, .eq, .gt, .lt] where rest.hasPrefix(candidate.rawValue) {
                    op = candidate
                    rest = rest.dropFirst(candidate.rawValue.count)
                    break
                }
                if rest.hasPrefix("=") { rest = rest.dropFirst() }
                guard let version = GoVersion(String(rest)) else { return nil }
                terms.append(Term(op: op, version: version, minorOnly: rest.split(separator: ".").count == 2))
            }
        }
        self.terms = terms
    }

    public func allows(_ v: GoVersion) -> Bool {
        terms.allSatisfy { term in
            let t = term.version
            let sameMinor = v.major == t.major && v.minor == t.minor
            switch term.op {
            case .eq: return term.minorOnly ? sameMinor : v == t
            case .ge: return v >= t
            case .gt: return term.minorOnly ? (v > t && !sameMinor) : v > t
            case .le: return term.minorOnly ? (v <= t || sameMinor) : v <= t
            case .lt: return v < t
            }
        }
    }
}
