import Foundation
import XCTest

@testable import GhostrunKit

/// The real `go test` under a real seccomp filter: per-test evidence, the crashed or killed test binary named.
final class GoTestIntegrationTests: XCTestCase {
    let runner = ScenarioRunner()

    override func setUpWithError() throws {
        try requireRoot()
    }

    /// A module with a package whose tests pass (and one skips) and one whose second test makes a raw
    /// setresgid call, which only the test binary does: the go toolchain never calls it.
    private func module(rule: String, expect: String) -> String {
        """
        name: gotest-integration
        run: [go, test, -vet=off, -count=1, ./...]
        # A cold private GOCACHE compiles the testing package's dependencies first: slow on a loaded 2-core CI box.
        timeout: 300s
        sandbox:
          seccomp:
            rules:
              - \(rule)
        files:
          go.mod: |
            module example.com/gt
            go 1.19
          good/good_test.go: |
            package good
            import "testing"
            func TestFine(t *testing.T) { t.Log("fine") }
            func TestNotHere(t *testing.T) { t.Skip("not on this host") }
          setid/setid_test.go: |
            package setid
            import ("syscall"; "testing")
            func TestFirst(t *testing.T) {}
            func TestSetresgid(t *testing.T) {
                if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, 0, 0, 0); e != 0 { t.Fatalf("setresgid: %v", e) }
            }
        expect:
        \(expect)
        """
    }

    func testTrappedTestBinaryIsACrashNamingItWhileTheOtherPackagePasses() throws {
        let go = try TestToolchains.require(TestToolchains.debian ?? TestToolchains.static123, "any go")
        let result = runner.run(
            try scenario(
                module(
                    rule: "{syscalls: [setresgid], action: trap}",
                    expect: "  outcome: crash\n  tests: {passed: [TestFine, TestFirst], skipped: [TestNotHere], "
                        + "failed: [TestSetresgid], crashed: [setid]}")), toolchain: go)
        XCTAssertEqual(result.outcome, .crash, result.summary)
        XCTAssertEqual(result.passed, true, result.failures.joined(separator: "; "))
        XCTAssertEqual(result.failingProcess, "setid.test")
        XCTAssertEqual(result.firstDiagnostic, "SIGSYS: bad system call")
        XCTAssertEqual(result.exitCode, 1)
        XCTAssertTrue(result.stdoutTail.contains("SIGSYS: bad system call"), result.stdoutTail)
        // ghostrun added -json; what people see is still plain go test output.
        XCTAssertFalse(result.stdoutTail.contains("\"Action\""), result.stdoutTail)
        let tests = try XCTUnwrap(result.evidence.tests)
        XCTAssertEqual(tests.first { $0.package == "example.com/gt/setid" && $0.test == nil }?.outcome, .crash)
        XCTAssertEqual(tests.first { $0.test == "TestSetresgid" }?.outcome, .fail)
        XCTAssertEqual(tests.first { $0.test == "TestFine" }?.outputTail.contains("fine"), true)
        XCTAssertEqual(result.evidence.firstDenial?.comm, "setid.test")

        let file = RunFile(
            ghostrun: "0",
            host: HostFacts(kernel: "k", libseccomp: "l", cgroup: "c", ghostrunVersion: "0", hostname: "h"),
            results: [result])
        let xml = JUnitReport.render(file)
        XCTAssertTrue(xml.contains(#"<testcase name="TestFine" classname="example.com/gt/good""#), xml)
        XCTAssertTrue(xml.contains(#"<testcase name="setid.test" classname="example.com/gt/setid""#), xml)
        XCTAssertTrue(xml.contains(#"<error message="SIGSYS: bad system call" type="crash">"#), xml)
    }

    func testKilledTestBinaryIsSignaledWithItsDenial() throws {
        let go = try TestToolchains.require(TestToolchains.static123, "go >= 1.23")
        try requireHost(KernelAuditLog.shared.isAvailable, "/dev/kmsg not readable")
        let result = runner.run(
            try scenario(
                module(
                    rule: "{syscalls: [setresgid], action: kill-process}",
                    expect: "  outcome: signaled\n  signal: SIGSYS\n  tests: {failed: [TestSetresgid], crashed: [setid]}")
            ), toolchain: go)
        XCTAssertEqual(result.outcome, .signaled, result.summary)
        XCTAssertEqual(result.passed, true, result.failures.joined(separator: "; "))
        XCTAssertEqual(result.failingProcess, "setid.test")
        XCTAssertTrue(result.summary.contains("seccomp kill-process on setresgid in setid.test"), result.summary)
        XCTAssertEqual(result.firstDiagnostic, "signal: bad system call")
    }
}
