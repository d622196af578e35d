import XCTest

@testable import GhostrunKit

final class ProfileRecordingTests: XCTestCase {
    private func traced(_ byRole: [String: [String]]) -> RunResult {
        var result = RunResult(name: "s", goVersion: "1.19.8", outcome: .ok, summary: "")
        result.evidence.trace = TraceSummary(
            notified: ["all"], totalCalls: 0,
            byRole: byRole.mapValues { $0.map { .init(syscall: $0, calls: 1, errors: 0, firstMs: 0) } },
            byProcess: [], injected: 0, supervisorMicrosecondsPerCall: 0)
        return result
    }

    func testUnionCommentsSizesAndNamesSeenInOnlySomeRuns() throws {
        var recording = ProfileRecording()
        recording.add(traced(["go": ["read", "clone3"], "compile": ["read"]]), entryId: "s@1.19.8", toolchain: "1.19.8")
        recording.add(traced(["go": ["read"], "compile": ["read", "rseq"]]), entryId: "s@1.19.8", toolchain: "1.19.8")
        recording.add(traced(["go": ["read", "clone"]]), entryId: "s@1.23.4", toolchain: "1.23.4")
        XCTAssertEqual(recording.unstable, ["clone3": ["s@1.19.8"], "rseq": ["s@1.19.8"]])
        XCTAssertEqual(recording.sizePerToolchain, ["1.19.8": 3, "1.23.4": 2])
        let profile = try JSONSerialization.jsonObject(with: recording.profileJSON(defaultErrno: 38)) as? [String: Any]
        XCTAssertEqual(profile?["defaultErrnoRet"] as? Int, 38)
        let rules = profile?["syscalls"] as? [[String: Any]] ?? []
        XCTAssertEqual(rules.map { ($0["names"] as? [String])?.first }, ["clone", "clone3", "read", "rseq"])
        XCTAssertEqual(rules[2]["comment"] as? String, "go 1.19.8: compile, go; go 1.23.4: go")
    }
}
