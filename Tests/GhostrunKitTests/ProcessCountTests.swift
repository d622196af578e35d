import Foundation
import Synchronization
import XCTest

@testable import GhostrunKit

/// Item 5 of issue 11: "policy confirmed on N of M", M counted from the kernel's fork events.
final class ProcessCountTests: XCTestCase {
    func testPolicyTextSaysNOfMAndNothingSampledIsNotAFailure() {
        var check = RestrictionCheck(confirmed: true, checkedProcesses: 3, mismatches: [])
        XCTAssertEqual(TerminalReport.policyText(check, color: false), "policy confirmed on 3 processes")
        check.totalProcesses = 41
        check.totalExact = true
        XCTAssertEqual(TerminalReport.policyText(check, color: false), "policy confirmed on 3 of 41 processes")
        check.totalExact = false
        XCTAssertEqual(TerminalReport.policyText(check, color: false), "policy confirmed on 3 of at least 41 processes")

        let unseen = RestrictionCheck(confirmed: false, checkedProcesses: 0, mismatches: ["no process was sampled"])
        let text = TerminalReport.policyText(unseen, color: false)
        XCTAssertEqual(text, "policy not checked: no process lived long enough to sample")
        XCTAssertFalse(text.contains("NOT"))
        var counted = unseen
        counted.totalProcesses = 2
        counted.totalExact = true
        XCTAssertEqual(TerminalReport.policyText(counted, color: false),
                       "policy not checked: no process lived long enough to sample (2 ran)")

        let broken = RestrictionCheck(confirmed: false, checkedProcesses: 2, mismatches: ["pid 9 (go): Seccomp 0"])
        XCTAssertEqual(TerminalReport.policyText(broken, color: false), "policy NOT confirmed: pid 9 (go): Seccomp 0")
    }

    /// A shell that forks ten short-lived processes: the sampler sees few of them, the fork events all.
    func testEveryForkIsCountedEvenWhenTooShortLivedToSample() throws {
        try requireRoot()
        try requireHost(ProcessEvents.shared != nil, "the process events connector (CONFIG_PROC_EVENTS) is not readable")
        let toolchain = try TestToolchains.require(TestToolchains.all.first, "any")
        let runner = ScenarioRunner()
        let yaml = """
            name: forks
            run: [sh, -c, "for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true; done; echo done"]
            sandbox:
              no_new_privs: true
            expect:
              outcome: ok
            """
        for _ in 0..<2 {
            let result = runner.run(try scenario(yaml), toolchain: toolchain)
            XCTAssertEqual(result.passed, true, result.summary)
            let check = try XCTUnwrap(result.evidence.restrictionsConfirmed)
            XCTAssertEqual(check.totalProcesses, 11, "sh and its ten /bin/true")
            XCTAssertEqual(check.totalExact, true)
            XCTAssertLessThanOrEqual(check.checkedProcesses, 11)
        }
    }

    /// Runs in parallel count only their own trees.
    func testParallelRunsCountOnlyTheirOwnTree() throws {
        try requireRoot()
        try requireHost(ProcessEvents.shared != nil, "the process events connector (CONFIG_PROC_EVENTS) is not readable")
        let toolchain = try TestToolchains.require(TestToolchains.all.first, "any")
        let runner = ScenarioRunner()
        @Sendable func yaml(_ n: Int) -> String {
            """
            name: forks-\(n)
            run: [sh, -c, "for i in $(seq \(n)); do /bin/true; done; sleep 0.2; echo done"]
            sandbox:
              no_new_privs: true
            """
        }
        let counts = Mutex<[Int: Int]>([:])
        DispatchQueue.concurrentPerform(iterations: 3) { index in
            let n = [3, 7, 12][index]
            let result = runner.run(try! scenario(yaml(n)), toolchain: toolchain)
            counts.withLock { $0[n] = result.evidence.restrictionsConfirmed?.totalProcesses }
        }
        // sh, seq, n × true, sleep.
        XCTAssertEqual(counts.withLock { $0 }, [3: 6, 7: 10, 12: 15])
    }
}
