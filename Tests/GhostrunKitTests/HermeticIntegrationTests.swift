import Foundation
import XCTest

@testable import GhostrunKit

/// Hermetic runs on this host (issue 14, "runs leak state into later runs"): what a scenario writes outside `$WORK`,
/// as root, never reaches the host or a later run, while permissions stay the host's.
final class HermeticIntegrationTests: XCTestCase {
    private var probes: [String] = []

    override func setUpWithError() throws { try requireRoot() }

    override func tearDown() {
        for probe in probes { try? FileManager.default.removeItem(atPath: probe) }
    }

    private func probe(_ path: String) -> String {
        probes.append(path)
        return path
    }

    private func ghostrunMounts() -> Set<String> { ghostrunOwnMounts() }

    /// The finding: `user: "0:0"` with `HOME: /`-style settings made `go build` create its cache on the host's root,
    /// and a later run found it there. Here HOME is a new directory at the root, GOCACHE unset: go creates
    /// `$HOME/.cache/go-build`.
    func testRootWritesOutsideWorkNeverReachTheHostOrALaterRun() throws {
        let go = try TestToolchains.require(TestToolchains.all.first, "any go")
        let home = probe("/ghostrun-hermetic-home-\(getpid())")
        let file = probe("/ghostrun-hermetic-file-\(getpid())")
        let shm = probe("/dev/shm/ghostrun-hermetic-\(getpid())")
        let tables = ghostrunMounts()
        let runner = ScenarioRunner()
        let first = runner.run(try scenario("""
            name: writes-root
            run: [/bin/sh, -c, "go build -o $WORK/app . && echo x > \(file) && echo y > \(shm) && ls -d \(home)/.cache/go-build && cat \(file)"]
            fixture: ../fixtures/hello
            sandbox:
              user: "0:0"
            env:
              HOME: \(home)
              GOCACHE: ""
            expect:
              outcome: ok
            """), toolchain: go)
        XCTAssertEqual(first.outcome, .ok, first.summary + " stdout: " + first.stdoutTail + " stderr: " + first.stderrTail)
        XCTAssertTrue(first.stdoutTail.contains("\(home)/.cache/go-build"), first.stdoutTail)
        XCTAssertEqual(first.evidence.filesystem?.mode, "overlay")
        XCTAssertEqual(first.evidence.filesystem?.overlaid.first, "/")
        for path in [home, file, shm] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: path), "\(path) reached the host")
        }
        let later = runner.run(try scenario("""
            name: later-run
            run: [/bin/sh, -c, "test ! -e \(home) && test ! -e \(file) && test ! -e \(shm) && echo clean"]
            """), toolchain: go)
        XCTAssertEqual(later.outcome, .ok, later.summary)
        XCTAssertTrue(later.stdoutTail.contains("clean"), later.stdoutTail)
        XCTAssertEqual(ghostrunMounts().subtracting(tables), [], "a run left a mount on the host")
    }

    func testPermissionsStayTheHostsForAnotherUser() throws {
        let go = try TestToolchains.require(TestToolchains.all.first, "any go")
        let file = probe("/ghostrun-hermetic-nobody-\(getpid())")
        let result = ScenarioRunner().run(try scenario("""
            name: nobody
            run: [/bin/sh, -c, "touch \(file) 2>&1; cat /etc/shadow 2>&1 >/dev/null; touch $WORK/w && echo work-ok"]
            sandbox:
              user: "65534:65534"
            """), toolchain: go)
        XCTAssertTrue(result.stdoutTail.contains("touch: cannot touch '\(file)': Permission denied"), result.stdoutTail)
        XCTAssertTrue(result.stdoutTail.contains("/etc/shadow: Permission denied"), result.stdoutTail)
        XCTAssertTrue(result.stdoutTail.contains("work-ok"), result.stdoutTail)
    }

    func testHostWritesOptsOut() throws {
        let go = try TestToolchains.require(TestToolchains.all.first, "any go")
        let file = probe("/ghostrun-hermetic-hostwrites-\(getpid())")
        var options = RunnerOptions()
        options.hostWrites = true
        let result = ScenarioRunner(options: options).run(try scenario("""
            name: host-writes
            run: [/bin/sh, -c, "echo x > \(file)"]
            """), toolchain: go)
        XCTAssertEqual(result.outcome, .ok, result.summary)
        XCTAssertEqual(result.evidence.filesystem, .hostWrites)
        XCTAssertTrue(FileManager.default.fileExists(atPath: file), "--host-writes did not write to the host")
    }

    /// Landlock rules are added in the child, on the files it sees: in a hermetic run those are the overlay's, and
    /// a rule made on the host's inodes would match nothing.
    func testLandlockReadRulesMatchTheOverlaysFiles() throws {
        let go = try TestToolchains.require(TestToolchains.all.first, "any go")
        _ = try Landlock.abi().get()
        let result = ScenarioRunner().run(try scenario("""
            name: landlock-read
            run: [/bin/sh, -c, "cat /etc/hostname >/dev/null && echo etc-readable; cat /root/.profile 2>&1 >/dev/null; echo done"]
            sandbox:
              landlock:
                write: [$WORK, /dev/null]
                read: [/usr, /bin, /lib, /lib64, /etc, /dev, /proc, $WORK]
            """), toolchain: go)
        XCTAssertTrue(result.stdoutTail.contains("etc-readable"), result.summary + result.stdoutTail)
        XCTAssertTrue(result.stdoutTail.contains("Permission denied"), result.stdoutTail)
        XCTAssertTrue(result.stdoutTail.contains("done"), result.stdoutTail)
    }
}
