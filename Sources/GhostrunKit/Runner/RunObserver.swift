import CGhostrun
import Foundation

extension ScenarioRunner {
    /// Spawns the go command into the run's cgroup and watches it until it ends or hangs.
    func observe(_ scenario: Scenario, plan: RunPlan, cgroup: RunCgroup, work: WorkDirectory,
                 toolchain: Toolchain) throws -> RunObservation {
        let goTest: GoTestStream? = plan.goTestOutput == nil ? nil : GoTestStream()
        var feed: (@Sendable (ArraySlice<UInt8>) -> Void)?
        if let goTest { feed = { goTest.feed($0) } }
        // With -json added by ghostrun, stdout is rebuilt from the events; the raw JSON is only a fallback.
        let rawLimit = plan.goTestOutput == .json(added: true) ? 256 << 10 : 4 << 20
        let stdout = try OutputCapture(limit: rawLimit, onChunk: feed)
        let stderr = try OutputCapture()
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devNull) }

        var spawn = plan.spawn
        spawn.stdin = devNull
        spawn.stdout = stdout.writeFd
        spawn.stderr = stderr.writeFd
        spawn.cgroupDescriptors = cgroup.joinDescriptors

        let audit = KernelAuditLog.shared.isAvailable ? KernelAuditLog.shared.subscribe() : nil
        defer { audit?.cancel() }
        let kernelStartUsec = AuditRecord.kernelMonotonicNowUsec()
        let start = ContinuousClock.now
        let sampler = ProcessSampler(runStart: start)

        // User notification: the child sends its listener over a socket while it is still between fork and
        // exec, and execve itself may be notified, so the supervisor must be answering before spawn returns.
        var supervisorStart: SupervisorStart?
        if let supervisorPlan = plan.supervisor {
            var sockets: [Int32] = [-1, -1]
            guard ghostrun_socketpair(&sockets) == 0 else { throw SpawnError(step: "socketpair", errno: errno) }
            spawn.listenerSocket = sockets[1]
            supervisorStart = SupervisorStart(socket: sockets[0], plan: supervisorPlan, runStart: start)
            supervisorStart?.begin()
        }
        // Attached before the fork: the go command's exec is its first event. Filtered by the run's cgroup id.
        var bpfTracer: BPFTracer?
        if plan.observeWithBPF, let v2Path = cgroup.v2Path {
            do {
                bpfTracer = try BPFTracer(
                    cgroupDirectory: v2Path, runStart: start,
                    traceOut: scenario.trace != .off ? options.traceOut : nil, workRoot: work.root,
                    goroot: toolchain.goroot)
            } catch {
                if spawn.listenerSocket >= 0 { close(spawn.listenerSocket) }
                _ = supervisorStart?.finish()
                throw error
            }
        }
        let pid: pid_t
        do {
            pid = try Spawner.spawn(spawn)
        } catch {
            _ = bpfTracer?.stop()
            stdout.closeWriteEnd()
            stderr.closeWriteEnd()
            if spawn.listenerSocket >= 0 { close(spawn.listenerSocket) }
            _ = supervisorStart?.finish()
            throw error
        }
        if spawn.listenerSocket >= 0 { close(spawn.listenerSocket) }
        stdout.closeWriteEnd()
        stderr.closeWriteEnd()
        stdout.start()
        stderr.start()

        var termination: Termination?
        var schedule = FreezeSchedule(steps: plan.freezeSteps, start: start)
        var events: [CgroupEvent] = []
        var frozenSeen = false
        var lastFrozen = false
        var lastProgress = start
        var lastCPU: UInt64 = 0
        var lastOutput = 0
        var processCount = 0
        var cpuHistory: [(ContinuousClock.Instant, UInt64)] = []
        var denials: [Denial] = []
        var seenPids = Set<Int32>([pid])
        var snapshots: [HangSnapshot] = []
        var goroutineDump: String?
        var cpuMovingAtEnd = false
        var hangTrigger: HangTrigger?
        func ms(_ instant: ContinuousClock.Instant) -> Int { (instant - start).milliseconds }

        let decisions = plan.decisions
        func collectDenials() {
            guard let audit else { return }
            let exclusiveGoroot = runs.runsUsing(goroot: toolchain.goroot) <= 1
            // user-notif records only repeat what the supervisor saw first-hand.
            for record in audit.drain() where record.action != "user-notif" {
                let exe = record.exe ?? ""
                let ours = seenPids.contains(record.pid) || exe.hasPrefix(work.root)
                    || (exclusiveGoroot && exe.hasPrefix(toolchain.goroot))
                if ours { denials.append(record.denial(runStartKernelUsec: kernelStartUsec).attributed(to: decisions)) }
            }
        }

        let pidfd = ghostrun_pidfd_open(pid, 0)
        defer { if pidfd >= 0 { close(pidfd) } }
        func apply(_ action: FreezeSchedule.Action?, at now: ContinuousClock.Instant) {
            switch action {
            case .freeze?:
                do {
                    try cgroup.freeze()
                    events.append(CgroupEvent(timeMs: ms(now), event: "freeze-requested", detail: cgroup.freezeVia))
                } catch {
                    events.append(CgroupEvent(timeMs: ms(now), event: "freeze-failed", detail: "\(error)"))
                }
            case .thaw?:
                try? cgroup.thaw()
                events.append(CgroupEvent(timeMs: ms(now), event: "thaw-requested", detail: cgroup.freezeVia))
                lastProgress = now  // a thaw is the harness's doing; the target gets a fresh hang window
            case nil: break
            }
        }

        var interval = options.minimumInterval
        while termination == nil {
            var status: Int32 = 0
            let waited = waitpid(pid, &status, WNOHANG)
            if waited == pid {
                termination = ScenarioRunner.termination(from: status)
                break
            }
            let now = ContinuousClock.now
            // A due time-based freeze goes first, before sampling: `after: 0ms` must catch even `go version`.
            apply(schedule.next(now: now, newProcessNames: []), at: now)
            let round = sampler.sample(pids: cgroup.pids())
            for process in round.newProcesses { seenPids.insert(process.pid) }
            collectDenials()

            // Freeze steps triggered by a process that just appeared.
            apply(schedule.next(now: now, newProcessNames: round.newProcesses.map(\.comm)), at: now)
            let frozen = !scenario.sandbox.cgroup.freeze.isEmpty && cgroup.isFrozen()
            if frozen != lastFrozen {
                events.append(CgroupEvent(timeMs: ms(now), event: frozen ? "frozen" : "thawed"))
                lastFrozen = frozen
                if frozen { frozenSeen = true }
            }

            // Progress: CPU of every process, new processes, output.
            let output = stdout.byteCount + stderr.byteCount
            let seen = seenPids.count
            if round.totalCPUTicks != lastCPU || output != lastOutput || seen != processCount {
                lastProgress = now
                lastCPU = round.totalCPUTicks
                lastOutput = output
                processCount = seen
            }
            cpuHistory.append((now, round.totalCPUTicks))
            cpuHistory.removeAll { now - $0.0 > .seconds(2) }

            if now - start >= scenario.timeout {
                hangTrigger = .timeout
            } else if now - lastProgress >= scenario.hangAfter {
                hangTrigger = .noProgress
            }
            if let trigger = hangTrigger {
                let pids = cgroup.pids()
                snapshots = sampler.snapshot(pids: pids)
                cpuMovingAtEnd = (cpuHistory.last?.1 ?? 0) > (cpuHistory.first?.1 ?? 0)
                let frozenNow = cgroup.isFrozen() || round.anyFrozenWchan
                if frozenNow { frozenSeen = true }
                if !frozenNow && !round.allStoppedOrTraced {
                    // Go prints every goroutine's stack on SIGQUIT (GOTRACEBACK=all in the base environment).
                    let before = stderr.byteCount
                    for target in pids { kill(target, SIGQUIT) }
                    let deadline = ContinuousClock.now + .seconds(2)
                    while ContinuousClock.now < deadline && waitpid(pid, &status, WNOHANG) == 0 {
                        usleep(20_000)
                    }
                    stderr.waitForEnd(timeout: 0.3)
                    let dump = stderr.text(since: before)
                    if !dump.isEmpty { goroutineDump = dump }
                }
                termination = .killedByHarness(reason: trigger)
                break
            }

            let elapsed = now - start
            interval = elapsed < .milliseconds(300) ? options.minimumInterval
                : min(options.maximumInterval, interval + .milliseconds(5))
            try? Task.checkCancellation()
            // Sleep until the next sample, or until the go command exits (its pidfd becomes readable), so a
            // short run is not held back by the sampling interval.
            if pidfd >= 0 {
                var poller = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                _ = poll(&poller, 1, Int32(interval.milliseconds))
            } else {
                usleep(UInt32(interval.milliseconds * 1000))
            }
        }

        let end = ContinuousClock.now
        // The go command is done: give stragglers' output a moment, then kill the rest of the cgroup.
        if case .killedByHarness = termination {} else {
            let deadline = ContinuousClock.now + .milliseconds(500)
            while ContinuousClock.now < deadline && !cgroup.pids().isEmpty { usleep(1_000) }
        }
        _ = sampler.sample(pids: cgroup.pids())
        let pidsMaxHits = cgroup.pidsMaxHits()
        let oomKills = cgroup.oomKills()
        cgroup.destroy()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        stdout.waitForEnd(timeout: 2)
        stderr.waitForEnd(timeout: 2)
        // Every process has exited (the cgroup is gone): the exit events are in.
        let bpfSeen = bpfTracer?.stop()
        for process in bpfSeen?.processes ?? [] { seenPids.insert(process.pid) }
        var trace: TraceSummary?
        if let supervisorStart {
            let seen = supervisorStart.finish()
            trace = seen.trace
            denials += seen.denials
            if let failure = seen.failure {
                events.append(CgroupEvent(timeMs: ms(end), event: "supervisor-failed", detail: failure))
            }
        }
        // Kernel audit records arrive through printk asynchronously.
        if let audit, spawn.filter != nil {
            // Only a filter produces seccomp records. Wait for the first of ours (as long as a failed run's evidence
            // deserves, briefly for a run that went well) rather than a fixed sleep.
            var failed = true
            if case .exited(0) = termination! { failed = false }
            let pids = seenPids
            _ = audit.wait(timeout: .milliseconds(failed ? 60 : 5)) { pids.contains($0.pid) }
            collectDenials()
        }
        if let bpfSeen {
            let policy = plan.decisions?.policy ?? SeccompPolicy()
            denials = bpfSeen.policyDenials(policy: policy, goroot: toolchain.goroot, workRoot: work.root,
                                            merging: denials)
            if scenario.trace != .off {
                trace = bpfSeen.traceSummary(request: scenario.trace, goroot: toolchain.goroot, workRoot: work.root,
                                             injected: trace?.injected ?? 0)
            }
        }
        if pidsMaxHits.map({ $0 > 0 }) ?? false {
            events.append(CgroupEvent(timeMs: ms(end), event: "pids-max", detail: "\(pidsMaxHits!) forks refused"))
        }
        if oomKills.map({ $0 > 0 }) ?? false {
            events.append(CgroupEvent(timeMs: ms(end), event: "oom-kill", detail: "\(oomKills!) processes killed"))
        }

        var observation = RunObservation(
            termination: termination!, durationMs: (end - start).milliseconds, stdout: stdout.text,
            stderr: stderr.text,
            // Shown to people: say $WORK rather than this run's temporary path.
            successArtifact: plan.successArtifact.map { $0.replacingOccurrences(of: work.work, with: "$WORK") },
            artifactExists: plan.successArtifact.map { FileManager.default.fileExists(atPath: $0) },
            successStdout: scenario.success.stdout, processes: sampler.observations(),
            denials: denials.sorted { $0.timeMs < $1.timeMs },
            cgroup: CgroupObservation(path: cgroup.primaryPath, extraPaths: Array(cgroup.allPaths.dropFirst()),
                                      frozenSeen: frozenSeen, events: events, pidsMaxHits: pidsMaxHits,
                                      oomKills: oomKills),
            hangSnapshots: snapshots, goroutineDump: goroutineDump, cpuMovingAtEnd: cpuMovingAtEnd, rootPid: pid)
        observation.expectArtifactExists = plan.expectArtifact.map { FileManager.default.fileExists(atPath: $0) }
        observation.trace = trace
        if let goTest {
            observation.goTest = goTest.finish()
            // ghostrun added -json: people (and `expect.stdout`) see what plain go test prints.
            if plan.goTestOutput == .json(added: true), goTest.sawEvents { observation.stdout = goTest.plainText }
        }
        observation.bpf = bpfSeen
        return observation
    }

    static func termination(from status: Int32) -> Termination {
        let signal = status & 0x7f
        if signal == 0 { return .exited((status >> 8) & 0xff) }
        return .signaled(signal)
    }
}
