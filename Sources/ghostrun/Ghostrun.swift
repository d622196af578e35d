import ArgumentParser
import Foundation
import GhostrunKit

@main
struct Ghostrun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ghostrun",
        abstract: "Run the Go toolchain under seccomp, capabilities, rlimits and cgroups, and explain what happened.",
        version: GhostrunVersion.current,
        subcommands: [Run.self, Trace.self, Inspect.self, Doctor.self, Reap.self])
}

/// Bad input: exit status 2 with a message naming file, line and key.
struct UsageFailure: Error, CustomStringConvertible {
    var description: String
}

func fail(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data(("ghostrun: " + message + "\n").utf8))
    return ExitCode(2)
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run scenario files (or directories of them) on one or more Go toolchains.")

    @Argument(help: "Scenario files or directories (searched recursively for *.yaml, *.yml, *.json).")
    var paths: [String]

    @Option(name: .customLong("go"), help: "A go binary or GOROOT to test (repeatable).")
    var goPaths: [String] = []

    @Option(name: .customLong("go-version"), help: "An installed Go version, e.g. 1.23 (repeatable; `all` for every one).")
    var goVersions: [String] = []

    @Option(help: "Runs in parallel (default: the number of CPUs).")
    var jobs: Int?

    @Option(help: "Only scenarios whose name matches this regular expression.")
    var filter: String?

    @Option(help: "Run shard I of N (1-based), e.g. 2/3.")
    var shard: String?

    @Option(help: "Write the run file (JSON) here.")
    var json: String?

    @Option(help: "Write a JUnit XML report here.")
    var junit: String?

    @Option(help: "Write a Markdown report here.")
    var markdown: String?

    @Flag(help: "Keep each run's $WORK directory (printed) for debugging.")
    var keepWork = false

    @Option(name: .customLong("trace-out"), help: "Write every syscall the supervisor sees as a JSON line here.")
    var traceOut: String?

    func validate() throws {
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if let shard, Run.parseShard(shard) == nil { throw ValidationError("--shard takes I/N with 1 ≤ I ≤ N, e.g. 1/3") }
        if let filter, (try? NSRegularExpression(pattern: filter)) == nil {
            throw ValidationError("--filter \(filter): not a valid regular expression")
        }
    }

    static func parseShard(_ text: String) -> (Int, Int)? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 1, i <= n else { return nil }
        return (i, n)
    }

    func run() throws {
        // Bad input: nothing is started.
        let scenarios: [Scenario]
        do {
            scenarios = try ScenarioLoader.load(paths: paths)
        } catch {
            throw fail("\(error)")
        }
        var toolchains: [Toolchain] = []
        do {
            for path in goPaths { toolchains.append(try Toolchains.resolve(path: path)) }
            if !goVersions.isEmpty {
                let installed = Toolchains.installed()
                for version in goVersions { toolchains += try Toolchains.resolve(version: version, among: installed) }
            }
            if toolchains.isEmpty {
                guard let onPath = Toolchains.pathLookup("go") else {
                    throw ToolchainError(message: "no `go` on PATH; pass --go PATH or --go-version V (scripts/bootstrap.sh installs toolchains)")
                }
                toolchains.append(try Toolchains.load(goBinary: onPath))
            }
        } catch {
            throw fail("\(error)")
        }
        var unique: [Toolchain] = []
        for toolchain in toolchains where !unique.contains(where: { $0.goBinary == toolchain.goBinary }) {
            unique.append(toolchain)
        }

        var selected = scenarios
        if let filter, let regex = try? NSRegularExpression(pattern: filter) {
            selected = selected.filter {
                regex.firstMatch(in: $0.name, range: NSRange($0.name.startIndex..., in: $0.name)) != nil
            }
        }
        var entries = Matrix.entries(scenarios: selected, toolchains: unique)
        if let shard, let (index, count) = Run.parseShard(shard) {
            entries = Matrix.shard(entries, index: index, count: count)
        }
        if entries.isEmpty { throw fail("no scenario to run (check the paths and --filter)") }

        // A watchdog sweeps this process's cgroups and temp dirs even if it is killed; leftovers of killed runs
        // are swept now.
        Cleanup.sweepDead()
        Cleanup.startReaper(executable: CommandLine.executablePath)

        let started = ContinuousClock.now
        var options = RunnerOptions(keepWork: keepWork)
        options.traceOut = traceOut
        let runner = ScenarioRunner(options: options)
        let matrix = MatrixRunner(runner: runner, jobs: jobs ?? ProcessInfo.processInfo.activeProcessorCount)
        let interrupted = InterruptFlag()
        let signalSources = [SIGINT, SIGTERM, SIGHUP].map { signalNumber -> DispatchSourceSignal in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                interrupted.set(signalNumber)
                matrix.stop()
                ActiveRuns.shared.tearDownAll()
            }
            source.resume()
            return source
        }
        defer { signalSources.forEach { $0.cancel() } }

        let color = isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        let printLock = NSLock()
        let results = matrix.run(entries) { result in
            printLock.lock()
            print(TerminalReport.line(for: result, color: color))
            fflush(stdout)
            printLock.unlock()
        }
        print(TerminalReport.summary(results))

        let runFile = RunFile(ghostrun: GhostrunVersion.current, host: HostFacts.current(), results: results,
                              harness: HarnessStats.current(wallMs: (ContinuousClock.now - started).milliseconds))
        do {
            if let json {
                try JSONReport.encode(runFile).write(to: URL(fileURLWithPath: json))
            }
            if let junit { try Data(JUnitReport.render(runFile).utf8).write(to: URL(fileURLWithPath: junit)) }
            if let markdown { try Data(MarkdownReport.render(runFile).utf8).write(to: URL(fileURLWithPath: markdown)) }
        } catch {
            throw fail("cannot write a report: \(error)")
        }
        if let signalNumber = interrupted.value {
            FileHandle.standardError.write(Data("ghostrun: interrupted; \(results.count) of \(entries.count) results written\n".utf8))
            throw ExitCode(128 + signalNumber)
        }
        throw ExitCode(ExitStatus.forRun(results))
    }
}

final class InterruptFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var signalNumber: Int32?
    func set(_ value: Int32) {
        lock.lock()
        if signalNumber == nil { signalNumber = value }
        lock.unlock()
    }
    var value: Int32? {
        lock.lock()
        defer { lock.unlock() }
        return signalNumber
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a process's restrictions as the kernel reports them (/proc/PID/status, decoded).")

    @Argument(help: "The process to inspect.")
    var pid: Int32

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let report: InspectReport
        do {
            report = try InspectReport.make(pid: pid)
        } catch {
            throw fail("\(error)")
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.text())
        }
    }
}

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tell what this host supports (seccomp, user notification, cgroups, freeze, audit records, toolchains).")

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let checks = GhostrunKit.Doctor.checks()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(checks), as: UTF8.self))
        } else {
            print(GhostrunKit.Doctor.render(checks))
        }
        if checks.contains(where: { $0.essential && !$0.ok }) { throw ExitCode(1) }
    }
}

/// The watchdog's entry point: started by `run`, it is exec'd once its ghostrun is gone.
struct Reap: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "__reap", shouldDisplay: false)

    @Argument var owner: Int32

    func run() throws {
        Cleanup.sweep(owner: owner)
    }
}

extension CommandLine {
    /// This program's path, for the reaper to exec.
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? arguments[0]
    }
}
