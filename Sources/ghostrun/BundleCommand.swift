import ArgumentParser
import Foundation
import GhostrunKit

/// `ghostrun bundle SCENARIO... -o bug.txtar`: runs the scenarios and writes one txtar file with everything needed
/// to run them again elsewhere (`ghostrun run bug.txtar`).
struct Bundle: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a repro bundle (one txtar file): scenarios, fixtures, profiles, results per toolchain, host.",
        discussion: """
            Runs the scenarios on the selected toolchains (as `run` does) and writes them, the files their fixtures \
            hold, the profile files they reference, the results and the host facts into one text file to paste into \
            an issue. `ghostrun run FILE.txtar` extracts it into a private directory, runs it there and reports \
            every outcome that differs from the recorded one.
            """)

    @OptionGroup var selection: MatrixSelection

    @Option(name: .shortAndLong, help: "The bundle to write (e.g. bug.txtar).")
    var output: String

    @Option(help: "Runs in parallel (default: the number of CPUs).")
    var jobs: Int?

    func validate() throws {
        if selection.paths.isEmpty { throw ValidationError("give at least one scenario file or directory") }
        if selection.paths.contains(where: { $0.hasSuffix(".txtar") }) {
            throw ValidationError("bundle takes scenario files or directories, not bundles")
        }
    }

    func run() throws {
        let entries = try selection.entries()
        if entries.isEmpty { throw fail("no scenario to bundle (check the paths and --filter)") }
        var scenarios: [Scenario] = []
        for entry in entries where !scenarios.contains(where: { $0.name == entry.scenario.name }) {
            scenarios.append(entry.scenario)
        }
        // Everything that goes into the archive is read before anything runs: a fixture it cannot hold is bad input.
        do {
            _ = try ReproBundle.create(scenarios: scenarios, results: [], host: HostFacts.current(),
                                       ghostrunVersion: GhostrunVersion.current)
        } catch {
            throw fail("\(error)")
        }
        var options = RunnerOptions()
        options.traceBackend = try resolveTraceBackend(.automatic)
        let session = RunSession(options: options)
        session.prepareHost(executable: CommandLine.executablePath)
        let started = ContinuousClock.now
        let signals = session.handleSignals([SIGINT, SIGTERM, SIGHUP])
        defer { signals.cancel() }
        let jobs = jobs ?? ProcessInfo.processInfo.activeProcessorCount
        let results = session.run(
            entries, jobs: jobs,
            reporter: .forStandardOutput(
                total: entries.count, started: started, ids: entries.map(\.id), timings: [:], jobs: jobs,
                stdoutTaken: false, events: nil))
        if session.interruptedBy != nil {
            warn("interrupted: no bundle written")
            throw ExitCode(128 + session.interruptedBy!)
        }
        let archive: Txtar
        do {
            archive = try ReproBundle.create(scenarios: scenarios, results: results, host: HostFacts.current(),
                                             ghostrunVersion: GhostrunVersion.current)
            try Data(try archive.format().utf8).write(to: URL(fileURLWithPath: output))
        } catch {
            throw fail("\(output): \(error)")
        }
        print("bundle \(output): \(scenarios.count) scenario(s), \(archive.files.count) files, "
            + "\(results.count) results")
    }
}
