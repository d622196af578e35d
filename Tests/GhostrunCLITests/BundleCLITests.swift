import Foundation
import XCTest

/// `ghostrun bundle` then `ghostrun run bug.txtar`: the same outcomes, from a private directory removed afterwards.
extension CLITests {
    func testBundleRoundTripsAScenarioWithAFixtureAndOneWithAProfileFile() throws {
        try requireRoot()
        let bundle = temporary + "/bug.txtar"
        let made = try ghostrun([
            "bundle", CLITests.root + "/scenarios/seccomp/clone3-enosys.yaml",
            CLITests.root + "/scenarios/profiles/docker-20.10.9.yaml", "--go-version", "1.21", "-o", bundle,
        ], timeout: 300)
        XCTAssertEqual(made.status, 0, made.stderr + made.stdout)
        let text = try String(contentsOfFile: bundle, encoding: .utf8)
        for section in ["-- seccomp/clone3-enosys.yaml --", "-- fixtures/hello/main.go --",
                        "-- profiles/docker/docker-v20.10.9.json --", "-- .ghostrun/results.json --"] {
            XCTAssertTrue(text.contains(section), "missing \(section)")
        }
        XCTAssertTrue(text.hasPrefix("ghostrun repro bundle"), String(text.prefix(200)))

        let before = Set((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? [])
        let rerun = try ghostrun(["run", bundle, "--go-version", "1.21"], timeout: 300)
        XCTAssertEqual(rerun.status, 0, rerun.stderr + rerun.stdout)
        XCTAssertTrue(rerun.stdout.contains("baseline the bundle's recorded results"), rerun.stdout)
        XCTAssertTrue(rerun.stdout.contains(": 0 changed, 0 new, 0 missing"), rerun.stdout)
        let after = Set((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? [])
        // Another ghostrun on the machine may be running meanwhile: only a tree whose owner (ghostrun-PID-...) has
        // exited is left behind.
        let leftovers = after.subtracting(before).filter { name in
            guard name.hasPrefix("ghostrun-"), let pid = Int32(name.split(separator: "-").dropFirst().first ?? "")
            else { return false }
            return kill(pid, 0) != 0
        }
        XCTAssertEqual(leftovers, [], "the extracted bundle was left behind")
    }

    func testABundleThatLeavesItsDirectoryIsBadInput() throws {
        let path = write("evil.txtar", "-- .ghostrun/scenarios --\ns.yaml\n-- s.yaml --\nname: s\nrun: [go, version]\n-- ../../etc/ghostrun-evil --\nx\n")
        let result = try ghostrun(["run", path])
        XCTAssertEqual(result.status, 2, result.stderr)
        XCTAssertTrue(result.stderr.contains("evil.txtar: `../../etc/ghostrun-evil` has an empty, `.` or `..` component"),
                      result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/etc/ghostrun-evil"))
    }
}
