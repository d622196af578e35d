import Foundation
import Synchronization

/// One invocation's runs (`ghostrun run`, `ghostrun trace`): it sweeps what killed runs left behind, starts the
/// reaper watchdog, owns the registry of live runs, tears them down on SIGINT/SIGTERM, and runs the matrix.
public final class RunSession: Sendable {
    /// The registry the runner registers into and the signal handlers tear down.
    public let runs = ActiveRuns()
    public let runner: ScenarioRunner
    private let interruption = Mutex<Int32?>(nil)
    private let matrix = Mutex<MatrixRunner?>(nil)

    public init(options: RunnerOptions = RunnerOptions()) {
        runner = ScenarioRunner(options: options, runs: runs)
    }

    /// The first signal that interrupted the session, nil when none did.
    public var interruptedBy: Int32? { interruption.withLock { $0 } }

    /// Sweeps the cgroups and temp dirs of ghostrun processes that are gone, and starts a watchdog that sweeps this
    /// process's own if it is killed. `executable` is this program (the watchdog runs `executable __reap PID`).
    public func prepareHost(executable: String) {
        // A delegated ghostrun leaves its delegated cgroup for a leaf before anything else starts in it (the
        // reaper below): the cgroup's children can get controllers only while it holds no process.
        do {
            try CgroupPlacement.current?.prepare()
        } catch {
            FileHandle.standardError.write(Data("ghostrun: \(error); runs get no cgroup v2 controllers\n".utf8))
        }
        Cleanup.sweepDead()
        Cleanup.startReaper(executable: executable)
    }

    /// Until the returned handlers are cancelled, each of `signals` stops the matrix from starting entries, kills
    /// and removes every live run (their results say `interrupted`) and records the signal in `interruptedBy`.
    public func handleSignals(_ signals: [Int32]) -> SignalHandlers {
        // A new session starts uninterrupted, even in a process where an earlier one was (tests, a library user).
        Interruption.reset()
        return SignalHandlers(signals: signals) { [self] signalNumber in
            interruption.withLock { if $0 == nil { $0 = signalNumber } }
            // Fixture copies and pattern searches running now give up at their next step.
            Interruption.request()
            matrix.withLock { $0 }?.stop()
            runs.tearDownAll()
        }
    }

    /// Runs the matrix on `jobs` workers, reporting each start and result to `reporter` as it happens; entries a
    /// signal kept from starting are not in the results. Skips are judged (`ResultBuilder.judgeSkips`) before a
    /// result is reported: without `allowSkip`, a host skip of a scenario with `expect:` fails.
    public func run(_ entries: [MatrixEntry], jobs: Int, allowSkip: Bool = false, reporter: LiveReporter? = nil)
        -> [RunResult]
    {
        let matrixRunner = MatrixRunner(runner: runner, jobs: jobs)
        matrix.withLock { $0 = matrixRunner }
        // A signal that came before the matrix existed still stops it.
        if interruptedBy != nil { matrixRunner.stop() }
        reporter?.start()
        let unjudged = matrixRunner.run(entries, onStart: { entry in
            reporter?.runStarted(entry)
        }, onResult: { result in
            reporter?.runFinished(ResultBuilder.judgeSkips([result], allowSkip: allowSkip)[0])
        })
        let results = ResultBuilder.judgeSkips(unjudged, allowSkip: allowSkip)
        reporter?.finish(results)
        return results
    }

    /// Runs one scenario on one toolchain in this session.
    public func run(_ scenario: Scenario, toolchain: Toolchain) -> RunResult {
        runner.run(scenario, toolchain: toolchain)
    }
}

/// Signal dispositions replaced by dispatch sources for as long as this value lives un-cancelled.
public final class SignalHandlers: Sendable {
    private let sources: Mutex<[any DispatchSourceSignal]>

    init(signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        let sources = signals.map { signalNumber -> any DispatchSourceSignal in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { handler(signalNumber) }
            source.resume()
            return source
        }
        self.sources = Mutex(sources)
    }

    /// Stops handling the signals (they stay ignored).
    public func cancel() {
        sources.withLock { sources in
            sources.forEach { $0.cancel() }
            sources = []
        }
    }
}
