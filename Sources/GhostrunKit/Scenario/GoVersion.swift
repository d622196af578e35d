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

/// `go:` constraints, parsed strictly:
/// - a comparison is an operator (`==`, `>=`, `<=`, `>`, `<`; none means `==`) and a version `MAJOR.MINOR` or
///   `MAJOR.MINOR.PATCH`, with or without spaces between them: `>=1.21`, `>= 1.21`, `1.22`;
/// - comparisons joined by commas or spaces must all hold: `>=1.21, <1.24`;
/// - `A - B` is the inclusive range `>=A, <=B` (`B` without a patch includes every `B.x`);
/// - `||` separates alternatives, any of which may hold: `<1.20 || >=1.23`.
/// Anything else (`1.21+`, `go1.21`, `1.2x`, `~1.21`) is rejected, so a typo never silently selects toolchains.
public struct VersionConstraint: Sendable, Equatable, CustomStringConvertible {
    public enum Op: String, Sendable { case eq = "==", ge = ">=", le = "<=", gt = ">", lt = "<" }
    public struct Term: Sendable, Equatable {
        public var op: Op
        public var version: GoVersion
        /// Whether the version was written without a patch number (`1.21` matches every 1.21.x for ==, <=).
        public var minorOnly: Bool
    }
    /// Alternatives (joined by `||`); each is a list of terms that must all hold.
    public var alternatives: [[Term]]
    public var text: String
    public var description: String { text }

    /// Why `text` is not a constraint, for the hint of a scenario error.
    public struct Problem: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    public init?(_ text: String) {
        guard let parsed = try? VersionConstraint(parsing: text) else { return nil }
        self = parsed
    }

    public init(parsing text: String) throws {
        self.text = text
        var alternatives: [[Term]] = []
        for alternative in text.components(separatedBy: "||") {
            alternatives.append(try Self.terms(alternative.trimmingCharacters(in: .whitespaces)))
        }
        self.alternatives = alternatives
    }

    /// `MAJOR.MINOR` or `MAJOR.MINOR.PATCH`, digits only.
    static func strictVersion(_ text: Substring) throws -> (GoVersion, minorOnly: Bool) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3,
            parts.allSatisfy({ !$0.isEmpty && $0.count <= 6 && $0.allSatisfy { $0.isASCII && $0.isNumber } })
        else {
            if text.isEmpty { throw Problem(description: "a version is missing") }
            if text.hasPrefix("go") {
                throw Problem(description: "write the version without `go`: `\(text.dropFirst(2))`")
            }
            throw Problem(description: "`\(text)` is not a version: write MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 1.21")
        }
        let numbers = parts.map { Int($0)! }
        return (GoVersion(major: numbers[0], minor: numbers[1], patch: parts.count == 3 ? numbers[2] : 0),
                parts.count == 2)
    }

    private static func terms(_ text: String) throws -> [Term] {
        guard !text.isEmpty else { throw Problem(description: "an alternative is empty") }
        if let dash = text.range(of: " - ") {
            let (low, _) = try strictVersion(Substring(text[..<dash.lowerBound].trimmingCharacters(in: .whitespaces)))
            let (high, highMinorOnly) = try strictVersion(
                Substring(text[dash.upperBound...].trimmingCharacters(in: .whitespaces)))
            guard low <= high else { throw Problem(description: "the range \(text) is empty (\(low) > \(high))") }
            return [Term(op: .ge, version: low, minorOnly: false),
                    Term(op: .le, version: high, minorOnly: highMinorOnly)]
        }
        var terms: [Term] = []
        var rest = Substring(text)
        while true {
            rest = rest.drop(while: { $0 == " " || $0 == "," || $0 == "\t" })
            if rest.isEmpty { break }
            var op = Op.eq
            for candidate in [Op.ge, .le, .eq, .gt, .lt] where rest.hasPrefix(candidate.rawValue) {
                op = candidate
                rest = rest.dropFirst(candidate.rawValue.count)
                break
            }
            if op == .eq, rest.hasPrefix("=") { rest = rest.dropFirst() }
            rest = rest.drop(while: { $0 == " " || $0 == "\t" })
            let word = rest.prefix(while: { $0 != " " && $0 != "," && $0 != "\t" })
            rest = rest.dropFirst(word.count)
            let (version, minorOnly) = try strictVersion(word)
            terms.append(Term(op: op, version: version, minorOnly: minorOnly))
        }
        return terms
    }

    public func allows(_ v: GoVersion) -> Bool {
        alternatives.contains { terms in
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
}
