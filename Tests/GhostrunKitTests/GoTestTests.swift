import Foundation
import XCTest

@testable import GhostrunKit

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// Reading recorded `go test` output (Tests/RecordedData/gotest) and classifying runs from it.
final class GoTestTests: XCTestCase {
    static let recorded = repositoryRoot + "/Tests/RecordedData/gotest/"

    /// Feeds a recorded stream in small, odd-sized chunks, as a pipe delivers it, so lines span chunks.
    func read(_ name: String, chunk: Int = 37) throws -> GoTestRun {
        let data = try Data(contentsOf: URL(fileURLWithPath: GoTestTests.recorded + name))
        let stream = GoTestStream()
        var offset = 0
        let bytes = [UInt8](data)
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunk)
            stream.feed(bytes[offset..<end])
            offset = end
        }
        return stream.finish()
    }

    func observation(_ run: GoTestRun, _ termination: Termination = .exited(1)) -> RunObservation {
        var o = RunObservation(termination: termination, durationMs: 900, stdout: "", stderr: "")
        o.goTest = run
        return o
    }

    func record(_ run: GoTestRun, _ package: String, _ test: String?) -> GoTestRecord? {
        run.records.first { $0.package.hasSuffix(package) && $0.test == test }
    }

    // MARK: - Recorded streams

    func testPassingRunKeepsEveryTestAndIsOK() throws {
        let run = try read("pass-1.23.json")
        XCTAssertTrue(run.json)
        XCTAssertEqual(record(run, "rec/pass", nil)?.outcome, .pass)
        XCTAssertEqual(record(run, "rec/pass", "TestAdd")?.outcome, .pass)
        XCTAssertEqual(record(run, "rec/pass", "TestSkipped")?.outcome, .skip)
        XCTAssertEqual(record(run, "rec/pass", "TestSub/inner")?.outcome, .pass)
        XCTAssertEqual(record(run, "rec/pass", "TestSub/inner")?.outputTail.contains("pass_test.go:5: fine"), true)
        XCTAssertTrue(run.running.isEmpty)
        XCTAssertNil(GoTestRules.classify(observation(run, .exited(0)), run: run))
        var o = observation(run, .exited(0))
        o.stdout = "ok  \texample.com/rec/pass\n"
        XCTAssertEqual(Classifier.classify(o).outcome, .ok)
    }

    func testFailedTestsWithoutCrashAreAClearErrorNamingThem() throws {
        let run = try read("pass-fail-1.23.json")
        XCTAssertEqual(record(run, "rec/fail", nil)?.outcome, .fail)
        XCTAssertEqual(record(run, "rec/fail", "TestGood")?.outcome, .pass)
        XCTAssertEqual(
            record(run, "rec/fail", "TestBroken")?.headline, "fail_test.go:4: open /etc/x: operation not permitted")
        XCTAssertEqual(record(run, "rec/pass", nil)?.outcome, .pass)
        let c = Classifier.classify(observation(run))
        XCTAssertEqual(c.outcome, .clearError)
        XCTAssertEqual(c.exitCode, 1)
        XCTAssertEqual(c.failingProcess, "fail.test")
        XCTAssertEqual(c.firstDiagnostic, "TestBroken: fail_test.go:4: open /etc/x: operation not permitted")
        XCTAssertTrue(
            c.summary.contains("2 tests failed in example.com/rec/fail: TestBroken, TestAlsoBroken"), c.summary)
    }

    func testOneCrashedPackageAmongPassingOnesIsACrashNamingItsBinary() throws {
        let run = try read("pass-fail-crash-1.23.json")
        let crashed = try XCTUnwrap(record(run, "rec/crash", nil))
        XCTAssertEqual(crashed.outcome, .crash)
        XCTAssertEqual(crashed.headline, "fatal error: sync: unlock of unlocked mutex")
        XCTAssertEqual(crashed.elapsedMs, 40)
        // The test the binary died in did not pass; the one before it did.
        XCTAssertEqual(record(run, "rec/crash", "TestFirst")?.outcome, .pass)
        XCTAssertEqual(record(run, "rec/crash", "TestCrashes")?.outcome, .fail)
        XCTAssertEqual(record(run, "rec/pass", nil)?.outcome, .pass)
        XCTAssertEqual(record(run, "rec/fail", nil)?.outcome, .fail)
        let c = Classifier.classify(observation(run))
        XCTAssertEqual(c.outcome, .crash)
        XCTAssertEqual(c.failingProcess, "crash.test")
        XCTAssertEqual(c.firstDiagnostic, "fatal error: sync: unlock of unlocked mutex")
        XCTAssertTrue(c.summary.contains("TestBroken"), c.summary)
    }

    func testPanicOutsideATestIsACrashOnEveryRecordedToolchain() throws {
        for name in ["crash-outside-test-1.27.json", "crash-outside-test-1.19.json"] {
            let run = try read(name)
            let crashed = try XCTUnwrap(record(run, "rec/initcrash", nil), name)
            XCTAssertEqual(crashed.outcome, .crash, name)
            XCTAssertEqual(crashed.headline, "panic: cannot start: operation not permitted", name)
            XCTAssertEqual(run.crashedPackages.count, 2, name)
            XCTAssertEqual(record(run, "rec/pass", nil)?.outcome, .pass, name)
            let c = Classifier.classify(observation(run))
            XCTAssertEqual(c.outcome, .crash, name)
            XCTAssertEqual(c.failingProcess, "crash.test", name)
        }
    }

    func testGoTestTimeoutPanicIsAHangNamingTheRunningTest() throws {
        let run = try read("timeout-1.23.json")
        let timeout = try XCTUnwrap(run.timeouts.first)
        XCTAssertEqual(timeout.headline, "panic: test timed out after 2s")
        XCTAssertEqual(timeout.running, ["TestSleeps"])
        XCTAssertFalse(timeout.spinning)
        XCTAssertTrue(run.crashedPackages.isEmpty)
        XCTAssertEqual(record(run, "rec/hang", "TestQuick")?.outcome, .pass)
        let c = Classifier.classify(observation(run))
        XCTAssertEqual(c.outcome, .hang)
        XCTAssertEqual(c.hangKind, .blocked)
        XCTAssertEqual(c.failingProcess, "hang.test")
        XCTAssertTrue(c.summary.contains("TestSleeps"), c.summary)
    }

    func testTestBinaryKilledByASignalIsSignaledWithTheDenial() throws {
        let run = try read("killed-1.23.json")
        XCTAssertEqual(record(run, "rec/killed", nil)?.outcome, .crash)
        var o = observation(run)
        o.denials = [
            Denial(
                pid: 42, comm: "killed.test", syscall: "setresgid", action: "kill-process", timeMs: 300,
                source: "audit")
        ]
        let c = Classifier.classify(o)
        XCTAssertEqual(c.outcome, .signaled)
        XCTAssertEqual(c.signal, "SIGKILL")
        XCTAssertEqual(c.failingProcess, "killed.test")
        XCTAssertTrue(c.summary.contains("seccomp kill-process on setresgid"), c.summary)
        XCTAssertEqual(GoTestReport.headline(run.records), "killed.test killed: signal: killed; failed: TestKilled")
    }

    func testBinaryEndingSilentlyInsideATestIsACrash() {
        let stream = GoTestStream()
        stream.feed(Array("""
            {"Action":"run","Package":"syscall","Test":"TestSetuidEtc"}
            {"Action":"output","Package":"syscall","Test":"TestSetuidEtc","Output":"=== RUN   TestSetuidEtc\\n"}
            {"Action":"output","Package":"syscall","Output":"FAIL\\tsyscall\\t0.004s\\n"}
            {"Action":"fail","Package":"syscall","Elapsed":0.004}

            """.utf8))
        let run = stream.finish()
        XCTAssertEqual(run.crashedPackages.first?.headline, "syscall.test exited during TestSetuidEtc without a message")
        XCTAssertEqual(run.records.first { $0.test == "TestSetuidEtc" }?.outcome, .fail)
        let c = Classifier.classify(observation(run))
        XCTAssertEqual(c.outcome, .crash)
        XCTAssertEqual(c.failingProcess, "syscall.test")
    }

    func testPlainOutputIsReadToo() throws {
        let run = try read("pass-fail-crash-plain-1.23.txt")
        XCTAssertFalse(run.json)
        XCTAssertEqual(record(run, "rec/pass", nil)?.outcome, .pass)
        XCTAssertEqual(record(run, "rec/fail", "TestBroken")?.outcome, .fail)
        XCTAssertEqual(
            record(run, "rec/fail", "TestBroken")?.headline, "fail_test.go:4: open /etc/x: operation not permitted")
        XCTAssertEqual(record(run, "rec/crash", nil)?.outcome, .crash)
        let c = Classifier.classify(observation(run))
        XCTAssertEqual(c.outcome, .crash)
        XCTAssertEqual(c.failingProcess, "crash.test")
    }

    func testHarnessKilledHangNamesTheTestStillRunning() throws {
        // The timeout stream cut before the alarm fired: what ghostrun sees when its own timeout kills the run.
        let text = try String(contentsOfFile: GoTestTests.recorded + "timeout-1.23.json", encoding: .utf8)
        let cut = text.components(separatedBy: "\n").prefix(while: { !$0.contains("timed out") })
        let stream = GoTestStream()
        stream.feed(Array(cut.joined(separator: "\n").utf8))
        let run = stream.finish()
        XCTAssertEqual(run.running, [GoTestName(package: "example.com/rec/hang", test: "TestSleeps")])
        var o = observation(run, .killedByHarness(reason: .timeout))
        o.processes = [Recorded.process("hang.test", pid: 20, state: "S", wchan: "futex_wait_queue")]
        let c = Classifier.classify(o)
        XCTAssertEqual(c.outcome, .hang)
        XCTAssertEqual(c.failingProcess, "hang.test")
        XCTAssertTrue(c.summary.contains("running: TestSleeps (example.com/rec/hang)"), c.summary)
    }

    // MARK: - Events and bounds

    func testEventDecoderUnescapesOutput() {
        let line =
            #"{"Time":"x","Action":"output","Package":"a/b","Test":"T","Output":"\tq\"\\ \u00e9 \ud83d\ude00\n","Elapsed":0.5}"#
        let event = GoTestEvent.decode(Array(line.utf8))
        XCTAssertEqual(event?.action, "output")
        XCTAssertEqual(event?.package, "a/b")
        XCTAssertEqual(event?.output, "\tq\"\\ é 😀\n")
        XCTAssertEqual(event?.elapsed, 0.5)
        XCTAssertNil(GoTestEvent.decode(Array(#"{"Action":"output","Output":"unterminated"#.utf8)))
        XCTAssertNil(GoTestEvent.decode(Array("ok  \tpkg\t0.1s".utf8)))
    }

    func testHugeOutputKeepsBoundedTails() {
        let stream = GoTestStream()
        stream.feed(Array(#"{"Action":"run","Package":"p","Test":"TestLoud"}"#.utf8 + [0x0A]))
        let line = Array(
            #"{"Action":"output","Package":"p","Test":"TestLoud","Output":"0123456789 abcdefghij\n"}"#.utf8 + [0x0A])
        let block = Array([[UInt8]](repeating: line, count: 1000).joined())
        for _ in 0..<30 { stream.feed(block) }  // 30 000 events, ~2.8 MB (the 100 MB figure is in the README)
        stream.feed(Array("fatal error: out of luck\n".utf8))
        stream.feed(Array(#"{"Action":"fail","Package":"p","Test":"TestLoud","Elapsed":1}"#.utf8 + [0x0A]))
        let run = stream.finish()
        let loud = run.records.first { $0.test == "TestLoud" }
        XCTAssertEqual(loud?.outcome, .fail)
        XCTAssertLessThanOrEqual(loud?.outputTail.utf8.count ?? .max, GoTestStream.tailBytes)
        XCTAssertLessThanOrEqual(stream.plainText.utf8.count, (1 << 20) + PlainTextBuffer.headLimit + 64)
        // A line with no newline at all is cut, not buffered whole.
        let endless = GoTestStream()
        for _ in 0..<64 { endless.feed([UInt8](repeating: 0x41, count: 65536)) }
        XCTAssertLessThanOrEqual(endless.plainText.utf8.count, GoTestStream.maxLineBytes + 1)
    }

    func testLinesClassify() {
        XCTAssertEqual(GoTestText.classify("panic: test timed out after 10m0s"), .timeoutPanic)
        XCTAssertEqual(GoTestText.classify("panic: boom [recovered]"), .other)
        XCTAssertEqual(GoTestText.classify("signal: bad system call"), .signal(name: "SIGSYS"))
        XCTAssertEqual(
            GoTestText.classify("runtime/cgo: pthread_create failed: Operation not permitted"), .runtimeDeath)
        XCTAssertEqual(
            GoTestText.classify("--- FAIL: TestX/sub (0.25s)"), .testResult(.fail, test: "TestX/sub", elapsedMs: 250))
        XCTAssertEqual(
            GoTestText.classify("ok  \tos/exec\t0.021s"), .packageResult(.pass, package: "os/exec", elapsedMs: 21))
        XCTAssertEqual(
            GoTestText.classify("FAIL\tsyscall\t0.007s"), .packageResult(.fail, package: "syscall", elapsedMs: 7))
        XCTAssertEqual(
            GoTestText.classify("FAIL example.com/x [build failed]"),
            .packageResult(.fail, package: "example.com/x", elapsedMs: nil))
        XCTAssertEqual(
            GoTestText.classify("?   \texample.com/y\t[no test files]"),
            .packageResult(.skip, package: "example.com/y", elapsedMs: nil))
    }

    // MARK: - go run's crash on stdout; tails

    func testGoRunCrashOnStdoutIsACrash() {
        var o = Recorded.exited(
            1, stderr: "exit status 2\n",
            stdout: """
                starting
                fatal error: runtime: eventfd failed with 1

                goroutine 1 [running]:
                main.main()
                """)
        o.processes = [Recorded.process("app", pid: 30, exe: "/tmp/go-build123/b001/exe/app")]
        let c = Classifier.classify(o)
        XCTAssertEqual(c.outcome, .crash)
        XCTAssertEqual(c.failingProcess, "app")
        XCTAssertEqual(c.firstDiagnostic, "fatal error: runtime: eventfd failed with 1")
    }

    func testStdoutTailKeepsTheHeadlineOfALongDump() {
        var text =
            "=== RUN   TestSetuidEtc\nruntime/cgo: pthread_create failed: Operation not permitted\nSIGABRT: abort\n"
        for i in 0..<2000 { text += "r\(i % 16)    0x\(String(i, radix: 16))\n" }
        text += "FAIL\tsyscall\t0.012s\n"
        let excerpt = TailWithHeadlines.excerpt(text)
        XCTAssertLessThanOrEqual(excerpt.utf8.count, ResultBuilder.tailBytes + 64)
        XCTAssertTrue(
            excerpt.hasPrefix("runtime/cgo: pthread_create failed: Operation not permitted\nSIGABRT: abort\n"))
        XCTAssertTrue(excerpt.hasSuffix("FAIL\tsyscall\t0.012s\n"))
        XCTAssertEqual(TailWithHeadlines.excerpt("short\n"), "short\n")
    }

    // MARK: - argv

    func testRewriteAddsJSONBeforeThePackages() {
        func rewrite(_ argv: [String]) -> GoTestCommand.Rewrite? { GoTestCommand.rewrite(argv) }
        XCTAssertEqual(
            rewrite(["go", "test", "-short", "os/exec", "syscall"])?.arguments,
            ["go", "test", "-json", "-short", "os/exec", "syscall"])
        XCTAssertEqual(rewrite(["go", "test", "./..."])?.mode, .json(added: true))
        // Flags after the packages and after -args stay where they were.
        XCTAssertEqual(
            rewrite(["go", "test", "./x", "-run", "TestA", "-args", "-json"])?.arguments,
            ["go", "test", "-json", "./x", "-run", "TestA", "-args", "-json"])
        XCTAssertEqual(
            rewrite(["go", "-C", "sub", "test", "."])?.arguments, ["go", "-C", "sub", "test", "-json", "."])
        // Already there, or turned off: as written.
        XCTAssertEqual(
            rewrite(["go", "test", ".", "-json"]),
            .init(arguments: ["go", "test", ".", "-json"], mode: .json(added: false)))
        XCTAssertEqual(rewrite(["go", "test", "--json=true", "."])?.mode, .json(added: false))
        XCTAssertEqual(rewrite(["go", "test", "-json=false", "."])?.mode, .plain)
        // A value that looks like the flag is a value.
        XCTAssertEqual(rewrite(["go", "test", "-run", "-json", "."])?.mode, .json(added: true))
        XCTAssertEqual(
            rewrite(["go", "test", "-exec", "sudo", "-vet", "off", "-o", "bin/", "."])?.mode, .json(added: true))
        // Compile only: nothing runs, nothing to read.
        XCTAssertNil(rewrite(["go", "test", "-c", "-o", "x.test", "."]))
        XCTAssertNil(rewrite(["go", "build", "."]))
        XCTAssertNil(rewrite(["go", "run", ".", "test"]))
        XCTAssertNil(rewrite(["sh", "-c", "go test ."]))
    }

    // MARK: - expect.tests

    func testExpectTestsIsParsedStrictly() throws {
        let good = try scenario(
            """
            name: t
            run: [go, test, syscall]
            expect:
              tests: {failed: [TestSetuidEtc], crashed: [syscall], passed: [], skipped: [os.TestX]}
            """)
        XCTAssertEqual(
            good.expect?.tests,
            TestsExpectation(
                failed: ["TestSetuidEtc"], passed: [], skipped: ["os.TestX"],
                crashed: ["syscall"]))
        XCTAssertThrowsError(
            try scenario(
                """
                name: t
                run: [go, test, syscall]
                expect:
                  tests:
                    fialed: [TestX]
                """)
        ) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("test.yaml:5: expect.tests.fialed: unknown key `fialed`"), text)
            XCTAssertTrue(text.contains("hint:") && text.contains("failed"), text)
        }
        XCTAssertThrowsError(
            try scenario(
                """
                name: t
                run: [go, test, syscall]
                expect:
                  tests: {crashed: [TestSetuidEtc]}
                """)
        ) { error in
            XCTAssertTrue("\(error)".contains("`crashed` lists packages"), "\(error)")
        }
        XCTAssertThrowsError(
            try scenario(
                """
                name: t
                run: [go, test, syscall]
                expect:
                  tests: {failed: TestX}
                """))
    }

    func testExpectTestsIsChecked() throws {
        let run = try read("pass-fail-crash-1.23.json")
        let c = Classifier.classify(observation(run))
        var e = Expectation()
        e.tests = TestsExpectation(
            failed: ["TestBroken", "example.com/rec/fail.TestAlsoBroken"], passed: ["pass.TestAdd"],
            crashed: ["crash"])
        XCTAssertEqual(ExpectationCheck.evaluate(e, classification: c, observation: observation(run)).failures, [])
        e.tests = TestsExpectation(failed: ["TestGood", "TestMissing"], skipped: [], crashed: ["crash.test", "fail"])
        let failures = ExpectationCheck.evaluate(e, classification: c, observation: observation(run)).failures
        XCTAssertEqual(
            failures,
            [
                "tests.failed: expected TestGood to be fail, it was pass",
                "tests.failed: expected TestMissing to be fail, it did not run",
                "tests.skipped: expected none, got 1 (TestSkipped)",
                "tests.crashed: expected the fail test binary to crash, the package was fail",
            ])
        let none = ExpectationCheck.evaluate(
            e, classification: c,
            observation: RunObservation(
                termination: .exited(1), durationMs: 1, stdout: "", stderr: ""))
        XCTAssertEqual(none.failures, ["tests: expected go test results, but the run printed no go test output"])
    }

    // MARK: - Reports

    func testReportsNameFailedTestsAndTheCrashedBinary() throws {
        let run = try read("pass-fail-crash-1.23.json")
        let o = observation(run)
        let c = Classifier.classify(o)
        var result = ResultBuilder.build(
            name: "gt", goVersion: "1.23.4", goPath: nil, scenarioFile: "scenarios/gotest/gt.yaml", scenarioLine: 1,
            tags: [], expectation: nil, observation: o, classification: c, requested: RequestedRestrictions())
        result.passed = nil
        let file = RunFile(
            ghostrun: "0",
            host: HostFacts(
                kernel: "k", libseccomp: "l", cgroup: "c",
                ghostrunVersion: "0", hostname: "h"), results: [result])
        let xml = JUnitReport.render(file)
        XCTAssertTrue(xml.contains(#"<testcase name="TestBroken" classname="example.com/rec/fail" time="0.000">"#), xml)
        XCTAssertTrue(
            xml.contains(#"<failure message="fail_test.go:4: open /etc/x: operation not permitted" type="fail">"#), xml)
        XCTAssertTrue(xml.contains(#"<testcase name="TestAdd" classname="example.com/rec/pass""#), xml)
        XCTAssertTrue(xml.contains(#"<testcase name="TestSkipped" classname="example.com/rec/pass""#), xml)
        XCTAssertTrue(
            xml.contains(#"<skipped message="pass_test.go:4: not on this host"/>"#) || xml.contains("<skipped"), xml)
        XCTAssertTrue(
            xml.contains(#"<testcase name="crash.test" classname="example.com/rec/crash" time="0.040">"#), xml)
        XCTAssertTrue(xml.contains(#"<error message="fatal error: sync: unlock of unlocked mutex" type="crash">"#), xml)
        // Per-test output is in the test case.
        XCTAssertTrue(xml.contains("fail_test.go:5: want 1, got 2"), xml)
        // The document still parses.
        XCTAssertNoThrow(try XMLDocument(xmlString: xml))

        let line = TerminalReport.line(for: result, color: false)
        XCTAssertTrue(line.contains("crash.test crashed: fatal error: sync: unlock of unlocked mutex"), line)
        XCTAssertTrue(line.contains("failed: TestBroken, TestAlsoBroken"), line)
        let md = MarkdownReport.render(file)
        XCTAssertTrue(md.contains("`crash.test` crashed: fatal error: sync: unlock of unlocked mutex"), md)
        XCTAssertTrue(md.contains("TestBroken"), md)

        // The JSON carries the contract's fields, with test null on package entries.
        let json = String(decoding: try JSONEncoder().encode(result), as: UTF8.self)
        XCTAssertTrue(json.contains(#""test":null"#), json)
        XCTAssertTrue(json.contains(#""outcome":"crash""#) && json.contains(#""elapsed_ms":40"#), json)
    }
}

/// The plan adds `-json` to `go test` and says how its output will be read.
final class GoTestPlanTests: XCTestCase {
    func testPlanAddsJSONToGoTestOnly() throws {
        let toolchain = Toolchain(
            goBinary: "/go/bin/go", goroot: "/go", version: GoVersion(major: 1, minor: 23, patch: 4),
            versionString: "go1.23.4")
        let host = PlanHost(
            environment: ["PATH": "/usr/bin"], kernel: (6, 1), availableCapabilities: .all, handOverDescriptor: 999,
            readFile: { _ in nil }, lookUpExecutable: { _, _ in nil })
        let work = WorkDirectory(root: "/tmp/ghostrun-1-1-abc")
        func plan(_ run: String) throws -> RunPlan {
            let scenario = try XCTUnwrap(ScenarioLoader.parse(text: "name: t\nrun: \(run)\n", file: "/s/t.yaml").first)
            return try RunPlan.resolve(scenario: scenario, toolchain: toolchain, host: host, work: work)
        }
        let test = try plan("[go, test, -short, syscall, -run, TestX]")
        XCTAssertEqual(test.spawn.arguments, ["go", "test", "-json", "-short", "syscall", "-run", "TestX"])
        XCTAssertEqual(test.goTestOutput, .json(added: true))
        let plain = try plan("[go, test, -json=false, .]")
        XCTAssertEqual(plain.spawn.arguments, ["go", "test", "-json=false", "."])
        XCTAssertEqual(plain.goTestOutput, .plain)
        let build = try plan("[go, build, .]")
        XCTAssertNil(build.goTestOutput)
        XCTAssertEqual(build.spawn.arguments, ["go", "build", "."])
    }
}
