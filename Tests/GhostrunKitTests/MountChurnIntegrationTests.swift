import Foundation
import XCTest

@testable import GhostrunKit

/// A host whose mount table changes while ghostrun starts a run (issue 18): another program's mount that goes away
/// between the plan's read of the table and the child's copy is skipped and listed, never a harness error; a mount
/// that appears in that window is not in the view. The host really changes: the test mounts and unmounts tmpfs
/// under a directory of its own, in the window a container engine's churn hit.
final class MountChurnIntegrationTests: XCTestCase {
    private var base = ""

    override func setUpWithError() throws {
        try requireRoot()
        base = "/tmp/ghostrun-churn-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
    }

    override func tearDown() {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] {
            umount2(base + "/" + entry, Int32(MNT_DETACH))
        }
        umount2(base, Int32(MNT_DETACH))
        try? FileManager.default.removeItem(atPath: base)
    }

    private func mountTmpfs(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard mount("tmpfs", path, "tmpfs", 0, "size=1m") == 0 else {
            throw XCTSkip("cannot mount a tmpfs at \(path): errno \(errno)")
        }
    }

    private func run(_ command: String, options: RunnerOptions) throws -> RunResult {
        var s = try scenario("name: churn\nrun: [sh, -c, '\(command)']\n")
        s.timeout = .seconds(20)
        let go = try TestToolchains.require(TestToolchains.all.first, "any go")
        return ScenarioRunner(options: options).run(s, toolchain: go)
    }

    func testAMountThatVanishesBeforeTheChildCopiesItIsSkippedAndListed() throws {
        // A mount with a submount whose directory goes too, as podman's `userdata/shm` does.
        let gone = base + "/container"
        try mountTmpfs(gone)
        try mountTmpfs(gone + "/shm")
        var options = RunnerOptions()
        options.hostMountTable = { [gone] in
            let table = HermeticRoot.currentMounts()
            // Another program removes its mounts and their directories after the read.
            umount2(gone + "/shm", Int32(MNT_DETACH))
            rmdir(gone + "/shm")
            umount2(gone, Int32(MNT_DETACH))
            rmdir(gone)
            return table
        }
        XCTAssertTrue(HermeticRoot.currentMounts().contains { $0.mountPoint == gone + "/shm" })
        let result = try run("echo alive", options: options)
        XCTAssertEqual(result.outcome, .ok, result.summary)
        XCTAssertEqual(result.stdoutTail.trimmingCharacters(in: .whitespacesAndNewlines), "alive")
        let skipped = result.evidence.filesystem?.skipped ?? []
        XCTAssertTrue(skipped.contains { $0.hasPrefix(gone) && $0.contains("ENOENT") }, "skipped: \(skipped)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: gone))
    }

    func testAMountThatAppearsAfterThePlanIsNotInTheView() throws {
        let late = base + "/late"
        try FileManager.default.createDirectory(atPath: late, withIntermediateDirectories: true)
        var options = RunnerOptions()
        options.hostMountTable = { [late] in
            let table = HermeticRoot.currentMounts()
            if mount("tmpfs", late, "tmpfs", 0, "size=1m") == 0 {
                FileManager.default.createFile(atPath: late + "/marker", contents: Data("x".utf8))
            }
            return table
        }
        let result = try run("test ! -e \(late)/marker", options: options)
        XCTAssertTrue(FileManager.default.fileExists(atPath: late + "/marker"), "the host got the new mount")
        XCTAssertEqual(result.outcome, .ok, "the run saw a mount made after its plan: \(result.summary)")
        XCTAssertEqual(result.evidence.filesystem?.skipped ?? [], [])
    }
}
