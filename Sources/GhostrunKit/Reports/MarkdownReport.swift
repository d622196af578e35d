import Foundation

/// A Markdown matrix of scenarios × toolchains, for PR comments and CI job summaries.
public enum MarkdownReport {
    /// The table and, below it, the scenarios whose outcome differs across Go versions, which is the
    /// question a toolchain maintainer asks first.
    public static func render(_ file: RunFile) -> String {
        let versions = orderedVersions(file.results)
        var scenarios: [String] = []
        for result in file.results where !scenarios.contains(result.name) { scenarios.append(result.name) }

        var md = "# ghostrun results\n\n"
        md += "ghostrun \(cell(file.ghostrun)) on Linux \(cell(file.host.kernel)), libseccomp "
        md += "\(cell(file.host.libseccomp)), cgroup \(cell(file.host.cgroup))\n\n"
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

    /// Table cells cannot hold `|` or line breaks.
    static func cell(_ s: String) -> String {
        s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }
}
