import Foundation
import GhostrunKit
import XCTest

// MARK: - Policy tools: --baseline

extension CLITests {
    func testMergeAgainstABaselineFailsOnlyOnChangedOutcomes() throws {
        let host = HostFacts(
            kernel: "6.1", libseccomp: "2.5.4", cgroup: "v2", ghostrunVersion: GhostrunVersion.current, hostname: "ci")
        func save(_ name: String, _ results: [(String, GhostrunKit.Outcome, Bool)]) throws -> String {
            let path = temporary + "/" + name
            let entries = results.map { name, outcome, ok in
                var r = RunResult(name: name, goVersion: "1.19", outcome: outcome, summary: "")
                r.passed = ok
                return r
            }
            let file = RunFile(ghostrun: GhostrunVersion.current, host: host, results: entries)
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

// MARK: - Policy tools: bisect

extension CLITests {
    private struct BisectJSON: Decodable {
        struct Culprit: Decodable {
            var syscall: String
            var action: String
            var errno: String?
            var tolerated: [String]
        }
        struct Candidate: Decodable { var syscall: String }
        var culprits: [Culprit]
        var runs: Int
        var candidates: [Candidate]
    }

    func testBisectNamesClone3NotTheHarmlessFirstDenialUnderDocker1903AsCrunApplies() throws {
        try requireRoot()
        let json = temporary + "/bisect.json"
        let result = try ghostrun([
            "bisect", CLITests.root + "/scenarios/profiles/docker-19.03.yaml", "--filter", "docker-19.03-crun$",
            "--go-version", "1.19", "--json", json, "--max-runs", "12",
        ])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        let report = try JSONDecoder().decode(BisectJSON.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
        // rseq is refused first (Docker 19.03 predates it) but Go 1.19 does not need it.
        XCTAssertEqual(report.candidates.map(\.syscall).first, "rseq", result.stderr)
        XCTAssertEqual(report.culprits.map(\.syscall), ["clone3"], result.stdout)
        XCTAssertEqual(report.culprits.first?.errno, "EPERM")
        XCTAssertEqual(report.culprits.first?.tolerated, ["ENOSYS", "allow"])
        XCTAssertLessThanOrEqual(report.runs, 12)
        XCTAssertTrue(result.stdout.contains("\"errnoRet\" : 38"), result.stdout)
        XCTAssertTrue(result.stderr.contains("bisect: run 1/12"), result.stderr)
    }

    func testBisectTheCatalogClone3CaseAndRefusesAnOkScenario() throws {
        try requireRoot()
        let json = temporary + "/clone3.json"
        let result = try ghostrun([
            "bisect", CLITests.root + "/scenarios/seccomp/clone3-eperm.yaml", "--go-version", "1.19", "--json", json,
        ])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        let report = try JSONDecoder().decode(BisectJSON.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
        XCTAssertEqual(report.culprits.map(\.syscall), ["clone3"])
        XCTAssertEqual(report.culprits.first?.action, "errno")
        XCTAssertEqual(report.culprits.first?.tolerated, ["ENOSYS", "allow"])
        XCTAssertEqual(report.runs, 4, "traced run, clone3 allowed, then ENOSYS and EPERM")

        let fine = write("bisect/fine.yaml", """
            name: bisect-fine
            run: [go, version]
            sandbox:
              seccomp:
                rules: [{syscalls: [pidfd_open], action: errno, errno: ENOSYS}]
            """)
        let okResult = try ghostrun(["bisect", fine, "--go-version", "1.19"])
        XCTAssertEqual(okResult.status, 2, okResult.stdout + okResult.stderr)
        XCTAssertTrue(okResult.stderr.contains("is ok under its policy"), okResult.stderr)

        let several = try ghostrun(["bisect", CLITests.root + "/scenarios/profiles/docker-19.03.yaml"])
        XCTAssertEqual(several.status, 2)
        XCTAssertTrue(several.stderr.contains("--filter"), several.stderr)
    }
}

// MARK: - Policy tools: record

extension CLITests {
    func testRecordWritesAProfileThatVerifiesAndRefusesWhatWasNotRecorded() throws {
        try requireRoot()
        let version = write("record/version.yaml", """
            name: record-version
            run: [go, version]
            sandbox:
              seccomp:
                rules: [{syscalls: [openat], action: errno, errno: EACCES}]
            expect: {outcome: ok}
            """)
        let profile = temporary + "/recorded.json"
        let result = try ghostrun(["record", version, "--go-version", "1.19", "--runs", "2", "--output", profile])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("runc ok as recorded; crun ok as recorded"), result.stdout)
        XCTAssertTrue(result.stderr.contains("run 2/2: ok"), result.stderr)
        let document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: profile)))
            as? [String: Any]
        XCTAssertEqual(document?["defaultAction"] as? String, "SCMP_ACT_ERRNO")
        XCTAssertEqual(document?["defaultErrnoRet"] as? Int, 1)
        let rules = document?["syscalls"] as? [[String: Any]] ?? []
        let names = rules.flatMap { $0["names"] as? [String] ?? [] }
        // The scenario's own rule was not in force while recording: go version opens its files.
        XCTAssertTrue(names.contains("openat"), "\(names)")
        XCTAssertTrue(names.contains("execve"), "\(names)")
        XCTAssertFalse(names.contains("socket"), "\(names)")
        let comment = rules.first { ($0["names"] as? [String]) == ["openat"] }?["comment"] as? String ?? ""
        XCTAssertTrue(comment.hasPrefix("go 1.19") && comment.contains("go"), comment)

        // What go version needs is not enough for go build: the profile refuses the rest.
        let build = write("record/build.yaml", """
            name: record-build
            run: [go, build, -o, out/app, .]
            fixture: \(CLITests.root)/scenarios/fixtures/hello
            """)
        let refused = try ghostrun([
            "run", build, "--go-version", "1.19", "--seccomp-profile", profile, "--json", temporary + "/b.json",
            "--allow-host-fixtures",
        ])
        let file = try JSONReport.decode(Data(contentsOf: URL(fileURLWithPath: temporary + "/b.json")))
        XCTAssertNotEqual(file.results.first?.outcome, .ok, refused.stdout + refused.stderr)
        XCTAssertFalse(file.results.first?.evidence.denials.isEmpty ?? true)

        let bad = try ghostrun(["record", version, "--output", profile, "--default", "eacces"])
        XCTAssertEqual(bad.status, 2)
    }
}
