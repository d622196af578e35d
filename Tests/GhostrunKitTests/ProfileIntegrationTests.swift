import Foundation
import XCTest

@testable import GhostrunKit

/// The real go under whole container profiles, applied as runc and crun apply them.
final class ProfileIntegrationTests: XCTestCase {
    let runner = ScenarioRunner()

    override func setUpWithError() throws {
        try requireRoot()
    }

    private func build(
        profile: String, runtime: String = "runc", preset: String = "docker-default",
        extra: String = ""
    ) -> String {
        """
        name: profile-build
        run: [go, build, -o, out/app, .]
        timeout: 300s
        hang_after: 60s
        fixture: ../fixtures/hello
        sandbox:
          capabilities: {preset: \(preset)}
          seccomp:
            profile: \(profile)
            runtime: \(runtime)
        """ + extra + "\n"
    }

    private func run(_ yaml: String, on toolchain: Toolchain) throws -> RunResult {
        let result = runner.run(try scenario(yaml), toolchain: toolchain)
        XCTAssertNotEqual(result.outcome, .harnessError, result.summary)
        XCTAssertNotEqual(result.outcome, .skipped, result.reason ?? "")
        return result
    }

    /// moby/moby#42680 on Debian's cgo-linked go 1.19: under Docker 19.03's profile runc's stub turns clone3 into
    /// ENOSYS and glibc falls back to clone; crun applies the profile as written and clone3 gets EPERM.
    func testOldDockerProfileAndClone3UnderRuncAndCrun() throws {
        let go = try TestToolchains.require(TestToolchains.debian, "Debian golang-go")
        let runc = try run(build(profile: "../profiles/docker/docker-v19.03.15.json"), on: go)
        XCTAssertEqual(runc.outcome, .ok, runc.summary + runc.stderrTail)
        XCTAssertEqual(runc.evidence.policy?.enosysAbove, 333)
        XCTAssertEqual(runc.evidence.policy?.runtime, "runc")
        XCTAssertTrue(runc.evidence.policy?.skipped.contains { $0.name == "chown32" } ?? false)
        XCTAssertEqual(runc.evidence.restrictionsConfirmed?.confirmed, true)
        let crun = try run(build(profile: "../profiles/docker/docker-v19.03.15.json", runtime: "crun"), on: go)
        XCTAssertEqual(crun.outcome, .crash, crun.summary)
        XCTAssertTrue(crun.stderrTail.contains("pthread_create failed"), crun.stderrTail)
        XCTAssertNil(crun.evidence.policy?.enosysAbove)
        // 20.10.9 names syscalls past clone3, so runc's stub does not save it.
        let docker2009 = try run(build(profile: "../profiles/docker/docker-v20.10.9.json"), on: go)
        XCTAssertEqual(docker2009.outcome, .crash, docker2009.summary)
    }

    func testEveryBuiltInLetsCgoLinkedGoBuild() throws {
        let go = try TestToolchains.require(TestToolchains.debian, "Debian golang-go")
        for (profile, preset) in [
            ("docker-default", "docker-default"), ("podman-default", "podman-default"),
            ("containerd-default", "docker-default"),
        ] {
            let result = try run(build(profile: profile, preset: preset), on: go)
            XCTAssertEqual(result.outcome, .ok, "\(profile): \(result.summary) \(result.stderrTail)")
            XCTAssertEqual(result.evidence.policy?.profile, profile)
            XCTAssertGreaterThan(result.evidence.policy?.rules ?? 0, 250)
        }
    }

    /// "Docker's profile, but pidfd_open traps": the scenario rule replaces the profile's allow.
    func testRulesOnTopOfAProfileOnStaticGo() throws {
        let go = try TestToolchains.require(TestToolchains.static123, "static go >= 1.23")
        let plain = try run(build(profile: "docker-default"), on: go)
        XCTAssertEqual(plain.outcome, .ok, plain.summary + plain.stderrTail)
        let trap = try run(
            build(profile: "docker-default", extra: "\n    rules:\n      - {syscalls: [pidfd_open], action: trap}"),
            on: go)
        XCTAssertEqual(trap.outcome, .crash, trap.summary)
        XCTAssertTrue(trap.stderrTail.contains("SIGSYS"), trap.stderrTail)
    }

    /// Tracing never changes what the policy decides: with every call notified, the supervisor answers the calls
    /// runc's stub answers in the kernel (ENOSYS above the threshold) and the outcomes stay the same.
    func testTracingAWholeProfileKeepsItsDecisions() throws {
        let go = try TestToolchains.require(TestToolchains.debian, "Debian golang-go")
        for (profile, expected) in [
            ("../profiles/docker/docker-v19.03.15.json", Outcome.ok),
            ("../profiles/docker/docker-v20.10.9.json", Outcome.crash),
        ] {
            let traced = try run(build(profile: profile, extra: "\ntrace: true"), on: go)
            XCTAssertEqual(traced.outcome, expected, "\(profile) traced: \(traced.summary) \(traced.stderrTail)")
            let clone3 = traced.evidence.trace?.byRole.values.flatMap { $0 }.filter { $0.syscall == "clone3" } ?? []
            XCTAssertGreaterThan(clone3.reduce(0) { $0 + $1.errors }, 0, "clone3 was not seen failing")
            let errno = traced.evidence.denials.first { $0.syscall == "clone3" }?.errno
            XCTAssertEqual(errno, expected == .ok ? "ENOSYS" : "EPERM")
        }
    }
}
