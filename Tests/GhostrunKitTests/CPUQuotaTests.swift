import Foundation
import XCTest

@testable import GhostrunKit

/// `sandbox.cgroup.cpu_max`: parsed strictly, applied as a real CFS quota, and reported.
final class CPUQuotaTests: XCTestCase {
    private func firstError(_ value: String) -> ScenarioError? {
        let yaml = "name: bad\nrun: [go, version]\nsandbox:\n  cgroup:\n    cpu_max: \(value)\n"
        do {
            _ = try ScenarioLoader.parse(text: yaml, file: "/nonexistent/s.yaml")
            XCTFail("expected a scenario error for cpu_max: \(value)")
            return nil
        } catch {
            return error.scenarioErrors.first
        }
    }

    func testParsesCPUsAndTheQuotaPerPeriod() throws {
        let parsed = try ScenarioLoader.parse(
            text: "name: q\nrun: [go, version]\nsandbox:\n  cgroup:\n    cpu_max: 0.25\n", file: "/s/q.yaml")[0]
        XCTAssertEqual(parsed.sandbox.cgroup.cpuMax, 0.25)
        XCTAssertEqual(parsed.sandbox.cgroup.cpuQuotaMicroseconds, 25_000)
        let two = try ScenarioLoader.parse(
            text: "name: q\nrun: [go, version]\nsandbox:\n  cgroup:\n    cpu_max: 2\n", file: "/s/q.yaml")[0]
        XCTAssertEqual(two.sandbox.cgroup.cpuQuotaMicroseconds, 200_000)
    }

    func testBadQuotasNameLineKeyAndHint() {
        for (value, words) in [("0", "below 0.01"), ("0.001", "below 0.01"), ("-1", "below"), ("5000", "above 4096"),
                               ("\"0.5\"", "expected a number"), ("half", "expected a number"), (".nan", "expected"),
                               ("[1]", "expected a number")] {
            guard let error = firstError(value) else { continue }
            XCTAssertEqual(error.key, "sandbox.cgroup.cpu_max", value)
            XCTAssertEqual(error.line, 5, value)
            XCTAssertNotNil(error.hint, value)
            XCTAssertTrue(error.message.contains(words), "\(value): \(error.message)")
        }
    }

    /// A CPU-bound shell loop under 0.2 CPU: the kernel throttles it, so its wall time is at least ~5× its own CPU
    /// time (measured by the loop itself from /proc, so a loaded machine cannot make the check pass or fail).
    func testQuotaIsEnforcedAndThrottlingReported() throws {
        try requireRoot()
        let go = try TestToolchains.require(TestToolchains.all.first, "any go")
        let result = ScenarioRunner().run(try scenario("""
            name: cpu-quota
            run: [/bin/sh, -c, "i=0; while [ $i -lt 900000 ]; do i=$((i+1)); done; cut -d' ' -f14,15 /proc/$$/stat"]
            sandbox:
              cgroup:
                cpu_max: 0.2
            """), toolchain: go)
        XCTAssertEqual(result.outcome, .ok, result.summary)
        let ticks = result.stdoutTail.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int($0) }
        XCTAssertEqual(ticks.count, 2, result.stdoutTail)
        let cpuMs = ticks.reduce(0, +) * 1000 / Int(sysconf(Int32(_SC_CLK_TCK)))
        let cpu = try XCTUnwrap(result.evidence.cgroup?.cpu, "evidence.cgroup.cpu is missing")
        XCTAssertEqual(cpu.quotaMicroseconds, 20_000)
        XCTAssertEqual(cpu.periodMicroseconds, 100_000)
        XCTAssertEqual(cpu.cpus ?? 0, 0.2, accuracy: 1e-9)
        XCTAssertGreaterThan(cpu.throttledPeriods ?? 0, 0, "the quota never throttled the loop")
        XCTAssertGreaterThan(cpu.throttledMs ?? 0, 0)
        XCTAssertGreaterThan(cpuMs, 300, "the loop was too short to measure (\(cpuMs) ms of CPU)")
        XCTAssertGreaterThanOrEqual(result.durationMs, 3 * cpuMs,
                                    "\(cpuMs) ms of CPU took \(result.durationMs) ms under 0.2 CPU")
    }
}

/// `evidence.landlock` names the rights the kernel's bits stand for.
final class LandlockEvidenceTests: XCTestCase {
    func testEvidenceNamesHandledRightsRulesAndMechanism() {
        var request = LandlockRequest()
        request.write = ["/w"]
        request.read = ["/usr"]
        let plan = Landlock.plan(request, abi: 7, work: "/w", expand: { $0 }, isDirectory: { _ in true })
        let evidence = LandlockEvidence(plan)
        XCTAssertEqual(evidence.abi, 7)
        XCTAssertEqual(evidence.handled.count, 16, "ABI 5+ handles all 16 file-system rights: \(evidence.handled)")
        XCTAssertEqual(evidence.handled.first, "execute")
        XCTAssertEqual(evidence.handled.last, "ioctl_dev")
        XCTAssertEqual(evidence.rules.map(\.path), ["/w", "/usr"])
        XCTAssertEqual(evidence.rules[1].access, ["execute", "read_file", "read_dir"])
        XCTAssertEqual(evidence.mechanism, "CAP_SYS_ADMIN")
        XCTAssertEqual(Landlock.names(Landlock.fileSystemRights(abi: 1)).count, 13)
        XCTAssertFalse(Landlock.names(Landlock.fileSystemRights(abi: 2)).contains("truncate"))
    }
}
