import Foundation
import Synchronization

/// Turns one `RunObservation` into one contract outcome with the evidence that decided it.
///
/// A pure function of its input, so every rule can be tested with recorded observations and no process.
public enum Classifier {
    /// Kernel wait channels of a task stopped by the cgroup freezer. `/proc/PID/status` shows such a task
    /// as `S (sleeping)`, so the wait channel (or `cgroup.events`) is the only way to tell it is frozen.
    public static let freezerWaitChannels: Set<String> = ["do_freezer_trap", "__refrigerator"]

    /// Signals with which the Go runtime itself dies after printing a traceback (a cgo abort, a fault
    /// in the runtime, a seccomp trap the runtime did not expect).
    public static let runtimeDeathSignals: Set<String> = ["SIGABRT", "SIGSEGV", "SIGSYS", "SIGBUS"]

    /// Classifies a run. See `scenario-format.md` for the outcome names.
    public static func classify(_ o: RunObservation) -> Classification {
        if let run = o.goTest, let classification = GoTestRules.classify(o, run: run) { return classification }
        switch o.termination {
        case .killedByHarness(.stretchBound):
            return classifyStretchBound(o)
        case .killedByHarness(let trigger):
            return classifyHang(o, trigger: trigger)
        case .signaled(let number):
            return classifySignaled(o, signalNumber: number)
        case .exited(0):
            return classifyZeroExit(o)
        case .exited(let code):
            return classifyFailedExit(o, code: code)
        }
    }

    // MARK: - Hangs

    /// Wall time ran out of the stretch bound while the host's stalls kept the run's own limits from running out:
    /// what the target would have done is unknown.
    static func classifyStretchBound(_ o: RunObservation) -> Classification {
        var summary = "inconclusive: the host stalled the run"
        if let stall = o.stall {
            summary += " \(Int((stall.stalledFraction * 100).rounded()))% of "
                + String(format: "%.1f s", Double(stall.wallMs) / 1000)
                + String(format: " (wall bound %g × timeout %.1f s reached with %.1f s runnable)", stall.maxStretch,
                         Double(stall.timeoutMs) / 1000, Double(stall.runnableMs) / 1000)
        }
        summary += "; rerun on a quieter host, or raise --max-stretch or --timeout-scale"
        return Classification(outcome: .inconclusive, summary: summary,
                              firstDiagnostic: StderrReading.firstDiagnostic(in: o.stderr))
    }

    /// The harness had to kill the run, so the target never ended on its own: a hang. Which kind tells
    /// the user where to look: a frozen cgroup (outside the target), a stopped tree (a stray SIGSTOP or
    /// a tracer), a busy loop, or a thread waiting in the kernel.
    static func classifyHang(_ o: RunObservation, trigger: HangTrigger) -> Classification {
        let kind = hangKind(of: o)
        let why = trigger == .timeout ? "timeout" : "no progress"
        let detail: String
        var failing: String?
        switch kind {
        case .frozen:
            detail = "the cgroup was frozen"
        case .stopped:
            detail = "every process was stopped (T)"
        case .spinning:
            failing = busiestProcess(o)
            detail = "CPU time kept moving" + (failing.map { " in \($0)" } ?? "")
        case .blocked:
            let waiter = blockedWaiter(o)
            failing = waiter?.comm
            // A process holding a connection to a stalled endpoint (or else any open connection) is what the run
            // waits on: name the connection, not the futex the main thread sleeps in.
            let connected = o.hangSnapshots.lazy.compactMap { snapshot in
                (snapshot.connections?.first(where: \.stalledEndpoint)
                    ?? snapshot.connections?.first(where: { $0.state == "ESTABLISHED" })).map { (snapshot, $0) }
            }.first
            if let (snapshot, connection) = connected {
                failing = snapshot.comm
                detail = "\(snapshot.comm) waits on \(connection.remote) ("
                    + (connection.stalledEndpoint ? "stalled endpoint, " : "") + connection.state + ")"
            } else if let waiter {
                detail = "\(waiter.comm) waits in \(waiter.wchan ?? "the kernel")"
            } else {
                detail = "no CPU used and no output"
            }
        }
        return Classification(
            outcome: .hang, hangKind: kind, summary: "hang (\(kind.rawValue)) after \(why): \(detail)",
            firstDiagnostic: StderrReading.firstDiagnostic(in: o.stderr), failingProcess: failing)
    }

    /// Frozen wins over every other kind, because a frozen task also looks sleeping and idle; then a
    /// fully stopped tree, then CPU still moving, and a hang with none of these is blocked.
    static func hangKind(of o: RunObservation) -> HangKind {
        if isFrozen(o) { return .frozen }
        if isStopped(o) { return .stopped }
        if o.cpuMovingAtEnd { return .spinning }
        return .blocked
    }

    /// The cgroup was frozen at the end, or a live task sat in the freezer's wait channel.
    ///
    /// `frozenSeen` alone is not enough when the events show the cgroup thawed again afterwards: a run
    /// frozen and thawed (catalog row 14) that later hangs for another reason is not a frozen hang.
    static func isFrozen(_ o: RunObservation) -> Bool {
        if let cgroup = o.cgroup, cgroup.frozenSeen {
            let freezeEvents = cgroup.events.filter { $0.event == "frozen" || $0.event == "thawed" }
            if freezeEvents.last?.event != "thawed" { return true }
        }
        if o.hangSnapshots.contains(where: { isFreezerWait($0.wchan) }) { return true }
        return liveProcesses(o).contains(where: { isFreezerWait($0.last.wchan) })
    }

    static func isFreezerWait(_ wchan: String?) -> Bool {
        guard let wchan else { return false }
        return freezerWaitChannels.contains(wchan)
    }

    /// Every live process is in `T` (stopped by a signal) or `t` (stopped by a tracer). The hang snapshots
    /// are taken just before the kill and are preferred; without them, the last samples of processes
    /// still present are used.
    static func isStopped(_ o: RunObservation) -> Bool {
        let states: [String]
        if !o.hangSnapshots.isEmpty {
            states = o.hangSnapshots.map(\.state)
        } else {
            states = liveProcesses(o).map(\.last.status.state)
        }
        return !states.isEmpty && states.allSatisfy { $0 == "T" || $0 == "t" }
    }

    static func liveProcesses(_ o: RunObservation) -> [ProcessObservation] {
        o.processes.filter { !$0.exited }
    }

    /// The live process with the most CPU time: where a spinning run most likely loops.
    static func busiestProcess(_ o: RunObservation) -> String? {
        if let running = o.hangSnapshots.first(where: { $0.state == "R" }) { return running.comm }
        return liveProcesses(o).max(by: { $0.last.cpuTicks < $1.last.cpuTicks })?.comm
    }

    /// The newest waiting process (highest pid): the go command waits for its children, so the deepest
    /// child is the one whose wait channel explains the hang.
    static func blockedWaiter(_ o: RunObservation) -> (comm: String, wchan: String?)? {
        let waiting = o.hangSnapshots.filter { $0.state == "S" || $0.state == "D" }
        if let snapshot = waiting.max(by: { $0.pid < $1.pid }) {
            return (snapshot.comm, snapshot.wchan.flatMap { $0 == "0" ? nil : $0 })
        }
        if let process = liveProcesses(o).max(by: { $0.pid < $1.pid }) {
            return (process.comm, process.last.wchan.flatMap { $0 == "0" ? nil : $0 })
        }
        return nil
    }

    // MARK: - Signals

    /// Killed by a signal. A Go runtime that printed a traceback before dying by one of its own death
    /// signals crashed (catalog row 4: cgo's `pthread_create failed` abort); anything else, such as a
    /// seccomp kill (row 2) or SIGKILL, ended the go command from outside: `signaled`.
    static func classifySignaled(_ o: RunObservation, signalNumber: Int32) -> Classification {
        let name = SignalName.name(of: signalNumber)
        let diagnostic = StderrReading.firstDiagnostic(in: o.stderr)
        if runtimeDeathSignals.contains(name), let death = StderrReading.runtimeDeath(in: o.stderr) {
            let failing = crashingProcess(o, death: death)
            return Classification(
                outcome: .crash, signal: name,
                summary: "Go runtime crash in \(failing), killed by \(name): \(death.headline)",
                firstDiagnostic: diagnostic ?? death.headline, failingProcess: failing)
        }
        let denial = killingDenial(o)
        let failing = denial?.comm ?? "go"
        var summary = "\(failing) was killed by \(name)"
        if let denial {
            summary += " (seccomp \(denial.action) on \(denial.syscall))"
        }
        return Classification(
            outcome: .signaled, signal: name, summary: summary, firstDiagnostic: diagnostic, failingProcess: failing)
    }

    /// The denial that most likely delivered the fatal signal: the first seccomp kill, else the first trap.
    /// Its comm names the process the kernel killed, which may be a child rather than `go`.
    static func killingDenial(_ o: RunObservation) -> Denial? {
        let ordered = o.denials.sorted { $0.timeMs < $1.timeMs }
        return ordered.first(where: { $0.action == "kill-process" || $0.action == "kill-thread" })
            ?? ordered.first(where: { $0.action == "trap" })
    }

    // MARK: - Exit 0

    /// Exit 0 is only success when what the scenario says a success produces is there; otherwise the
    /// toolchain claimed success and delivered nothing, the ghost the project exists to catch.
    static func classifyZeroExit(_ o: RunObservation) -> Classification {
        let missing = missingSuccessEvidence(o)
        if missing.isEmpty {
            return Classification(outcome: .ok, exitCode: 0, summary: "exit 0")
        }
        return Classification(
            outcome: .silentExit, exitCode: 0, summary: "exit 0, but " + missing.joined(separator: " and "),
            firstDiagnostic: StderrReading.firstDiagnostic(in: o.stderr))
    }

    /// What `success:` names that the run did not produce, in words for the summary.
    static func missingSuccessEvidence(_ o: RunObservation) -> [String] {
        var missing: [String] = []
        if o.artifactExists == false {
            missing.append("\(o.successArtifact ?? "the expected artifact") was not produced")
        }
        if let pattern = o.successStdout {
            switch RegexSearch.matches(pattern, in: o.stdout) {
            case .success(true): break
            case .success(false): missing.append("stdout does not match /\(pattern)/")
            case .failure(let error): missing.append("success.stdout: \(error)")
            }
        }
        return missing
    }

    // MARK: - Non-zero exit

    /// A non-zero exit is a crash when the Go runtime died anywhere in stderr, a clear error when stderr
    /// says something a user can act on, and a silent exit otherwise.
    ///
    /// A traceback anywhere counts, including a child's that the go command relays under a `# package`
    /// header: the user's question is whether a runtime died, and `failingProcess` says whose runtime.
    static func classifyFailedExit(_ o: RunObservation, code: Int32) -> Classification {
        let diagnostic = StderrReading.firstDiagnostic(in: o.stderr)
        if let death = StderrReading.runtimeDeath(in: o.stderr) {
            let failing = crashingProcess(o, death: death)
            return Classification(
                outcome: .crash, exitCode: code,
                summary: "Go runtime crash in \(failing), exit \(code): \(death.headline)",
                firstDiagnostic: diagnostic ?? death.headline, failingProcess: failing)
        }
        // A program run by `go run` (or a go test binary read without events) whose runtime died on stdout: its
        // stderr then holds only the go command's `exit status 2`.
        if o.goTest == nil, let death = StderrReading.runtimeDeath(in: o.stdout) {
            let failing = death.tool ?? programName(o) ?? "the program go ran"
            return Classification(
                outcome: .crash, exitCode: code,
                summary: "Go runtime crash in \(failing) (on stdout), exit \(code): \(death.headline)",
                firstDiagnostic: death.headline, failingProcess: failing)
        }
        if let diagnostic {
            let failing = failingProcessForError(o, diagnostic: diagnostic)
            return Classification(
                outcome: .clearError, exitCode: code, summary: "exit \(code): \(diagnostic)",
                firstDiagnostic: diagnostic, failingProcess: failing)
        }
        let said = StderrReading.isBlank(o.stderr) ? "empty stderr" : "no diagnostic on stderr"
        return Classification(
            outcome: .silentExit, exitCode: code, summary: "exit \(code) with \(said)",
            failingProcess: StderrReading.endsWithExitStatusEcho(o.stderr) ? programName(o) : nil)
    }

    /// Whose runtime died. In order: the tool whose frames the traceback shows; the package the go
    /// command was building when it relayed the output; the program `go run`/`go test` ran (stderr ends
    /// with `exit status N`); the process a seccomp trap hit, for `SIGSYS`; and otherwise `go` itself.
    static func crashingProcess(_ o: RunObservation, death: RuntimeDeath) -> String {
        if let tool = death.tool { return tool }
        if let header = death.packageHeader {
            return "a tool building \(header.dropFirst(2))"
        }
        if StderrReading.endsWithExitStatusEcho(o.stderr) { return programName(o) ?? "the program go ran" }
        // `go: error obtaining buildID for go tool compile: exit status 2` follows the traceback of
        // `go tool compile -V=full`, which the go command ran to fingerprint the tool.
        if let relay = StderrReading.lines(o.stderr).last(where: { $0.contains("for go tool ") }),
            let range = relay.range(of: "for go tool ")
        {
            let tool = relay[range.upperBound...].prefix(while: { $0.isLetter || $0.isNumber })
            if !tool.isEmpty { return String(tool) }
        }
        if death.headline.hasPrefix("SIGSYS"),
            let trap = o.denials.sorted(by: { $0.timeMs < $1.timeMs }).first(where: { $0.action == "trap" })
        {
            return trap.comm
        }
        return "go"
    }

    /// The process a clear error is about: the one the diagnostic names (`fork/exec …/compile`,
    /// `…/link: signal: killed`), the program `go run` ran, or the go command itself.
    static func failingProcessForError(_ o: RunObservation, diagnostic: String) -> String {
        if let named = StderrReading.namedProcess(in: o.stderr) { return named }
        if StderrReading.endsWithExitStatusEcho(o.stderr), let program = programName(o) { return program }
        // An injected fault in a child (`compile` could not open a source file) is the likeliest cause.
        if let injected = o.denials.sorted(by: { $0.timeMs < $1.timeMs }).first(where: { $0.action == "injected" }),
            injected.comm != "go"
        {
            return injected.comm
        }
        return "go"
    }

    /// The program built and run by `go run`/`go test`: its binary lives under the go command's
    /// temporary `go-build…/…/exe/` (run) or is named `*.test` (test).
    static func programName(_ o: RunObservation) -> String? {
        o.processes.first(where: { p in
            guard let exe = p.exe else { return false }
            return exe.contains("/go-build") && (exe.contains("/exe/") || exe.hasSuffix(".test"))
        })?.comm
    }
}

/// Regular-expression search with the options the scenario format promises: searched (not anchored),
/// with `^` and `$` matching at line breaks because stderr is read line by line.
/// Regex search for `expect:` and `success:` patterns, bounded in time.
///
/// Patterns come from untrusted scenario files and NSRegularExpression (ICU) backtracks: `(x+x+)+y` over a few
/// thousand `x` runs for minutes. ICU's find-progress callback (`.reportProgress`) is called while a match is
/// being searched for, so the search stops itself when its time budget is spent or the process was asked to stop
/// (SIGINT/SIGTERM); the result is then a failure naming the budget, never a guess. The text is already bounded
/// (the tail `OutputCapture` keeps), so the budget is rarely approached by sane patterns.
public enum RegexSearch {
    public struct InvalidPattern: Error, Equatable, CustomStringConvertible {
        public var pattern: String
        /// Set when the pattern was valid but its search ran out of time.
        public var budget: Duration?
        public var description: String {
            if let budget {
                return "regular expression /\(pattern)/ gave no answer within \(budget) (catastrophic backtracking; "
                    + "hint: avoid nested quantifiers such as (x+)+)"
            }
            return "invalid regular expression /\(pattern)/"
        }
    }

    /// The default time budget of one search.
    public static let defaultBudget: Duration = .seconds(2)

    public static func matches(_ pattern: String, in text: String, budget: Duration = defaultBudget)
        -> Result<Bool, InvalidPattern>
    {
        guard let regex = try? NSRegularExpression(pattern: pattern, options: [.anchorsMatchLines]) else {
            return .failure(InvalidPattern(pattern: pattern))
        }
        let range = NSRange(text.startIndex..<text.endIndex, in: text)
        let deadline = ContinuousClock.now + budget
        var found = false
        var expired = false
        regex.enumerateMatches(in: text, options: [.reportProgress], range: range) { match, _, stop in
            if match != nil {
                found = true
                stop.pointee = true
            } else if Interruption.isRequested || ContinuousClock.now >= deadline {
                // A stopping ghostrun (`Interruption`) gives up at the next progress callback.
                expired = true
                stop.pointee = true
            }
        }
        if found { return .success(true) }
        return expired ? .failure(InvalidPattern(pattern: pattern, budget: budget)) : .success(false)
    }
}
