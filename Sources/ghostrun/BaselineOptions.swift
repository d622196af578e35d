import ArgumentParser
import Foundation
import GhostrunKit

/// `--baseline RUNFILE` and `--fail-on-change`, shared by `run` and `merge`.
struct BaselineOptions: ParsableArguments {
    @Option(help: "An earlier run file (JSON): report the entries whose outcome changed, the new and the missing ones.")
    var baseline: String?

    @Flag(
        help: """
            With --baseline: exit 1 only when an outcome changed (2 for a harness error), whatever the \
            expectations say.
            """)
    var failOnChange = false

    func validate() throws {
        if failOnChange && baseline == nil { throw ValidationError("--fail-on-change needs --baseline RUNFILE") }
    }

    /// Reads the baseline before anything runs, so that a missing or malformed one is bad input (exit 2).
    func load() throws -> RunFile? {
        guard let baseline else { return nil }
        do {
            return try JSONReport.decode(Data(contentsOf: URL(fileURLWithPath: baseline)))
        } catch {
            throw fail("--baseline \(baseline): not a readable run file: \(error)")
        }
    }

    func compare(_ results: [RunResult], matrixIds: [String]?, with file: RunFile?) -> BaselineComparison? {
        guard let file, let baseline else { return nil }
        return BaselineComparison.compare(results, matrixIds: matrixIds, baseline: file, file: baseline)
    }

    /// The run's exit status: `--fail-on-change` replaces the expectation-based status.
    func exitStatus(_ results: [RunResult], comparison: BaselineComparison?) -> Int32 {
        if failOnChange, let comparison { return comparison.exitStatus(for: results) }
        return ExitStatus.forRun(results)
    }
}
