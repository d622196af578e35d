import GhostrunKit
import XCTest

/// The exit codes of `ghostrun run` are part of the public contract (scenario-format.md); these tests pin
/// the numbers themselves, so a refactor of `ExitStatus` cannot silently renumber them.
final class ExitStatusContractTests: XCTestCase {
    func testContractNumbers() {
        XCTAssertEqual(ExitStatus.success, 0)
        XCTAssertEqual(ExitStatus.expectationFailed, 1)
        XCTAssertEqual(ExitStatus.harnessError, 2)
    }

    func testHarnessErrorOutranksFailedExpectation() {
        var failed = RunResult(name: "a", goVersion: "1.23.4", outcome: .crash, summary: "crash")
        failed.passed = false
        let broken = ResultBuilder.harnessError(name: "b", goVersion: "1.23.4", reason: "cannot create cgroup")
        XCTAssertEqual(ExitStatus.forRun([failed]), 1)
        XCTAssertEqual(ExitStatus.forRun([failed, broken]), 2)
    }
}
