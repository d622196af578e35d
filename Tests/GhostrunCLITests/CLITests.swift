import Foundation
import XCTest

@testable import GhostrunKit

/// End to end: the built `ghostrun` binary, its output and exit status.
final class CLITests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    var binary: String {
        ProcessInfo.processInfo.environment["GHOSTRUN_BINARY"] ?? CLITests.root + "/.build/debug/ghostrun"
    }
    var temporary: String!

    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary), "build ghostrun first (\(binary))")
        temporary = NSTemporaryDirectory() + "ghostrun-cli-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
    }

    override func tearDown() {
        if let temporary { try? FileManager.default.removeItem(atPath: temporary) }
    }

    func requireRoot() throws {
        if geteuid() == 0 { return }
        if ProcessInfo.processInfo.environment["GHOSTRUN_REQUIRE_HOST"] == "1" { XCTFail("needs root") }
        throw XCTSkip("needs root")
    }

    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    @discardableResult
    func ghostrun(_ arguments: [String], environment extra: [String: String] = [:], executable: String? = nil,
                  timeout: TimeInterval = 240) throws -> Outcome
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable ?? binary)
        process.arguments = arguments
        process.environment = CLITests.environment(extra)
        process.currentDirectoryURL = URL(fileURLWithPath: CLITests.root)
        let out = temporary + "/stdout-\(UUID().uuidString)", err = temporary + "/stderr-\(UUID().uuidString)"
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            XCTFail("ghostrun \(arguments) did not finish in \(timeout) s")
        }
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus,
                       stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                       stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    /// The test's environment without the CI variables ghostrun reacts to (a GitLab job would otherwise shard
    /// every test's run), plus `extra`.
    static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["GHOSTRUN_TOOLCHAINS"] = CLITests.root + "/.toolchains"
        environment["GHOSTRUN_REQUIRE_HOST"] = nil
        let ciVariables = [
            "CI_NODE_INDEX", "CI_NODE_TOTAL", "JOB_COMPLETION_INDEX", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY",
        ]
        for name in ciVariables {
            environment[name] = nil
        }
        return environment.merging(extra) { $1 }
    }

    func write(_ name: String, _ text: String) -> String {
        let path = temporary + "/" + name
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return path
    }

    // MARK: bad input: exit 2, file:line:key, nothing started

    func testUnknownKeyIsExitTwoWithFileLineAndKey() throws {
        let path = write("bad.yaml", """
            name: bad
            run: [go, version]
            sandbox:
              seccomp:
                rules:
                  - syscalls: [getppid]
                    acton: trap
            """)
        let result = try ghostrun(["run", path])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderr.contains("bad.yaml:7"), result.stderr)
        XCTAssertTrue(result.stderr.contains("acton"), result.stderr)
        XCTAssertTrue(result.stdout.isEmpty, "nothing may run: \(result.stdout)")
    }

    func testUnknownSyscallCapabilityAndErrnoAreExitTwo() throws {
        for (key, yaml, line) in [
            ("syscall", "sandbox:\n  seccomp:\n    rules:\n      - {syscalls: [pidfd_opn], action: trap}\n", 6),
            ("capability", "sandbox:\n  capabilities:\n    drop: [CAP_NOPE]\n", 5),
            ("errno", "sandbox:\n  seccomp:\n    rules:\n      - {syscalls: [openat], action: errno, errno: ENOPE}\n", 6),
            ("rlimit", "sandbox:\n  rlimits:\n    files: 3\n", 5),
            ("duration", "timeout: 5 parsecs\n", 3),
        ] {
            let path = write("bad-\(key).yaml", "name: bad-\(key)\nrun: [go, version]\n" + yaml)
            let result = try ghostrun(["run", path])
            XCTAssertEqual(result.status, 2, "\(key): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("bad-\(key).yaml:\(line)"), "\(key): \(result.stderr)")
        }
    }

    func testMalformedYamlAndMissingToolchainAreExitTwo() throws {
        let malformed = write("malformed.yaml", "name: x\nrun: [go, version\n")
        let result = try ghostrun(["run", malformed])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderr.contains("malformed.yaml"), result.stderr)

        let good = write("good.yaml", "name: good\nrun: [go, version]\n")
        let missing = try ghostrun(["run", good, "--go-version", "1.9"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("1.9"), missing.stderr)
        let notThere = try ghostrun(["run", good, "--go", "/nonexistent/go"])
        XCTAssertEqual(notThere.status, 2)
    }

    // MARK: runs and exit codes

    func testPassingAndFailingExpectationsGiveZeroAndOne() throws {
        try requireRoot()
        let passing = write("pass.yaml", """
            name: version-ok
            run: [go, version]
            success: {stdout: "go version go1"}
            expect: {outcome: ok, stdout: "go1\\\\."}
            """)
        let ok = try ghostrun(["run", passing, "--go-version", "all", "--json", temporary + "/r.json",
                               "--junit", temporary + "/r.xml", "--markdown", temporary + "/r.md"])
        XCTAssertEqual(ok.status, 0, ok.stdout + ok.stderr)
        XCTAssertTrue(ok.stdout.contains("version-ok@"), ok.stdout)
        let data = try Data(contentsOf: URL(fileURLWithPath: temporary + "/r.json"))
        let runFile = try JSONDecoder().decode(RunFile.self, from: data)
        XCTAssertFalse(runFile.results.isEmpty)
        XCTAssertTrue(runFile.results.allSatisfy { $0.outcome == .ok && $0.passed == true })
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let first = (json["results"] as! [[String: Any]])[0]
        for key in ["name", "go_version", "outcome", "passed", "expected", "exit_code", "signal", "hang_kind",
                    "duration_ms", "stderr_tail", "stdout_tail", "evidence"] {
            XCTAssertTrue(first.keys.contains(key), "result lacks \(key)")
        }
        let evidence = first["evidence"] as! [String: Any]
        for key in ["processes", "denials", "first_denial", "cgroup"] {
            XCTAssertTrue(evidence.keys.contains(key), "evidence lacks \(key)")
        }
        XCTAssertTrue(try String(contentsOfFile: temporary + "/r.xml", encoding: .utf8).contains("<testcase"))
        XCTAssertTrue(try String(contentsOfFile: temporary + "/r.md", encoding: .utf8).contains("version-ok"))

        let failing = write("fail.yaml", "name: version-fail\nrun: [go, version]\nexpect: {outcome: crash}\n")
        let bad = try ghostrun(["run", failing])
        XCTAssertEqual(bad.status, 1, bad.stdout + bad.stderr)
        XCTAssertTrue(bad.stdout.contains("crash"), bad.stdout)
    }

    func testDoctorAndInspect() throws {
        try requireRoot()
        let doctor = try ghostrun(["doctor"])
        XCTAssertEqual(doctor.status, 0, doctor.stdout)
        XCTAssertTrue(doctor.stdout.contains("cgroup v2"), doctor.stdout)
        XCTAssertTrue(doctor.stdout.contains("go toolchains"), doctor.stdout)

        let inspect = try ghostrun(["inspect", String(getpid()), "--json"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("\(getpid())"), inspect.stdout)
        let gone = try ghostrun(["inspect", "4194303"])
        XCTAssertEqual(gone.status, 2, gone.stderr)
    }

    // MARK: nothing left behind

    private func leftovers(owner: Int32) -> [String] {
        var found: [String] = []
        let h = CgroupHierarchies.discover()
        for root in [h.v2].compactMap({ $0 }) + h.v1.values {
            let parent = root + "/ghostrun"
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
            where entry.hasPrefix("r\(owner)-") {
                found.append(parent + "/" + entry)
            }
        }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: WorkDirectory.base)) ?? []
        where entry.hasPrefix("ghostrun-\(owner)-") {
            found.append(WorkDirectory.base + "/" + entry)
        }
        return found
    }

    private var frozenScenario: String {
        write("frozen.yaml", """
            name: frozen-long
            run: [go, version]
            hang_after: 60s
            timeout: 60s
            sandbox:
              cgroup:
                freeze: {after: 0ms}
            """)
    }

    private func startGhostrun(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        var environment = CLITests.environment()
        environment["GHOSTRUN_REQUIRE_HOST"] = ProcessInfo.processInfo.environment["GHOSTRUN_REQUIRE_HOST"]
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Waits until the run's cgroup exists (the go command is running, frozen).
    private func waitForRun(owner: Int32) -> Bool {
        eventually(15) { self.leftovers(owner: owner).contains { $0.contains("/ghostrun/r") } }
    }

    func testTimeoutLeavesNothing() throws {
        try requireRoot()
        let path = write("timeout.yaml", """
            name: timeout
            run: [go, version]
            timeout: 1s
            sandbox:
              cgroup:
                freeze: {after: 0ms}
            """)
        let process = try startGhostrun(["run", path])
        let pid = process.processIdentifier
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "nothing expected: exit 0")
        XCTAssertEqual(leftovers(owner: pid), [])
    }

    func testSigintStopsTheRunAndLeavesNothing() throws {
        try requireRoot()
        let process = try startGhostrun(["run", frozenScenario])
        let pid = process.processIdentifier
        XCTAssertTrue(waitForRun(owner: pid), "the run never started")
        kill(pid, SIGINT)
        let deadline = Date().addingTimeInterval(15)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        XCTAssertFalse(process.isRunning, "ghostrun ignored SIGINT")
        XCTAssertEqual(process.terminationStatus, 130)
        XCTAssertTrue(eventually(5) { self.leftovers(owner: pid).isEmpty }, "\(leftovers(owner: pid))")
    }

    func testSigintWritesTheReportsAndMarksTheCutShortRunInterrupted() throws {
        try requireRoot()
        let json = temporary + "/interrupted.json", junit = temporary + "/interrupted.xml"
        let process = try startGhostrun(["run", frozenScenario, "--json", json, "--junit", junit])
        let pid = process.processIdentifier
        XCTAssertTrue(waitForRun(owner: pid), "the run never started")
        kill(pid, SIGINT)
        let deadline = Date().addingTimeInterval(15)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        XCTAssertFalse(process.isRunning, "ghostrun ignored SIGINT")
        XCTAssertEqual(process.terminationStatus, 130)
        let data = try Data(contentsOf: URL(fileURLWithPath: json))
        let results = try XCTUnwrap(
            (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["results"] as? [[String: Any]])
        XCTAssertEqual(results.count, 1)
        XCTAssertEqual(results.first?["name"] as? String, "frozen-long")
        XCTAssertEqual(results.first?["interrupted"] as? Bool, true, "\(results)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: junit))
        XCTAssertTrue(eventually(5) { self.leftovers(owner: pid).isEmpty }, "\(leftovers(owner: pid))")
    }

    func testSigkillLeavesNothingOnceTheReaperOrTheNextRunSweeps() throws {
        try requireRoot()
        let process = try startGhostrun(["run", frozenScenario])
        let pid = process.processIdentifier
        XCTAssertTrue(waitForRun(owner: pid), "the run never started")
        let runPids = leftovers(owner: pid).filter { $0.contains("/ghostrun/r") }.flatMap {
            ((try? String(contentsOfFile: $0 + "/cgroup.procs", encoding: .utf8)) ?? "").split(separator: "\n")
        }
        kill(pid, SIGKILL)
        process.waitUntilExit()
        // The reaper sweeps at once; a new run would sweep too.
        XCTAssertTrue(eventually(10) { self.leftovers(owner: pid).isEmpty }, "\(leftovers(owner: pid))")
        for runPid in runPids {
            XCTAssertFalse(FileManager.default.fileExists(atPath: "/proc/\(runPid)/status")
                && !((try? String(contentsOfFile: "/proc/\(runPid)/status", encoding: .utf8)) ?? "").contains("State:\tZ"),
                "process \(runPid) survived")
        }
        let next = write("next.yaml", "name: next\nrun: [go, version]\n")
        XCTAssertEqual(try ghostrun(["run", next]).status, 0)
        XCTAssertEqual(leftovers(owner: pid), [])
    }
}

// MARK: - CI: matrix, shards, merge, GitHub

extension CLITests {
    private func threeScenarios() -> [String] {
        ["gamma", "alpha", "beta"].map { write("ci/\($0).yaml", "name: \($0)\nrun: [go, version]\n") }
    }

    func testMatrixListsEntriesAndPrintsGitHubShards() throws {
        let paths = threeScenarios()
        let list = try ghostrun(["matrix", "--list", "--go-version", "all"] + paths)
        XCTAssertEqual(list.status, 0, list.stderr)
        let lines = list.stdout.split(separator: "\n").map(String.init)
        let versions = Set(lines.map { $0.split(separator: "@")[1] })
        XCTAssertFalse(versions.isEmpty)
        XCTAssertEqual(lines.count, 3 * versions.count)
        XCTAssertEqual(lines.first.map { String($0.prefix(6)) }, "alpha@", "sorted by scenario name")

        let github = try ghostrun(["matrix", "--github", "--shards", "2", "--go-version", "all"] + paths)
        XCTAssertEqual(github.status, 0, github.stderr)
        XCTAssertEqual(github.stdout, "{\"include\":[{\"shard\":\"1/2\"},{\"shard\":\"2/2\"}]}\n")

        let byDefault = try ghostrun(["matrix", "--github", "--go-version", "all"] + paths)
        let expected = (lines.count + 7) / 8
        let shards = (1...expected).map { "{\"shard\":\"\($0)/\(expected)\"}" }
        XCTAssertEqual(byDefault.stdout, "{\"include\":[" + shards.joined(separator: ",") + "]}\n")

        let tooMany = try ghostrun(["matrix", "--github", "--shards", "257"] + paths)
        XCTAssertEqual(tooMany.status, 2)
        XCTAssertTrue(tooMany.stderr.contains("256"), tooMany.stderr)
        XCTAssertTrue(tooMany.stdout.isEmpty)

        let bad = write("ci-bad/bad.yaml", "name: bad\nrun: [go, version]\nsandbx: {}\n")
        let badRun = try ghostrun(["matrix", "--github", bad])
        XCTAssertEqual(badRun.status, 2)
        XCTAssertTrue(badRun.stderr.contains("bad.yaml:3"), badRun.stderr)
    }

    func testRunTakesItsShardFromCIVariables() throws {
        try requireRoot()
        let paths = threeScenarios()
        func names(_ environment: [String: String], _ extra: [String] = []) throws -> [String] {
            let json = temporary + "/shard-\(UUID().uuidString).json"
            let result = try ghostrun(["run"] + paths + ["--json", json] + extra, environment: environment)
            XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
            let file = try JSONReport.decode(Data(contentsOf: URL(fileURLWithPath: json)))
            return file.results.map(\.name)
        }
        XCTAssertEqual(try names(["CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "3"]), ["beta"])
        XCTAssertEqual(try names(["JOB_COMPLETION_INDEX": "2"], ["--shard-count", "3"]), ["gamma"])
        XCTAssertEqual(try names(["CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "3"], ["--shard", "1/3"]), ["alpha"])

        // Timings: gamma was slow, so with two shards it runs alone.
        let version = try ghostrun(["matrix", "--list"] + paths).stdout.split(separator: "\n")[0]
            .split(separator: "@")[1]
        let host = HostFacts(kernel: "", libseccomp: "", cgroup: "", ghostrunVersion: "", hostname: "")
        let previous = RunFile(ghostrun: GhostrunVersion.current, host: host, results: [
            ("alpha", 100), ("beta", 100), ("gamma", 5000),
        ].map { name, ms in
            var r = RunResult(name: name, goVersion: String(version), outcome: .ok, summary: "")
            r.durationMs = ms
            return r
        })
        let timings = temporary + "/timings.json"
        try JSONReport.encode(previous).write(to: URL(fileURLWithPath: timings))
        XCTAssertEqual(try names([:], ["--shard", "1/2", "--timings", timings]), ["gamma"])
        XCTAssertEqual(try names([:], ["--shard", "2/2", "--timings", timings]), ["alpha", "beta"])

        let missingCount = try ghostrun(["run"] + paths, environment: ["JOB_COMPLETION_INDEX": "0"])
        XCTAssertEqual(missingCount.status, 2)
        XCTAssertTrue(missingCount.stderr.contains("--shard-count"), missingCount.stderr)
    }

    func testMergeCombinesShardsReportsToGitHubAndRefusesConflicts() throws {
        let host = HostFacts(kernel: "6.1", libseccomp: "2.5.4", cgroup: "v2", ghostrunVersion: GhostrunVersion.current,
                             hostname: "ci")
        func result(_ name: String, _ version: String, passed: Bool) -> RunResult {
            var r = RunResult(name: name, goVersion: version, outcome: passed ? .ok : .crash, summary: "")
            r.passed = passed
            r.scenarioFile = CLITests.root + "/scenarios/\(name).yaml"
            r.scenarioLine = 1
            if !passed { r.failures = ["outcome: expected ok, got crash"] }
            return r
        }
        func save(_ name: String, _ file: RunFile) throws -> String {
            let path = temporary + "/" + name
            try JSONReport.encode(file).write(to: URL(fileURLWithPath: path))
            return path
        }
        let one = try save("shard-1.json", RunFile(ghostrun: GhostrunVersion.current, host: host,
                                                   results: [result("b", "1.23.4", passed: true)]))
        let two = try save("shard-2.json", RunFile(ghostrun: GhostrunVersion.current, host: host,
                                                   results: [result("a", "1.23.4", passed: false),
                                                             result("a", "1.21.13", passed: true)]))
        let json = temporary + "/merged.json", junit = temporary + "/merged.xml", markdown = temporary + "/merged.md"
        let summary = temporary + "/step-summary.md"
        let merged = try ghostrun(["merge", one, two, "--json", json, "--junit", junit, "--markdown", markdown],
                                  environment: ["GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": summary,
                                                "GITHUB_WORKSPACE": CLITests.root])
        XCTAssertEqual(merged.status, 1, merged.stdout + merged.stderr)
        XCTAssertTrue(merged.stdout.contains(
            "::error file=scenarios/a.yaml,line=1,title=a@1.23.4::outcome: expected ok, got crash"), merged.stdout)
        XCTAssertTrue(merged.stdout.contains("3 results"), merged.stdout)
        let file = try JSONReport.decode(Data(contentsOf: URL(fileURLWithPath: json)))
        XCTAssertEqual(file.results.map { "\($0.name)@\($0.goVersion)" }, ["a@1.21.13", "a@1.23.4", "b@1.23.4"])
        XCTAssertTrue(try String(contentsOfFile: junit, encoding: .utf8).contains("<testcase"))
        XCTAssertTrue(try String(contentsOfFile: markdown, encoding: .utf8).contains("# ghostrun results"))
        XCTAssertTrue(try String(contentsOfFile: summary, encoding: .utf8).contains("# ghostrun results"))

        let passing = try ghostrun(["merge", one])
        XCTAssertEqual(passing.status, 0, passing.stdout + passing.stderr)
        XCTAssertFalse(passing.stdout.contains("::error"), "no annotations outside GitHub Actions")

        let duplicate = try ghostrun(["merge", one, two, one])
        XCTAssertEqual(duplicate.status, 2)
        XCTAssertTrue(duplicate.stderr.contains("b@1.23.4") && duplicate.stderr.contains("shard-1.json"),
                      duplicate.stderr)

        let other = try save("other.json", RunFile(ghostrun: "9.9.9", host: host, results: []))
        let mixed = try ghostrun(["merge", one, other])
        XCTAssertEqual(mixed.status, 2)
        XCTAssertTrue(mixed.stderr.contains("other.json") && mixed.stderr.contains("shard-1.json"), mixed.stderr)

        let garbage = write("garbage.json", "{")
        XCTAssertEqual(try ghostrun(["merge", garbage]).status, 2)
    }

    func testShardRunFilesMergeOnlyWhenComplete() throws {
        try requireRoot()
        _ = write("shards/a.yaml", "name: shard-a\nrun: [go, version]\nexpect: {outcome: ok}\n")
        _ = write("shards/b.yaml", "name: shard-b\nrun: [go, version]\nexpect: {outcome: ok}\n")
        _ = write("shards/c.yaml", "name: shard-c\nrun: [go, version]\nexpect: {outcome: ok}\n")
        let one = temporary + "/shard-1.json", two = temporary + "/shard-2.json"
        for (index, file) in [(1, one), (2, two)] {
            let run = try ghostrun(["run", temporary + "/shards", "--shard", "\(index)/2", "--json", file])
            XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        }
        let record = try JSONReport.decode(Data(contentsOf: URL(fileURLWithPath: one))).matrix
        XCTAssertEqual(record?.shard, "1/2")
        XCTAssertEqual(record?.size, 3)

        let complete = try ghostrun(["merge", one, two, "--json", temporary + "/all.json"])
        XCTAssertEqual(complete.status, 0, complete.stdout + complete.stderr)
        XCTAssertTrue(complete.stdout.contains("3 results"), complete.stdout)

        let missing = try ghostrun(["merge", one])
        XCTAssertEqual(missing.status, 2, missing.stdout + missing.stderr)
        XCTAssertTrue(missing.stderr.contains("shard 2/2 of the matrix (3 entries) is missing"), missing.stderr)

        // A shard run against a different matrix (here: another --filter) is refused, naming the file.
        let other = temporary + "/other-2.json"
        XCTAssertEqual(
            try ghostrun(["run", temporary + "/shards", "--filter", "shard-[ab]", "--shard", "2/2", "--json", other])
                .status, 0)
        let mixed = try ghostrun(["merge", one, other])
        XCTAssertEqual(mixed.status, 2)
        XCTAssertTrue(mixed.stderr.contains("other-2.json") && mixed.stderr.contains("different matrix"), mixed.stderr)
    }

    func testSkipByGoConstraintStaysGreen() throws {
        try requireRoot()
        let constrained = write(
            "skip/constraint.yaml", "name: skip-constraint\ngo: \"<1.0\"\nrun: [go, version]\nexpect: {outcome: ok}\n")
        let result = try ghostrun(["run", constrained])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("skipped"), result.stdout)
    }

    func testGitHubAnnotationsFromRun() throws {
        try requireRoot()
        let failing = write("gh/fail.yaml", "name: gh-fail\nrun: [go, version]\nexpect: {outcome: crash}\n")
        let summary = temporary + "/run-summary.md"
        let result = try ghostrun(["run", failing], environment: ["GITHUB_ACTIONS": "true",
                                                                  "GITHUB_STEP_SUMMARY": summary])
        XCTAssertEqual(result.status, 1, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("::error file="), result.stdout)
        XCTAssertTrue(result.stdout.contains("fail.yaml,line=1,title=gh-fail@"), result.stdout)
        XCTAssertTrue(try String(contentsOfFile: summary, encoding: .utf8).contains("gh-fail"))
        XCTAssertFalse(result.stdout.contains("\r"), "no progress line when stdout is not a terminal")
    }

    func testProgressLineOnATerminal() throws {
        let script = "/usr/bin/script"
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: script), "needs script(1) for a pseudo-terminal")
        let path = write("tty/version.yaml", "name: tty-version\nrun: [go, version]\n")
        // script(1) gives ghostrun a pseudo-terminal as stdout and copies what it writes to ours.
        let result = try ghostrun(["-qec", "\(binary) run \(path)", "/dev/null"], executable: script)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("[1/1]"), result.stdout)
        XCTAssertTrue(result.stdout.contains("\r\u{1B}[K1 result"), "cleared before the summary: \(result.stdout)")
    }
}

func eventually(_ timeout: TimeInterval, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}
