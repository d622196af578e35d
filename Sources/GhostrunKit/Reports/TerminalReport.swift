import Foundation

/// The one-line-per-result terminal output and the closing summary.
public enum TerminalReport {
    /// How much of a diagnostic a terminal line shows; the full text is in the JSON report.
    public static let diagnosticLimit = 100

    /// One line: verdict, `name@go_version`, outcome (with hang kind), duration, the key evidence and any
    /// expectation failures. The verdict is `PASS`, `FAIL`, or `—` when nothing was expected (skips and
    /// harness errors included), so the line never claims a judgement that was not made.
    public static func line(for r: RunResult, color: Bool) -> String {
        let verdict: String
        let verdictColor: String
        switch r.passed {
        case true?: (verdict, verdictColor) = ("PASS", ANSI.green)
        case false?: (verdict, verdictColor) = ("FAIL", ANSI.red)
        case nil: (verdict, verdictColor) = ("—", r.outcome.isUnmeasured ? ANSI.red : ANSI.dim)
        }
        var outcome = r.outcome.rawValue
        if let kind = r.hangKind { outcome += " (\(kind.rawValue))" }
        var parts = [
            paint(verdict.padding(toLength: 4, withPad: " ", startingAt: 0), verdictColor, color),
            escapingControls("\(r.name)@\(r.goVersion)"),
            paint(outcome, r.outcome == .ok ? ANSI.green : ANSI.yellow, color),
            formatDuration(r.durationMs),
        ]
        if let evidence = keyEvidence(r) { parts.append(escapingControls(evidence)) }
        if let check = r.evidence.restrictionsConfirmed { parts.append(policyText(check, color: color)) }
        if let cpu = r.evidence.cgroup?.cpu, let cpus = cpu.cpus {
            var text = "cpu quota " + String(format: "%g", cpus) + " CPU"
            if let throttled = cpu.throttledPeriods, let periods = cpu.periods {
                text += ": throttled in \(throttled) of \(periods) periods"
                if let ms = cpu.throttledMs { text += " (" + formatDuration(ms) + " held back)" }
            }
            parts.append(text)
        }
        if let stalled = r.evidence.stall?.summary() { parts.append(stalled) }
        if r.interrupted == true { parts.append(paint("interrupted", ANSI.yellow, color)) }
        if let workDir = r.workDir { parts.append("work kept in " + escapingControls(workDir)) }
        if let files = r.outputFiles {
            parts.append("whole output in " + escapingControls(files.stdout) + " and " + escapingControls(files.stderr)
                + (files.error.map { " (incomplete: " + escapingControls($0) + ")" } ?? ""))
        }
        var text = parts.joined(separator: "  ")
        if !r.failures.isEmpty {
            text += "  " + paint("[" + escapingControls(r.failures.joined(separator: "; ")) + "]", ANSI.red, color)
        }
        return text
    }

    /// The reviewer's question: was the policy really applied to every process? `policy confirmed on 3 of 41
    /// processes` (checked of all the run had, from fork events), `policy not checked: no process lived long
    /// enough to sample (12 ran)` (a gap in the evidence, not a failure), or `policy NOT confirmed: ...` when a
    /// checked process lacked a restriction.
    static func policyText(_ check: RestrictionCheck, color: Bool) -> String {
        func processes(_ n: Int) -> String { "\(n) process" + (n == 1 ? "" : "es") }
        let total = check.totalProcesses.map { ($0, check.totalExact == false ? "at least " : "") }
        if check.nothingSampled {
            let ran = total.map { " (\($0.1)\($0.0) ran)" } ?? ""
            return paint("policy not checked: no process lived long enough to sample" + ran, ANSI.yellow, color)
        }
        if !check.confirmed {
            return paint("policy NOT confirmed: " + escapingControls(check.mismatches.first ?? ""), ANSI.red, color)
        }
        guard let (count, qualifier) = total else { return "policy confirmed on " + processes(check.checkedProcesses) }
        return "policy confirmed on \(check.checkedProcesses) of \(qualifier)" + processes(count)
    }

    /// The single piece of evidence that best explains the outcome: the reason for a skip or harness error,
    /// the first denied syscall, the hang's cause, or stderr's first diagnostic.
    static func keyEvidence(_ r: RunResult) -> String? {
        if r.outcome == .skipped || r.outcome == .harnessError {
            return r.reason.map { truncate($0, to: diagnosticLimit) }
        }
        var denialText: String?
        if let denial = r.evidence.firstDenial {
            var text = "first denial \(denial.syscall) (\(denial.action)"
            if let errno = denial.errno { text += " \(errno)" }
            denialText = text + ") in \(denial.comm)"
        }
        // go test: which binary crashed and which tests failed say more than any single line.
        if let tests = GoTestReport.headline(r.evidence.tests) {
            return truncate(tests, to: diagnosticLimit) + (denialText.map { "  " + $0 } ?? "")
        }
        if let denialText { return denialText }
        if r.outcome == .hang || r.outcome == .inconclusive { return truncate(r.summary, to: diagnosticLimit) }
        if let diagnostic = r.firstDiagnostic { return truncate(diagnostic, to: diagnosticLimit) }
        if r.outcome == .ok { return nil }
        return truncate(r.summary, to: diagnosticLimit)
    }

    /// Counts per outcome, then passed/failed/skipped/harness errors, for the end of `ghostrun run`.
    public static func summary(_ results: [RunResult]) -> String {
        let perOutcome = Outcome.allCases.compactMap { outcome -> String? in
            let count = results.filter { $0.outcome == outcome }.count
            return count == 0 ? nil : "\(count) \(outcome.rawValue)"
        }
        let passed = results.filter { $0.passed == true }.count
        let failed = results.filter { $0.passed == false }.count
        let skipped = results.filter { $0.outcome == .skipped }.count
        let errors = results.filter { $0.outcome == .harnessError }.count
        let inconclusive = results.filter { $0.outcome == .inconclusive }.count
        let unjudged = results.filter { $0.passed == nil && $0.outcome != .skipped && !$0.outcome.isUnmeasured }
        var text = "\(results.count) result\(results.count == 1 ? "" : "s")"
        if !perOutcome.isEmpty { text += ": " + perOutcome.joined(separator: ", ") }
        text += " | \(passed) passed, \(failed) failed, \(skipped) skipped, \(errors) harness error"
        text += errors == 1 ? "" : "s"
        if inconclusive > 0 { text += ", \(inconclusive) inconclusive (host stalled)" }
        if !unjudged.isEmpty { text += ", \(unjudged.count) without expectation" }
        return text
    }

    /// `text` with every control character written out: C0 codes (NUL, ESC, BEL, CR, LF, ...), DEL and the C1
    /// codes as `\xNN` (`\n`, `\r`, `\t` by name), so that the target's output can neither move the cursor,
    /// recolour or retitle the terminal, nor break the one-line-per-result layout.
    public static func escapingControls(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x0A: escaped += "\\n"
            case 0x0D: escaped += "\\r"
            case 0x09: escaped += "\\t"
            case 0x00...0x1F, 0x7F...0x9F: escaped += String(format: "\\x%02x", scalar.value)
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    static func formatDuration(_ ms: Int) -> String {
        String(format: "%.2fs", Double(ms) / 1000)
    }

    static func truncate(_ text: String, to limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
    }

    static func paint(_ text: String, _ code: String, _ color: Bool) -> String {
        color ? code + text + ANSI.reset : text
    }

    enum ANSI {
        static let green = "\u{1B}[32m"
        static let red = "\u{1B}[31m"
        static let yellow = "\u{1B}[33m"
        static let dim = "\u{1B}[2m"
        static let reset = "\u{1B}[0m"
    }
}
