import Foundation
import XCTest

@testable import GhostrunKit

/// Issue 11: reports that say exactly what was tested, in a form tools and terminals can take.
final class GreenReportTests: XCTestCase {
    private let host = HostFacts(
        kernel: "6.18.0", libseccomp: "2.5.4", cgroup: "v2 /sys/fs/cgroup/unified", ghostrunVersion: "0.3.0",
        hostname: "ci-1")

    private func failing() -> RunResult {
        var r = RunResult(name: "pidfd-trap", goVersion: "1.23.4", outcome: .ok, summary: "exit 0")
        var e = Expectation()
        e.outcomes = [.crash]
        r.expected = ExpectedJSON(e)
        r.passed = false
        r.failures = ["outcome: expected crash, got ok", "stderr: expected /SIGSYS/, got \"a | b\""]
        r.durationMs = 4900
        r.firstDiagnostic = "main.go:3: `x` <b>bold</b> | pipe"
        r.evidence.firstDenial = Denial(
            pid: 10, comm: "go", syscall: "pidfd_open", action: "errno", errno: "EPERM", timeMs: 30, source: "audit")
        return r
    }

    private func runFile() -> RunFile {
        var passed = RunResult(name: "pidfd-trap", goVersion: "1.19.8", outcome: .crash, summary: "SIGSYS")
        passed.passed = true
        passed.durationMs = 20
        let skipped = ResultBuilder.skipped(
            name: "clone3", goVersion: "1.19.8", reason: "go 1.19.8 does not satisfy go: \">= 1.21\"",
            cause: .goConstraint)
        let hostSkip = ResultBuilder.skipped(
            name: "freeze", goVersion: "1.23.4", reason: "no cgroup freezer", cause: .host)
        return RunFile(ghostrun: "0.3.0", host: host, results: [passed, failing(), skipped, hostSkip],
                       harness: HarnessStats(cpuUserMs: 1, cpuSystemMs: 1, wallMs: 192_000))
    }

    // MARK: 10: control bytes, progress

    func testTerminalLineEscapesControlBytesFromTheTarget() {
        var r = RunResult(name: "ctl", goVersion: "1.23.4", outcome: .clearError, summary: "exit 3")
        r.passed = false
        r.firstDiagnostic = "\u{1B}]0;pwned\u{7}\u{1B}[31mboom\u{0}x\u{9B}2J\ry"
        r.failures = ["stderr: expected /x/, got \"\u{1B}[2J\""]
        for color in [false, true] {
            let line = TerminalReport.line(for: r, color: color)
            XCTAssertTrue(line.contains("\\x1b]0;pwned\\x07\\x1b[31mboom\\x00x\\x9b2J\\ry"), line)
            XCTAssertTrue(line.contains("got \"\\x1b[2J\""), line)
            // Only ghostrun's own colour codes may remain: ESC followed by `[` and a digit and `m`.
            let stripped = line.replacingOccurrences(
                of: "\u{1B}\\[[0-9;]*m", with: "", options: .regularExpression)
            XCTAssertFalse(stripped.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) },
                           line.debugDescription)
        }
        XCTAssertEqual(TerminalReport.escapingControls("a\tb\nc\u{7F}é"), "a\\tb\\nc\\x7fé")
    }

    func testProgressLineCountsAndEstimatesTimeLeft() {
        let start = ContinuousClock.now
        let ids = ["a@1", "b@1", "c@1", "d@1", "e@1"]
        let progress = ProgressLine(total: 5, started: start, ids: ids, timings: ["e@1": 40_000], jobs: 2)
        let now = start + .seconds(12)
        XCTAssertEqual(progress.text(now: now), "[0/5] 0 passed, 0 failed  elapsed 12s",
                       "no estimate before anything finished and without timings for every entry")
        progress.started("a@1")
        progress.finished("a@1", passed: true, durationMs: 10_000)
        progress.finished("b@1", passed: false, durationMs: 2_000)
        progress.finished("c@1", passed: nil, durationMs: 4_000)
        // Left: d (median 4 s) + e (40 s from --timings) over 2 workers = 22 s.
        XCTAssertEqual(progress.secondsLeft(now: now), 22)
        XCTAssertEqual(progress.text(now: now), "[3/5] 1 passed, 1 failed  elapsed 12s, ~22s left")
        progress.finished("d@1", passed: true, durationMs: 1_000)
        progress.finished("e@1", passed: true, durationMs: 1_000)
        XCTAssertEqual(progress.text(now: now), "[5/5] 3 passed, 1 failed  elapsed 12s")
    }

    // MARK: 7: events

    func testEventLineIsOneCompactResult() throws {
        let line = try EventStream.line(for: failing())
        let text = String(decoding: line, as: UTF8.self)
        XCTAssertTrue(text.hasSuffix("}\n"))
        XCTAssertEqual(text.filter { $0 == "\n" }.count, 1, "one line per result")
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: line) as? [String: Any])
        XCTAssertEqual(object["name"] as? String, "pidfd-trap")
        XCTAssertEqual(object["passed"] as? Bool, false)
        XCTAssertEqual(try JSONDecoder().decode(RunResult.self, from: line), failing())
    }

    func testEventStreamWritesALinePerResultAsItComes() throws {
        let path = NSTemporaryDirectory() + "ghostrun-events-\(UUID().uuidString).jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let stream = try EventStream(path: path)
        stream.emit(failing())
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").count, 1,
                       "written before the run ends")
        stream.emit(runFile().results[0])
        stream.close()
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").count, 2)
        XCTAssertThrowsError(try EventStream(path: "/nonexistent-dir/events.jsonl"))
    }

    // MARK: 6: --keep-work

    func testSweepLeavesAKeptWorkDirectory() throws {
        // A directory of a ghostrun process that is gone (pid 2^22 + 1 is above any pid_max default of 4194304).
        let kept = WorkDirectory.base + "/\(WorkDirectory.prefix)4194305-1-keptXX"
        let dropped = WorkDirectory.base + "/\(WorkDirectory.prefix)4194305-2-gone00"
        for path in [kept, dropped] {
            try FileManager.default.createDirectory(atPath: path + "/work", withIntermediateDirectories: true)
            // The owner marker a sweep needs to prove the tree is ghostrun's (pid and start time).
            FileManager.default.createFile(
                atPath: path + "/" + WorkDirectory.markerName, contents: Data("4194305 1\n".utf8))
        }
        defer { [kept, dropped].forEach { WorkDirectory.removeTree($0) } }
        WorkDirectory(root: kept).keep()
        let removed = WorkDirectory.sweep(ownerFilter: { $0 == 4_194_305 })
        XCTAssertEqual(removed, [dropped])
        XCTAssertTrue(FileManager.default.fileExists(atPath: kept + "/work"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dropped))
    }

    func testKeptWorkDirectoryIsInTheResultAndTheLine() throws {
        var r = failing()
        r.workDir = "/tmp/ghostrun-1-1-abc/work"
        XCTAssertTrue(TerminalReport.line(for: r, color: false).contains("work kept in /tmp/ghostrun-1-1-abc/work"))
        let text = String(decoding: try JSONReport.encode(RunFile(ghostrun: "0.3.0", host: host, results: [r])),
                          as: UTF8.self)
        XCTAssertTrue(text.contains("\"work_dir\" : \"/tmp/ghostrun-1-1-abc/work\""), text)
    }

    // MARK: 11: snake_case evidence, old run files

    func testEvidenceKeysAreSnakeCase() throws {
        var r = failing()
        r.evidence.denials = [r.evidence.firstDenial!]
        r.evidence.denials[0].syscallNumber = 434
        r.evidence.denials[0].rule = "scenario.yaml:14"
        r.evidence.cgroup = CgroupObservation(
            path: "/cg", extraPaths: ["/cg1"], frozenSeen: true, events: [CgroupEvent(timeMs: 3, event: "frozen")],
            pidsMaxHits: 1, oomKills: 0)
        var p = Recorded.process("go", pid: 10, exited: true, seccomp: 2)
        p.stateChanges = [StateChange(timeMs: 5, state: "S", wchan: nil)]
        r.evidence.processes = [ProcessEvidence(p)]
        let data = try JSONReport.encode(RunFile(ghostrun: "0.3.0", host: host, results: [r]))
        var keys = Set<String>()
        func walk(_ value: Any) {
            if let object = value as? [String: Any] {
                for (key, inner) in object {
                    keys.insert(key)
                    walk(inner)
                }
            } else if let array = value as? [Any] {
                array.forEach(walk)
            }
        }
        walk(try JSONSerialization.jsonObject(with: data))
        // The contract's /proc/PID/status names keep the kernel's spelling.
        let procNames: Set = ["CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters",
                              "Threads"]
        let camel = keys.subtracting(procNames).filter { $0.contains(where: \.isUppercase) }
        XCTAssertEqual(camel, [], "camelCase keys in a run file")
        for key in ["time_ms", "syscall_number", "extra_paths", "frozen_seen", "pids_max_hits", "oom_kills", "rule",
                    "errno"] {
            XCTAssertTrue(keys.contains(key), key)
        }
    }

    func testOldRunFileWithCamelCaseEvidenceStillReads() throws {
        // Written by ghostrun 0.3 (before snake_case evidence): `timeMs`, `syscallNumber`, `frozenSeen`, ...
        let path = repositoryRoot + "/Tests/Recorded/run-file-0.3-camel-evidence.json"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("\"syscallNumber\""))
        let file = try JSONReport.decode(data)
        XCTAssertEqual(file.results.count, 2)
        let trap = try XCTUnwrap(file.results.first { $0.name == "pidfd-open-trap" })
        let denial = try XCTUnwrap(trap.evidence.firstDenial)
        XCTAssertEqual(denial.syscall, "pidfd_open")
        XCTAssertEqual(denial.syscallNumber, 434)
        XCTAssertGreaterThan(denial.timeMs, 0)
        XCTAssertNotNil(trap.evidence.cgroup?.path)
        // merge reads it too, and writes it back in the new style.
        let merged = try RunFileMerge.merge([(path, file)])
        let text = String(decoding: try JSONReport.encode(merged), as: UTF8.self)
        XCTAssertTrue(text.contains("\"syscall_number\" : 434"), text)
        XCTAssertFalse(text.contains("syscallNumber"))
    }

    // MARK: 9: Markdown as a PR comment

    func testMarkdownHeadlineFailuresSkipsAndDurations() {
        let md = MarkdownReport.render(runFile())
        XCTAssertTrue(md.contains("**❌ 1 failed · ✅ 1 passed · 2 skipped · 0 harness errors · 4 results in 3m12s**"),
                      md)
        XCTAssertTrue(md.contains("| scenario | go | expected | got | first diagnostic | first denial | duration |"), md)
        XCTAssertTrue(md.contains("| pidfd-trap | 1.23.4 | crash | ok: stderr: expected /SIGSYS/, got \"a \\| b\" |"),
                      md)
        XCTAssertTrue(md.contains("pidfd_open (errno EPERM) in go | 4.9s |"), md)
        XCTAssertTrue(md.contains("&lt;b&gt;bold&lt;/b&gt;"), "no HTML from the target's output: \(md)")
        XCTAssertTrue(md.contains("## Skipped"), md)
        XCTAssertTrue(md.contains("| freeze | 1.23.4 | no cgroup freezer |"), md)
        XCTAssertTrue(md.contains("## Differs across toolchains"), md)
        XCTAssertTrue(md.contains("- **pidfd-trap**: go 1.19.8: crash, go 1.23.4: ok"), md)
    }

    /// Renders the report with markdown-it-py (CommonMark with GFM tables, installed by scripts/bootstrap.sh) and
    /// checks the tables a PR comment would show: their headers and that every row has the header's cells.
    func testMarkdownRendersAsTables() throws {
        let python = "/usr/bin/env"
        let probe = try runPython(python, ["python3", "-c", "import markdown_it"], input: "")
        try requireHost(probe.status == 0, "needs markdown-it-py (scripts/bootstrap.sh installs it)")
        let script = """
            import json, sys
            from markdown_it import MarkdownIt
            tokens = MarkdownIt("commonmark").enable("table").parse(sys.stdin.read())
            tables, rows, row, cell, inline = [], None, None, None, None
            for t in tokens:
                if t.type == "table_open": rows = []
                elif t.type == "tr_open": row = []
                elif t.type in ("th_open", "td_open"): cell = ""
                elif t.type == "inline" and cell is not None: cell = t.content
                elif t.type in ("th_close", "td_close"): row.append(cell); cell = None
                elif t.type == "tr_close": rows.append(row)
                elif t.type == "table_close": tables.append(rows)
            print(json.dumps(tables))
            """
        let md = MarkdownReport.render(runFile())
        let result = try runPython(python, ["python3", "-c", script], input: md)
        XCTAssertEqual(result.status, 0, result.output)
        let tables = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [[[String]]], result.output)
        XCTAssertEqual(tables.count, 3, "failures, skips, matrix: \(tables)")
        for table in tables {
            for row in table { XCTAssertEqual(row.count, table[0].count, "\(row) in \(table)") }
        }
        XCTAssertEqual(tables[0][0], ["scenario", "go", "expected", "got", "first diagnostic", "first denial",
                                      "duration"])
        XCTAssertEqual(tables[0].count, 2, "one row per failure")
        XCTAssertEqual(tables[0][1][3], "ok: stderr: expected /SIGSYS/, got \"a | b\"", "the pipe stays inside its cell")
        XCTAssertEqual(tables[1][0], ["scenario", "go", "reason"])
        XCTAssertEqual(tables[1].count, 3)
        XCTAssertEqual(tables[2][0], ["scenario", "go 1.19.8", "go 1.23.4"])
    }

    private func runPython(_ executable: String, _ arguments: [String], input: String) throws
        -> (status: Int32, output: String)
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stdout
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    // MARK: 8: check predicts host skips without creating a cgroup

    func testCheckPredictsCgroupHostSkips() {
        func host(kernel: (Int, Int), controllers: String?) -> PlanHost {
            PlanHost(environment: [:], kernel: kernel, availableCapabilities: [],
                     handOverDescriptor: -1, readFile: { _ in controllers }, lookUpExecutable: { _, _ in nil })
        }
        let v1NoPids = CgroupHierarchies(v2: nil, v1: ["freezer": "/sys/fs/cgroup/freezer"])
        XCTAssertEqual(
            MatrixPreview.missingCgroupFeature(CgroupRequest(pidsMax: 10), hierarchies: v1NoPids,
                                               host: host(kernel: (6, 1), controllers: nil)),
            "cgroup.pids_max needs the pids controller (neither cgroup v2 nor v1 offers it)")
        XCTAssertNil(MatrixPreview.missingCgroupFeature(CgroupRequest(), hierarchies: v1NoPids,
                                                        host: host(kernel: (6, 1), controllers: nil)))
        let v2 = CgroupHierarchies(v2: "/sys/fs/cgroup", v1: [:])
        XCTAssertNil(MatrixPreview.missingCgroupFeature(CgroupRequest(pidsMax: 10), hierarchies: v2,
                                                        host: host(kernel: (6, 1), controllers: "cpu pids memory\n")))
        XCTAssertEqual(
            MatrixPreview.missingCgroupFeature(CgroupRequest(memoryMax: 1 << 30), hierarchies: v2,
                                               host: host(kernel: (6, 1), controllers: "cpu pids\n")),
            "cgroup.memory_max needs the memory controller (neither cgroup v2 nor v1 offers it)")
        XCTAssertEqual(
            MatrixPreview.missingCgroupFeature(CgroupRequest(), hierarchies: CgroupHierarchies(v2: nil, v1: [:]),
                                               host: host(kernel: (6, 1), controllers: nil)),
            "no cgroup hierarchy is mounted (checked /proc/self/mountinfo)")
    }
}
