import Foundation

/// A problem in a scenario file, placed as precisely as the file allows so that a user can fix it without guessing.
public struct ScenarioError: Error, CustomStringConvertible, Equatable {
    /// The scenario file as the user named it.
    public var file: String
    /// 1-based line of the offending key or value; nil when the problem is the file as a whole (unreadable, empty).
    public var line: Int?
    /// Dotted key path, e.g. `sandbox.seccomp.rules[1].errno`; nil for problems that precede keys (malformed YAML).
    public var key: String?
    public var message: String
    /// What to write instead: a did-you-mean suggestion or the accepted forms.
    public var hint: String?

    public init(file: String, line: Int?, key: String?, message: String, hint: String? = nil) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        self.hint = hint
    }

    /// `FILE:LINE: KEY: MESSAGE (hint: ...)`, leaving out only the parts that are unknown.
    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        if let key, !key.isEmpty { text += ": \(key)" }
        text += ": \(message)"
        if let hint, !hint.isEmpty { text += " (hint: \(hint))" }
        return text
    }
}

/// Several scenario problems found in one load, so that a user fixes them in one round instead of one per run.
public struct ScenarioLoadErrors: Error, CustomStringConvertible, Equatable {
    /// In file order, then line order within a file.
    public var errors: [ScenarioError]
    public init(errors: [ScenarioError]) { self.errors = errors }
    /// One `FILE:LINE: KEY: MESSAGE` line per problem.
    public var description: String { errors.map(\.description).joined(separator: "\n") }

    /// Throws nothing for no errors, the error itself for one, and all of them together for several.
    static func throwIfAny(_ errors: [ScenarioError]) throws {
        switch errors.count {
        case 0: return
        case 1: throw errors[0]
        default: throw ScenarioLoadErrors(errors: errors)
        }
    }
}

extension Error {
    /// Every scenario problem inside this error: one for `ScenarioError`, all for `ScenarioLoadErrors`, none otherwise.
    public var scenarioErrors: [ScenarioError] {
        if let single = self as? ScenarioError { return [single] }
        if let many = self as? ScenarioLoadErrors { return many.errors }
        return []
    }
}
