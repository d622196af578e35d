import Foundation
import GhostrunKit
import XCTest

// MARK: - Policy tools: --baseline

extension CLITests {
    func testMergeAgainstABaselineFailsOnlyOnChangedOutcomes() throws {
        let host = HostFacts(kernel: "6.1", libseccomp: "2.5.4", cgroup: "v2", ghostrunVersion: GhostrunVersion.current,
                             hostname: "ci")
        func save(_ name: String, _ results: [(String, GhostrunKit.Outcome, Bool)]) throws -> String {
            let path = temporary + "/" + name
            let file = RunFile(ghostrun: GhostrunVersion.current, host: host, results: results.map { name, outcome, ok in
                var r = RunResult(name: name, goVersion: "1.19", outcome: outcome, summary: "")
                r.passed = ok
                return r
            })
            try JSONReport.encode(file).write(to: URL(fileURLWithPath: path))
            return path
        }
        let old = try save("old.json", [("a", .crash, false), ("b", .ok, true), ("gone", .ok, true)])
        // a still crashes (its expectation fails), b now fails cleanly, c is new.
        let now = try save("now.json", [("a", .crash, false), ("b", .clearError, true), ("c", .ok, true)])
        let json = temporary + "/compared.json"
        let changed = try ghostrun(["merge", now, "--baseline", old, "--fail-on-change", "--json", json])
        XCTAssertEqual(changed.status, 1, changed.stdout + changed.stderr)
        XCTAssertTrue(changed.stdout.contains("1 changed, 1 new, 1 missing, 1 unchanged"), changed.stdout)
        XCTAssertTrue(changed.stdout.contains("changed  b@1.19: ok -> clear-error"), changed.stdout)
        let file = try JSONReport.decode(Data(contentsOf: URL(fileURLWithPath: json)))
        XCTAssertEqual(file.baseline?.changed.map(\.id), ["b@1.19"])
        XCTAssertEqual(file.baseline?.missing, ["gone@1.19"])

        // Only a's expectation fails, and its outcome did not change: exit 0 with --fail-on-change, 1 without.
        let same = try save("same.json", [("a", .crash, false), ("b", .ok, true)])
        XCTAssertEqual(try ghostrun(["merge", same, "--baseline", old, "--fail-on-change"]).status, 0)
        XCTAssertEqual(try ghostrun(["merge", same, "--baseline", old]).status, 1)

        let missing = try ghostrun(["merge", same, "--baseline", temporary + "/nope.json"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("nope.json"), missing.stderr)
        XCTAssertEqual(try ghostrun(["merge", same, "--fail-on-change"]).status, 2)
    }

    func testRunAgainstABaselineOfTheRealGo() throws {
        try requireRoot()
        let path = write("baseline/version.yaml", "name: baseline-version\nrun: [go, version]\nexpect: {outcome: ok}\n")
        let first = temporary + "/first.json"
        XCTAssertEqual(try ghostrun(["run", path, "--json", first]).status, 0)
        // The same scenario, now without threads: the Go runtime cannot start.
        _ = write("baseline/version.yaml", """
            name: baseline-version
            run: [go, version]
            sandbox:
              seccomp:
                rules: [{syscalls: [clone, clone3], action: errno, errno: EPERM}]
            expect: {outcome: ok}
            """)
        let second = try ghostrun(["run", path, "--baseline", first, "--fail-on-change"])
        XCTAssertEqual(second.status, 1, second.stdout + second.stderr)
        XCTAssertTrue(second.stdout.contains("1 changed, 0 new, 0 missing, 0 unchanged"), second.stdout)
        XCTAssertTrue(second.stdout.contains("changed  baseline-version@"), second.stdout)
    }
}
