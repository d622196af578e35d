import Foundation
import XCTest

@testable import GhostrunKit

/// A small static C program (Tests/Fixtures/syscall-probe.c) that makes the syscalls it is given and prints
/// `NR RESULT ERRNO` for each, RESULT being -1, 0 or 1 (the sign of the return value, so fds and pids compare).
enum SyscallProbe {
    /// Built once per test run with the host's C compiler.
    nonisolated(unsafe) private static var built: String?
    nonisolated(unsafe) private static var directory: String?
    private static let lock = NSLock()

    static func path() throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let built { return built }
        let compiler = Toolchains.pathLookup("cc")
        try requireHost(compiler != nil, "no C compiler (cc) to build the syscall probe")
        let directory = NSTemporaryDirectory() + "ghostrun-probe-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let output = directory + "/syscall-probe"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: compiler!)
        process.arguments = ["-static", "-O2", "-o", output, repositoryRoot + "/Tests/Fixtures/syscall-probe.c"]
        try process.run()
        process.waitUntilExit()
        try requireHost(process.terminationStatus == 0, "cc -static could not build the syscall probe (libc.a?)")
        Self.directory = directory
        built = output
        return output
    }

    static func removeBuild() {
        lock.lock()
        defer { lock.unlock() }
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
        directory = nil
        built = nil
    }

    /// What a static glibc program needs to start, print and exit (x86_64 and arm64 names).
    static let startup = [
        "execve", "brk", "arch_prctl", "set_tid_address", "set_robust_list", "rseq", "prlimit64", "readlinkat",
        "readlink", "getrandom", "mprotect", "mmap", "munmap", "write", "exit_group", "exit", "newfstatat", "fstat",
        "uname", "ioctl",
    ].filter { SyscallName.number(of: $0) != nil }

    /// The probe's argument for one call: `NR,ARG0,ARG1,...`.
    static func call(_ name: String, _ args: UInt64...) -> String {
        ([UInt64(SyscallName.number(of: name)!)] + args).map { String($0) }.joined(separator: ",")
    }
}

/// Observing never changes what the policy decides: the probe's results are the same with and without
/// `trace: true` or faults, through the real runner, filter and supervisor.
final class PolicyDecisionIntegrationTests: XCTestCase {
    let runner = ScenarioRunner()

    override func setUpWithError() throws {
        try requireRoot()
    }

    override class func tearDown() {
        SyscallProbe.removeBuild()
        super.tearDown()
    }

    private func go() throws -> Toolchain {
        try TestToolchains.require(TestToolchains.all.first, "any go")
    }

    /// Runs the probe with `calls` under `seccomp` (YAML below `seccomp:`), with `extra` top-level keys.
    private func probe(_ calls: [String], seccomp: String, extra: String = "") throws -> [String] {
        try probeResult(calls, seccomp: seccomp, extra: extra).stdoutTail.split(separator: "\n").map(String.init)
    }

    private func probeResult(_ calls: [String], seccomp: String, extra: String = "") throws -> RunResult {
        let program = try SyscallProbe.path()
        let quoted = ([program] + calls).map { "\"\($0)\"" }.joined(separator: ", ")
        let yaml = """
            name: probe
            run: [\(quoted)]
            \(extra)
            sandbox:
              seccomp:
            \(seccomp.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
            """
        let result = runner.run(try scenario(yaml), toolchain: try go())
        XCTAssertEqual(result.exitCode, 0, "\(result.outcome): \(result.summary)\n\(result.stderrTail)")
        return result
    }

    /// The bug the architecture issue measured: under an errno default, a syscall with only conditional rules
    /// (and a rule equal to the default) was answered CONTINUE when traced.
    func testTracingDoesNotWeakenConditionalRulesUnderAnErrnoDefault() throws {
        let seccomp = """
            default: errno:EPERM
            rules:
              - {syscalls: [\(SyscallProbe.startup.joined(separator: ", "))], action: allow}
              - {syscalls: [socket], action: errno, errno: EACCES, args: [{index: 0, op: eq, value: 40}]}
              - {syscalls: [socket], action: allow, args: [{index: 0, op: eq, value: 1}]}
              - {syscalls: [getppid], action: errno, errno: EPERM}
            """
        let calls = [
            SyscallProbe.call("socket", 40, 1, 0),  // AF_VSOCK: the conditional errno rule
            SyscallProbe.call("socket", 1, 1, 0),  // AF_UNIX: the conditional allow rule
            SyscallProbe.call("socket", 2, 1, 0),  // AF_INET: no condition holds, the default
            SyscallProbe.call("getppid"),  // a rule equal to the default
            SyscallProbe.call("getpid"),  // no rule: the default
        ]
        let socket = SyscallName.number(of: "socket")!
        let expected = [
            "\(socket) -1 \(EACCES)", "\(socket) 1 0", "\(socket) -1 \(EPERM)",
            "\(SyscallName.number(of: "getppid")!) -1 \(EPERM)", "\(SyscallName.number(of: "getpid")!) -1 \(EPERM)",
        ]
        XCTAssertEqual(try probe(calls, seccomp: seccomp), expected, "without tracing")
        XCTAssertEqual(try probe(calls, seccomp: seccomp, extra: "trace: true"), expected, "with trace: true")
        XCTAssertEqual(try probe(calls, seccomp: seccomp, extra: "trace: [socket, getppid, getpid]"), expected,
                       "with the calls traced by name")
    }

    /// Evidence names the rule that decided: the supervisor's denials and the audit records' alike.
    func testDenialsNameTheDecidingRule() throws {
        // Line 9 of the generated scenario is the socket rule, line 10 the getppid rule.
        let seccomp = """
            default: errno:EPERM
            rules:
              - {syscalls: [\(SyscallProbe.startup.joined(separator: ", "))], action: allow}
              - {syscalls: [socket], action: errno, errno: EACCES, args: [{index: 0, op: eq, value: 40}]}
              - {syscalls: [getppid], action: errno, errno: ENOSYS}
            """
        let calls = [SyscallProbe.call("socket", 40, 1, 0), SyscallProbe.call("getppid"), SyscallProbe.call("getpid")]
        func rules(_ result: RunResult) -> [String: String] {
            Dictionary(result.evidence.denials.filter { $0.action == "errno" }.map { ("\($0.syscall) \($0.errno ?? "")", $0.rule ?? "none") },
                       uniquingKeysWith: { first, _ in first })
        }
        let expected = ["socket EACCES": "test.yaml:9", "getppid ENOSYS": "test.yaml:10", "getpid EPERM": "default"]
        let traced = try probeResult(calls, seccomp: seccomp, extra: "trace: true")
        XCTAssertEqual(rules(traced), expected, "from the supervisor")
        XCTAssertTrue(traced.evidence.denials.allSatisfy { $0.source == "supervisor" })
        try requireHost(KernelAuditLog.shared.isAvailable, "no kernel audit records to attribute")
        // An audit record carries neither the arguments nor (as parsed today) the errno: every argument rule of
        // the syscall with the record's action is a candidate, and the fallback too.
        let audited = try probeResult(calls, seccomp: seccomp).evidence.denials.filter { $0.source == "audit" }
        let byCall = Dictionary(audited.map { ($0.syscall, $0.rule ?? "none") }, uniquingKeysWith: { first, _ in first })
        XCTAssertEqual(byCall["getppid"], "test.yaml:10", "from audit records")
        XCTAssertEqual(byCall["getpid"], "default", "from audit records")
        XCTAssertTrue(byCall["socket"] == "test.yaml:9" || byCall["socket"] == "test.yaml:9 | default",
                      "from audit records: \(String(describing: byCall["socket"]))")
    }
}
