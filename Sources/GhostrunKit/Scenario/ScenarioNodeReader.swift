import Foundation
import Yams

/// Typed access to a composed YAML tree that turns every mismatch into a `ScenarioError` with file, line and key.
///
/// The loader reads `Node`s rather than going through `Codable` because decoding loses line numbers and silently
/// ignores unknown keys, and a misspelt key must never weaken a sandbox policy without a word.
final class ScenarioNodeReader {
    let file: String
    /// Problems found so far; reading continues past most of them so that one run reports them all.
    private(set) var errors: [ScenarioError] = []

    init(file: String) { self.file = file }

    // MARK: Errors

    func error(_ node: Node?, _ key: String, _ message: String, hint: String? = nil) -> ScenarioError {
        ScenarioError(file: file, line: node?.mark?.line, key: key, message: message, hint: hint)
    }

    func report(_ error: ScenarioError) { errors.append(error) }

    /// Runs one independent piece of reading; its error is recorded and reading goes on with the next piece.
    @discardableResult
    func attempt<T>(_ body: () throws -> T) -> T? {
        do {
            return try body()
        } catch let problem as ScenarioError {
            errors.append(problem)
        } catch {
            errors.append(ScenarioError(file: file, line: nil, key: nil, message: "\(error)"))
        }
        return nil
    }

    // MARK: Paths and descriptions

    static func child(_ path: String, _ key: String) -> String { path.isEmpty ? key : path + "." + key }
    static func item(_ path: String, _ index: Int) -> String { "\(path)[\(index)]" }

    /// "a list", "the string `abc`" — what the user wrote, for "expected X, found Y" messages.
    static func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            switch scalar.resolvedTagName {
            case .null: return "null"
            case .bool: return "the boolean `\(scalar.string)`"
            case .int, .float: return "the number `\(scalar.string)`"
            default: return "the string `\(scalar.string)`"
            }
        }
    }

    /// `did you mean `x`?` when something is close, otherwise the list of accepted words.
    static func suggestion(for word: String, in candidates: [String], listAllUpTo: Int = 16) -> String? {
        let close = closestNames(to: word, in: candidates)
        if !close.isEmpty { return "did you mean " + close.map { "`\($0)`" }.joined(separator: " or ") + "?" }
        guard !candidates.isEmpty, candidates.count <= listAllUpTo else { return nil }
        return "expected one of: " + candidates.joined(separator: ", ")
    }

    // MARK: Mappings

    struct Entry {
        var key: String
        var keyNode: Node
        var value: Node
        var path: String
    }

    /// The entries of a mapping in the order written; every key outside `allowed` is reported (all of them, not
    /// just the first) and left out.
    func mapping(_ node: Node, _ path: String, allowed: [String]) throws -> [Entry] {
        guard case .mapping(let mapping) = node else {
            throw error(
                node, path, "expected a mapping of keys, found \(Self.describe(node))",
                hint: "accepted keys: " + allowed.joined(separator: ", "))
        }
        var entries: [Entry] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                report(error(keyNode, path, "a key must be a plain word, found \(Self.describe(keyNode))"))
                continue
            }
            let key = scalar.string
            let keyPath = Self.child(path, key)
            guard allowed.contains(key) else {
                let where_ = path.isEmpty ? "at the top level" : "in `\(path)`"
                report(
                    error(
                        keyNode, keyPath, "unknown key `\(key)` \(where_)",
                        hint: Self.suggestion(for: key, in: allowed, listAllUpTo: 30)))
                continue
            }
            entries.append(Entry(key: key, keyNode: keyNode, value: value, path: keyPath))
        }
        return entries
    }

    /// Reports a required key that is absent; the line is the mapping's own.
    func require(_ key: String, in entries: [Entry], of node: Node, _ path: String, hint: String? = nil) throws {
        guard entries.contains(where: { $0.key == key }) else {
            let where_ = path.isEmpty ? "" : " in `\(path)`"
            throw error(node, Self.child(path, key), "missing required key `\(key)`\(where_)", hint: hint)
        }
    }

    // MARK: Scalars

    func sequence(_ node: Node, _ path: String, hint: String? = nil) throws -> [Node] {
        guard case .sequence(let sequence) = node else {
            throw error(node, path, "expected a list, found \(Self.describe(node))", hint: hint ?? "write `[a, b]`")
        }
        return Array(sequence)
    }

    /// Any non-null scalar, as written: a number in a string position keeps its spelling (`0755`, `1.20`).
    func string(_ node: Node, _ path: String) throws -> String {
        guard case .scalar(let scalar) = node, scalar.resolvedTagName != .null else {
            throw error(node, path, "expected a string, found \(Self.describe(node))")
        }
        return scalar.string
    }

    func nonEmptyString(_ node: Node, _ path: String) throws -> String {
        let text = try string(node, path)
        guard !text.isEmpty else { throw error(node, path, "must not be empty") }
        return text
    }

    func bool(_ node: Node, _ path: String) throws -> Bool {
        guard case .scalar(let scalar) = node, scalar.resolvedTagName == .bool, let value = node.bool else {
            throw error(node, path, "expected true or false, found \(Self.describe(node))")
        }
        return value
    }

    /// Integers written plainly (`42`, `0x1f`, `-100`); a quoted number is a string and is refused so that the
    /// same file means the same thing in YAML and JSON.
    func integer(_ node: Node, _ path: String) throws -> Int {
        guard case .scalar(let scalar) = node, scalar.resolvedTagName == .int, let value = parseInteger(scalar.string),
            let small = Int(exactly: Int64(bitPattern: value.bits)), value.negative == (small < 0)
        else {
            throw error(node, path, "expected an integer, found \(Self.describe(node))")
        }
        return small
    }

    /// A 64-bit argument value: negative numbers keep their two's-complement bits, as the kernel compares them.
    func bits64(_ node: Node, _ path: String) throws -> UInt64 {
        guard case .scalar(let scalar) = node, scalar.resolvedTagName == .int, let value = parseInteger(scalar.string)
        else {
            throw error(
                node, path, "expected an integer, found \(Self.describe(node))",
                hint: "decimal, 0x hex or 0o octal; negative values are taken as 64-bit two's complement")
        }
        return value.bits
    }

    func stringList(_ node: Node, _ path: String) throws -> [(String, Node)] {
        try sequence(node, path).map { (try string($0, path), $0) }
    }

    func duration(_ node: Node, _ path: String, allowZero: Bool = false) throws -> Duration {
        let hint = "durations take ms, s, m, h, e.g. 300ms, 2s, 1.5m"
        guard case .scalar(let scalar) = node, scalar.resolvedTagName != .null else {
            throw error(node, path, "expected a duration, found \(Self.describe(node))", hint: hint)
        }
        guard let value = parseDuration(scalar.string) else {
            let bare = Double(scalar.string) != nil
            if exceedsDurationLimit(scalar.string) {
                throw error(node, path, "`\(scalar.string)` is longer than the limit of 7 days", hint: hint)
            }
            throw error(
                node, path, "`\(scalar.string)` is not a duration",
                hint: bare ? "add a unit, e.g. \(scalar.string)s; \(hint)" : hint)
        }
        guard allowZero || value > .zero else { throw error(node, path, "must be longer than zero", hint: hint) }
        return value
    }

    /// Bytes, written as an integer or with a binary unit (`512MiB`).
    func size(_ node: Node, _ path: String) throws -> UInt64 {
        let hint = "sizes are bytes or take KiB, MiB, GiB, e.g. 512MiB"
        guard case .scalar(let scalar) = node, scalar.resolvedTagName != .null else {
            throw error(node, path, "expected a size, found \(Self.describe(node))", hint: hint)
        }
        if scalar.resolvedTagName == .int, let value = parseInteger(scalar.string), !value.negative {
            return value.bits
        }
        guard let value = parseSize(scalar.string) else {
            throw error(node, path, "`\(scalar.string)` is not a size", hint: hint)
        }
        return value
    }
}

/// Decimal, `0x` hex, `0o`/leading-zero octal and `0b` binary, with an optional sign and `_` separators, as YAML 1.1
/// writes integers. Parsed here rather than through Yams so that values up to 2^64-1 (masks) survive.
func parseInteger(_ text: String) -> (bits: UInt64, negative: Bool)? {
    var digits = Substring(text.replacingOccurrences(of: "_", with: ""))
    var negative = false
    if digits.hasPrefix("-") || digits.hasPrefix("+") {
        negative = digits.hasPrefix("-")
        digits = digits.dropFirst()
    }
    var radix = 10
    if digits.hasPrefix("0x") || digits.hasPrefix("0X") {
        radix = 16
        digits = digits.dropFirst(2)
    } else if digits.hasPrefix("0o") {
        radix = 8
        digits = digits.dropFirst(2)
    } else if digits.hasPrefix("0b") {
        radix = 2
        digits = digits.dropFirst(2)
    } else if digits.count > 1, digits.hasPrefix("0") {
        radix = 8
        digits = digits.dropFirst()
    }
    guard !digits.isEmpty, let magnitude = UInt64(digits, radix: radix) else { return nil }
    if negative {
        guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
        return (0 &- magnitude, magnitude != 0)
    }
    return (magnitude, false)
}

extension Node.Scalar {
    /// The resolved tag (`tag:yaml.org,2002:int` for a plain `42`, `str` for a quoted `"42"`). Yams resolves only
    /// through `Node.tag` and keeps `Tag.name` internal, but spells the name in `description`.
    var resolvedTagName: Tag.Name { Tag.Name(rawValue: Node.scalar(self).tag.description) }
}
