import CGhostrun
import Foundation
import Synchronization

/// How runs are carried out on this host.
public struct RunnerOptions: Sendable {
    public var hierarchies: CgroupHierarchies
    /// CI sets GHOSTRUN_REQUIRE_HOST=1: a missing host feature is then a harness error (exit 2), not `skipped`.
    public var requireHost: Bool
    /// Keep $WORK after the run (for debugging); default removes it.
    public var keepWork: Bool
    /// Shortest and longest sampling intervals: fast at first (short-lived processes), slower later.
    public var minimumInterval: Duration
    public var maximumInterval: Duration
    /// `--trace-out FILE`: every notified call as a JSON line (one run at a time writes it).
    public var traceOut: String?
    /// Where seccomp's kernel audit records are read (shared by every run of the process).
    public var auditLog: KernelAuditLog
    /// `bpf`: every run is observed by ghostrun's BPF program (exact process tree and attestation; `trace:` counted
    /// in the kernel, nothing notified) and user notification serves only `faults:`. The CLI decides it with
    /// `TraceBackend.decide`; the library default stays with the supervisor.
    public var traceBackend: TraceBackendDecision.Backend = .notify
    /// `--pass-env NAME`: harness variables the go command sees besides PATH, the locale and TERM.
    public var passEnvironment: [String] = []
    /// `--shared-cache DIR`: GOCACHE in `DIR/go<version>`, shared by the runs of one toolchain (opt-in; default private).
    public var sharedCache: String?
    /// `--host-writes`: the go command sees and writes the host's own file systems. By default a run is hermetic:
    /// it sees the host through a copy-on-write view whose writes are discarded with the run (`HermeticRoot`).
    public var hostWrites = false
    /// `--timeout-scale F`: every scenario's `timeout` and `hang_after` times F (slow machines, emulators). Every
    /// command's default is `GHOSTRUN_TIMEOUT_SCALE` when it holds a positive number (`run` refuses another value).
    public var timeoutScale: Double = RunnerOptions.environmentTimeoutScale ?? 1
    public static var environmentTimeoutScale: Double? {
        ProcessInfo.processInfo.environment["GHOSTRUN_TIMEOUT_SCALE"].flatMap(Double.init).flatMap {
            $0 > 0 && $0.isFinite ? $0 : nil
        }
    }
    /// `--max-stretch F`: host stalls may stretch a run's limits until its wall time reaches `timeout × F`; past
    /// that the result is `inconclusive`.
    public var maxStretch: Double = RunLimits.defaultMaxStretch
    /// Measure host stalls from the threads' run-queue wait even where PSI is there (`GHOSTRUN_STALL_SOURCE=schedstat`;
    /// the fallback's own tests use it).
    public var schedstatStalls = ProcessInfo.processInfo.environment["GHOSTRUN_STALL_SOURCE"] == "schedstat"
    /// Where a hermetic run's plan reads the host's mount table (ghostrun's `/proc/self/mountinfo`). The table can
    /// change before the child copies it; tests read it here and then change the host in that window, as another
    /// program would.
    public var hostMountTable: @Sendable () -> [HostMount] = { HermeticRoot.currentMounts() }

    public init(hierarchies: CgroupHierarchies = .discover(),
                requireHost: Bool = ProcessInfo.processInfo.environment["GHOSTRUN_REQUIRE_HOST"] == "1",
                keepWork: Bool = false, minimumInterval: Duration = .milliseconds(10),
                maximumInterval: Duration = .milliseconds(50), auditLog: KernelAuditLog = .shared) {
        self.auditLog = auditLog
        self.hierarchies = hierarchies
        self.requireHost = requireHost
        self.keepWork = keepWork
        self.minimumInterval = minimumInterval
        self.maximumInterval = maximumInterval
    }
}

/// A run that could not be set up: becomes a `harness-error` (or `skipped` for host features).
struct RunSetupError: Error, CustomStringConvertible {
    var description: String
}

/// Runs one scenario on one toolchain: prepare $WORK → plan → spawn → observe → classify → result.
public final class ScenarioRunner: Sendable {
    public let options: RunnerOptions
    /// The session's registry of live runs, which its signal handlers tear down.
    public let runs: ActiveRuns
    /// The host facts plans are resolved against, taken once per runner.
    let host: PlanHost
    private static let lastSequence = Mutex(0)

    public init(options: RunnerOptions = RunnerOptions(), runs: ActiveRuns = ActiveRuns()) {
        self.options = options
        self.runs = runs
        var host = PlanHost.current()
        host.passEnvironment = Set(options.passEnvironment)
        self.host = host
    }

    static func takeSequence() -> Int {
        lastSequence.withLock { last in
            last += 1
            return last
        }
    }

    public func run(_ scenario: Scenario, toolchain: Toolchain) -> RunResult {
        let started = ContinuousClock.now
        var result: RunResult
        if let constraint = scenario.goConstraint, !constraint.allows(toolchain.version) {
            result = skipped(
                scenario, toolchain, reason: "go \(toolchain.label) does not satisfy go: \"\(constraint)\"",
                cause: .goConstraint)
        } else {
            var workDir: String?
            result = execute(scenario, toolchain: toolchain, workDir: &workDir)
            if options.keepWork { result.workDir = workDir }
        }
        if result.durationMs == 0 { result.durationMs = (ContinuousClock.now - started).milliseconds }
        return result
    }

    private func skipped(_ scenario: Scenario, _ toolchain: Toolchain, reason: String, cause: SkipCause = .host)
        -> RunResult
    {
        ResultBuilder.skipped(
            name: scenario.name, goVersion: toolchain.label, reason: reason, cause: cause, goPath: toolchain.goBinary,
            scenarioFile: scenario.location.file, scenarioLine: scenario.location.line, tags: scenario.tags,
            expectation: scenario.expect)
    }

    /// A run a signal stopped before the go command started: skipped, neither passed nor failed.
    private func interrupted(_ scenario: Scenario, _ toolchain: Toolchain, _ when: String) -> RunResult {
        var result = skipped(scenario, toolchain, reason: "interrupted (SIGINT/SIGTERM) " + when, cause: .interrupted)
        result.passed = nil
        result.interrupted = true
        return result
    }

    /// The host (or this version) lacks a feature: skipped, or a harness error when CI requires the host.
    private func unsupportedHost(_ scenario: Scenario, _ toolchain: Toolchain, reason: String) -> RunResult {
        if options.requireHost { return harnessError(scenario, toolchain, message: reason + " (GHOSTRUN_REQUIRE_HOST=1)") }
        return skipped(scenario, toolchain, reason: reason)
    }

    private func harnessError(_ scenario: Scenario, _ toolchain: Toolchain, message: String) -> RunResult {
        ResultBuilder.harnessError(
            name: scenario.name, goVersion: toolchain.label, reason: message, goPath: toolchain.goBinary,
            scenarioFile: scenario.location.file, scenarioLine: scenario.location.line, tags: scenario.tags,
            expectation: scenario.expect)
    }

    // MARK: - The run

    private func execute(_ scenario: Scenario, toolchain: Toolchain, workDir: inout String?) -> RunResult {
        let sequence = ScenarioRunner.takeSequence()
        var timer = PhaseTimer("\(scenario.name)@\(toolchain.label)")
        defer {
            timer.mark("teardown")
            timer.report()
        }
        let work: WorkDirectory
        do {
            work = try WorkDirectory.create(sequence: sequence)
        } catch {
            return harnessError(scenario, toolchain, message: "\(error)")
        }
        workDir = work.work
        timer.mark("work tree")
        // Kept trees are marked before anything runs, so a watchdog or signal sweep at any point leaves them.
        if options.keepWork { work.keep() }
        defer { if !options.keepWork { work.remove() } }

        var plan: RunPlan
        do {
            try WorkPreparation.apply(scenario, toolchain: toolchain, to: work)
            plan = try RunPlan.resolve(scenario: scenario, toolchain: toolchain, host: host, work: work,
                                       traceOut: options.traceOut, observeWithBPF: options.traceBackend == .bpf,
                                       sharedCache: try sharedCache(for: toolchain),
                                       hermetic: options.hostWrites ? nil : options.hostMountTable())
        } catch let error as HostUnsupported {
            return unsupportedHost(scenario, toolchain, reason: error.reason)
        } catch {
            if Interruption.isRequested {
                // A signal stopped the preparation (a large fixture copy): nothing ran, nothing to judge.
                return interrupted(scenario, toolchain, "while preparing $WORK: \(error)")
            }
            return harnessError(scenario, toolchain, message: "\(error)")
        }
        timer.mark("prepare+plan")
        if plan.warmPageCache { ScenarioRunner.warmPageCache(toolchain) }

        let cgroup: RunCgroup
        do {
            cgroup = try RunCgroup(
                name: RunCgroup.runName(owner: getpid(), sequence: sequence, scenario: scenario.name),
                hierarchies: options.hierarchies, request: plan.cgroup)
        } catch let error as HostUnsupported {
            return unsupportedHost(scenario, toolchain, reason: error.reason)
        } catch {
            return unsupportedHost(scenario, toolchain, reason: "cannot create the run's cgroup: \(error) (root needed)")
        }
        timer.mark("cgroup")
        runs.register(sequence, cgroup: cgroup, work: options.keepWork ? nil : work, goroot: toolchain.goroot)
        defer {
            cgroup.destroy()
            runs.unregister(sequence, goroot: toolchain.goroot)
        }
        if runs.wasTornDown(sequence) { return interrupted(scenario, toolchain, "before the go command started") }

        let observation: RunObservation
        let stall: StallServer?
        do {
            stall = try plan.startStallServer()
        } catch {
            return harnessError(scenario, toolchain, message: "\(error)")
        }
        defer { stall?.stop() }
        do {
            observation = try RunMonitor.observe(
                scenario, plan: plan, cgroup: cgroup, work: work, toolchain: toolchain, options: options, runs: runs,
                auditLog: options.auditLog)
        } catch {
            var result = harnessError(scenario, toolchain, message: "\(error)")
            if runs.wasTornDown(sequence) { result.interrupted = true }
            return result
        }
        timer.mark("run")
        let classification = Classifier.classify(observation)
        var result = ResultBuilder.build(
            name: scenario.name, goVersion: toolchain.label, goPath: toolchain.goBinary,
            scenarioFile: scenario.location.file, scenarioLine: scenario.location.line, tags: scenario.tags,
            expectation: scenario.expect, observation: observation, classification: classification,
            requested: plan.requested)
        result.durationMs = observation.durationMs
        result.evidence.policy = plan.policyEvidence
        result.evidence.filesystem = plan.fileSystemView
        result.evidence.filesystem?.skipped += observation.skippedMounts
        result.evidence.landlock = plan.spawn.landlock.map(LandlockEvidence.init)
        result.outputFiles = observation.outputFiles
        timer.mark("classify+result")
        if runs.wasTornDown(sequence) { result.interrupted = true }
        return result
    }
}

extension ScenarioRunner {
    /// `DIR/go<version>` for `--shared-cache DIR`, created on first use; nil without the option.
    func sharedCache(for toolchain: Toolchain) throws -> String? {
        guard let base = options.sharedCache else { return nil }
        let directory = base + "/go" + toolchain.label
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    /// Page cache is charged to the cgroup that first reads a page. If the toolchain's binaries are not cached when a
    /// memory-limited run starts, their text pages are charged to the run and, under the limit, evicted and read
    /// again and again: the build thrashes instead of meeting the OOM killer (measured here with cgroup v1, at
    /// 32–160 MiB). Reading them from ghostrun first keeps the limit about the build's own memory.
    static func warmPageCache(_ toolchain: Toolchain) {
        var files = [toolchain.goBinary]
        let tools = toolchain.goroot + "/pkg/tool"
        for platform in (try? FileManager.default.contentsOfDirectory(atPath: tools)) ?? [] {
            for tool in (try? FileManager.default.contentsOfDirectory(atPath: tools + "/" + platform)) ?? [] {
                files.append(tools + "/" + platform + "/" + tool)
            }
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        for file in files {
            guard case .success(let fd) = System.open(file, O_RDONLY) else { continue }
            while case .success(let count) = buffer.withUnsafeMutableBytes({ System.read(fd, into: $0) }), count > 0 {}
            System.close(fd)
        }
    }
}
