import ArgumentParser
import Foundation
import GhostrunKit

/// `ghostrun bisect SCENARIO`: the smallest set of the policy's decisions that makes a scenario fail, by delta
/// debugging over the decisions that refused a call in a traced failing run.
struct Bisect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find the seccomp decisions that make a scenario fail, and the answers Go tolerates instead.",
        discussion: """
            Runs the scenario once traced to collect the decisions that refused a call, then relaxes subsets of \
            them to allow (rules added on top of its policy) until the smallest set whose relaxation alone makes \
            the run ok. For each culprit it tries ENOSYS and EPERM as the answer, and prints the fix as profile \
            rules to add. Exit 0 when culprits were found, 1 when relaxing every refusal does not help, 2 for bad \
            input (including a scenario that is ok under its policy).
            """)

    @Argument(help: "A scenario file (with several scenarios, choose one with --filter).")
    var scenario: String

    @OptionGroup(title: "Toolchain (the first one selected)") var toolchains: ToolchainOptions

    @Option(help: "Only the scenario whose name matches this regular expression.")
    var filter: String?

    @Option(help: "Write {\"culprits\": [...], \"runs\": N} here.")
    var json: String?

    @Option(help: "Stop after this many runs of go (the report then says the set may not be minimal).")
    var maxRuns: Int = 32

    func validate() throws {
        if maxRuns < 2 { throw ValidationError("--max-runs must be at least 2") }
    }

    func run() throws {
        var scenarios: [Scenario]
        let toolchain: Toolchain
        do {
            scenarios = try ScenarioLoader.load(paths: [scenario])
            toolchain = try toolchains.selection.resolve()[0]
        } catch {
            throw fail("\(error)")
        }
        if let filter {
            guard let regex = try? NSRegularExpression(pattern: filter) else {
                throw fail("--filter \(filter): not a valid regular expression")
            }
            scenarios = scenarios.filter {
                regex.firstMatch(in: $0.name, range: NSRange($0.name.startIndex..., in: $0.name)) != nil
            }
        }
        let entries = Matrix.entries(scenarios: scenarios, toolchains: [toolchain])
        let names = Set(entries.map(\.scenario.name))
        guard names.count == 1, let entry = entries.first else {
            throw fail(
                names.isEmpty
                    ? "\(scenario): no scenario selected"
                    : "\(scenario) holds \(names.count) scenarios (\(names.sorted().joined(separator: ", "))) "
                        + "(hint: choose one with --filter)")
        }

        let session = RunSession(options: RunnerOptions())
        session.prepareHost(executable: CommandLine.executablePath)
        let signals = session.handleSignals([SIGINT, SIGTERM, SIGHUP])
        defer { signals.cancel() }
        let bisector = Bisector(
            scenario: entry.scenario, maxRuns: maxRuns,
            progress: { line in
                FileHandle.standardError.write(Data(("bisect: " + line + "\n").utf8))
            },
            runner: { session.run($0, toolchain: entry.toolchain) })
        let report: BisectReport
        do {
            report = try bisector.bisect()
        } catch let error as BisectError {
            FileHandle.standardError.write(
                Data("ghostrun: \(error.description) (\(bisector.runs) run\(bisector.runs == 1 ? "" : "s"))\n".utf8))
            throw ExitCode(error.exitStatus)
        }
        if let signalNumber = session.interruptedBy { throw ExitCode(128 + signalNumber) }

        print("\(report.scenario)@\(report.goVersion): \(report.outcome.rawValue) under its policy; "
            + "\(report.candidates.count) decision(s) refused a call; \(report.runs) runs")
        for culprit in report.culprits {
            let answer = culprit.action + (culprit.errno.map { " \($0)" } ?? "")
            print("culprit: \(culprit.syscall) (\(answer), rule \(culprit.rule ?? "unknown")); "
                + "Go tolerates: \(culprit.tolerated.joined(separator: ", "))")
        }
        if !report.minimal {
            print("the run cap (--max-runs \(maxRuns)) stopped the search: the set may not be minimal")
        }
        print("fix (rules to add to the profile's syscalls):")
        print(report.profilePatch())
        if let json {
            do {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                try encoder.encode(report).write(to: URL(fileURLWithPath: json))
            } catch {
                throw fail("cannot write \(json): \(error)")
            }
        }
    }
}
