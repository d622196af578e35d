import Foundation

/// What the scenario asked the sandbox to enforce, to be confirmed against what `/proc` showed.
public struct RequestedRestrictions: Equatable, Sendable {
    /// A seccomp filter was installed: every process must show `Seccomp: 2`.
    public var seccompFilter: Bool
    /// The effective capability mask the go command should run with, when capabilities were asked for.
    public var capEff: UInt64?
    public var noNewPrivs: Bool
    /// The uid the go command should run as, when `sandbox.user` was given.
    public var uid: UInt32?
    /// ghostrun's own mount and network namespaces (`mnt:[4026531841]`), when the run has namespaces of its own: a
    /// process of the run still in one of these escaped (or never entered) the run's namespace.
    public var hostMountNamespace: String?
    public var hostNetworkNamespace: String?

    public init(seccompFilter: Bool = false, capEff: UInt64? = nil, noNewPrivs: Bool = false, uid: UInt32? = nil,
                hostMountNamespace: String? = nil, hostNetworkNamespace: String? = nil) {
        self.seccompFilter = seccompFilter
        self.capEff = capEff
        self.noNewPrivs = noNewPrivs
        self.uid = uid
        self.hostMountNamespace = hostMountNamespace
        self.hostNetworkNamespace = hostNetworkNamespace
    }

    /// Whether anything was requested at all; with nothing requested there is nothing to confirm.
    public var isEmpty: Bool {
        !seccompFilter && capEff == nil && !noNewPrivs && uid == nil && hostMountNamespace == nil
            && hostNetworkNamespace == nil
    }
}

/// Assembles the contract's result object from an observation and its classification.
public enum ResultBuilder {
    /// How much of stdout and stderr a result keeps: enough for the last diagnostic and traceback
    /// headline, small enough for a JSON file of hundreds of results.
    public static let tailBytes = 4096

    /// Denial actions that refused or altered a syscall; `log` only records one and is not a denial.
    static let denyingActions: Set<String> = ["kill-process", "kill-thread", "trap", "errno", "injected"]

    /// Builds the result of a run that happened.
    public static func build(
        name: String, goVersion: String, goPath: String?, scenarioFile: String?, scenarioLine: Int?,
        tags: [String], expectation: Expectation?, observation: RunObservation, classification: Classification,
        requested: RequestedRestrictions
    ) -> RunResult {
        var result = RunResult(
            name: name, goVersion: goVersion, outcome: classification.outcome, summary: classification.summary,
            evidence: evidence(observation, requested: requested))
        result.goPath = goPath
        result.scenarioFile = scenarioFile
        result.scenarioLine = scenarioLine
        result.tags = tags
        result.expected = expectation.map(ExpectedJSON.init)
        // An inconclusive run is not judged: the host decided, so it neither passes nor fails (exit 2, never green).
        if classification.outcome != .inconclusive {
            let verdict = ExpectationCheck.evaluate(expectation, classification: classification,
                                                    observation: observation)
            result.passed = verdict.passed
            result.failures = verdict.failures
        }
        result.exitCode = classification.exitCode
        result.signal = classification.signal
        result.hangKind = classification.hangKind
        result.durationMs = observation.durationMs
        result.stderrTail = headAndTail(observation.stderr)
        result.stdoutTail = TailWithHeadlines.excerpt(observation.stdout)
        result.firstDiagnostic = classification.firstDiagnostic
        result.failingProcess = classification.failingProcess
        return result
    }

    /// A run that did not happen because the toolchain fails the `go:` constraint or the host lacks a
    /// feature. `passed` stays nil: a skip neither passes nor fails the expectation.
    public static func skipped(
        name: String, goVersion: String, reason: String, cause: SkipCause = .host, goPath: String? = nil,
        scenarioFile: String? = nil, scenarioLine: Int? = nil, tags: [String] = [], expectation: Expectation? = nil
    ) -> RunResult {
        var result = RunResult(name: name, goVersion: goVersion, outcome: .skipped, summary: "skipped: \(reason)")
        stamp(&result, goPath: goPath, scenarioFile: scenarioFile, scenarioLine: scenarioLine, tags: tags,
              expectation: expectation, reason: reason)
        result.skipCause = cause
        return result
    }

    /// A skip is green only when the scenario asked for it: a result skipped for any reason other than its `go:`
    /// constraint, in a scenario that expects something, fails (exit 1) unless `allowSkip` (`--allow-skip`).
    /// Interrupted runs are left alone: they are reported as interrupted, not as failures.
    public static func judgeSkips(_ results: [RunResult], allowSkip: Bool) -> [RunResult] {
        guard !allowSkip else { return results }
        return results.map { result in
            guard result.outcome == .skipped, result.expected != nil, result.interrupted != true,
                result.skipCause != .goConstraint
            else { return result }
            var judged = result
            judged.passed = false
            judged.failures.append(
                "expected a result but the run was skipped: \(result.reason ?? "no reason given") "
                    + "(--allow-skip accepts skips)")
            return judged
        }
    }

    /// ghostrun could not set the run up. Never the target's outcome, so no expectation is judged;
    /// the run's exit status becomes 2 through `ExitStatus`.
    public static func harnessError(
        name: String, goVersion: String, reason: String, goPath: String? = nil, scenarioFile: String? = nil,
        scenarioLine: Int? = nil, tags: [String] = [], expectation: Expectation? = nil, durationMs: Int = 0
    ) -> RunResult {
        var result = RunResult(
            name: name, goVersion: goVersion, outcome: .harnessError, summary: "harness error: \(reason)")
        stamp(&result, goPath: goPath, scenarioFile: scenarioFile, scenarioLine: scenarioLine, tags: tags,
              expectation: expectation, reason: reason)
        result.durationMs = durationMs
        return result
    }

    /// Where a result that did not run comes from, and why.
    private static func stamp(
        _ result: inout RunResult, goPath: String?, scenarioFile: String?, scenarioLine: Int?, tags: [String],
        expectation: Expectation?, reason: String
    ) {
        result.goPath = goPath
        result.scenarioFile = scenarioFile
        result.scenarioLine = scenarioLine
        result.tags = tags
        result.expected = expectation.map(ExpectedJSON.init)
        result.reason = reason
    }

    // MARK: - Pieces

    /// The evidence block: processes, denials in time order, the first real denial, cgroup, hang data.
    static func evidence(_ o: RunObservation, requested: RequestedRestrictions) -> Evidence {
        var evidence = Evidence()
        evidence.processes = o.processes.map(ProcessEvidence.init)
        evidence.denials = sortedDenials(o.denials)
        evidence.firstDenial = firstDenial(o.denials)
        evidence.cgroup = o.cgroup
        evidence.trace = o.trace
        evidence.hangSnapshots = o.hangSnapshots
        evidence.stall = o.stall
        evidence.goroutineDump = o.goroutineDump
        if let bpf = o.bpf {
            evidence.processTree = bpf.processes
            evidence.restrictionsConfirmed = confirmRestrictions(bpf, requested: requested)
        } else {
            evidence.restrictionsConfirmed = confirmRestrictions(o.processes, requested: requested)
        }
        evidence.tests = o.goTest?.records
        evidence.testsRunning = o.goTest.flatMap { $0.running.isEmpty ? nil : $0.running }
        evidence.unattributedAuditRecords = o.unattributedAuditRecords > 0 ? o.unattributedAuditRecords : nil
        if let count = o.processCount, evidence.restrictionsConfirmed?.totalProcesses == nil {
            evidence.restrictionsConfirmed?.totalProcesses = count.processes
            evidence.restrictionsConfirmed?.totalExact = count.exact
        }
        return evidence
    }

    /// Stable by time, then pid, so two runs of the same scenario list simultaneous denials alike.
    static func sortedDenials(_ denials: [Denial]) -> [Denial] {
        denials.enumerated().sorted { a, b in
            if a.element.timeMs != b.element.timeMs { return a.element.timeMs < b.element.timeMs }
            if a.element.pid != b.element.pid { return a.element.pid < b.element.pid }
            return a.offset < b.offset
        }.map(\.element)
    }

    /// The earliest denial that refused or changed a syscall. `log` records are left out: the syscall
    /// went through, so it cannot explain a failure.
    static func firstDenial(_ denials: [Denial]) -> Denial? {
        sortedDenials(denials).first(where: { denyingActions.contains($0.action) })
    }

    /// Checks that every sampled process carried what was requested, at its first and its last
    /// sample. The runner applies the restrictions before exec, so any sample without them is a real gap
    /// in the policy, not a timing artefact. With nothing requested there is nothing to confirm (nil);
    /// with no process sampled nothing was confirmed.
    static func confirmRestrictions(_ processes: [ProcessObservation], requested: RequestedRestrictions)
        -> RestrictionCheck?
    {
        guard !requested.isEmpty else { return nil }
        guard !processes.isEmpty else {
            return RestrictionCheck(confirmed: false, checkedProcesses: 0, mismatches: ["no process was sampled"])
        }
        var mismatches: [String] = []
        for process in processes {
            var seen = Set<String>()
            for status in [process.first.status, process.last.status] {
                for problem in restrictionProblems(status, requested: requested) where seen.insert(problem).inserted {
                    mismatches.append("pid \(process.pid) (\(process.comm)): \(problem)")
                }
            }
        }
        return RestrictionCheck(
            confirmed: mismatches.isEmpty, checkedProcesses: processes.count, mismatches: mismatches)
    }

    /// The same check on every process the BPF program followed, with what the kernel held at its fork and at its
    /// last exec; the count is exact (fork/exec events, not samples), so a 20 ms compile is checked too.
    static func confirmRestrictions(_ bpf: BPFObservation, requested: RequestedRestrictions) -> RestrictionCheck? {
        guard !requested.isEmpty else { return nil }
        let total = bpf.forks + (bpf.processes.contains { $0.forkMs == nil } ? 1 : 0)
        guard !bpf.processes.isEmpty else {
            return RestrictionCheck(confirmed: false, checkedProcesses: 0, mismatches: ["no process was seen"],
                                    source: "bpf", totalProcesses: total)
        }
        var mismatches: [String] = []
        for process in bpf.processes {
            let a = process.attestation
            var status = ProcStatus()
            status.seccomp = a.seccompMode
            status.capEff = a.capEff
            status.noNewPrivs = a.noNewPrivs
            status.uid = [a.uid, a.euid]
            status.mountNamespace = a.namespaces["mnt"].map { "mnt:[\($0)]" }
            status.networkNamespace = a.namespaces["net"].map { "net:[\($0)]" }
            for problem in restrictionProblems(status, requested: requested) {
                mismatches.append("pid \(process.pid) (\(process.comm)): \(problem)")
            }
        }
        if bpf.lostKeys > 0 || bpf.processes.count != total {
            mismatches.append("\(bpf.processes.count) processes attested of \(total) forked (map full)")
        }
        return RestrictionCheck(confirmed: mismatches.isEmpty, checkedProcesses: bpf.processes.count,
                                mismatches: mismatches, source: "bpf", totalProcesses: total)
    }

    static func restrictionProblems(_ s: ProcStatus, requested: RequestedRestrictions) -> [String] {
        var problems: [String] = []
        // Seccomp 3 (SECCOMP_MODE_DEAD) is a task its filter is killing: the filter was there, so it confirms it.
        if requested.seccompFilter, s.seccomp != 2, s.seccomp != 3 {
            problems.append("Seccomp \(s.seccomp), expected 2 (filter)")
        }
        if let capEff = requested.capEff, s.capEff != capEff {
            problems.append(String(format: "CapEff %016llx, expected %016llx", s.capEff, capEff))
        }
        if requested.noNewPrivs, s.noNewPrivs != 1 {
            problems.append("NoNewPrivs \(s.noNewPrivs), expected 1")
        }
        // A namespace that could not be read (the process was gone) is no evidence either way.
        if let host = requested.hostMountNamespace, let seen = s.mountNamespace, seen == host {
            problems.append("mount namespace \(seen) is ghostrun's own, expected the run's")
        }
        if let host = requested.hostNetworkNamespace, let seen = s.networkNamespace, seen == host {
            problems.append("network namespace \(seen) is ghostrun's own, expected the run's")
        }
        if let uid = requested.uid, s.uid.isEmpty || s.uid.contains(where: { $0 != uid }) {
            let shown = s.uid.isEmpty ? "unknown" : s.uid.map(String.init).joined(separator: " ")
            problems.append("Uid \(shown), expected \(uid)")
        }
        return problems
    }

    /// Go's diagnostics open stderr (`SIGSYS: bad system call`, `fatal error: ...`) and a GOTRACEBACK=all
    /// goroutine dump can push them far from the end; so a long stderr keeps its first `headBytes` (whole
    /// lines) as well as its tail, with the omitted size in between.
    public static func headAndTail(_ text: String, limit: Int = tailBytes, headBytes: Int = 1024) -> String {
        let bytes = Array(text.utf8)
        guard bytes.count > limit else { return text }
        var headEnd = min(headBytes, bytes.count)
        if let newline = bytes[..<headEnd].lastIndex(of: UInt8(ascii: "\n")) { headEnd = newline + 1 }
        while headEnd > 0, headEnd < bytes.count, bytes[headEnd] & 0xC0 == 0x80 { headEnd -= 1 }
        let tailText = tail(text, limit: limit - headEnd)
        let omitted = bytes.count - headEnd - tailText.utf8.count
        let head = String(decoding: bytes[..<headEnd], as: UTF8.self)
        return head + "… \(omitted) bytes omitted …\n" + tailText
    }

    /// The last `tailBytes` of `text`, starting at a line boundary when the cut falls inside a line, so
    /// the tail never opens with half a message. A single line longer than the limit is cut at a
    /// character boundary instead.
    public static func tail(_ text: String, limit: Int = tailBytes) -> String {
        let bytes = Array(text.utf8)
        guard bytes.count > limit else { return text }
        var start = bytes.count - limit
        if bytes[start - 1] != UInt8(ascii: "\n") {
            if let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")), newline + 1 < bytes.count {
                start = newline + 1
            } else {
                // UTF-8 continuation bytes are 10xxxxxx; step forward to the start of a character.
                while start < bytes.count, bytes[start] & 0xC0 == 0x80 { start += 1 }
            }
        }
        return String(decoding: bytes[start...], as: UTF8.self)
    }
}
