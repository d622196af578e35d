import Foundation

/// How a run's outcomes compare with an earlier run file (`--baseline RUNFILE` on `run` and `merge`).
///
/// Entries are matched by `name@go_version`. Only the outcome is compared: expectations may be edited between the
/// two runs, and what a reviewer asks is "did the outcome change under our profile", not "does it still pass".
public struct BaselineComparison: Codable, Equatable, Sendable {
    /// One entry whose outcome differs from the baseline's.
    public struct Change: Codable, Equatable, Sendable {
        /// `name@go_version`.
        public var id: String
        public var before: Outcome
        public var after: Outcome

        public init(id: String, before: Outcome, after: Outcome) {
            self.id = id
            self.before = before
            self.after = after
        }
    }

    /// The baseline run file, as given on the command line.
    public var file: String
    public var changed: [Change]
    /// Entries of this run that the baseline does not have.
    public var new: [String]
    /// Entries of the baseline that this run's matrix does not have (a removed scenario or toolchain).
    public var missing: [String]
    public var unchanged: Int

    public init(file: String, changed: [Change], new: [String], missing: [String], unchanged: Int) {
        self.file = file
        self.changed = changed
        self.new = new
        self.missing = missing
        self.unchanged = unchanged
    }

    /// Compares `results` with `baseline`.
    ///
    /// - Parameter matrixIds: every `name@go_version` of the whole matrix when `results` are one shard of it, so
    ///   that baseline entries run by other shards are not reported missing; nil when `results` are the whole run.
    public static func compare(
        _ results: [RunResult], matrixIds: [String]? = nil, baseline: RunFile, file: String
    ) -> BaselineComparison {
        var before: [String: Outcome] = [:]
        for result in baseline.results { before[id(result)] = result.outcome }
        var changed: [Change] = []
        var new: [String] = []
        var unchanged = 0
        for result in results {
            let key = id(result)
            guard let old = before[key] else {
                new.append(key)
                continue
            }
            if old == result.outcome {
                unchanged += 1
            } else {
                changed.append(Change(id: key, before: old, after: result.outcome))
            }
        }
        let present = Set(matrixIds ?? results.map(id))
        let missing = before.keys.filter { !present.contains($0) }.sorted()
        return BaselineComparison(
            file: file, changed: changed.sorted { $0.id < $1.id }, new: new.sorted(), missing: missing,
            unchanged: unchanged)
    }

    /// The exit status under `--fail-on-change`: 2 when a result is a harness error (the comparison is incomplete),
    /// 1 when an outcome changed, else 0; failed expectations, new and missing entries do not fail.
    public func exitStatus(for results: [RunResult]) -> Int32 {
        if results.contains(where: { $0.outcome == .harnessError }) { return ExitStatus.harnessError }
        return changed.isEmpty ? ExitStatus.success : ExitStatus.expectationFailed
    }

    /// The terminal summary: one line of counts, then a line per changed, new and missing entry.
    public func render() -> String {
        var lines = [
            "baseline \(file): \(changed.count) changed, \(new.count) new, \(missing.count) missing, "
                + "\(unchanged) unchanged"
        ]
        for change in changed {
            lines.append("  changed  \(change.id): \(change.before.rawValue) -> \(change.after.rawValue)")
        }
        for key in new { lines.append("  new      \(key)") }
        for key in missing { lines.append("  missing  \(key)") }
        return lines.joined(separator: "\n")
    }

    private static func id(_ result: RunResult) -> String { "\(result.name)@\(result.goVersion)" }
}
