import Foundation
import GhostrunKit
import XCTest

#if canImport(FoundationXML)
    import FoundationXML
#endif

final class ReportTests: XCTestCase {
    private let host = HostFacts(
        kernel: "6.18.0", libseccomp: "2.5.4", cgroup: "v2 /sys/fs/cgroup/unified", ghostrunVersion: "0.1.0",
        hostname: "ci-1")

    /// A crash under a pidfd_open trap, built through ResultBuilder as the runner would.
    private func pidfdTrapResult(version: String, expect: Outcome) -> RunResult {
        var o = RunObservation(
            termination: .exited(2), durationMs: 1500, stdout: "",
            stderr: "SIGSYS: bad system call\nPC=0x4766ee m=0 sigcode=1\n")
        o.processes = [Recorded.process("go", pid: 10, exited: true, seccomp: 2)]
        o.denials = [
            Denial(pid: 10, comm: "go", syscall: "pidfd_open", action: "log", timeMs: 5, source: "audit"),
            Denial(pid: 10, comm: "go", syscall: "pidfd_open", action: "trap", signal: 31, timeMs: 30, source: "audit"),
        ]
        var e = Expectation()
        e.outcomes = [expect]
        return ResultBuilder.build(
            name: "pidfd-trap", goVersion: version, goPath: "/opt/go/bin/go", scenarioFile: "scenarios/seed/pidfd.yaml",
            scenarioLine: 1, tags: ["seed"], expectation: e, observation: o, classification: Classifier.classify(o),
            requested: RequestedRestrictions(seccompFilter: true))
    }

    private func runFile() -> RunFile {
        var ok = pidfdTrapResult(version: "1.19.8", expect: .ok)
        ok.outcome = .ok
        ok.passed = true
        ok.failures = []
        var weird = RunResult(name: "a<b>&\"c\"", goVersion: "1.23.4", outcome: .clearError, summary: "x")
        weird.scenarioFile = "scenarios/cache/weird.yaml"
        weird.passed = false
        weird.failures = ["stderr: expected /x/, got \"\u{1B}[31mred\u{1B}[0m & <tag>\""]
        weird.stderrTail = "bad\u{0}byte\u{7} & <here>\n"
        let skipped = ResultBuilder.skipped(
            name: "pidfd-trap", goVersion: "1.21.13", reason: "go 1.21.13 does not satisfy >=1.23",
            scenarioFile: "scenarios/seed/pidfd.yaml")
        let broken = ResultBuilder.harnessError(
            name: "freeze", goVersion: "1.23.4", reason: "no cgroup v2 mount", tags: ["hang"])
        return RunFile(
            ghostrun: "0.1.0", host: host,
            results: [ok, pidfdTrapResult(version: "1.23.4", expect: .ok), skipped, weird, broken])
    }

    // MARK: ResultBuilder

    func testBuildFillsEvidenceAndVerdict() {
        let r = pidfdTrapResult(version: "1.23.4", expect: .ok)
        XCTAssertEqual(r.outcome, .crash)
        XCTAssertEqual(r.passed, false)
        XCTAssertEqual(r.failures, ["outcome: expected ok, got crash"])
        XCTAssertEqual(r.exitCode, 2)
        XCTAssertEqual(r.failingProcess, "go")
        XCTAssertEqual(r.evidence.denials.map(\.action), ["log", "trap"])
        XCTAssertEqual(r.evidence.firstDenial?.action, "trap", "a log record is not a denial")
        XCTAssertEqual(r.evidence.processes.first?.seccomp, 2)
        XCTAssertEqual(r.evidence.restrictionsConfirmed?.confirmed, true)
        XCTAssertEqual(r.expected?.outcome, [.ok])
    }

    func testRestrictionMismatchesNamePidAndComm() {
        var o = RunObservation(termination: .exited(0), durationMs: 1, stdout: "", stderr: "")
        o.processes = [
            Recorded.process("go", pid: 10, seccomp: 2, capEff: 0, noNewPrivs: 1, uid: 65534),
            Recorded.process("compile", pid: 11, seccomp: 0, capEff: 0x20, noNewPrivs: 0, uid: 0),
        ]
        let r = ResultBuilder.build(
            name: "n", goVersion: "1.23.4", goPath: nil, scenarioFile: nil, scenarioLine: nil, tags: [],
            expectation: nil, observation: o, classification: Classifier.classify(o),
            requested: RequestedRestrictions(seccompFilter: true, capEff: 0, noNewPrivs: true, uid: 65534))
        let check = r.evidence.restrictionsConfirmed
        XCTAssertEqual(check?.confirmed, false)
        XCTAssertEqual(check?.checkedProcesses, 2)
        XCTAssertEqual(
            check?.mismatches,
            [
                "pid 11 (compile): Seccomp 0, expected 2 (filter)",
                "pid 11 (compile): CapEff 0000000000000020, expected 0000000000000000",
                "pid 11 (compile): NoNewPrivs 0, expected 1",
                "pid 11 (compile): Uid 0 0 0 0, expected 65534",
            ])
        XCTAssertNil(r.passed)

        let nothing = ResultBuilder.build(
            name: "n", goVersion: "1.23.4", goPath: nil, scenarioFile: nil, scenarioLine: nil, tags: [],
            expectation: nil, observation: o, classification: Classifier.classify(o), requested: RequestedRestrictions()
        )
        XCTAssertNil(nothing.evidence.restrictionsConfirmed)
        o.processes = []
        let unseen = ResultBuilder.build(
            name: "n", goVersion: "1.23.4", goPath: nil, scenarioFile: nil, scenarioLine: nil, tags: [],
            expectation: nil, observation: o, classification: Classifier.classify(o),
            requested: RequestedRestrictions(seccompFilter: true))
        XCTAssertEqual(unseen.evidence.restrictionsConfirmed?.confirmed, false)
    }

    func testTailStartsOnALineBoundary() {
        let lines = (0..<1000).map { "line \($0) of stderr" }
        let text = lines.joined(separator: "\n") + "\n"
        let tail = ResultBuilder.tail(text)
        XCTAssertLessThanOrEqual(tail.utf8.count, 4096)
        XCTAssertTrue(tail.hasPrefix("line "), String(tail.prefix(20)))
        XCTAssertTrue(tail.hasSuffix("line 999 of stderr\n"))
        XCTAssertEqual(ResultBuilder.tail("short\n"), "short\n")
        // One long line of multi-byte characters is cut at a character boundary.
        let long = String(repeating: "é", count: 3000)
        let cut = ResultBuilder.tail(long)
        XCTAssertLessThanOrEqual(cut.utf8.count, 4096)
        XCTAssertTrue(cut.allSatisfy { $0 == "é" })
    }

    // MARK: JUnit

    func testJUnitParsesWithCountsAndNames() throws {
        let xml = JUnitReport.render(runFile())
        let document = try XMLDocument(xmlString: xml, options: [])
        let root = try XCTUnwrap(document.rootElement())
        XCTAssertEqual(root.name, "testsuites")
        XCTAssertEqual(root.attribute(forName: "tests")?.stringValue, "5")
        XCTAssertEqual(root.attribute(forName: "failures")?.stringValue, "2")
        XCTAssertEqual(root.attribute(forName: "errors")?.stringValue, "1")
        XCTAssertEqual(root.attribute(forName: "skipped")?.stringValue, "1")

        let suites = root.elements(forName: "testsuite")
        XCTAssertEqual(suites.compactMap { $0.attribute(forName: "name")?.stringValue }, ["seed", "cache", "hang"])
        let cases = try document.nodes(forXPath: "//testcase").compactMap { $0 as? XMLElement }
        XCTAssertEqual(
            cases.compactMap { $0.attribute(forName: "name")?.stringValue },
            ["pidfd-trap@1.19.8", "pidfd-trap@1.23.4", "pidfd-trap@1.21.13", "a<b>&\"c\"@1.23.4", "freeze@1.23.4"])
        let crash = cases[1]
        XCTAssertEqual(crash.attribute(forName: "classname")?.stringValue, "seed")
        XCTAssertEqual(crash.attribute(forName: "file")?.stringValue, "scenarios/seed/pidfd.yaml")
        XCTAssertEqual(crash.attribute(forName: "time")?.stringValue, "1.500")
        let failure = try XCTUnwrap(crash.elements(forName: "failure").first)
        XCTAssertEqual(
            failure.attribute(forName: "message")?.stringValue, "outcome: expected ok, got crash (outcome crash)")
        let out = try XCTUnwrap(crash.elements(forName: "system-out").first?.stringValue)
        XCTAssertTrue(out.contains("first denial: pidfd_open (trap) in go"), out)
        XCTAssertTrue(out.contains("SIGSYS: bad system call"), out)
        XCTAssertEqual(
            cases[2].elements(forName: "skipped").first?.attribute(forName: "message")?.stringValue,
            "go 1.21.13 does not satisfy >=1.23")
        XCTAssertEqual(cases[4].elements(forName: "error").count, 1)
        XCTAssertEqual(cases[0].elements(forName: "failure").count, 0)

        let properties = try document.nodes(forXPath: "/testsuites/testsuite[1]/properties/property")
            .compactMap { $0 as? XMLElement }
        let facts = Dictionary(
            uniqueKeysWithValues: properties.map {
                ($0.attribute(forName: "name")?.stringValue ?? "", $0.attribute(forName: "value")?.stringValue ?? "")
            })
        XCTAssertEqual(facts["kernel"], "6.18.0")
        XCTAssertEqual(facts["libseccomp"], "2.5.4")
        XCTAssertEqual(facts["ghostrun_version"], "0.1.0")
    }

    func testJUnitEscapesMarkupAndControlCharacters() throws {
        let xml = JUnitReport.render(runFile())
        XCTAssertFalse(xml.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" && $0 != "\t" && $0 != "\r" })
        let document = try XMLDocument(xmlString: xml, options: [])
        let weird = try XCTUnwrap(
            try document.nodes(forXPath: "//testcase[@classname='cache']").first as? XMLElement)
        XCTAssertEqual(weird.attribute(forName: "name")?.stringValue, "a<b>&\"c\"@1.23.4")
        let message = try XCTUnwrap(
            weird.elements(forName: "failure").first?.attribute(forName: "message")?.stringValue)
        XCTAssertTrue(message.contains("\\x1b[31mred\\x1b[0m & <tag>"), message)
        let out = try XCTUnwrap(weird.elements(forName: "system-out").first?.stringValue)
        XCTAssertTrue(out.contains("bad\\x00byte\\x07 & <here>"), out)
        XCTAssertEqual(JUnitReport.attribute("a\"b'\n"), "a&quot;b&apos;&#10;")
    }

    // MARK: Markdown

    func testMarkdownTableAndDiffersSection() {
        let md = MarkdownReport.render(runFile())
        XCTAssertTrue(md.contains("| scenario | go 1.19.8 | go 1.21.13 | go 1.23.4 |"), md)
        XCTAssertTrue(md.contains("| pidfd-trap | ✅ ok | skipped | ❌ crash |"), md)
        XCTAssertTrue(md.contains("## Differs across toolchains"))
        XCTAssertTrue(md.contains("- **pidfd-trap**: go 1.19.8: ok, go 1.23.4: crash"), md)
        XCTAssertFalse(md.contains("- **freeze**"), "a harness error is not a toolchain difference")
        XCTAssertTrue(MarkdownReport.differs(name: "pidfd-trap", in: runFile().results))
        XCTAssertFalse(MarkdownReport.differs(name: "freeze", in: runFile().results))
    }

    // MARK: JSON

    func testJSONRoundTrip() throws {
        let file = runFile()
        let data = try JSONReport.encode(file)
        XCTAssertEqual(try JSONReport.decode(data), file)
        let text = String(decoding: data, as: UTF8.self)
        // Contract: required fields are present even when null.
        XCTAssertTrue(text.contains("\"signal\" : null"), text)
        XCTAssertTrue(text.contains("\"first_denial\" : {"), text)
        XCTAssertTrue(text.contains("\"scenario_file\" : \"scenarios/seed/pidfd.yaml\""), "slashes stay unescaped")
    }

    // MARK: Terminal

    func testTerminalLine() {
        let crash = pidfdTrapResult(version: "1.23.4", expect: .ok)
        let line = TerminalReport.line(for: crash, color: false)
        XCTAssertTrue(line.hasPrefix("FAIL  pidfd-trap@1.23.4  crash  1.50s"), line)
        XCTAssertTrue(line.contains("first denial pidfd_open (trap) in go"), line)
        XCTAssertTrue(line.hasSuffix("[outcome: expected ok, got crash]"), line)
        XCTAssertFalse(line.contains("\u{1B}"))
        XCTAssertTrue(TerminalReport.line(for: crash, color: true).contains("\u{1B}[31m"))

        var hang = RunResult(
            name: "freeze", goVersion: "1.23.4", outcome: .hang, summary: "hang (frozen) after timeout")
        hang.hangKind = .frozen
        XCTAssertTrue(TerminalReport.line(for: hang, color: false).hasPrefix("—     freeze@1.23.4  hang (frozen)"))

        var error = RunResult(name: "cache", goVersion: "1.19.8", outcome: .clearError, summary: "exit 1")
        error.passed = true
        error.firstDiagnostic = "go: failed to initialize build cache " + String(repeating: "x", count: 200)
        let errorLine = TerminalReport.line(for: error, color: false)
        XCTAssertTrue(errorLine.contains("go: failed to initialize build cache xx"), errorLine)
        XCTAssertTrue(errorLine.hasSuffix("…"), errorLine)
        XCTAssertEqual(errorLine.components(separatedBy: "  ").last?.count, TerminalReport.diagnosticLimit)
    }

    func testTerminalSummary() {
        let text = TerminalReport.summary(runFile().results)
        XCTAssertEqual(
            text,
            "5 results: 1 ok, 1 clear-error, 1 crash, 1 skipped, 1 harness-error | 1 passed, 2 failed, "
                + "1 skipped, 1 harness error")
    }

    // MARK: Exit status

    func testExitStatusRules() {
        let file = runFile()
        XCTAssertEqual(ExitStatus.forRun([]), 0)
        XCTAssertEqual(ExitStatus.forRun([file.results[0]]), 0)
        XCTAssertEqual(ExitStatus.forRun([file.results[0], file.results[2]]), 0, "a skip fails nothing")
        let unexpected = RunResult(name: "x", goVersion: "1.23.4", outcome: .crash, summary: "crash")
        XCTAssertEqual(ExitStatus.forRun([unexpected]), 0, "nothing expected and not a harness error")
        XCTAssertEqual(ExitStatus.forRun([file.results[0], file.results[1]]), 1)
        XCTAssertEqual(ExitStatus.forRun(file.results), 2)
    }
}
