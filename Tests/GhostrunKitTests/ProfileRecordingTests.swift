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

    private func traced(_ names: [String], arguments: [String: [UInt64]]?) -> RunResult {
        var result = traced(["go": names])
        result.evidence.trace?.arguments = arguments
        return result
    }

    /// `record --args`: socket per family and personality per value (SCMP_CMP_EQ), clone without namespace flags
    /// (SCMP_CMP_MASKED_EQ, moby's mask), everything else unconditional; a run without recorded values, or a clone
    /// with a namespace flag, keeps the rule unconditional.
    func testArgumentRulesFromRecordedValues() throws {
        var recording = ProfileRecording()
        recording.add(traced(["socket", "clone", "personality", "read"],
                             arguments: ["socket": [1, 2], "clone": [0x3d0f00], "personality": [0xffff_ffff]]),
                      entryId: "s@1.23.4", toolchain: "1.23.4")
        recording.add(traced(["socket", "clone"], arguments: ["socket": [10], "clone": [0x50f00]]),
                      entryId: "s@1.23.4", toolchain: "1.23.4")
        let profile = try JSONSerialization.jsonObject(
            with: recording.profileJSON(defaultErrno: 1, restrictArguments: true)) as? [String: Any]
        let rules = profile?["syscalls"] as? [[String: Any]] ?? []
        func args(_ name: String) -> [[[String: Any]]] {
            rules.filter { ($0["names"] as? [String]) == [name] }.map { $0["args"] as? [[String: Any]] ?? [] }
        }
        XCTAssertEqual(args("socket").map { $0.first?["value"] as? Int }, [1, 2, 10])
        XCTAssertEqual(args("socket").map { $0.first?["op"] as? String }, Array(repeating: "SCMP_CMP_EQ", count: 3))
        XCTAssertEqual(args("clone").count, 1)
        XCTAssertEqual(args("clone")[0].first?["value"] as? Int, 2114060288)
        XCTAssertEqual(args("clone")[0].first?["valueTwo"] as? Int, 0)
        XCTAssertEqual(args("clone")[0].first?["op"] as? String, "SCMP_CMP_MASKED_EQ")
        XCTAssertEqual(args("personality").map { $0.first?["value"] as? Int }, [0xffff_ffff])
        XCTAssertEqual(args("read").map(\.count), [0], "read stays unconditional")
        // Without --args every rule is unconditional.
        let plain = try JSONSerialization.jsonObject(with: recording.profileJSON(defaultErrno: 1)) as? [String: Any]
        XCTAssertTrue((plain?["syscalls"] as? [[String: Any]] ?? []).allSatisfy { $0["args"] == nil })

        var unsure = ProfileRecording()
        unsure.add(traced(["socket", "clone"], arguments: ["socket": [1], "clone": [0x4000_0000 | 0x11]]),
                   entryId: "t@1.23.4", toolchain: "1.23.4")
        unsure.add(traced(["socket"], arguments: nil), entryId: "t@1.23.4", toolchain: "1.23.4")
        XCTAssertNil(unsure.argumentRules("socket"), "a run without recorded values keeps socket unconditional")
        XCTAssertNil(unsure.argumentRules("clone"), "a clone with CLONE_NEWNET keeps clone unconditional")
    }
}
