import Foundation
import XCTest

@testable import GhostrunKit

/// The real go under real seccomp filters, capabilities, users, rlimits and cgroups on this machine.
final class RunnerIntegrationTests: XCTestCase {
    let runner = ScenarioRunner()

    override func setUpWithError() throws {
        try requireRoot()
    }

    private func run(_ yaml: String, on toolchain: Toolchain) throws -> RunResult {
        let result = runner.run(try scenario(yaml), toolchain: toolchain)
        XCTAssertNotEqual(result.outcome, .harnessError, result.summary)
        return result
    }

    /// `go build` of the hello program under one seccomp rule (a flow mapping such as `{syscalls: [x], action: trap}`).
    private func buildUnderRule(_ name: String, _ rule: String) -> String {
        """
        name: \(name)
        run: [go, build, -o, out/app, .]
        sandbox:
          seccomp:
            rules:
              - \(rule)
        """ + "\n" + hello
    }

    private let hello = """
        files:
          go.mod: |
            module example.com/hello
            go 1.19
          main.go: |
            package main
            import "fmt"
            func main() { fmt.Println("alive") }
        """

    func testPlainBuildIsOkAndEveryProcessIsObserved() throws {
        let go = try TestToolchains.require(TestToolchains.static123, "go >= 1.23")
        let result = try run("name: plain\nrun: [go, build, -o, out/app, .]\n" + hello, on: go)
        XCTAssertEqual(result.outcome, .ok, result.summary)
        let comms = Set(result.evidence.processes.map(\.comm))
        XCTAssertTrue(comms.contains("go"), "\(comms)")
        XCTAssertTrue(comms.contains("compile") || comms.contains("link"), "children seen: \(comms)")
        XCTAssertTrue(result.evidence.processes.allSatisfy { $0.seccomp == 0 })
        XCTAssertEqual(result.evidence.cgroup?.frozenSeen, false)
    }

    func testSeccompTrapCrashesStaticGoAndIsConfirmedOnEveryProcess() throws {
        let go = try TestToolchains.require(TestToolchains.static123, "go >= 1.23")
        let result = try run(buildUnderRule("trap", "{syscalls: [pidfd_open], action: trap}"), on: go)
        XCTAssertEqual(result.outcome, .crash, result.summary)
        XCTAssertEqual(result.exitCode, 2)
        XCTAssertTrue(result.stderrTail.contains("SIGSYS"), result.stderrTail)
        XCTAssertEqual(result.evidence.restrictionsConfirmed?.confirmed, true)
        XCTAssertTrue(result.evidence.processes.allSatisfy { $0.seccomp == 2 && $0.seccompFilters >= 1 })
        XCTAssertEqual(result.evidence.firstDenial?.syscall, "pidfd_open")
        XCTAssertEqual(result.evidence.firstDenial?.action, "trap")
    }

    func testSeccompKillIsSignaledWithAuditEvidence() throws {
        let go = try TestToolchains.require(TestToolchains.static123, "go >= 1.23")
        try requireHost(KernelAuditLog.shared.isAvailable, "/dev/kmsg not readable")
        let result = try run(buildUnderRule("kill", "{syscalls: [pidfd_open], action: kill-process}"), on: go)
        XCTAssertEqual(result.outcome, .signaled, result.summary)
        XCTAssertEqual(result.signal, "SIGSYS")
        XCTAssertNil(result.exitCode)
        XCTAssertEqual(result.evidence.firstDenial?.syscall, "pidfd_open")
        XCTAssertEqual(result.evidence.firstDenial?.action, "kill-process")
        XCTAssertEqual(result.evidence.firstDenial?.comm, "go")
    }

    func testSeccompErrnoLetsGoFallBack() throws {
        let go = try TestToolchains.require(TestToolchains.static123, "go >= 1.23")
        let result = try run(buildUnderRule("errno", "{syscalls: [pidfd_open], action: errno, errno: EPERM}"), on: go)
        XCTAssertEqual(result.outcome, .ok, result.summary)
    }

    func testDroppedCapabilitiesAndUserAreConfirmed() throws {
        let go = try TestToolchains.require(TestToolchains.static123, "go >= 1.23")
        let result = try run("""
            name: caps-user
            run: [go, build, -o, out/app, .]
            sandbox:
              user: "65534:65534"
              no_new_privs: true
              capabilities:
                drop: [ALL]
            """ + "\n" + hello, on: go)
        XCTAssertEqual(result.outcome, .ok, result.summary)
        XCTAssertFalse(result.evidence.processes.isEmpty)
        for process in result.evidence.processes {
            XCTAssertEqual(process.capEff, "0000000000000000", "\(process.comm)")
            XCTAssertEqual(process.noNewPrivs, 1, "\(process.comm)")
            XCTAssertEqual(process.uid, 65534, "\(process.comm)")
        }
        XCTAssertEqual(result.evidence.restrictionsConfirmed?.confirmed, true,
                       "\(result.evidence.restrictionsConfirmed?.mismatches ?? [])")
    }

    func testReadOnlyCacheWithoutDacOverrideIsAClearError() throws {
        let go = try TestToolchains.require(TestToolchains.static123, "go >= 1.23")
        let result = try run("""
            name: ro-cache
            run: [go, build, -o, out/app, .]
            env: {GOCACHE: $WORK/cache}
            paths:
              - {path: $WORK/cache, mkdir: true, mode: "0555"}
            sandbox:
              capabilities:
                drop: [CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER]
            """ + "\n" + hello, on: go)
        XCTAssertEqual(result.outcome, .clearError, result.summary)
        XCTAssertTrue(result.stderrTail.contains("permission denied"), result.stderrTail)
    }

    func testLowNofileRlimit() throws {
        let go = try TestToolchains.require(TestToolchains.static123, "go >= 1.23")
        let result = try run("""
            name: nofile
            run: [go, build, -o, out/app, .]
            sandbox:
              rlimits: {nofile: 6}
            """ + "\n" + hello, on: go)
        XCTAssertTrue([.clearError, .crash].contains(result.outcome), result.summary)
        XCTAssertTrue(result.stderrTail.contains("too many open files"), result.stderrTail)
    }

    func testPidsMaxStopsTheBuild() throws {
        let go = try TestToolchains.require(TestToolchains.static123, "go >= 1.23")
        let result = try run("""
            name: pids
            run: [go, build, -o, out/app, .]
            fixture: ../fixtures/multi
            sandbox:
              cgroup: {pids_max: 8}
            """, on: go)
        XCTAssertTrue([.clearError, .crash].contains(result.outcome), result.summary)
        XCTAssertGreaterThan(result.evidence.cgroup?.pidsMaxHits ?? 0, 0, "pids.events max counter")
    }

    func testFrozenForeverIsAFrozenHangAndLeavesNothing() throws {
        let go = try TestToolchains.require(TestToolchains.static123, "go >= 1.23")
        let result = try run("""
            name: frozen
            run: [go, build, -o, out/app, .]
            hang_after: 1500ms
            timeout: 20s
            sandbox:
              cgroup:
                freeze: {after: 200ms}
            """ + "\n" + hello, on: go)
        XCTAssertEqual(result.outcome, .hang, result.summary)
        XCTAssertEqual(result.hangKind, .frozen)
        XCTAssertEqual(result.evidence.cgroup?.frozenSeen, true)
        // The v2 freezer parks tasks in do_freezer_trap, which newer kernels inline into get_signal: the wchan
        // reads either, and the stack shows the signal path.
        XCTAssertTrue(result.evidence.hangSnapshots.contains {
            ["do_freezer_trap", "get_signal"].contains($0.wchan ?? "") || ($0.stack ?? "").contains("do_freezer_trap")
        }, "\(result.evidence.hangSnapshots)")
        XCTAssertTrue(result.evidence.hangSnapshots.allSatisfy { $0.state == "S" || $0.state == "D" },
                      "a frozen task shows S, not T")
        for path in [result.evidence.cgroup?.path].compactMap({ $0 }) + (result.evidence.cgroup?.extraPaths ?? []) {
            XCTAssertFalse(FileManager.default.fileExists(atPath: path), "\(path) left behind")
        }
    }

    func testFreezeThenThawFinishesLater() throws {
        let go = try TestToolchains.require(TestToolchains.static123, "go >= 1.23")
        let result = try run("""
            name: thaw
            run: [go, build, -o, out/app, .]
            sandbox:
              cgroup:
                freeze: {after: 200ms, hold: 1500ms}
            """ + "\n" + hello, on: go)
        XCTAssertEqual(result.outcome, .ok, result.summary)
        let events = result.evidence.cgroup?.events.map(\.event) ?? []
        XCTAssertTrue(events.contains("frozen") && events.contains("thawed"), "\(events)")
        XCTAssertGreaterThanOrEqual(result.durationMs, 1500)
    }

    func testClone3EpermCrashesCgoLinkedGo() throws {
        let go = try TestToolchains.require(TestToolchains.debian, "Debian golang-go")
        let result = try run(buildUnderRule("clone3", "{syscalls: [clone3], action: errno, errno: EPERM}"), on: go)
        XCTAssertEqual(result.outcome, .crash, result.summary)
        XCTAssertTrue(result.stderrTail.contains("pthread_create failed"), result.stderrTail)
    }

    func testSkippedByVersionConstraint() throws {
        let go = try TestToolchains.require(TestToolchains.debian, "Debian golang-go")
        let result = try run("name: new-only\ngo: \">=1.21\"\nrun: [go, version]\n", on: go)
        XCTAssertEqual(result.outcome, .skipped)
        XCTAssertTrue(result.reason?.contains(">=1.21") ?? false)
    }

    func testNoTemporaryDirectoryOrCgroupIsLeft() throws {
        let go = try TestToolchains.require(TestToolchains.all.first, "any go")
        let before = Set((try? FileManager.default.contentsOfDirectory(atPath: WorkDirectory.base)) ?? [])
        _ = try run("name: version\nrun: [go, version]\n", on: go)
        let after = Set((try? FileManager.default.contentsOfDirectory(atPath: WorkDirectory.base)) ?? [])
        XCTAssertTrue(after.subtracting(before).filter { $0.hasPrefix(WorkDirectory.prefix) }.isEmpty)
        let h = CgroupHierarchies.discover()
        if let v2 = h.v2 {
            let runs = (try? FileManager.default.contentsOfDirectory(atPath: v2 + "/ghostrun")) ?? []
            XCTAssertFalse(runs.contains { $0.hasPrefix("r\(getpid())-") }, "\(runs)")
        }
    }
}
