import Foundation
import XCTest

/// Issue 11 end to end: `check`, reports on stdout, `--events`, `--keep-work`, control bytes on the terminal.
extension CLITests {
    // MARK: 8: check, matrix --list --shard

    func testCheckPrintsTheMatrixWithSkipsAndStartsNothing() throws {
        let directory = write("check/a.yaml", "name: check-any\nrun: [go, version]\nexpect:\n  outcome: ok\n")
        _ = write("check/b.yaml", "name: check-old\ngo: \"< 1.2\"\nrun: [go, version]\n")
        let tmp = temporary + "/tmp"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let result = try ghostrun(["check", (directory as NSString).deletingLastPathComponent, "--go-version", "all"],
                                  environment: ["GHOSTRUN_TMPDIR": tmp])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let runs = lines.filter { $0.hasPrefix("RUN   check-any@") }
        let skips = lines.filter { $0.hasPrefix("SKIP  check-old@") }
        XCTAssertFalse(runs.isEmpty, result.stdout)
        XCTAssertEqual(runs.count, skips.count, "one entry per toolchain each: \(result.stdout)")
        XCTAssertTrue(runs.allSatisfy { $0.contains("a.yaml:1") && $0.hasSuffix("expect ok") }, result.stdout)
        XCTAssertTrue(skips.allSatisfy { $0.contains("does not satisfy go: \"< 1.2\" (go: constraint)") }, result.stdout)
        XCTAssertEqual(lines.last, "\(runs.count * 2) entries: \(runs.count) would run, \(skips.count) skipped")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp), [], "no work directory created")

        let bad = write("check-bad/bad.yaml", "name: bad\nrun: [go, version]\nexpect:\n  outcom: ok\n")
        let refused = try ghostrun(["check", bad], environment: ["GHOSTRUN_TMPDIR": tmp])
        XCTAssertEqual(refused.status, 2, refused.stdout + refused.stderr)
        XCTAssertTrue(refused.stderr.contains("bad.yaml:4"), refused.stderr)
        XCTAssertEqual(refused.stdout, "")
    }

    func testMatrixListTakesAShard() throws {
        let all = try ghostrun(["matrix", "--list", "scenarios/seccomp", "--go-version", "all"])
        XCTAssertEqual(all.status, 0, all.stderr)
        let entries = all.stdout.split(separator: "\n").map(String.init)
        var union: [String] = []
        for index in 1...3 {
            let shard = try ghostrun(["matrix", "--list", "--shard", "\(index)/3", "scenarios/seccomp",
                                      "--go-version", "all"])
            XCTAssertEqual(shard.status, 0, shard.stderr)
            let listed = shard.stdout.split(separator: "\n").map(String.init)
            XCTAssertLessThan(listed.count, entries.count)
            union += listed
        }
        XCTAssertEqual(union.sorted(), entries.sorted(), "the shards are disjoint and complete")
        XCTAssertEqual(try ghostrun(["matrix", "--github", "--shard", "1/2", "scenarios/seccomp"]).status, 2)
        XCTAssertEqual(try ghostrun(["matrix", "--list", "--shard", "3/2", "scenarios/seccomp"]).status, 2)
    }

    // MARK: 7: reports on stdout, --events

    func testReportsOnStandardOutputAndEvents() throws {
        let path = write("stdout/v.yaml", "name: stdout-version\nrun: [go, version]\nexpect:\n  outcome: ok\n")
        let json = try ghostrun(["run", path, "--json", "-"])
        XCTAssertEqual(json.status, 0, json.stdout + json.stderr)
        let object = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], "stdout is only the JSON")
        XCTAssertEqual((object["results"] as? [Any])?.count, 1)
        XCTAssertTrue(json.stderr.contains("PASS  stdout-version@"), "result lines go to stderr: \(json.stderr)")
        XCTAssertTrue(json.stderr.contains("1 result"), json.stderr)

        let junit = try ghostrun(["run", path, "--junit", "-"])
        XCTAssertTrue(junit.stdout.hasPrefix("<?xml"), junit.stdout)
        let markdown = try ghostrun(["run", path, "--markdown", "-"])
        XCTAssertTrue(markdown.stdout.hasPrefix("# ghostrun results"), markdown.stdout)

        let events = try ghostrun(["run", path, path, "--events", "-", "--go-version", "all"])
        XCTAssertEqual(events.status, 0, events.stdout + events.stderr)
        let lines = events.stdout.split(separator: "\n")
        XCTAssertGreaterThan(lines.count, 1, events.stdout)
        for line in lines {
            let result = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(result["name"] as? String, "stdout-version")
            XCTAssertEqual(result["outcome"] as? String, "ok")
        }
        let file = temporary + "/events.jsonl"
        let toFile = try ghostrun(["run", path, "--events", file])
        XCTAssertTrue(toFile.stdout.contains("PASS  stdout-version@"), toFile.stdout)
        XCTAssertEqual(try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").count, 1)

        let both = try ghostrun(["run", path, "--json", "-", "--events", "-"])
        XCTAssertEqual(both.status, 2, "two reports cannot share stdout")
        XCTAssertTrue(both.stderr.contains("--json and --events"), both.stderr)
    }

    // MARK: 6: --keep-work

    func testKeepWorkKeepsTheDirectoryAfterGhostrunExitsAndPrintsIt() throws {
        try requireRoot()
        let path = write("keep/k.yaml", """
            name: keep-work
            run: [sh, -c, "echo kept > $WORK/marker.txt"]
            expect:
              outcome: ok
            """)
        let tmp = temporary + "/tmp"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let result = try ghostrun(["run", path, "--keep-work", "--json", temporary + "/keep.json"],
                                  environment: ["GHOSTRUN_TMPDIR": tmp])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        let work = try XCTUnwrap(result.stdout.range(of: "work kept in ").map {
            String(result.stdout[$0.upperBound...].prefix { $0 != " " && $0 != "\n" })
        }, result.stdout)
        XCTAssertTrue(work.hasPrefix(tmp + "/ghostrun-"), work)
        // The watchdog sweeps this ghostrun's leftovers once it exits, and the next run sweeps dead ones.
        _ = try ghostrun(["run", write("keep/other.yaml", "name: other\nrun: [go, version]\n")],
                         environment: ["GHOSTRUN_TMPDIR": tmp])
        usleep(500_000)
        XCTAssertEqual(try String(contentsOfFile: work + "/marker.txt", encoding: .utf8), "kept\n")
        let file = try String(contentsOfFile: temporary + "/keep.json", encoding: .utf8)
        XCTAssertTrue(file.contains("\"work_dir\" : \"\(work)\""), file)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp).count, 1, "only the kept one")

        let plain = try ghostrun(["run", path], environment: ["GHOSTRUN_TMPDIR": tmp])
        XCTAssertFalse(plain.stdout.contains("work kept"), plain.stdout)
        XCTAssertFalse(plain.stdout.contains("work_dir"))
    }

    // MARK: 10: control bytes

    func testTargetOutputNeverReachesTheTerminalRaw() throws {
        try requireRoot()
        let path = write("ctl/c.yaml", """
            name: ctl-bytes
            run: [sh, -c, "printf '\\\\033]0;pwned\\\\007\\\\033[2J\\\\001boom\\\\302\\\\233x\\\\n' >&2; exit 3"]
            expect:
              outcome: ok
            """)
        let result = try ghostrun(["run", path])
        XCTAssertEqual(result.status, 1, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("\\x1b]0;pwned\\x07\\x1b[2J\\x01boom\\x9bx"), result.stdout)
        XCTAssertFalse(result.stdout.unicodeScalars.contains {
            ($0.value < 0x20 && $0.value != 0x0A) || (0x7F...0x9F).contains($0.value)
        }, result.stdout.debugDescription)
    }
}
