import ArgumentParser
import Foundation
import GhostrunKit

@main
struct Ghostrun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ghostrun",
        abstract: "Run the Go toolchain under seccomp, capabilities, rlimits and cgroups, and explain what happened.",
        version: GhostrunVersion.current,
        subcommands: [Run.self, Trace.self, MatrixCommand.self, Merge.self, Inspect.self, Doctor.self, Reap.self])

    /// As ArgumentParser's, except that usage errors exit 2, not 64: the contract gives bad input status 2, and a
    /// CI job that tells "bad input" from "expectation failed" by status must see the same number for a bad
    /// option as for a bad scenario file.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(ExitStatus.harnessError)
            }
            exit(withError: error)
        }
    }
}

/// Bad input: exit status 2 with a message naming file, line and key.
struct UsageFailure: Error, CustomStringConvertible {
    var description: String
}

/// A note on stderr that does not change the exit status.
func warn(_ message: String) {
    FileHandle.standardError.write(Data(("ghostrun: " + message + "\n").utf8))
}

func fail(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data(("ghostrun: " + message + "\n").utf8))
    return ExitCode(2)
}

/// What to run: scenario paths, toolchains and a name filter, shared by `run` and `matrix` so both see one matrix.
struct MatrixSelection: ParsableArguments {
    @Argument(help: "Scenario files or directories (searched recursively for *.yaml, *.yml, *.json).")
    var paths: [String] = []

    @Option(name: .customLong("go"), help: "A go binary or GOROOT to test (repeatable).")
    var goPaths: [String] = []

    @Option(name: .customLong("go-version"), help: "An installed Go version, e.g. 1.23 (repeatable; `all` for every one).")
    var goVersions: [String] = []

    @Option(help: "Only scenarios whose name matches this regular expression.")
    var filter: String?

    func validate() throws {
        if let filter, (try? NSRegularExpression(pattern: filter)) == nil {
            throw ValidationError("--filter \(filter): not a valid regular expression")
        }
    }

    /// The sorted scenario × toolchain matrix; bad input (scenario files, toolchains) is exit status 2.
    func entries(defaultPaths: [String] = []) throws -> [MatrixEntry] {
        let scenarios: [Scenario]
        do {
            scenarios = try ScenarioLoader.load(paths: paths.isEmpty ? defaultPaths : paths)
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
        return Matrix.entries(scenarios: selected, toolchains: unique)
    }
}

/// Report files and CI integration shared by `run` and `merge`.
struct ReportOptions: ParsableArguments {
    @Option(help: "Write the run file (JSON) here.")
    var json: String?

    @Option(help: "Write a JUnit XML report here.")
    var junit: String?

    @Option(help: "Write a Markdown report here.")
    var markdown: String?

    func write(_ runFile: RunFile) throws {
        do {
            if let json {
                try JSONReport.encode(runFile).write(to: URL(fileURLWithPath: json))
            }
            if let junit { try Data(JUnitReport.render(runFile).utf8).write(to: URL(fileURLWithPath: junit)) }
            if let markdown { try Data(MarkdownReport.render(runFile).utf8).write(to: URL(fileURLWithPath: markdown)) }
        } catch {
            throw fail("cannot write a report: \(error)")
        }
    }

    /// Under GitHub Actions: an `::error` annotation per failed expectation, and the Markdown report in the job
    /// summary.
    func reportToGitHub(_ runFile: RunFile) {
        let environment = ProcessInfo.processInfo.environment
        guard environment["GITHUB_ACTIONS"] == "true" else { return }
        let workspace = environment["GITHUB_WORKSPACE"] ?? FileManager.default.currentDirectoryPath
        for line in GitHubAnnotations.errors(for: runFile.results, workspace: workspace) { print(line) }
        fflush(nil)
        if let summary = environment["GITHUB_STEP_SUMMARY"], !summary.isEmpty {
            do {
                try GitHubAnnotations.appendStepSummary(MarkdownReport.render(runFile), to: summary)
            } catch {
                warn("cannot append to GITHUB_STEP_SUMMARY \(summary): \(error)")
            }
        }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run scenario files (or directories of them) on one or more Go toolchains.")

    @OptionGroup var selection: MatrixSelection

    @Option(help: "Runs in parallel (default: the number of CPUs).")
    var jobs: Int?

    @Option(
        help: """
            Run shard I of N (1-based), e.g. 2/3. Without it, CI_NODE_INDEX/CI_NODE_TOTAL (GitLab) or \
            JOB_COMPLETION_INDEX with --shard-count (Kubernetes) choose the shard.
            """)
    var shard: String?

    @Option(help: "The number of shards, with JOB_COMPLETION_INDEX (0-based) or CI_NODE_INDEX (1-based).")
    var shardCount: Int?

    @Option(help: "A previous run file (JSON): balance shards by each entry's previous duration, not round-robin.")
    var timings: String?

    @OptionGroup var reports: ReportOptions

    @Flag(help: "Keep each run's $WORK directory (printed) for debugging.")
    var keepWork = false

    @Flag(
        help: """
            Accept results skipped because the host lacks a feature. Without it, a scenario with `expect:` that is \
            skipped for any reason other than its `go:` constraint fails the run (exit 1).
            """)
    var allowSkip = false

    @Option(name: .customLong("trace-out"), help: "Write every syscall the supervisor sees as a JSON line here.")
    var traceOut: String?

    func validate() throws {
        if selection.paths.isEmpty { throw ValidationError("give at least one scenario file or directory") }
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if let shard, ShardSelection.parse(shard) == nil {
            throw ValidationError("--shard takes I/N with 1 ≤ I ≤ N, e.g. 1/3")
        }
        if let shardCount, shardCount < 1 { throw ValidationError("--shard-count must be at least 1") }
    }

    func run() throws {
        // Bad input: nothing is started.
        let shardSelection: ShardSelection?
        do {
            shardSelection = try ShardSelection.resolve(
                shard: shard, shardCount: shardCount, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw fail("\(error)")
        }
        var previous: [String: Int]?
        if let timings {
            do {
                previous = Matrix.timings(from: try JSONReport.decode(Data(contentsOf: URL(fileURLWithPath: timings))))
            } catch {
                throw fail("--timings \(timings): not a readable run file: \(error)")
            }
        }
        var entries = try selection.entries()
        if entries.isEmpty { throw fail("no scenario to run (check the paths and --filter)") }
        let allIds = entries.map(\.id)
        if let shardSelection {
            entries = Matrix.shard(entries, index: shardSelection.index, count: shardSelection.count, timings: previous)
        } else if timings != nil {
            warn("--timings only balances shards; without --shard or CI shard variables the whole matrix runs")
        }

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

        let terminal = isatty(STDOUT_FILENO) == 1
        let color = terminal && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        let printLock = NSLock()
        // The live line exists only on a terminal: in a CI log, `\r` redraws would be noise.
        let progress: ProgressLine? = terminal ? ProgressLine(total: entries.count, started: started) : nil
        let width = terminalWidth()
        var redraw: DispatchSourceTimer?
        if let progress {
            let timer = DispatchSource.makeTimerSource(queue: .global())
            timer.schedule(deadline: .now(), repeating: .seconds(1))
            timer.setEventHandler {
                printLock.lock()
                if let line = progress.redraw(width: width) {
                    print(line, terminator: "")
                    fflush(nil)
                }
                printLock.unlock()
            }
            timer.resume()
            redraw = timer
        }
        let unjudged = matrix.run(entries, onStart: { entry in
            progress?.started(entry.id)
        }, onResult: { result in
            let result = ResultBuilder.judgeSkips([result], allowSkip: allowSkip)[0]
            progress?.finished("\(result.name)@\(result.goVersion)")
            printLock.lock()
            if progress != nil { print(ProgressLine.clear, terminator: "") }
            print(TerminalReport.line(for: result, color: color))
            if let progress { print(progress.text(width: width), terminator: "") }
            fflush(nil)
            printLock.unlock()
        })
        let results = ResultBuilder.judgeSkips(unjudged, allowSkip: allowSkip)
        redraw?.cancel()
        printLock.lock()
        progress?.close()
        if progress != nil { print(ProgressLine.clear, terminator: "") }
        print(TerminalReport.summary(results))
        fflush(nil)
        printLock.unlock()

        // Written on SIGINT too: the results that did finish (and those cut short, marked `interrupted`) are
        // what a CI job needs to see why it was cancelled.
        let runFile = RunFile(
            ghostrun: GhostrunVersion.current, host: HostFacts.current(), results: results,
            harness: HarnessStats.current(wallMs: (ContinuousClock.now - started).milliseconds),
            matrix: MatrixRecord(
                allIds: allIds, shardIds: entries.map(\.id), index: shardSelection?.index ?? 1,
                count: shardSelection?.count ?? 1))
        try reports.write(runFile)
        reports.reportToGitHub(runFile)
        if let signalNumber = interrupted.value {
            FileHandle.standardError.write(Data("ghostrun: interrupted; \(results.count) of \(entries.count) results written\n".utf8))
            throw ExitCode(128 + signalNumber)
        }
        throw ExitCode(ExitStatus.forRun(results))
    }
}

/// The terminal's width in columns, 80 when it cannot be told.
func terminalWidth() -> Int {
    var size = winsize()
    if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
    return 80
}

struct MatrixCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "matrix",
        abstract: "Print the scenario × toolchain matrix: its entries, or shards for GitHub Actions.")

    /// GitHub Actions refuses a matrix of more than 256 jobs.
    static let maximumShards = 256
    /// Entries per shard when --shards is not given: enough work per job to pay for the job's setup.
    static let entriesPerShard = 8

    @OptionGroup var selection: MatrixSelection

    @Flag(help: "Print {\"include\":[{\"shard\":\"1/N\"},...]} for strategy.matrix (fromJSON).")
    var github = false

    @Flag(help: "Print the matrix entries (scenario@version), one per line.")
    var list = false

    @Option(help: "The number of shards (default: one per 8 entries, at most 256).")
    var shards: Int?

    func validate() throws {
        if github == list { throw ValidationError("give one of --github or --list") }
        if let shards, shards < 1 { throw ValidationError("--shards must be at least 1") }
        if let shards, shards > MatrixCommand.maximumShards {
            throw ValidationError(
                "--shards \(shards): GitHub Actions runs at most \(MatrixCommand.maximumShards) jobs per matrix")
        }
    }

    func run() throws {
        let entries = try selection.entries(defaultPaths: ["scenarios"])
        if list {
            for entry in entries { print(entry.id) }
            return
        }
        if entries.isEmpty { throw fail("no scenario in the matrix (check the paths and --filter)") }
        let wanted = shards ?? min(MatrixCommand.maximumShards,
                                   (entries.count + MatrixCommand.entriesPerShard - 1) / MatrixCommand.entriesPerShard)
        // More shards than entries would leave jobs with nothing to run.
        let count = min(wanted, entries.count)
        if count < wanted {
            warn("\(entries.count) entries: \(count) shards, not \(wanted)")
        }
        let include = (1...count).map { ["shard": "\($0)/\(count)"] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(["include": include]), as: UTF8.self))
    }
}

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Combine the run files of a sharded matrix into one, print it and report it as `run` would.")

    @Argument(help: "Run files (--json of `ghostrun run`) to combine.")
    var files: [String]

    @OptionGroup var reports: ReportOptions

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one run file") }
    }

    func run() throws {
        var inputs: [(path: String, file: RunFile)] = []
        for path in files {
            do {
                inputs.append((path, try JSONReport.decode(Data(contentsOf: URL(fileURLWithPath: path)))))
            } catch {
                throw fail("\(path): not a readable run file: \(error)")
            }
        }
        let merged: RunFile
        do {
            merged = try RunFileMerge.merge(inputs)
            if merged.matrix == nil {
                warn("these run files do not record their shards (written before ghostrun 0.3): completeness not checked")
            }
        } catch {
            throw fail("\(error)")
        }
        let color = isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        for result in merged.results { print(TerminalReport.line(for: result, color: color)) }
        print(TerminalReport.summary(merged.results))
        fflush(nil)
        try reports.write(merged)
        reports.reportToGitHub(merged)
        throw ExitCode(ExitStatus.forRun(merged.results))
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
