import Foundation
import XCTest

@testable import GhostrunKit

/// Sharding, shard selection from CI variables, merging shard run files, GitHub annotations, the progress line.
final class CIMatrixTests: XCTestCase {
    private func ids(_ count: Int) -> [String] {
        (0..<count).map { "scenario-\(String(format: "%03d", $0 / 3))@1.\(19 + $0 % 3).0" }
    }

    /// Every id in exactly one shard, and no shard index out of range.
    private func assertPartition(
        _ ids: [String], count: Int, timings: [String: Int]?, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        let assignment = Matrix.assignShards(ids: ids, count: count, timings: timings)
        XCTAssertEqual(assignment.count, ids.count, file: file, line: line)
        XCTAssertTrue(assignment.allSatisfy { (0..<count).contains($0) }, "\(assignment)", file: file, line: line)
        // Rebuild the shards the way `shard` does and check they are disjoint and complete.
        var seen: [String] = []
        for index in 0..<count {
            seen += ids.indices.filter { assignment[$0] == index }.map { ids[$0] }
        }
        XCTAssertEqual(seen.count, ids.count, "count \(count), size \(ids.count)", file: file, line: line)
        XCTAssertEqual(Set(seen), Set(ids), "count \(count), size \(ids.count)", file: file, line: line)
    }

    func testShardsAreDisjointAndCompleteForManySizes() {
        for size in [0, 1, 2, 3, 7, 8, 9, 31, 64, 100, 257] {
            for count in [1, 2, 3, 4, 5, 8, 16, 17, 256] {
                let all = ids(size)
                assertPartition(all, count: count, timings: nil)
                // Timings for some entries only, with duplicates and zeros, to exercise median and tie-breaks.
                var timings: [String: Int] = [:]
                for (offset, id) in all.enumerated() where offset % 3 != 0 { timings[id] = (offset * 37) % 11 * 100 }
                assertPartition(all, count: count, timings: timings)
                assertPartition(all, count: count, timings: ["unrelated@1.0.0": 5])
            }
        }
    }

    func testRoundRobinWithoutTimings() {
        XCTAssertEqual(Matrix.assignShards(ids: ids(7), count: 3, timings: nil), [0, 1, 2, 0, 1, 2, 0])
        XCTAssertEqual(Matrix.assignShards(ids: ids(4), count: 3, timings: [:]), [0, 1, 2, 0])
    }

    func testTimingsBalanceByLongestFirst() {
        let names = ["a@1", "b@1", "c@1", "d@1", "e@1"]
        let timings = ["a@1": 100, "b@1": 10, "c@1": 60, "d@1": 50, "e@1": 40]
        // LPT: a(100)→0, c(60)→1, d(50)→1 (60<100), e(40)→0 (100<110), b(10)→1 (110<140 → 1 has 110).
        let assignment = Matrix.assignShards(ids: names, count: 2, timings: timings)
        XCTAssertEqual(assignment, [0, 1, 1, 1, 0])
        var load = [0, 0]
        for (index, shard) in assignment.enumerated() { load[shard] += timings[names[index]]! }
        XCTAssertEqual(load, [140, 120])
        // Round-robin would have put a, c, e together (200 vs 60).
        XCTAssertEqual(Matrix.assignShards(ids: names, count: 2, timings: nil), [0, 1, 0, 1, 0])
    }

    func testEntriesWithoutTimingCostTheMedianAndTiesKeepMatrixOrder() {
        // Known: 10, 30, 50 → median 30; x and y cost 30 each, tied with b; ties go in matrix order.
        let names = ["a@1", "b@1", "c@1", "x@1", "y@1"]
        let timings = ["a@1": 10, "b@1": 30, "c@1": 50]
        let assignment = Matrix.assignShards(ids: names, count: 3, timings: timings)
        // Order: c(50)→0, b(30)→1, x(30)→2, y(30)→1 (30, 1 entry < 50), a(10)→2 (30, 1 entry, lower than 60).
        XCTAssertEqual(assignment, [2, 1, 0, 2, 1])
        XCTAssertEqual(assignment, Matrix.assignShards(ids: names, count: 3, timings: timings), "deterministic")
    }

    func testZeroDurationsStillSpreadOut() {
        let names = ids(6)
        let timings = Dictionary(uniqueKeysWithValues: names.map { ($0, 0) })
        XCTAssertEqual(Matrix.assignShards(ids: names, count: 3, timings: timings), [0, 1, 2, 0, 1, 2])
    }

    func testShardOfMatrixEntriesKeepsMatrixOrder() throws {
        let scenarios = try (0..<4).map { try scenario("name: s\($0)\nrun: [go, version]\n", file: "s\($0).yaml") }
        let toolchains = [
            Toolchain(
                goBinary: "/a/go", goroot: "/a", version: GoVersion(major: 1, minor: 21, patch: 13),
                versionString: "go1.21.13"),
            Toolchain(
                goBinary: "/b/go", goroot: "/b", version: GoVersion(major: 1, minor: 23, patch: 4),
                versionString: "go1.23.4"),
        ]
        let entries = Matrix.entries(scenarios: scenarios, toolchains: toolchains)
        let timings = ["s0@1.21.13": 500, "s3@1.23.4": 400]
        var union: [String] = []
        for index in 1...3 {
            let shard = Matrix.shard(entries, index: index, count: 3, timings: timings)
            let order = shard.map { entries.map(\.id).firstIndex(of: $0.id)! }
            XCTAssertEqual(order, order.sorted(), "a shard runs in matrix order")
            union += shard.map(\.id)
        }
        XCTAssertEqual(union.sorted(), entries.map(\.id).sorted())
        XCTAssertEqual(Matrix.shard(entries, index: 2, count: 3).map(\.id), ["s0@1.23.4", "s2@1.21.13", "s3@1.23.4"])
    }

    func testTimingsFromARunFile() {
        var a = RunResult(name: "a", goVersion: "1.23.4", outcome: .ok, summary: "")
        a.durationMs = 1234
        let b = RunResult(name: "b", goVersion: "1.21.13", outcome: .skipped, summary: "")
        let file = RunFile(ghostrun: "0.1.0", host: host(), results: [a, b])
        XCTAssertEqual(Matrix.timings(from: file), ["a@1.23.4": 1234, "b@1.21.13": 0])
    }

    // MARK: ShardSelection

    func testShardSelectionSources() throws {
        XCTAssertNil(try ShardSelection.resolve(shard: nil, shardCount: nil, environment: [:]))
        XCTAssertEqual(
            try ShardSelection.resolve(
                shard: "2/3", shardCount: nil,
                environment: [
                    "CI_NODE_INDEX": "1",
                    "CI_NODE_TOTAL": "5",
                ]),
            ShardSelection(index: 2, count: 3, source: "--shard"))
        XCTAssertEqual(
            try ShardSelection.resolve(
                shard: nil, shardCount: nil,
                environment: ["CI_NODE_INDEX": "3", "CI_NODE_TOTAL": "3"]),
            ShardSelection(index: 3, count: 3, source: "CI_NODE_INDEX/CI_NODE_TOTAL"))
        XCTAssertEqual(
            try ShardSelection.resolve(shard: nil, shardCount: 4, environment: ["JOB_COMPLETION_INDEX": "0"]),
            ShardSelection(index: 1, count: 4, source: "JOB_COMPLETION_INDEX/--shard-count"))
        XCTAssertEqual(
            try ShardSelection.resolve(shard: nil, shardCount: 4, environment: ["JOB_COMPLETION_INDEX": "3"])?
                .index, 4)
    }

    func testShardSelectionErrors() {
        let bad: [(String?, Int?, [String: String], String)] = [
            (nil, nil, ["JOB_COMPLETION_INDEX": "0"], "--shard-count"),
            (nil, 4, ["JOB_COMPLETION_INDEX": "4"], "0..<4"),
            (nil, 4, ["JOB_COMPLETION_INDEX": "x"], "JOB_COMPLETION_INDEX=x"),
            (nil, nil, ["CI_NODE_INDEX": "0", "CI_NODE_TOTAL": "3"], "1...3"),
            (nil, nil, ["CI_NODE_INDEX": "4", "CI_NODE_TOTAL": "3"], "CI_NODE_INDEX=4"),
            (nil, nil, ["CI_NODE_INDEX": "1"], "CI_NODE_TOTAL"),
            (nil, 3, [:], "needs CI_NODE_INDEX"),
            ("1/3", 3, [:], "not --shard"),
            ("4/3", nil, [:], "I/N"),
        ]
        for (shard, count, environment, message) in bad {
            XCTAssertThrowsError(try ShardSelection.resolve(shard: shard, shardCount: count, environment: environment))
            {
                XCTAssertTrue("\($0)".contains(message), "\($0) lacks \(message)")
            }
        }
    }

    // MARK: RunFileMerge

    private func host(_ name: String = "ci-1") -> HostFacts {
        HostFacts(kernel: "6.1", libseccomp: "2.5.4", cgroup: "v2", ghostrunVersion: "0.1.0", hostname: name)
    }

    private func result(_ name: String, _ version: String, passed: Bool? = true) -> RunResult {
        var r = RunResult(name: name, goVersion: version, outcome: .ok, summary: "ok")
        r.passed = passed
        return r
    }

    func testMergeSortsByNameThenVersionAndKeepsTheFirstHost() throws {
        let one = RunFile(
            ghostrun: "0.1.0", host: host("one"), results: [result("b", "1.21.13"), result("a", "1.9.0")],
            harness: HarnessStats(cpuUserMs: 1, cpuSystemMs: 1, wallMs: 1))
        let two = RunFile(
            ghostrun: "0.1.0", host: host("two"), results: [result("a", "1.19.8"), result("a", "1.23.4")])
        let merged = try RunFileMerge.merge([("one.json", one), ("two.json", two)])
        XCTAssertEqual(
            merged.results.map { "\($0.name)@\($0.goVersion)" },
            ["a@1.9.0", "a@1.19.8", "a@1.23.4", "b@1.21.13"])
        XCTAssertEqual(merged.host.hostname, "one")
        XCTAssertEqual(merged.ghostrun, "0.1.0")
        XCTAssertNil(merged.harness)
    }

    func testMergeRefusesDuplicatesAndMixedVersionsNamingTheFiles() {
        let one = RunFile(ghostrun: "0.1.0", host: host(), results: [result("a", "1.23.4")])
        let again = RunFile(ghostrun: "0.1.0", host: host(), results: [result("b", "1.23.4"), result("a", "1.23.4")])
        XCTAssertThrowsError(try RunFileMerge.merge([("shard-1.json", one), ("shard-2.json", again)])) {
            let text = "\($0)"
            XCTAssertTrue(
                text.contains("a@1.23.4") && text.contains("shard-1.json") && text.contains("shard-2.json"),
                text)
        }
        let newer = RunFile(ghostrun: "0.2.0", host: host(), results: [result("b", "1.23.4")])
        XCTAssertThrowsError(try RunFileMerge.merge([("old.json", one), ("new.json", newer)])) {
            let text = "\($0)"
            XCTAssertTrue(text.contains("old.json") && text.contains("new.json") && text.contains("0.2.0"), text)
        }
        XCTAssertThrowsError(try RunFileMerge.merge([]))
    }

    /// Shard run files as `run --shard I/N` writes them, cut round-robin from `ids`.
    private func shardFiles(_ ids: [String], count: Int) -> [(path: String, file: RunFile)] {
        let assignment = Matrix.assignShards(ids: ids, count: count, timings: nil)
        return (1...count).map { index in
            let mine = ids.indices.filter { assignment[$0] == index - 1 }.map { ids[$0] }
            let results = mine.map { id -> RunResult in
                let parts = id.split(separator: "@")
                return result(String(parts[0]), String(parts[1]))
            }
            return ("shard-\(index).json", RunFile(
                ghostrun: "0.1.0", host: host(), results: results,
                matrix: MatrixRecord(allIds: ids, shardIds: mine, index: index, count: count)))
        }
    }

    private let matrixIds = ["a@1.19.8", "a@1.23.4", "b@1.19.8", "b@1.23.4", "c@1.19.8"]

    func testMergeOfEveryShardRecordsTheWholeMatrix() throws {
        let merged = try RunFileMerge.merge(shardFiles(matrixIds, count: 3))
        XCTAssertEqual(merged.results.count, 5)
        XCTAssertEqual(merged.matrix?.shard, "1/1")
        XCTAssertEqual(merged.matrix?.size, 5)
        XCTAssertEqual(merged.matrix?.digest, MatrixRecord.digest(of: matrixIds))
        // A merged file merges again, alone.
        XCTAssertEqual(try RunFileMerge.merge([("merged.json", merged)]).results.count, 5)
    }

    func testMergeNamesAMissingShard() {
        var files = shardFiles(matrixIds, count: 3)
        files.remove(at: 1)
        XCTAssertThrowsError(try RunFileMerge.merge(files)) {
            XCTAssertTrue("\($0)".contains("shard 2/3 of the matrix (5 entries) is missing"), "\($0)")
        }
    }

    func testMergeNamesAMissingEntry() {
        var files = shardFiles(matrixIds, count: 2)
        files[0].file.results.removeLast()
        XCTAssertThrowsError(try RunFileMerge.merge(files)) {
            XCTAssertTrue("\($0)".contains("shard-1.json (shard 1/2) has no result for c@1.19.8"), "\($0)")
        }
    }

    func testMergeRefusesAShardOfAnotherMatrix() {
        var files = shardFiles(matrixIds, count: 2)
        files[1] = shardFiles(matrixIds + ["d@1.19.8"], count: 2)[1]
        XCTAssertThrowsError(try RunFileMerge.merge(files)) {
            XCTAssertTrue("\($0)".contains("shard-2.json") && "\($0)".contains("different matrix"), "\($0)")
        }
    }

    func testMergeRefusesARecordedShardGivenTwiceOrMixedWithAnUnrecordedFile() {
        let files = shardFiles(matrixIds, count: 2)
        XCTAssertThrowsError(try RunFileMerge.merge([files[0], ("again.json", files[0].file)])) {
            XCTAssertTrue("\($0)".contains("given twice") || "\($0)".contains("in both"), "\($0)")
        }
        let legacy = RunFile(ghostrun: "0.1.0", host: host(), results: [result("z", "1.19.8")])
        XCTAssertThrowsError(try RunFileMerge.merge([files[0], ("legacy.json", legacy)])) {
            XCTAssertTrue("\($0)".contains("legacy.json does not record its shard"), "\($0)")
        }
    }

    func testMatrixRecordRoundTripsAndOldRunFilesStillDecode() throws {
        let record = MatrixRecord(allIds: matrixIds, shardIds: ["a@1.19.8"], index: 2, count: 3)
        let file = RunFile(ghostrun: "0.1.0", host: host(), results: [], matrix: record)
        let data = try JSONReport.encode(file)
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("\"shard\" : \"2\\/3\"")
            || String(decoding: data, as: UTF8.self).contains("\"shard\" : \"2/3\""))
        XCTAssertEqual(try JSONReport.decode(data).matrix, record)
        var old = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        old["matrix"] = nil
        XCTAssertNil(try JSONReport.decode(JSONSerialization.data(withJSONObject: old)).matrix)
    }

    // MARK: GitHubAnnotations

    func testAnnotationsForFailedExpectationsOnly() {
        var failed = result("pidfd,trap", "1.23.4", passed: false)
        failed.scenarioFile = "/repo/scenarios/seed/a:b.yaml"
        failed.scenarioLine = 3
        failed.failures = ["outcome: expected ok, got crash", "stderr: expected /100%/\r\ngot \"x\""]
        var noFile = result("other", "1.21.13", passed: false)
        noFile.failures = ["exit: expected 1, got 0"]
        let lines = GitHubAnnotations.errors(
            for: [result("fine", "1.23.4"), result("unjudged", "1.23.4", passed: nil), failed, noFile],
            workspace: "/repo")
        XCTAssertEqual(
            lines,
            [
                "::error file=scenarios/seed/a%3Ab.yaml,line=3,title=pidfd%2Ctrap@1.23.4::outcome: expected ok, got crash;"
                    + " stderr: expected /100%25/%0D%0Agot \"x\"",
                "::error title=other@1.21.13::exit: expected 1, got 0",
            ])
    }

    func testEscaping() {
        XCTAssertEqual(GitHubAnnotations.escapeData("a%b\rc\nd:e,f"), "a%25b%0Dc%0Ad:e,f")
        XCTAssertEqual(GitHubAnnotations.escapeProperty("a%b\rc\nd:e,f"), "a%25b%0Dc%0Ad%3Ae%2Cf")
        XCTAssertEqual(GitHubAnnotations.relative("/elsewhere/x.yaml", to: "/repo"), "/elsewhere/x.yaml")
        XCTAssertEqual(GitHubAnnotations.relative("rel/x.yaml", to: "/repo"), "rel/x.yaml")
    }

    func testStepSummaryIsAppended() throws {
        let path = NSTemporaryDirectory() + "summary-\(UUID().uuidString).md"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try GitHubAnnotations.appendStepSummary("# one", to: path)
        try GitHubAnnotations.appendStepSummary("# two\n", to: path)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "# one\n# two\n")
    }

    // MARK: interrupted, ProgressLine

    func testInterruptedIsEncodedOnlyWhenTrue() throws {
        var r = result("a", "1.23.4")
        XCTAssertFalse(String(decoding: try JSONEncoder().encode(r), as: UTF8.self).contains("interrupted"))
        r.interrupted = false
        XCTAssertFalse(String(decoding: try JSONEncoder().encode(r), as: UTF8.self).contains("interrupted"))
        r.interrupted = true
        let data = try JSONEncoder().encode(r)
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("\"interrupted\":true"))
        XCTAssertEqual(try JSONDecoder().decode(RunResult.self, from: data).interrupted, true)
        XCTAssertTrue(TerminalReport.line(for: r, color: false).contains("interrupted"))

        // An interrupted run is shown as such and does not make a scenario "differ across toolchains".
        r.outcome = .signaled
        let file = RunFile(ghostrun: "0.1.0", host: host(), results: [result("a", "1.21.13"), r])
        let markdown = MarkdownReport.render(file)
        XCTAssertTrue(markdown.contains("signaled (interrupted)"), markdown)
        XCTAssertTrue(markdown.contains("No scenario's outcome differs"), markdown)
        XCTAssertTrue(JUnitReport.render(file).contains("interrupted: the run was torn down"))
    }

    func testInterruptedResultsAreJUnitErrorsNeverFailures() {
        var failed = result("a", "1.23.4", passed: false)
        failed.outcome = .hang
        failed.interrupted = true
        var skipped = result("b", "1.23.4")
        skipped.outcome = .skipped
        skipped.passed = nil
        skipped.interrupted = true
        let xml = JUnitReport.render(RunFile(ghostrun: "0.1.0", host: host(), results: [failed, skipped]))
        XCTAssertFalse(xml.contains("<failure"), xml)
        XCTAssertFalse(xml.contains("<skipped"), xml)
        XCTAssertEqual(xml.components(separatedBy: "<error message=\"interrupted by SIGINT/SIGTERM\"").count, 3, xml)
        XCTAssertTrue(xml.contains("failures=\"0\" errors=\"2\" skipped=\"0\""), xml)
    }

    func testSkipsFailExpectingScenariosUnlessCausedByTheGoConstraintOrAllowed() {
        var expectation = Expectation()
        expectation.outcomes = [.ok]
        let host = ResultBuilder.skipped(
            name: "a", goVersion: "1.23.4", reason: "cgroup.memory_max needs the memory controller",
            expectation: expectation)
        let constraint = ResultBuilder.skipped(
            name: "b", goVersion: "1.19.8", reason: "go 1.19.8 does not satisfy go: \">=1.21\"", cause: .goConstraint,
            expectation: expectation)
        let nothingExpected = ResultBuilder.skipped(name: "c", goVersion: "1.23.4", reason: "no memory controller")
        let judged = ResultBuilder.judgeSkips([host, constraint, nothingExpected], allowSkip: false)
        XCTAssertEqual(judged.map(\.passed), [false, nil, nil])
        XCTAssertTrue(judged[0].failures.first?.contains("memory controller") == true, "\(judged[0].failures)")
        XCTAssertTrue(judged[0].failures.first?.contains("--allow-skip") == true)
        XCTAssertEqual(ExitStatus.forRun(judged), ExitStatus.expectationFailed)
        let allowed = ResultBuilder.judgeSkips([host, constraint, nothingExpected], allowSkip: true)
        XCTAssertEqual(ExitStatus.forRun(allowed), ExitStatus.success)
        XCTAssertTrue(
            String(decoding: try! JSONReport.encode(RunFile(ghostrun: "0", host: self.host(), results: judged)),
                   as: UTF8.self).contains("\"skip_cause\" : \"go-constraint\""))
    }

    func testTearDownMarksActiveRunsAndRunsThatRegisterLater() {
        let runs = ActiveRuns()
        runs.register(1, cgroup: nil, work: nil, goroot: "/go")
        runs.register(2, cgroup: nil, work: nil, goroot: "/go")
        runs.unregister(2, goroot: "/go")
        XCTAssertFalse(runs.wasTornDown(1))
        runs.tearDownAll()
        XCTAssertTrue(runs.wasTornDown(1))
        XCTAssertFalse(runs.wasTornDown(2), "finished before the signal")
        runs.register(3, cgroup: nil, work: nil, goroot: "/go")
        XCTAssertTrue(runs.wasTornDown(3), "was still setting up when the signal came")
        runs.unregister(3, goroot: "/go")
        XCTAssertFalse(runs.wasTornDown(3))
    }

    func testProgressLine() {
        let start = ContinuousClock.now
        let progress = ProgressLine(total: 4, started: start)
        progress.started("a@1.23.4")
        progress.started("b@1.21.13")
        progress.finished("a@1.23.4")
        let now = start + .seconds(12)
        XCTAssertEqual(progress.text(now: now), "[1/4] 0 passed, 0 failed  running: b@1.21.13  elapsed 12s")
        XCTAssertEqual(progress.redraw(now: now), "\r\u{1B}[K[1/4] 0 passed, 0 failed  running: b@1.21.13  elapsed 12s")
        for index in 0..<20 { progress.started("long-scenario-name-\(index)@1.23.4") }
        let narrow = progress.text(now: now, width: 60)
        XCTAssertLessThan(narrow.count, 60)
        XCTAssertTrue(narrow.hasSuffix("…  elapsed 12s"), narrow)
        progress.close()
        XCTAssertNil(progress.redraw(now: now), "no redraw after the summary")
    }
}
