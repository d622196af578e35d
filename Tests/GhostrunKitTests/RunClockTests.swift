import Foundation
import XCTest

@testable import GhostrunKit

/// Verdicts that measure the work, not the machine (issue 18): the stall measure, the limits it stretches, and the
/// hang kind read from the processes alive at the end. Recorded data only; `BusyHostIntegrationTests` runs them.
final class RunClockTests: XCTestCase {
    /// Read on this host (6.18) from a child of the v2 hierarchy while `stress-ng --cpu 4` ran.
    func testPressureFilesParse() {
        let cpu = PressureTotals.parse("""
            some avg10=59.45 avg60=44.54 avg300=13.77 total=47546431
            full avg10=31.02 avg60=20.11 avg300=5.01 total=21034551

            """)
        XCTAssertEqual(cpu, PressureTotals(someMicroseconds: 47_546_431, fullMicroseconds: 21_034_551))
        // The system-wide CPU file of kernels before 5.13 has no `full` line.
        XCTAssertEqual(PressureTotals.parse("some avg10=0.00 avg60=0.00 avg300=0.00 total=12\n"),
                       PressureTotals(someMicroseconds: 12, fullMicroseconds: 0))
        XCTAssertNil(PressureTotals.parse(""))
        XCTAssertNil(PressureTotals.parse("garbage\n"))
        let stat = RunClock.parseSchedstat("123456789 987654 42\n")
        XCTAssertEqual(stat?.run, 123_456_789)
        XCTAssertEqual(stat?.wait, 987_654)
        XCTAssertNil(RunClock.parseSchedstat("12\n"))
    }

    func testLimitsScaleAndBound() {
        let limits = RunLimits(timeout: .seconds(30), hangAfter: .seconds(10), scale: 4, maxStretch: 3)
        XCTAssertEqual(limits.timeout, .seconds(120))
        XCTAssertEqual(limits.hangAfter, .seconds(40))
        XCTAssertEqual(limits.wallBound, .seconds(360))
        XCTAssertEqual(RunLimits(timeout: .seconds(1), hangAfter: .seconds(1), maxStretch: 0.2).maxStretch, 1,
                       "a stretch below 1 would cut runs short of their own timeout")
    }

    /// The issue-18 failure: program-blocked@1.27.3's build took 28 s on a loaded host and the 30 s timeout fired
    /// before hang_after. Counted in runnable time, the build is far from the timeout; the no-progress window,
    /// counted the same way, fires once the program blocks.
    func testAStarvedRunIsNotOutOfTime() {
        let limits = RunLimits(timeout: .seconds(30), hangAfter: .seconds(5), maxStretch: 3)
        // 31 s of wall time, 17 s of it stalled: 14 s runnable, progress 1 s ago.
        XCTAssertNil(RunMonitor.hangTrigger(wall: .seconds(31), runnable: .seconds(14), lastProgress: .seconds(13),
                                            limits: limits))
        // The program blocked in openat: no progress for 5 s of runnable time.
        XCTAssertEqual(RunMonitor.hangTrigger(wall: .seconds(37), runnable: .seconds(19),
                                              lastProgress: .seconds(14), limits: limits), .noProgress)
        // A quiet host: runnable time is wall time, and the timeout fires at 30 s as before.
        XCTAssertEqual(RunMonitor.hangTrigger(wall: .seconds(30), runnable: .seconds(30),
                                              lastProgress: .seconds(29), limits: limits), .timeout)
        // Stalled so long that wall time reached 3 × 30 s first: the host decided.
        XCTAssertEqual(RunMonitor.hangTrigger(wall: .seconds(90), runnable: .seconds(29),
                                              lastProgress: .seconds(28), limits: limits), .stretchBound)
    }

    /// The hang kind is read from the processes alive at the end: CPU that compile and link used before they
    /// exited does not make a program blocked in a syscall `spinning`.
    func testCPUOfExitedProcessesDoesNotMakeAHangSpin() {
        let history: [[Int32: UInt64]] = [
            [10: 5, 11: 900, 12: 400],  // go, compile, link busy
            [10: 5, 12: 450, 13: 3],  // compile exited; link still busy; the program started
            [10: 5, 13: 3],  // link exited; the program blocked
            [10: 5, 13: 3],
        ]
        XCTAssertFalse(RunMonitor.cpuMoving(history: history, alive: [10, 13]))
        XCTAssertTrue(RunMonitor.cpuMoving(history: history + [[10: 5, 13: 9]], alive: [10, 13]),
                      "a live process whose ticks moved spins")
        XCTAssertFalse(RunMonitor.cpuMoving(history: [[10: 5]], alive: [10]), "one reading proves nothing")
        XCTAssertFalse(RunMonitor.cpuMoving(history: [], alive: [10]))
    }

    func testStretchBoundIsInconclusiveNeverGreenAndNeverAHang() {
        var o = RunObservation(termination: .killedByHarness(reason: .stretchBound), durationMs: 90_000, stdout: "",
                               stderr: "")
        o.stall = StallEvidence(source: .psi, wallMs: 90_000, stalledMs: 61_000, cpuMs: 61_000, ioMs: 0, memoryMs: 0,
                                cpuSomeMs: 70_000, runnableMs: 29_000, timeoutMs: 30_000, hangAfterMs: 10_000,
                                maxStretch: 3, boundReached: true)
        let c = Classifier.classify(o)
        XCTAssertEqual(c.outcome, .inconclusive)
        XCTAssertNil(c.hangKind)
        XCTAssertTrue(c.summary.contains("68% of 90.0 s"), c.summary)
        var expectation = Expectation()
        expectation.outcomes = [.hang]
        let result = ResultBuilder.build(
            name: "s", goVersion: "1.23.4", goPath: nil, scenarioFile: nil, scenarioLine: nil, tags: [],
            expectation: expectation, observation: o, classification: c, requested: RequestedRestrictions())
        XCTAssertNil(result.passed, "the host decided: not judged")
        XCTAssertEqual(ExitStatus.forRun([result]), ExitStatus.harnessError, "never green")
        XCTAssertEqual(result.evidence.stall?.boundReached, true)
        XCTAssertTrue(JUnitReport.isError(result))
        XCTAssertTrue(TerminalReport.summary([result]).contains("1 inconclusive"), TerminalReport.summary([result]))
    }

    func testStallSummaryNamesTheResourceAndShare() {
        let stall = StallEvidence(source: .psi, wallMs: 30_200, stalledMs: 18_422, cpuMs: 18_000, ioMs: 422,
                                  memoryMs: 0, cpuSomeMs: 25_000, runnableMs: 11_778, timeoutMs: 30_000,
                                  hangAfterMs: 10_000, maxStretch: 3, boundReached: false)
        XCTAssertEqual(stall.summary(), "stalled on CPU+I/O 61% of 30.2 s")
        var quiet = stall
        quiet.stalledMs = 100
        XCTAssertNil(quiet.summary(), "a quiet run's line says nothing")
    }
}
