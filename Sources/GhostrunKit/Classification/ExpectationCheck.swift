import Foundation

/// Compares a classified run with the scenario's `expect:` block.
public enum ExpectationCheck {
    /// Evaluates every key the expectation gives; a run passes when all of them hold.
    ///
    /// Returns `passed: nil` when nothing was expected, because the contract reports such runs as
    /// neither passed nor failed. Each failure names the key, what was expected and what was seen, so
    /// a CI log line is enough to understand it.
    public static func evaluate(_ e: Expectation?, classification: Classification, observation: RunObservation)
        -> (passed: Bool?, failures: [String])
    {
        guard let e else { return (nil, []) }
        var failures: [String] = []
        if let outcomes = e.outcomes, let failure = checkOutcome(outcomes, classification) {
            failures.append(failure)
        }
        if let exit = e.exit, let failure = checkExit(exit, classification) { failures.append(failure) }
        if let signal = e.signal, let failure = checkSignal(signal, classification) { failures.append(failure) }
        if let pattern = e.stderr, let failure = checkText("stderr", pattern, observation.stderr) {
            failures.append(failure)
        }
        if let pattern = e.stdout, let failure = checkText("stdout", pattern, observation.stdout) {
            failures.append(failure)
        }
        if let artifact = e.artifact, let failure = checkArtifact(artifact, observation) { failures.append(failure) }
        if let kind = e.hangKind, let failure = checkHangKind(kind, classification) { failures.append(failure) }
        if let pattern = e.summary, let failure = checkText("summary", pattern, classification.summary) {
            failures.append(failure)
        }
        if let tests = e.tests { failures += checkTests(tests, observation.goTest) }
        return (failures.isEmpty, failures)
    }

    /// `outcome:` may list several outcomes when a result is legitimately one of them (catalog row 8).
    static func checkOutcome(_ outcomes: [Outcome], _ c: Classification) -> String? {
        if outcomes.contains(c.outcome) { return nil }
        let wanted = outcomes.map(\.rawValue).joined(separator: " or ")
        var seen = c.outcome.rawValue
        if let kind = c.hangKind { seen += " (\(kind.rawValue))" }
        return "outcome: expected \(wanted), got \(seen)"
    }

    /// A run killed by a signal has no exit code; saying so beats printing "got nil".
    static func checkExit(_ exit: Int32, _ c: Classification) -> String? {
        if c.exitCode == exit { return nil }
        if let code = c.exitCode { return "exit: expected \(exit), got \(code)" }
        if let signal = c.signal { return "exit: expected \(exit), got killed by \(signal)" }
        return "exit: expected \(exit), got no exit code (\(c.outcome.rawValue))"
    }

    /// Compares by signal number so `SYS`, `sigsys` and `SIGSYS` all mean the same signal.
    static func checkSignal(_ signal: String, _ c: Classification) -> String? {
        let wanted = SignalName.number(of: signal).map { SignalName.name(of: $0) } ?? signal.uppercased()
        guard let seen = c.signal else {
            let ended = c.exitCode.map { "exit \($0)" } ?? c.outcome.rawValue
            return "signal: expected \(wanted), got no signal (\(ended))"
        }
        return seen == wanted ? nil : "signal: expected \(wanted), got \(seen)"
    }

    /// The pattern is searched, not anchored; the failure quotes the last line of the text so the
    /// reader sees what was there instead.
    static func checkText(_ key: String, _ pattern: String, _ text: String) -> String? {
        switch RegexSearch.matches(pattern, in: text) {
        case .success(true):
            return nil
        case .success(false):
            let last = StderrReading.lines(text).last(where: { !StderrReading.isBlank($0) })
            let seen = last.map { "\"\(truncate($0, to: 80))\"" } ?? "nothing"
            return "\(key): expected /\(pattern)/, got \(seen)"
        case .failure(let error):
            return "\(key): \(error)"
        }
    }

    static func checkArtifact(_ artifact: String, _ o: RunObservation) -> String? {
        switch o.expectArtifactExists {
        case true?: return nil
        case false?: return "artifact: expected \(artifact) to exist, it does not"
        case nil: return "artifact: expected \(artifact) to exist, it was not checked"
        }
    }

    static func checkHangKind(_ kind: HangKind, _ c: Classification) -> String? {
        if c.hangKind == kind { return nil }
        let seen = c.hangKind?.rawValue ?? "no hang (\(c.outcome.rawValue))"
        return "hang_kind: expected \(kind.rawValue), got \(seen)"
    }

    static func truncate(_ text: String, to limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
    }
}
