import XCTest

@testable import GhostrunKit

final class BaselineComparisonTests: XCTestCase {
    private let host = HostFacts(kernel: "", libseccomp: "", cgroup: "", ghostrunVersion: "", hostname: "")

    private func result(_ name: String, _ version: String, _ outcome: Outcome, passed: Bool? = nil) -> RunResult {
        var r = RunResult(name: name, goVersion: version, outcome: outcome, summary: "")
        r.passed = passed
        return r
    }

    func testReportsChangedNewAndMissingByNameAndToolchain() {
        let baseline = RunFile(ghostrun: "", host: host, results: [
            result("a", "1.19", .crash), result("a", "1.23.4", .ok), result("b", "1.23.4", .ok),
            result("gone", "1.23.4", .ok),
        ])
        let now = [
            result("a", "1.19", .ok), result("a", "1.23.4", .ok), result("b", "1.23.4", .clearError),
            result("b", "1.21.13", .ok),
        ]
        let comparison = BaselineComparison.compare(now, baseline: baseline, file: "old.json")
        XCTAssertEqual(comparison.changed, [
            .init(id: "a@1.19", before: .crash, after: .ok), .init(id: "b@1.23.4", before: .ok, after: .clearError),
        ])
        XCTAssertEqual(comparison.new, ["b@1.21.13"])
        XCTAssertEqual(comparison.missing, ["gone@1.23.4"])
        XCTAssertEqual(comparison.unchanged, 1)
        XCTAssertEqual(comparison.render(), """
            baseline old.json: 2 changed, 1 new, 1 missing, 1 unchanged
              changed  a@1.19: crash -> ok
              changed  b@1.23.4: ok -> clear-error
              new      b@1.21.13
              missing  gone@1.23.4
            """)
    }

    func testAShardDoesNotReportTheOtherShardsEntriesMissing() {
        let baseline = RunFile(ghostrun: "", host: host, results: [result("a", "1.19", .ok), result("b", "1.19", .ok)])
        let comparison = BaselineComparison.compare(
            [result("a", "1.19", .ok)], matrixIds: ["a@1.19", "b@1.19"], baseline: baseline, file: "old.json")
        XCTAssertEqual(comparison.missing, [])
        let whole = BaselineComparison.compare([result("a", "1.19", .ok)], baseline: baseline, file: "old.json")
        XCTAssertEqual(whole.missing, ["b@1.19"])
    }

    func testFailOnChangeIgnoresExpectationsButNotHarnessErrors() {
        let baseline = RunFile(ghostrun: "", host: host, results: [result("a", "1.19", .crash)])
        let sameButFailing = [result("a", "1.19", .crash, passed: false)]
        let same = BaselineComparison.compare(sameButFailing, baseline: baseline, file: "b")
        XCTAssertEqual(same.exitStatus(for: sameButFailing), 0)
        let changedButPassing = [result("a", "1.19", .ok, passed: true)]
        let changed = BaselineComparison.compare(changedButPassing, baseline: baseline, file: "b")
        XCTAssertEqual(changed.exitStatus(for: changedButPassing), 1)
        let broken = [result("a", "1.19", .crash), result("x", "1.19", .harnessError)]
        XCTAssertEqual(BaselineComparison.compare(broken, baseline: baseline, file: "b").exitStatus(for: broken), 2)
    }

    func testTheComparisonIsKeptInTheRunFile() throws {
        var file = RunFile(ghostrun: "", host: host, results: [result("a", "1.19", .ok)])
        file.baseline = BaselineComparison.compare(
            file.results, baseline: RunFile(ghostrun: "", host: host, results: [result("a", "1.19", .crash)]),
            file: "old.json")
        let text = String(decoding: try JSONReport.encode(file), as: UTF8.self)
        XCTAssertTrue(text.contains("\"before\" : \"crash\""), text)
        XCTAssertEqual(try JSONReport.decode(JSONReport.encode(file)), file)
    }
}
