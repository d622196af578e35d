import Foundation

/// Classification of `go test` runs from their per-package and per-test evidence.
///
/// The go command prints its test binaries' output, crashes included, on stdout and exits 1 whatever
/// happened to them, so its exit status and stderr alone cannot tell a crashed binary from a failed
/// assertion. These rules read `RunObservation.goTest` first and leave everything else (build failures,
/// the go command's own death) to the general rules.
public enum GoTestRules {
    /// The classification of a go test run, or nil when the general rules apply (the tests all passed,
    /// the build failed, or the go command itself was signaled).
    public static func classify(_ o: RunObservation, run: GoTestRun) -> Classification? {
        switch o.termination {
        case .killedByHarness(let trigger):
            return hang(o, run: run, trigger: trigger)
        case .exited(let code) where code != 0:
            return failedExit(o, run: run, code: code)
        default:
            return nil
        }
    }

    /// A crashed binary first (it explains its own failed tests), then go test's timeout, then failed tests.
    static func failedExit(_ o: RunObservation, run: GoTestRun, code: Int32) -> Classification? {
        if let crashed = run.crashedPackages.first {
            let binary = GoTestRecord.binaryName(of: crashed.package)
            let headline = crashed.headline ?? "the test binary died"
            let others = run.crashedPackages.count > 1 ? " (and \(run.crashedPackages.count - 1) more)" : ""
            // `signal: bad system call` with no traceback: the kernel killed the binary (a seccomp kill, SIGKILL).
            if headline.hasPrefix("signal: "), let name = GoTestText.signalTexts[String(headline.dropFirst(8))] {
                var summary = "test binary \(binary)\(others) was killed by \(name)"
                if let denial = denial(hitting: binary, in: o) {
                    summary += " (seccomp \(denial.action) on \(denial.syscall) in \(denial.comm))"
                }
                return Classification(
                    outcome: .signaled, exitCode: code, signal: name, summary: summary, firstDiagnostic: headline,
                    failingProcess: binary)
            }
            var summary = "test binary \(binary)\(others) crashed: \(headline)"
            if let failed = run.failedTestList() { summary += "; failed: \(failed)" }
            return Classification(
                outcome: .crash, exitCode: code, summary: summary, firstDiagnostic: headline, failingProcess: binary)
        }
        if let timeout = run.timeouts.first {
            let binary = GoTestRecord.binaryName(of: timeout.package)
            let kind: HangKind = timeout.spinning ? .spinning : .blocked
            var summary = "hang (\(kind.rawValue)): go test -timeout fired in \(binary): \(timeout.headline)"
            if !timeout.running.isEmpty { summary += " while \(timeout.running.joined(separator: ", ")) ran" }
            return Classification(
                outcome: .hang, hangKind: kind, exitCode: code, summary: summary, firstDiagnostic: timeout.headline,
                failingProcess: binary)
        }
        let failed = run.innermostFailedTests
        guard let first = failed.first, let list = run.failedTestList() else { return nil }
        let packages = Set(failed.map(\.package))
        let diagnostic = first.headline.map { "\(first.test!): \($0)" } ?? "\(first.test!) failed"
        let summary =
            "\(failed.count) test\(failed.count == 1 ? "" : "s") failed in "
            + packages.sorted().joined(separator: ", ") + ": \(list)"
        return Classification(
            outcome: .clearError, exitCode: code, summary: summary, firstDiagnostic: diagnostic,
            failingProcess: GoTestRecord.binaryName(of: first.package))
    }

    /// The general hang rules decide the kind; the evidence adds the test that was running and its binary.
    static func hang(_ o: RunObservation, run: GoTestRun, trigger: HangTrigger) -> Classification? {
        let crashed = run.crashedPackages.first
        guard let running = run.running.first.map(\.package) ?? crashed?.package else { return nil }
        var classification = Classifier.classifyHang(o, trigger: trigger)
        let binary = GoTestRecord.binaryName(of: running)
        // Measured on Go 1.27: a cgo-linked test binary hit by a seccomp trap prints its SIGSYS traceback and then
        // never exits; the hang is real, and the crash that caused it is the line to show.
        if let crashed {
            let headline = crashed.headline ?? "died"
            classification.summary += "; \(GoTestRecord.binaryName(of: crashed.package)) crashed first: \(headline)"
            classification.firstDiagnostic = crashed.headline
        }
        if !run.running.isEmpty {
            let names = run.running.prefix(3).map { "\($0.test) (\($0.package))" }.joined(separator: ", ")
            classification.summary +=
                "; running: \(names)" + (run.running.count > 3 ? " and \(run.running.count - 3) more" : "")
        }
        if classification.failingProcess == nil || o.processes.contains(where: { $0.comm == binary }) {
            classification.failingProcess = binary
        }
        return classification
    }

    /// The seccomp kill or trap that hit this binary; other processes' denials explain nothing here.
    static func denial(hitting binary: String, in o: RunObservation) -> Denial? {
        let ordered = o.denials.sorted { $0.timeMs < $1.timeMs }.filter { $0.comm == binary }
        return ordered.first(where: { $0.action == "kill-process" || $0.action == "kill-thread" })
            ?? ordered.first(where: { $0.action == "trap" })
    }
}
