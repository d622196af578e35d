import GhostrunKit
import XCTest

final class ExpectationCheckTests: XCTestCase {
    private let crash = Classification(outcome: .crash, exitCode: 2, summary: "crash")
    private let sigsys = Classification(outcome: .signaled, signal: "SIGSYS", summary: "killed")
    private let observation = RunObservation(
        termination: .exited(2), durationMs: 10, stdout: "alive\n", stderr: "go: x\nSIGSYS: bad system call\n")

    func testNoExpectationIsNeitherPassedNorFailed() {
        let verdict = ExpectationCheck.evaluate(nil, classification: crash, observation: observation)
        XCTAssertNil(verdict.passed)
        XCTAssertEqual(verdict.failures, [])
    }

    func testEmptyExpectationPasses() {
        XCTAssertEqual(
            ExpectationCheck.evaluate(Expectation(), classification: crash, observation: observation).passed, true)
    }

    func testOutcomeMismatchIsReadable() {
        var e = Expectation()
        e.outcomes = [.clearError]
        let verdict = ExpectationCheck.evaluate(e, classification: crash, observation: observation)
        XCTAssertEqual(verdict.passed, false)
        XCTAssertEqual(verdict.failures, ["outcome: expected clear-error, got crash"])
    }

    func testAnyOfSeveralOutcomes() {
        var e = Expectation()
        e.outcomes = [.clearError, .crash]
        XCTAssertEqual(ExpectationCheck.evaluate(e, classification: crash, observation: observation).passed, true)
    }

    func testExitAndSignal() {
        var e = Expectation()
        e.exit = 2
        XCTAssertEqual(ExpectationCheck.evaluate(e, classification: crash, observation: observation).passed, true)
        e.exit = 1
        XCTAssertEqual(
            ExpectationCheck.evaluate(e, classification: crash, observation: observation).failures,
            ["exit: expected 1, got 2"])
        XCTAssertEqual(
            ExpectationCheck.evaluate(e, classification: sigsys, observation: observation).failures,
            ["exit: expected 1, got killed by SIGSYS"])

        var s = Expectation()
        s.signal = "sys"
        XCTAssertEqual(ExpectationCheck.evaluate(s, classification: sigsys, observation: observation).passed, true)
        s.signal = "SIGKILL"
        XCTAssertEqual(
            ExpectationCheck.evaluate(s, classification: sigsys, observation: observation).failures,
            ["signal: expected SIGKILL, got SIGSYS"])
        XCTAssertEqual(
            ExpectationCheck.evaluate(s, classification: crash, observation: observation).failures,
            ["signal: expected SIGKILL, got no signal (exit 2)"])
    }

    func testStderrAndStdoutAreSearchedPerLine() {
        var e = Expectation()
        e.stderr = "^SIGSYS: bad"
        e.stdout = "aliv"
        XCTAssertEqual(ExpectationCheck.evaluate(e, classification: crash, observation: observation).passed, true)
        e.stderr = "permission denied"
        let verdict = ExpectationCheck.evaluate(e, classification: crash, observation: observation)
        XCTAssertEqual(verdict.failures, ["stderr: expected /permission denied/, got \"SIGSYS: bad system call\""])
    }

    func testInvalidRegexFailsWithReason() {
        var e = Expectation()
        e.stdout = "(unclosed"
        let verdict = ExpectationCheck.evaluate(e, classification: crash, observation: observation)
        XCTAssertEqual(verdict.passed, false)
        XCTAssertEqual(verdict.failures, ["stdout: invalid regular expression /(unclosed/"])
    }

    func testArtifact() {
        var e = Expectation()
        e.artifact = "out/app"
        var o = observation
        o.expectArtifactExists = true
        XCTAssertEqual(ExpectationCheck.evaluate(e, classification: crash, observation: o).passed, true)
        o.expectArtifactExists = false
        XCTAssertEqual(
            ExpectationCheck.evaluate(e, classification: crash, observation: o).failures,
            ["artifact: expected out/app to exist, it does not"])
        o.expectArtifactExists = nil
        XCTAssertEqual(ExpectationCheck.evaluate(e, classification: crash, observation: o).passed, false)
    }

    func testHangKindAndAllFailuresListed() {
        var e = Expectation()
        e.outcomes = [.hang]
        e.hangKind = .frozen
        let blocked = Classification(outcome: .hang, hangKind: .blocked, summary: "hang")
        XCTAssertEqual(
            ExpectationCheck.evaluate(e, classification: blocked, observation: observation).failures,
            ["hang_kind: expected frozen, got blocked"])
        XCTAssertEqual(
            ExpectationCheck.evaluate(e, classification: crash, observation: observation).failures,
            ["outcome: expected hang, got crash", "hang_kind: expected frozen, got no hang (crash)"])
    }
}
