import Foundation

/// A Markdown report for PR comments and CI job summaries: a totals headline, the failures (expected vs got,
/// first diagnostic, first denial, duration), the skips with their reasons, the scenario × toolchain matrix and the
/// scenarios whose outcome differs across toolchains.
public enum MarkdownReport {
    /// The whole report; sections with nothing to say (no failure, no skip) are left out.
    public static func render(_ file: RunFile) -> String {
        let versions = orderedVersions(file.results)
        var scenarios: [String] = []
        for result in file.results where !scenarios.contains(result.name) { scenarios.append(result.name) }

        var md = "# ghostrun results\n\n"
        md += "**" + headline(file) + "**\n\n"
        md += "ghostrun \(cell(file.ghostrun)) on Linux \(cell(file.host.kernel)), libseccomp "
        md += "\(cell(file.host.libseccomp)), cgroup \(cell(file.host.cgroup))\n\n"
        md += failuresSection(file.results)
        md += skipsSection(file.results)
        md += "## Matrix\n\n"
        md += "| scenario | " + versions.map { "go \(cell($0))" }.joined(separator: " | ") + " |\n"
        md += "| --- |" + String(repeating: " --- |", count: versions.count) + "\n"
        for name in scenarios {
            let cells = versions.map { version -> String in
                let matching = file.results.filter { $0.name == name && $0.goVersion == version }
                return matching.isEmpty ? "" : matching.map(outcomeCell).joined(separator: "<br>")
            }
            md += "| \(cell(name)) | " + cells.joined(separator: " | ") + " |\n"
        }

        md += "\n## Differs across toolchains\n\n"
        let differing = scenarios.filter { differs(name: $0, in: file.results) }
        if differing.isEmpty {
            md += "No scenario's outcome differs between the Go versions that ran it.\n"
        }
        for name in differing {
            let per = versions.compactMap { version -> String? in
                guard let r = file.results.first(where: { $0.name == name && $0.goVersion == version }),
                    countsForComparison(r)
                else { return nil }
                return "go \(version): \(outcomeText(r))"
            }
            md += "- **\(cell(name))**: " + per.joined(separator: ", ") + "\n"
        }
        md += GoTestReport.markdownSection(file)
        return md
    }

    /// `❌ 2 failed · ✅ 40 passed · 3 skipped · 1 harness error · 46 results in 3m12s`: what a reviewer reads first.
    public static func headline(_ file: RunFile) -> String {
        let results = file.results
        let failed = results.filter { $0.passed == false }.count
        let passed = results.filter { $0.passed == true }.count
        let skipped = results.filter { $0.outcome == .skipped }.count
        let errors = results.filter { $0.outcome.isUnmeasured }.count
        let interrupted = results.filter { $0.interrupted == true }.count
        var parts: [String] = []
        parts.append(failed + errors == 0 ? "✅ \(passed) passed" : "❌ \(failed) failed")
        if failed + errors > 0 { parts.append("✅ \(passed) passed") }
        parts.append("\(skipped) skipped")
        parts.append("\(errors) harness error" + (errors == 1 ? "" : "s"))
        if interrupted > 0 { parts.append("\(interrupted) interrupted") }
        let wallMs = file.harness?.wallMs ?? results.reduce(0) { $0 + $1.durationMs }
        parts.append("\(results.count) result" + (results.count == 1 ? "" : "s") + " in " + duration(wallMs))
        return parts.joined(separator: " · ")
    }

    /// One row per failed expectation or harness error: expected vs got, the first diagnostic and first denial.
    static func failuresSection(_ results: [RunResult]) -> String {
        let failing = results.filter { $0.passed == false || $0.outcome.isUnmeasured }
        guard !failing.isEmpty else { return "" }
        var md = "## Failures\n\n"
        md += "| scenario | go | expected | got | first diagnostic | first denial | duration |\n"
        md += "| --- | --- | --- | --- | --- | --- | --- |\n"
        for r in failing {
            let expected = r.expected?.outcome.map { $0.map(\.rawValue).joined(separator: " or ") } ?? ""
            var got = outcomeText(r)
            // The expectation keys that failed besides the outcome (exit, stderr, ...).
            let others = r.failures.filter { !$0.hasPrefix("outcome:") }
            if !others.isEmpty { got += ": " + others.joined(separator: "; ") }
            if r.outcome == .harnessError, let reason = r.reason { got += ": " + reason }
            if r.outcome == .inconclusive { got += ": " + r.summary }
            let diagnostic = r.firstDiagnostic ?? ""
            let denial = r.evidence.firstDenial.map(denialText) ?? ""
            md += "| " + [r.name, r.goVersion, expected, got, diagnostic, denial, duration(r.durationMs)]
                .map { cell(TerminalReport.truncate($0, to: 200)) }.joined(separator: " | ") + " |\n"
        }
        return md + "\n"
    }

    /// The skips and why: a constraint skip is intended, a host skip means nothing was tested there.
    static func skipsSection(_ results: [RunResult]) -> String {
        let skips = results.filter { $0.outcome == .skipped }
        guard !skips.isEmpty else { return "" }
        var md = "## Skipped\n\n| scenario | go | reason |\n| --- | --- | --- |\n"
        for r in skips {
            md += "| " + [r.name, r.goVersion, r.reason ?? ""].map(cell).joined(separator: " | ") + " |\n"
        }
        return md + "\n"
    }

    static func denialText(_ d: Denial) -> String {
        var text = "\(d.syscall) (\(d.action)"
        if let errno = d.errno { text += " \(errno)" }
        return text + ") in \(d.comm)"
    }

    /// `850ms`, `4.2s`, `3m12s`.
    static func duration(_ ms: Int) -> String {
        if ms < 1000 { return "\(ms)ms" }
        if ms < 60_000 { return String(format: "%.1fs", Double(ms) / 1000) }
        return "\(ms / 60_000)m\(ms / 1000 % 60)s"
    }

    /// ✅ passed, ❌ failed, nothing when no expectation was given; then the outcome and hang kind.
    static func outcomeCell(_ r: RunResult) -> String {
        let mark: String
        switch r.passed {
        case true?: mark = "✅ "
        case false?: mark = "❌ "
        case nil: mark = ""
        }
        return mark + outcomeText(r)
    }

    static func outcomeText(_ r: RunResult) -> String {
        var text = r.outcome.rawValue
        if let kind = r.hangKind { text += " (\(kind.rawValue))" }
        if let signal = r.signal, r.outcome == .signaled { text += " \(signal)" }
        if r.interrupted == true { text += " (interrupted)" }
        return text
    }

    /// Skips and harness errors say nothing about how a toolchain behaves, so they are left out when
    /// deciding whether outcomes differ.
    static func countsForComparison(_ r: RunResult) -> Bool {
        // Nor do runs cut short by SIGINT: their outcome is the teardown's, not the toolchain's.
        r.outcome != .skipped && r.outcome != .harnessError && r.interrupted != true
    }

    /// Whether the scenario's outcome (with hang kind) changes between the Go versions that ran it.
    public static func differs(name: String, in results: [RunResult]) -> Bool {
        let outcomes = Set(results.filter { $0.name == name && countsForComparison($0) }.map(outcomeText))
        return outcomes.count > 1
    }

    /// Versions in release order (1.19 before 1.23), unparseable names last in the order they appeared.
    static func orderedVersions(_ results: [RunResult]) -> [String] {
        var versions: [String] = []
        for r in results where !versions.contains(r.goVersion) { versions.append(r.goVersion) }
        return versions.enumerated().sorted { a, b in
            switch (GoVersion(a.element), GoVersion(b.element)) {
            case (let x?, let y?): return x == y ? a.offset < b.offset : x < y
            case (_?, nil): return true
            case (nil, _?): return false
            case (nil, nil): return a.offset < b.offset
            }
        }.map(\.element)
    }

    /// Table cells cannot hold `|` or line breaks; `<`, `>` and `&` are entities so that the target's output cannot
    /// open an HTML tag in a comment, backticks are escaped so they cannot open a code span across cells, and
    /// control bytes are written out.
    static func cell(_ s: String) -> String {
        var text = s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "|", with: "\\|")
            .replacingOccurrences(of: "`", with: "\\`").replacingOccurrences(of: "\n", with: " ")
        text = TerminalReport.escapingControls(text)
        return text
    }
}
