import ArgumentParser
import Foundation
import GhostrunKit

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

    @OptionGroup var baselineOptions: BaselineOptions

    @Flag(help: "Keep each run's $WORK directory (printed) for debugging.")
    var keepWork = false

    @Option(
        name: .customLong("pass-env"),
        help: ArgumentHelp(
            "Pass this variable of ghostrun's environment to the go command (repeatable); by default it sees only "
                + "PATH, the locale (LANG, LANGUAGE, LC_*) and TERM besides the Go settings."))
    var passEnv: [String] = []

    @Flag(
        help: """
            Accept results skipped because the host lacks a feature. Without it, a scenario with `expect:` that is \
            skipped for any reason other than its `go:` constraint fails the run (exit 1).
            """)
    var allowSkip = false

    @Option(
        name: .customLong("shared-cache"),
        help: """
            Share GOCACHE across runs of the same toolchain in DIR/go<version> (default: a private cache per run). \
            Faster for big matrices; results can then depend on what earlier runs cached.
            """)
    var sharedCache: String?

    @Flag(
        help: """
            Let the go command write to this host's file systems. By default a run sees the host through a \
            copy-on-write view that is discarded with the run, so nothing a scenario writes outside $WORK reaches \
            the host or a later run.
            """)
    var hostWrites = false

    @Option(
        name: .customLong("timeout-scale"),
        help: """
            Multiply every scenario's timeout and hang_after by F (slow machines and emulators, as Go's builders use             GO_TEST_TIMEOUT_SCALE; default: $GHOSTRUN_TIMEOUT_SCALE, else 1).
            """)
    var timeoutScale: Double?

    @Option(
        name: .customLong("max-stretch"),
        help: """
            How far host stalls (PSI) may stretch a run's limits: wall time up to timeout × F; a run still short of its             own limits then is inconclusive (exit 2), never a hang (default 6).
            """)
    var maxStretch: Double = RunLimits.defaultMaxStretch

    @Option(name: .customLong("trace-out"), help: "Write every traced syscall as a JSON line here.")
    var traceOut: String?

    @Option(help: "How runs are observed and traced: bpf (in the kernel), notify (seccomp user notification), auto.")
    var traceBackend: TraceBackendChoice = .automatic

    @Option(
        help: """
            The order runs start in: given (the matrix order), reverse, shuffle (a new seed, printed) or \
            shuffle:SEED. Reports keep the matrix order; use it to show results do not depend on run order.
            """)
    var order: String = "given"

    @Option(help: "Write the runs as Chrome trace-event JSON here (opens in ui.perfetto.dev).")
    var timeline: String?

    @Option(
        name: .customLong("seccomp-profile"),
        help: "Run every scenario without a profile of its own under this built-in or profile file.")
    var seccompProfile: String?

    func validate() throws {
        if selection.paths.isEmpty { throw ValidationError("give at least one scenario file or directory") }
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if let shard, ShardSelection.parse(shard) == nil {
            throw ValidationError("--shard takes I/N with 1 ≤ I ≤ N, e.g. 1/3")
        }
        if let shardCount, shardCount < 1 { throw ValidationError("--shard-count must be at least 1") }
        if RunOrder.parse(order) == nil {
            throw ValidationError("--order \(order): use given, reverse, shuffle or shuffle:SEED (a number)")
        }
        if let timeoutScale, !(timeoutScale > 0 && timeoutScale.isFinite) {
            throw ValidationError("--timeout-scale must be a positive number, e.g. 4")
        }
        if let text = ProcessInfo.processInfo.environment["GHOSTRUN_TIMEOUT_SCALE"], timeoutScale == nil,
            !(Double(text).map { $0 > 0 && $0.isFinite } ?? false)
        {
            throw ValidationError("GHOSTRUN_TIMEOUT_SCALE=\(text): must be a positive number, e.g. 4")
        }
        if !(maxStretch >= 1 && maxStretch.isFinite) {
            throw ValidationError("--max-stretch must be a number ≥ 1 (1: host stalls never stretch a limit)")
        }
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
        var baselineFile = try baselineOptions.load()
        // Repro bundles (`bug.txtar`) are extracted into private directories and run from there; what they recorded
        // becomes the baseline unless --baseline names another.
        var selection = self.selection
        var bundles: [OpenedBundle] = []
        defer { for bundle in bundles { bundle.remove() } }
        if selection.paths.contains(where: { $0.hasSuffix(".txtar") }) {
            var paths: [String] = []
            for path in selection.paths {
                guard path.hasSuffix(".txtar") else {
                    paths.append(path)
                    continue
                }
                do {
                    let bundle = try ReproBundle.open(path)
                    bundles.append(bundle)
                    paths += bundle.scenarioFiles
                } catch {
                    throw fail("\(error)")
                }
            }
            selection.paths = paths
            if baselineFile == nil {
                let recorded = bundles.compactMap(\.recorded)
                if let first = recorded.first {
                    baselineFile = RunFile(ghostrun: first.ghostrun, host: first.host,
                                           results: recorded.flatMap(\.results))
                }
            }
        }
        var entries = try selection.entries()
        if entries.isEmpty { throw fail("no scenario to run (check the paths and --filter)") }
        let allIds = entries.map(\.id)
        if let seccompProfile {
            let document: SeccompProfileDocument
            do {
                document = try BuiltInProfiles.load(seccompProfile, relativeTo: FileManager.default.currentDirectoryPath)
            } catch {
                throw fail("--seccomp-profile: \(error)")
            }
            entries = entries.map { entry in
                var entry = entry
                entry.scenario = entry.scenario.underSeccompProfile(seccompProfile, document: document)
                return entry
            }
        }
        if let shardSelection {
            entries = Matrix.shard(entries, index: shardSelection.index, count: shardSelection.count, timings: previous)
        } else if timings != nil {
            warn("--timings only balances shards; without --shard or CI shard variables the whole matrix runs")
        }

        let events = try reports.openEvents()
        defer { events?.close() }
        var options = RunnerOptions(keepWork: keepWork)
        options.traceOut = traceOut
        options.traceBackend = try resolveTraceBackend(traceBackend)
        options.passEnvironment = passEnv
        options.hostWrites = hostWrites
        options.timeoutScale = timeoutScale ?? RunnerOptions.environmentTimeoutScale ?? 1
        options.maxStretch = maxStretch
        if hostWrites {
            warn("--host-writes: scenarios run as root on this host's own file systems; what one writes outside "
                + "$WORK stays on the host and later runs see it")
        }
        if let sharedCache {
            let absolute = sharedCache.hasPrefix("/")
                ? sharedCache : FileManager.default.currentDirectoryPath + "/" + sharedCache
            do {
                try FileManager.default.createDirectory(atPath: absolute, withIntermediateDirectories: true)
            } catch {
                throw fail("--shared-cache \(sharedCache): \(error)")
            }
            options.sharedCache = absolute
        }
        let session = RunSession(options: options)
        // A watchdog sweeps this process's cgroups and temp dirs even if it is killed; leftovers of killed runs
        // are swept now.
        session.prepareHost(executable: CommandLine.executablePath)
        let started = ContinuousClock.now
        let signals = session.handleSignals([SIGINT, SIGTERM, SIGHUP])
        defer { signals.cancel() }
        let runOrder = RunOrder.parse(order)!
        if case .shuffle = runOrder { warn("--order \(runOrder) (repeat this order with --order \(runOrder))") }
        let matrixIndex = Dictionary(entries.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
        let results = session.run(
            runOrder.apply(entries), jobs: jobs ?? ProcessInfo.processInfo.activeProcessorCount, allowSkip: allowSkip,
            reporter: .forStandardOutput(
                total: entries.count, started: started, ids: entries.map(\.id), timings: previous ?? [:],
                jobs: jobs ?? ProcessInfo.processInfo.activeProcessorCount, stdoutTaken: reports.stdoutTaken,
                events: events))
            .sorted { matrixIndex["\($0.name)@\($0.goVersion)", default: 0] < matrixIndex["\($1.name)@\($1.goVersion)", default: 0] }

        // Written on SIGINT too: the results that did finish (and those cut short, marked `interrupted`) are
        // what a CI job needs to see why it was cancelled.
        let runFile = RunFile(
            ghostrun: GhostrunVersion.current, host: HostFacts.current(), results: results,
            harness: HarnessStats.current(wallMs: (ContinuousClock.now - started).milliseconds),
            matrix: MatrixRecord(
                allIds: allIds, shardIds: entries.map(\.id), index: shardSelection?.index ?? 1,
                count: shardSelection?.count ?? 1),
            baseline: bundles.isEmpty || baselineOptions.baseline != nil
                ? baselineOptions.compare(results, matrixIds: allIds, with: baselineFile)
                : baselineFile.map {
                    BaselineComparison.compare(
                        results, matrixIds: allIds, baseline: $0,
                        file: "the bundle's recorded results (" + bundles.map(\.source).joined(separator: ", ") + ")")
                })
        if let comparison = runFile.baseline {
            print(comparison.render())
            fflush(nil)
        }
        try reports.write(runFile)
        if let timeline {
            do {
                try Timeline.render(results).write(to: URL(fileURLWithPath: timeline))
            } catch {
                throw fail("cannot write --timeline \(timeline): \(error)")
            }
        }
        reports.reportToGitHub(runFile)
        if let signalNumber = session.interruptedBy {
            FileHandle.standardError.write(Data("ghostrun: interrupted; \(results.count) of \(entries.count) results written\n".utf8))
            throw ExitCode(128 + signalNumber)
        }
        throw ExitCode(baselineOptions.exitStatus(results, comparison: runFile.baseline))
    }
}
