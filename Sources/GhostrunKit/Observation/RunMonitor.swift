import CGhostrun
import Foundation

/// Spawns the go command into the run's cgroup and watches it until it ends or hangs: output capture, the
/// supervisor, kernel audit records, `/proc` sampling, the freeze schedule and the hang check, assembled into one
/// `RunObservation`.
///
/// Everything the loop changes lives in `State`; the rest is fixed once the command is spawned.
struct RunMonitor {
    /// What the monitor loop learns round by round.
    struct State {
        var termination: Termination?
        var schedule: FreezeSchedule
        var events: [CgroupEvent] = []
        var frozenSeen = false
        var lastFrozen = false
        /// Runnable time (`clock`) when the run last did something (CPU, output, a new process) or the harness
        /// thawed it.
        var lastProgress: Duration = .zero
        var lastCPU: UInt64 = 0
        var lastOutput = 0
        var processCount = 0
        /// Each live process's CPU ticks over the last window, for `cpuMovingAtEnd`: only the processes alive
        /// at the end count, whatever the ones that already exited used.
        var cpuHistory: [(ContinuousClock.Instant, [Int32: UInt64])] = []
        /// The time the run could run (wall time minus the host's stalls), as of the last round.
        var clock: RunClock
        var runnable: Duration = .zero
        var denials: [Denial] = []
        var seenPids: Set<Int32>
        /// Which audit records are this run's (its pids, its tree), and how many of its toolchain's were not.
        var attribution: AuditAttribution
        var snapshots: [HangSnapshot] = []
        var goroutineDump: String?
        var cpuMovingAtEnd = false
        var interval: Duration

        init(schedule: FreezeSchedule, start: ContinuousClock.Instant, pid: pid_t, interval: Duration,
             attribution: AuditAttribution, clock: RunClock) {
            self.schedule = schedule
            self.clock = clock
            self.seenPids = [pid]
            self.attribution = attribution
            self.interval = interval
        }
    }

    let scenario: Scenario
    let plan: RunPlan
    let cgroup: RunCgroup
    let work: WorkDirectory
    let toolchain: Toolchain
    let options: RunnerOptions
    let runs: ActiveRuns
    let stdout: OutputCapture
    let stderr: OutputCapture
    /// `go test` events read as stdout arrives (nil for other commands).
    let goTest: GoTestStream?
    let audit: AuditSubscription?
    let kernelStartUsec: UInt64
    let start: ContinuousClock.Instant
    let sampler: ProcessSampler
    let supervisorStart: SupervisorStart?
    /// The process events window that counts every process of the run (nil without the connector).
    let processEvents: (listener: ProcessEvents, mark: ProcessEvents.Mark)?
    let pid: pid_t
    /// Readable once the go command exits; -1 when pidfd_open is unavailable (the loop then sleeps).
    let pidfd: Int32
    /// ghostrun's BPF program for this run (`RunPlan.observeWithBPF`): exact process tree, attestation, and the
    /// calls counted in the kernel.
    let bpfTracer: BPFTracer?
    /// Host mounts the hermetic view skipped: they vanished before the child copied the mount table.
    let skippedMounts: [String]
    /// `timeout` and `hang_after` after `--timeout-scale`, and the stretch bound.
    let limits: RunLimits
    private(set) var state: State

    /// Watches one run from spawn to the assembled observation.
    static func observe(
        _ scenario: Scenario, plan: RunPlan, cgroup: RunCgroup, work: WorkDirectory, toolchain: Toolchain,
        options: RunnerOptions, runs: ActiveRuns, auditLog: KernelAuditLog = .shared
    ) throws -> RunObservation {
        var timer = PhaseTimer("monitor \(scenario.name)")
        defer { timer.report() }
        var monitor = try RunMonitor(
            scenario, plan: plan, cgroup: cgroup, work: work, toolchain: toolchain, options: options, runs: runs,
            auditLog: auditLog)
        timer.mark("start+spawn")
        defer { monitor.release() }
        while monitor.state.termination == nil { monitor.round() }
        timer.mark("until exit")
        let observation = monitor.finish(timer: &timer)
        timer.mark("finish")
        return observation
    }

    /// Starts the run: output capture, the audit subscription, the supervisor (before spawn), then the spawn
    /// into the cgroup, whose descriptors are used under its lock.
    init(
        _ scenario: Scenario, plan: RunPlan, cgroup: RunCgroup, work: WorkDirectory, toolchain: Toolchain,
        options: RunnerOptions, runs: ActiveRuns, auditLog: KernelAuditLog
    ) throws {
        let goTest: GoTestStream? = plan.goTestOutput == nil ? nil : GoTestStream()
        var feed: (@Sendable (ArraySlice<UInt8>) -> Void)?
        if let goTest { feed = { goTest.feed($0) } }
        // With -json added by ghostrun, stdout is rebuilt from the events; the raw JSON is only a fallback.
        let rawLimit = plan.goTestOutput == .json(added: true) ? 256 << 10 : 4 << 20
        // --keep-work: the whole output goes to files beside $WORK, streamed; the result keeps bounded tails.
        let stdout = try OutputCapture(limit: rawLimit, copyTo: options.keepWork ? work.root + "/stdout.txt" : nil,
                                       onChunk: feed)
        let stderr = try OutputCapture(copyTo: options.keepWork ? work.root + "/stderr.txt" : nil)
        let devNull = try System.open("/dev/null", O_RDONLY)
            .orThrow(step: "spawn", syscall: "open", path: "/dev/null", "cannot open /dev/null")
        defer { System.close(devNull) }

        var spawn = plan.spawn
        if case .after(.zero)? = plan.freezeSteps.first?.trigger, cgroup.freezeVia == "v2" {
            spawn.freezeBeforeExec = true
        }
        spawn.stdin = devNull
        spawn.stdout = stdout.writeFd
        spawn.stderr = stderr.writeFd

        var timer = PhaseTimer("spawn \(scenario.name)")
        defer { timer.report() }
        timer.mark("captures")
        let audit = auditLog.isAvailable ? auditLog.subscribe() : nil
        timer.mark("audit")
        let kernelStartUsec = AuditRecord.kernelMonotonicNowUsec()
        let start = ContinuousClock.now
        let sampler = ProcessSampler(runStart: start)
        let clock = RunClock(cgroupV2: cgroup.v2Path, start: start, forceSchedstat: options.schedstatStalls)

        // User notification: the child sends its listener over a socket while it is still between fork and
        // exec, and execve itself may be notified, so the supervisor must be answering before spawn returns.
        var supervisorStart: SupervisorStart?
        if let supervisorPlan = plan.supervisor {
            var sockets: [Int32] = [-1, -1]
            guard ghostrun_socketpair(&sockets) == 0 else {
                audit?.cancel()
                throw HarnessError(step: "spawn", syscall: "socketpair", errno: .current,
                                   "cannot create the supervisor's socket pair")
            }
            spawn.listenerSocket = sockets[1]
            supervisorStart = SupervisorStart(socket: sockets[0], plan: supervisorPlan, runStart: start)
            supervisorStart?.begin()
        }
        timer.mark("supervisor")
        // Attached before the fork: the go command's exec is its first event. Filtered by the run's cgroup id.
        var bpfTracer: BPFTracer?
        if plan.observeWithBPF, let v2Path = cgroup.v2Path {
            do {
                bpfTracer = try BPFTracer(
                    cgroupDirectory: v2Path, runStart: start,
                    traceOut: scenario.trace != .off ? options.traceOut : nil, workRoot: work.root,
                    goroot: toolchain.goroot)
            } catch {
                if spawn.listenerSocket >= 0 { System.close(spawn.listenerSocket) }
                _ = supervisorStart?.finish()
                audit?.cancel()
                throw error
            }
        }
        timer.mark("bpf")
        // Marked before the fork: the go command's own fork is the first event of its tree.
        let processEvents = ProcessEvents.shared.map { (listener: $0, mark: $0.begin()) }
        timer.mark("proc events")
        let child: SpawnedChild
        do {
            child = try Spawner.spawnChild(spawn, joining: cgroup)
            timer.mark("fork..exec")
        } catch {
            _ = bpfTracer?.stop()
            _ = processEvents.map { $0.listener.finish($0.mark, root: -1, timeout: .zero) }
            stdout.closeWriteEnd()
            stderr.closeWriteEnd()
            if spawn.listenerSocket >= 0 { System.close(spawn.listenerSocket) }
            _ = supervisorStart?.finish()
            audit?.cancel()
            throw error
        }
        if spawn.listenerSocket >= 0 { System.close(spawn.listenerSocket) }
        stdout.closeWriteEnd()
        stderr.closeWriteEnd()
        stdout.start()
        stderr.start()

        self.scenario = scenario
        self.plan = plan
        self.cgroup = cgroup
        self.work = work
        self.toolchain = toolchain
        self.options = options
        self.runs = runs
        self.stdout = stdout
        self.stderr = stderr
        self.goTest = goTest
        self.audit = audit
        self.kernelStartUsec = kernelStartUsec
        self.start = start
        self.sampler = sampler
        self.supervisorStart = supervisorStart
        self.processEvents = processEvents
        let pid = child.pid
        self.pid = pid
        self.bpfTracer = bpfTracer
        self.skippedMounts = child.skippedMounts
        self.limits = RunLimits(timeout: scenario.timeout, hangAfter: scenario.hangAfter, scale: options.timeoutScale,
                                maxStretch: options.maxStretch)
        self.state = State(
            schedule: FreezeSchedule(steps: plan.freezeSteps, start: start), start: start, pid: pid,
            interval: options.minimumInterval,
            attribution: AuditAttribution(workRoot: work.root, goroot: toolchain.goroot), clock: clock)
        self.pidfd = ghostrun_pidfd_open(pid, 0)
    }

    /// Closes what `init` opened and `finish` does not: the pidfd and the audit subscription.
    func release() {
        if pidfd >= 0 { System.close(pidfd) }
        // Ends the window if `finish` did not (a run that threw); a no-op after `finish`.
        _ = processEvents.map { $0.listener.finish($0.mark, root: pid, timeout: .zero) }
        audit?.cancel()
    }

    private func ms(_ instant: ContinuousClock.Instant) -> Int { (instant - start).milliseconds }

    // MARK: The loop

    /// One round: reap, freeze, sample, progress and hang check, then sleep until the next round. Sets
    /// `state.termination` when the go command ended or was killed.
    mutating func round() {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            state.termination = ScenarioRunner.termination(from: status)
            return
        }
        let now = ContinuousClock.now
        // A due time-based freeze goes first, before sampling: `after: 0ms` must catch even `go version`.
        applyFreezeStep(newProcessNames: [], at: now)
        let sample = self.sample()
        // Freeze steps triggered by a process that just appeared.
        applyFreezeStep(newProcessNames: sample.newProcesses.map(\.comm), at: now)
        noteFrozenState(at: now)
        state.runnable = state.clock.advance(to: now, pids: sample.pids)
        noteProgress(sample, at: now)
        if let trigger = hangTrigger(at: now) {
            takeHangSnapshot(sample, trigger: trigger)
            state.termination = .killedByHarness(reason: trigger)
            return
        }
        sleepUntilNextRound(at: now)
    }

    /// Samples `/proc` for the cgroup's processes and takes in the audit records that arrived.
    mutating func sample() -> ProcessSampler.SampleRound {
        // Every member of the cgroup this round is the run's, sampled or not: audit records are attributed by it.
        let members = cgroup.pids()
        state.seenPids.formUnion(members)
        let sample = sampler.sample(pids: members)
        for process in sample.newProcesses { state.seenPids.insert(process.pid) }
        collectDenials()
        return sample
    }

    /// Asks the freeze schedule what is due and applies it to the cgroup.
    mutating func applyFreezeStep(newProcessNames: [String], at now: ContinuousClock.Instant) {
        switch state.schedule.next(now: now, newProcessNames: newProcessNames) {
        case .freeze?:
            do {
                try cgroup.freeze()
                state.events.append(CgroupEvent(timeMs: ms(now), event: "freeze-requested", detail: cgroup.freezeVia))
            } catch {
                state.events.append(CgroupEvent(timeMs: ms(now), event: "freeze-failed", detail: "\(error)"))
            }
        case .thaw?:
            try? cgroup.thaw()
            state.events.append(CgroupEvent(timeMs: ms(now), event: "thaw-requested", detail: cgroup.freezeVia))
            state.lastProgress = state.runnable  // a thaw is the harness's doing; the target gets a fresh hang window
        case nil: break
        }
    }

    /// Records `frozen`/`thawed` when the cgroup's frozen state changed (only for runs that freeze).
    mutating func noteFrozenState(at now: ContinuousClock.Instant) {
        let frozen = !scenario.sandbox.cgroup.freeze.isEmpty && cgroup.isFrozen()
        guard frozen != state.lastFrozen else { return }
        state.events.append(CgroupEvent(timeMs: ms(now), event: frozen ? "frozen" : "thawed"))
        state.lastFrozen = frozen
        if frozen { state.frozenSeen = true }
    }

    /// Progress: CPU of every process, new processes, output.
    mutating func noteProgress(_ sample: ProcessSampler.SampleRound, at now: ContinuousClock.Instant) {
        let output = stdout.byteCount + stderr.byteCount
        let seen = state.seenPids.count
        if sample.totalCPUTicks != state.lastCPU || output != state.lastOutput || seen != state.processCount {
            state.lastProgress = state.runnable
            state.lastCPU = sample.totalCPUTicks
            state.lastOutput = output
            state.processCount = seen
        }
        state.cpuHistory.append((now, sample.cpuTicks))
        // The last window: two seconds, or hang_after when shorter (a run that made no progress for hang_after
        // cannot be spinning on CPU it used before that).
        let window = min(.seconds(2), limits.hangAfter)
        state.cpuHistory.removeAll { now - $0.0 > window }
    }

    /// Whether the run is out of time or has made no progress for `hang_after`, both counted in the time it could
    /// run; or whether the host stalled it so long that wall time reached the stretch bound first.
    func hangTrigger(at now: ContinuousClock.Instant) -> HangTrigger? {
        RunMonitor.hangTrigger(wall: now - start, runnable: state.runnable, lastProgress: state.lastProgress,
                               limits: limits)
    }

    /// The decision of `hangTrigger`, on plain values (unit-tested).
    static func hangTrigger(wall: Duration, runnable: Duration, lastProgress: Duration, limits: RunLimits)
        -> HangTrigger?
    {
        if runnable >= limits.timeout { return .timeout }
        if runnable - lastProgress >= limits.hangAfter { return .noProgress }
        if wall >= limits.wallBound { return .stretchBound }
        return nil
    }

    /// Whether a process alive at the end used CPU in the history window (each compared with its own first
    /// reading in the window; a process that appeared only in the last reading has nothing to compare).
    static func cpuMoving(history: [[Int32: UInt64]], alive: Set<Int32>) -> Bool {
        guard let last = history.last else { return false }
        for pid in alive {
            guard let end = last[pid], let begin = history.lazy.compactMap({ $0[pid] }).first else { continue }
            if end > begin { return true }
        }
        return false
    }

    /// What the hung run was doing: a `/proc` snapshot, whether CPU still moved, and unless the tree is frozen or
    /// stopped, the goroutine stacks Go prints on SIGQUIT.
    mutating func takeHangSnapshot(_ sample: ProcessSampler.SampleRound, trigger: HangTrigger) {
        let pids = cgroup.pids()
        state.snapshots = sampler.snapshot(pids: pids, stalled: Set(plan.stallEndpoints.map(\.description)))
        let alive = Set(state.snapshots.filter { $0.state != "Z" && $0.state != "X" }.map(\.pid))
        state.cpuMovingAtEnd = RunMonitor.cpuMoving(history: state.cpuHistory.map(\.1), alive: alive)
        let frozenNow = cgroup.isFrozen() || sample.anyFrozenWchan
        if frozenNow { state.frozenSeen = true }
        // A run cut at the stretch bound is not a hang of the target: no goroutine dump is asked for.
        guard !frozenNow && !sample.allStoppedOrTraced, trigger != .stretchBound else { return }
        // Go prints every goroutine's stack on SIGQUIT (GOTRACEBACK=all in the base environment).
        let before = stderr.byteCount
        for target in pids { kill(target, SIGQUIT) }
        let deadline = ContinuousClock.now + .seconds(2)
        var status: Int32 = 0
        while ContinuousClock.now < deadline && waitpid(pid, &status, WNOHANG) == 0 { usleep(20_000) }
        stderr.waitForEnd(timeout: 0.3)
        let dump = stderr.text(since: before)
        if !dump.isEmpty { state.goroutineDump = dump }
    }

    /// Sleeps until the next sample, or until the go command exits (its pidfd becomes readable), so a short run
    /// is not held back by the sampling interval. Sampling is fast at first, then slows down.
    mutating func sleepUntilNextRound(at now: ContinuousClock.Instant) {
        state.interval = now - start < .milliseconds(300) ? options.minimumInterval
            : min(options.maximumInterval, state.interval + .milliseconds(5))
        try? Task.checkCancellation()
        if pidfd >= 0 {
            var poller = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            _ = poll(&poller, 1, Int32(state.interval.milliseconds))
        } else {
            usleep(UInt32(state.interval.milliseconds * 1000))
        }
    }

    /// Takes in the kernel's seccomp audit records that belong to this run.
    mutating func collectDenials() {
        guard let audit else { return }
        // The decision table names the rule that decided, as the supervisor does for its own denials.
        state.denials += state.attribution.denials(
            from: audit.drain(), pids: state.seenPids, runStartKernelUsec: kernelStartUsec
        ).map { $0.attributed(to: plan.decisions) }
    }

    // MARK: The end

    /// Ends the run (stragglers, cgroup counters, teardown, supervisor, late audit records) and assembles the
    /// observation.
    mutating func finish(timer: inout PhaseTimer) -> RunObservation {
        let termination = state.termination!
        let end = ContinuousClock.now
        state.runnable = state.clock.advance(to: end, pids: cgroup.pids())
        let stall = state.clock.evidence(wall: end - start, limits: limits,
                                         boundReached: termination == .killedByHarness(reason: .stretchBound))
        // The go command is done: give stragglers' output a moment, then kill the rest of the cgroup.
        if case .killedByHarness = termination {} else {
            let deadline = ContinuousClock.now + .milliseconds(500)
            while ContinuousClock.now < deadline && !cgroup.pids().isEmpty { usleep(1_000) }
        }
        timer.mark("stragglers")
        _ = sampler.sample(pids: cgroup.pids())
        let pidsMaxHits = cgroup.pidsMaxHits()
        let oomKills = cgroup.oomKills()
        let cpuThrottling = cgroup.cpuThrottling()
        cgroup.destroy()
        timer.mark("cgroup destroy")
        var status: Int32 = 0
        _ = valueOrErrno { waitpid(pid, &status, 0) }
        stdout.waitForEnd(timeout: 2)
        stderr.waitForEnd(timeout: 2)
        timer.mark("output end")
        // Every process has exited (the cgroup is gone): the exit events are in.
        let bpfSeen = bpfTracer?.stop()
        timer.mark("bpf stop")
        for process in bpfSeen?.processes ?? [] { state.seenPids.insert(process.pid) }
        let processCount = processEvents.flatMap { $0.listener.finish($0.mark, root: pid) }
        var trace = stopSupervisor(at: end)
        timer.mark("proc events+supervisor")
        waitForAuditRecords(failed: termination != .exited(0))
        timer.mark("audit wait")
        if let bpfSeen {
            state.denials = bpfSeen.policyDenials(
                decisions: plan.decisions, goroot: toolchain.goroot, workRoot: work.root, merging: state.denials)
            if scenario.trace != .off {
                trace = bpfSeen.traceSummary(
                    request: scenario.trace, goroot: toolchain.goroot, workRoot: work.root,
                    injected: trace?.injected ?? 0)
            }
        }
        if let hits = pidsMaxHits, hits > 0 {
            state.events.append(CgroupEvent(timeMs: ms(end), event: "pids-max", detail: "\(hits) forks refused"))
        }
        if let kills = oomKills, kills > 0 {
            state.events.append(CgroupEvent(timeMs: ms(end), event: "oom-kill", detail: "\(kills) processes killed"))
        }

        var observation = RunObservation(
            termination: termination, durationMs: (end - start).milliseconds, stdout: stdout.text,
            stderr: stderr.text,
            // Shown to people: say $WORK rather than this run's temporary path.
            successArtifact: plan.successArtifact.map { $0.replacingOccurrences(of: work.work, with: "$WORK") },
            artifactExists: plan.successArtifact.map { FileManager.default.fileExists(atPath: $0) },
            successStdout: scenario.success.stdout, processes: sampler.observations(),
            denials: state.denials.sorted { $0.timeMs < $1.timeMs },
            cgroup: CgroupObservation(path: cgroup.primaryPath, extraPaths: Array(cgroup.allPaths.dropFirst()),
                                      frozenSeen: state.frozenSeen, events: state.events, pidsMaxHits: pidsMaxHits,
                                      oomKills: oomKills),
            hangSnapshots: state.snapshots, goroutineDump: state.goroutineDump,
            cpuMovingAtEnd: state.cpuMovingAtEnd, rootPid: pid)
        observation.expectArtifactExists = plan.expectArtifact.map { FileManager.default.fileExists(atPath: $0) }
        observation.trace = trace
        observation.unattributedAuditRecords = state.attribution.unattributed
        observation.processCount = processCount
        observation.cgroup?.cpu = cpuThrottling
        observation.cgroup?.pidsVia = cgroup.pidsVia
        observation.cgroup?.memoryVia = cgroup.memoryVia
        observation.cgroup?.freezeVia = cgroup.freezeVia
        observation.stall = stall
        observation.skippedMounts = skippedMounts
        if let stdoutPath = stdout.copyPath, let stderrPath = stderr.copyPath {
            observation.outputFiles = OutputFiles(
                stdout: stdoutPath, stderr: stderrPath, stdoutBytes: stdout.byteCount, stderrBytes: stderr.byteCount,
                error: [stdout.copyError.map { "stdout: " + $0 }, stderr.copyError.map { "stderr: " + $0 }]
                    .compactMap { $0 }.first)
        }
        if let goTest {
            observation.goTest = goTest.finish()
            // ghostrun added -json: people (and `expect.stdout`) see what plain go test prints.
            if plan.goTestOutput == .json(added: true), goTest.sawEvents { observation.stdout = goTest.plainText }
        }
        observation.bpf = bpfSeen
        return observation
    }

    /// Stops the supervisor (the tree is gone) and takes in what it saw.
    private mutating func stopSupervisor(at end: ContinuousClock.Instant) -> TraceSummary? {
        guard let supervisorStart else { return nil }
        let seen = supervisorStart.finish()
        state.denials += seen.denials
        if let failure = seen.failure {
            state.events.append(CgroupEvent(timeMs: ms(end), event: "supervisor-failed", detail: failure))
        }
        return seen.trace
    }

    /// Kernel audit records arrive through printk asynchronously. Only a filter produces seccomp records: wait for
    /// the first of ours (as long as a failed run's evidence deserves, briefly for a run that went well) rather
    /// than a fixed sleep.
    private mutating func waitForAuditRecords(failed: Bool) {
        guard let audit, plan.spawn.filter != nil else { return }
        let pids = state.seenPids
        _ = audit.wait(timeout: .milliseconds(failed ? 60 : 5)) { pids.contains($0.pid) }
        collectDenials()
    }
}

extension ScenarioRunner {
    static func termination(from status: Int32) -> Termination {
        let signal = status & 0x7f
        if signal == 0 { return .exited((status >> 8) & 0xff) }
        return .signaled(signal)
    }
}
