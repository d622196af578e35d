import Foundation

/// How `go test` evidence appears in the reports: one JUnit test case per Go test, and the failed tests and
/// crashed binaries named in the Markdown report and the terminal line.
public enum GoTestReport {
    /// One line for people: `syscall.test crashed: SIGSYS: bad system call; failed: TestA, TestB (+2 more)`.
    public static func headline(_ records: [GoTestRecord]?) -> String? {
        guard let records, !records.isEmpty else { return nil }
        let run = GoTestRun(records: records)
        var parts: [String] = []
        for crashed in run.crashedPackages.prefix(2) {
            let binary = GoTestRecord.binaryName(of: crashed.package)
            parts.append("\(binary) \(verb(crashed)): \(crashed.headline ?? "died")")
        }
        if let failed = run.failedTestList() { parts.append("failed: \(failed)") }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }

    /// `killed` for a binary that a signal ended without a word (`signal: bad system call`), else `crashed`.
    static func verb(_ crashed: GoTestRecord) -> String {
        crashed.headline?.hasPrefix("signal: ") == true ? "killed" : "crashed"
    }

    // MARK: - JUnit

    /// Test cases of one result's Go tests, classname = package. A crashed binary is an `<error>` test case
    /// named after the binary; a package that failed without a failed test (its build, its setup) a `<failure>`.
    static func junitCases(_ r: RunResult) -> [JUnitCase] {
        guard let records = r.evidence.tests else { return [] }
        var cases: [JUnitCase] = []
        let failedPackages = Set(records.filter { $0.test != nil && $0.outcome == .fail }.map(\.package))
        for record in records {
            let name = record.test ?? GoTestRecord.binaryName(of: record.package)
            var body = ""
            var kind = JUnitCase.Kind.pass
            switch (record.test, record.outcome) {
            case (nil, .crash):
                kind = .error
                body =
                    "      <error message=\"\(JUnitReport.attribute(record.headline ?? "the test binary died"))\" "
                    + "type=\"crash\">\(JUnitReport.text(record.outputTail))</error>\n"
            case (nil, .fail) where !failedPackages.contains(record.package):
                kind = .failure
                body =
                    "      <failure message=\"\(JUnitReport.attribute(record.headline ?? "package failed"))\" "
                    + "type=\"fail\">\(JUnitReport.text(record.outputTail))</failure>\n"
            case (nil, _):
                continue  // a package's own pass or fail is the sum of its test cases
            case (_, .fail), (_, .crash):
                kind = .failure
                body =
                    "      <failure message=\"\(JUnitReport.attribute(record.headline ?? "failed"))\" "
                    + "type=\"fail\">\(JUnitReport.text(record.outputTail))</failure>\n"
            case (_, .skip):
                kind = .skipped
                body = "      <skipped/>\n      <system-out>\(JUnitReport.text(record.outputTail))</system-out>\n"
            case (_, .pass):
                body = "      <system-out>\(JUnitReport.text(record.outputTail))</system-out>\n"
            }
            var xml =
                "    <testcase name=\"\(JUnitReport.attribute(name))\" classname=\"\(JUnitReport.attribute(record.package))\""
            xml += " time=\"\(JUnitReport.seconds(record.elapsedMs ?? 0))\">\n" + body + "    </testcase>\n"
            cases.append(JUnitCase(xml: xml, kind: kind, ms: record.elapsedMs ?? 0))
        }
        return cases
    }

    struct JUnitCase {
        enum Kind { case pass, failure, error, skipped }
        var xml: String
        var kind: Kind
        var ms: Int
    }

    /// One `<testsuite>` per result that ran Go tests, named `scenario@version go test`.
    static func junitSuites(_ file: RunFile) -> (xml: String, tests: Int, failures: Int, errors: Int, skipped: Int) {
        var xml = ""
        var totals = (tests: 0, failures: 0, errors: 0, skipped: 0)
        for r in file.results {
            let cases = junitCases(r)
            guard !cases.isEmpty else { continue }
            let failures = cases.filter { $0.kind == .failure }.count
            let errors = cases.filter { $0.kind == .error }.count
            let skipped = cases.filter { $0.kind == .skipped }.count
            let name = "\(r.name)@\(r.goVersion) go test"
            xml +=
                "  <testsuite name=\"\(JUnitReport.attribute(name))\" tests=\"\(cases.count)\" failures=\"\(failures)\""
            xml +=
                " errors=\"\(errors)\" skipped=\"\(skipped)\" time=\"\(JUnitReport.seconds(cases.reduce(0) { $0 + $1.ms }))\">\n"
            xml += cases.map(\.xml).joined()
            xml += "  </testsuite>\n"
            totals.tests += cases.count
            totals.failures += failures
            totals.errors += errors
            totals.skipped += skipped
        }
        return (xml, totals.tests, totals.failures, totals.errors, totals.skipped)
    }

    // MARK: - Markdown

    /// A `## go test` section: per result, the crashed binaries and failed tests.
    static func markdownSection(_ file: RunFile) -> String {
        var lines: [String] = []
        for r in file.results {
            guard let records = r.evidence.tests, !records.isEmpty else { continue }
            let run = GoTestRun(records: records)
            let tests = records.filter { $0.test != nil }
            var parts: [String] = []
            for crashed in run.crashedPackages {
                parts.append(
                    "`\(GoTestRecord.binaryName(of: crashed.package))` \(verb(crashed)): "
                        + MarkdownReport.cell(crashed.headline ?? "died"))
            }
            let failed = run.innermostFailedTests
            if !failed.isEmpty {
                parts.append(
                    "failed: " + failed.prefix(10).map { "`\($0.package).\($0.test!)`" }.joined(separator: ", ")
                        + (failed.count > 10 ? " (+\(failed.count - 10) more)" : ""))
            }
            let passed = tests.filter { $0.outcome == .pass }.count
            let skipped = tests.filter { $0.outcome == .skip }.count
            parts.append("\(passed) passed, \(skipped) skipped")
            lines.append(
                "- **\(MarkdownReport.cell(r.name))** go \(MarkdownReport.cell(r.goVersion)): "
                    + parts.joined(separator: "; "))
        }
        guard !lines.isEmpty else { return "" }
        return "\n## go test\n\n" + lines.joined(separator: "\n") + "\n"
    }
}
