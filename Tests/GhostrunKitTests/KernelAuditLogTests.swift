import Foundation
import XCTest

@testable import GhostrunKit

final class KernelAuditLogTests: XCTestCase {
    /// Recorded on the project's host (Linux 6.18, no auditd) for a libseccomp filter on getppid.
    static let kmsgKillProcess =
        "5,345,929378192,-;audit: type=1326 audit(1795279813.274:2): auid=4294967295 uid=0 "
        + "gid=0 ses=4294967295 pid=7737 comm=\"sc\" exe=\"/tmp/wtobs/sc\" sig=31 arch=c000003e syscall=110 "
        + "compat=0 ip=0x7f77981f64f7 code=0x80000000\n"
    static let dmesgTrap =
        "[  929.383804] audit: type=1326 audit(1795279813.282:6): auid=4294967295 uid=0 gid=0 "
        + "ses=4294967295 pid=7742 comm=\"sc\" exe=\"/tmp/wtobs/sc\" sig=0 arch=c000003e syscall=110 compat=0 "
        + "ip=0x7f8361e714f7 code=0x30000"

    func testParsesKmsgRecord() throws {
        let record = try XCTUnwrap(AuditRecord.parse(line: Self.kmsgKillProcess))
        XCTAssertEqual(record.pid, 7737)
        XCTAssertEqual(record.comm, "sc")
        XCTAssertEqual(record.exe, "/tmp/wtobs/sc")
        XCTAssertEqual(record.syscallNumber, 110)
        XCTAssertEqual(record.arch, 0xc000_003e)
        XCTAssertEqual(record.signal, 31)
        XCTAssertEqual(record.code, 0x8000_0000)
        XCTAssertEqual(record.kernelTimeUsec, 929_378_192)
        XCTAssertEqual(record.action, "kill-process")
        XCTAssertNil(record.errnoValue)
        XCTAssertEqual(record.serial, 2)
        XCTAssertEqual(record.wallTimeMs, 1_795_279_813_274)
    }

    func testParsesNetlinkPayload() throws {
        // The NETLINK_AUDIT form: the type is in the message header, the text starts at audit(...).
        let payload =
            "audit(1795280262.894:476): auid=4294967295 uid=0 gid=0 ses=4294967295 pid=22112 comm=\"sc\" "
            + "exe=\"/tmp/wtobs/sc\" sig=31 arch=c000003e syscall=110 compat=0 ip=0x7f66b77ef4f7 code=0x80000000"
        let record = try XCTUnwrap(AuditRecord.parse(netlinkType: 1326, payload: payload))
        XCTAssertEqual(record.pid, 22112)
        XCTAssertEqual(record.serial, 476)
        XCTAssertEqual(record.wallTimeMs, 1_795_280_262_894)
        XCTAssertNil(record.kernelTimeUsec)
        XCTAssertNil(AuditRecord.parse(netlinkType: 1300, payload: payload), "only type 1326 is a seccomp record")
    }

    func testParsesDmesgAndAuditLogForms() throws {
        let trap = try XCTUnwrap(AuditRecord.parse(line: Self.dmesgTrap))
        XCTAssertEqual(trap.pid, 7742)
        XCTAssertEqual(trap.action, "trap")
        XCTAssertEqual(trap.signal, 0)
        XCTAssertEqual(trap.kernelTimeUsec, 929_383_804)

        let auditLog =
            "type=SECCOMP msg=audit(1732200000.123:45): auid=4294967295 uid=0 gid=0 ses=4294967295 "
            + "subj=unconfined pid=4321 comm=\"go\" exe=\"/usr/lib/go-1.19/bin/go\" sig=31 arch=c000003e "
            + "syscall=434 compat=0 ip=0x46b8de code=0x80000000"
        let record = try XCTUnwrap(AuditRecord.parse(line: auditLog))
        XCTAssertEqual(record.pid, 4321)
        XCTAssertEqual(record.comm, "go")
        XCTAssertEqual(record.exe, "/usr/lib/go-1.19/bin/go")
        XCTAssertEqual(record.syscallNumber, 434)
        XCTAssertNil(record.kernelTimeUsec, "audit.log has wall time only")
    }

    func testDecodesHexEncodedCommAndExe() throws {
        // Audit prints a string containing a space as bare hex: comm "my go", exe "/tmp/a b".
        let line =
            "6,1,2,-;audit: type=1326 audit(1.2:3): pid=9 comm=6D7920676F exe=2F746D702F612062 sig=31 "
            + "arch=c000003e syscall=39 compat=0 ip=0x1 code=0x80000000"
        let record = try XCTUnwrap(AuditRecord.parse(line: line))
        XCTAssertEqual(record.comm, "my go")
        XCTAssertEqual(record.exe, "/tmp/a b")
    }

    func testIgnoresOtherRecords() {
        XCTAssertNil(AuditRecord.parse(line: "6,100,200,-;usb 1-1: new high-speed USB device number 2"))
        XCTAssertNil(AuditRecord.parse(line: "5,101,300,-;audit: type=1400 audit(1.2:3): apparmor=\"DENIED\" pid=1"))
        XCTAssertNil(AuditRecord.parse(line: ""))
        XCTAssertNil(AuditRecord.parse(line: "5,1,2,-;audit: type=1326 audit(1.2:3): pid=1 comm=\"x\""))
    }

    func testDecodesEveryAction() {
        let expected: [(UInt32, String)] = [
            (0x8000_0000, "kill-process"), (0x0000_0000, "kill-thread"), (0x0003_0000, "trap"),
            (0x0005_0001, "errno"), (0x7fc0_0000, "user-notif"), (0x7ff0_0000, "trace"), (0x7ffc_0000, "log"),
            (0x7fff_0000, "allow"), (0x1234_0000, "unknown-0x12340000"),
        ]
        for (code, name) in expected {
            XCTAssertEqual(AuditRecord.actionName(code: code), name, String(code, radix: 16))
        }
        let errnoRecord = AuditRecord(
            pid: 1, comm: "go", exe: nil, syscallNumber: 290, signal: 0, code: 0x0005_0001, kernelTimeUsec: nil)
        XCTAssertEqual(errnoRecord.errnoValue, 1)
        XCTAssertEqual(errnoRecord.denial(runStartKernelUsec: 0).errno, "EPERM")
    }

    func testMapsToDenial() throws {
        let record = try XCTUnwrap(AuditRecord.parse(line: Self.kmsgKillProcess))
        let denial = record.denial(runStartKernelUsec: 929_000_000)
        XCTAssertEqual(denial.pid, 7737)
        XCTAssertEqual(denial.comm, "sc")
        XCTAssertEqual(denial.exe, "/tmp/wtobs/sc")
        XCTAssertEqual(denial.syscall, "getppid")
        XCTAssertEqual(denial.syscallNumber, 110)
        XCTAssertEqual(denial.action, "kill-process")
        XCTAssertNil(denial.errno)
        XCTAssertEqual(denial.signal, 31)
        XCTAssertEqual(denial.timeMs, 378)
        XCTAssertEqual(denial.source, "audit")
        // A 32-bit (i386) record numbers syscalls its own way: 64 is getppid there.
        var compat = record
        compat.arch = 0x4000_0003
        compat.syscallNumber = 64
        XCTAssertEqual(compat.denial(runStartKernelUsec: 0).syscall, "getppid")
        XCTAssertNil(AuditRecord.parse(line: Self.dmesgTrap)?.denial(runStartKernelUsec: 0).signal)
    }

    func testKmsgClockIsMonotonic() throws {
        // The record stamps and this clock must agree, or denial times would be off by the boot offset.
        let before = AuditRecord.kernelMonotonicNowUsec()
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let after = AuditRecord.kernelMonotonicNowUsec()
        let direct = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        XCTAssertLessThanOrEqual(before, direct)
        XCTAssertLessThanOrEqual(direct, after)
    }

    /// Compiles (once per test run) a helper that filters getppid with the action named by argv[1],
    /// with SECCOMP_FILTER_FLAG_LOG when argv[2] is "logflag", then calls it.
    private func seccompHelper() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ghostrun-audit-\(getpid())")
        let binary = directory.appendingPathComponent("killme")
        if FileManager.default.isExecutableFile(atPath: binary.path) { return binary }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let source = directory.appendingPathComponent("killme.c")
        try """
        #include <errno.h>
        #include <seccomp.h>
        #include <string.h>
        #include <unistd.h>
        int main(int argc, char **argv) {
            uint32_t action = SCMP_ACT_KILL_PROCESS;
            if (argc > 1 && strcmp(argv[1], "log") == 0) action = SCMP_ACT_LOG;
            if (argc > 1 && strcmp(argv[1], "trap") == 0) action = SCMP_ACT_TRAP;
            if (argc > 1 && strcmp(argv[1], "errno") == 0) action = SCMP_ACT_ERRNO(EPERM);
            scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
            if (!ctx || seccomp_rule_add(ctx, action, SCMP_SYS(getppid), 0) != 0) return 10;
            if (argc > 2 && seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1) != 0) return 13;
            if (seccomp_load(ctx) != 0) return 11;
            getppid();
            return 0;
        }
        """.write(to: source, atomically: true, encoding: .utf8)
        let compiler = Process()
        compiler.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        compiler.arguments = ["cc", "-o", binary.path, source.path, "-lseccomp"]
        try compiler.run()
        compiler.waitUntilExit()
        try skipUnlessHost(compiler.terminationStatus == 0, "cannot compile a libseccomp helper with cc")
        return binary
    }

    override class func tearDown() {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ghostrun-audit-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        super.tearDown()
    }

    /// Runs the helper with `arguments` under a fresh subscription and returns its records.
    private func recordsOfHelper(_ arguments: [String]) throws -> (
        helper: Process, records: [AuditRecord], start: UInt64
    ) {
        try skipUnlessHost(getuid() == 0, "reading kernel audit records needs root")
        let log = KernelAuditLog.shared
        try skipUnlessHost(log.isAvailable, log.unavailableReason ?? "no audit source")
        let binary = try seccompHelper()
        let subscription = log.subscribe()
        defer { subscription.cancel() }
        let helper = Process()
        helper.executableURL = binary
        helper.arguments = arguments
        try helper.run()
        let pid = helper.processIdentifier
        helper.waitUntilExit()
        XCTAssertTrue(subscription.wait(timeout: .seconds(2)) { $0.pid == pid }, "no audit record for pid \(pid)")
        let records = subscription.drain().filter { $0.pid == pid }
        XCTAssertEqual(subscription.drain(), [], "drain forgets what it returned")
        return (helper, records, subscription.startUsec)
    }

    /// With other runs flooding the log, /dev/kmsg alone loses records to printk rate limiting; the
    /// netlink source must not, so this asserts arrival within 2 s even on a busy host.
    func testLiveSeccompKillIsRecorded() throws {
        let logged = ProcFiles.read("/proc/sys/kernel/seccomp/actions_logged") ?? ""
        try skipUnlessHost(logged.contains("kill_process"), "kernel.seccomp.actions_logged lacks kill_process")
        let (helper, records, start) = try recordsOfHelper(["kill-process"])
        XCTAssertEqual(helper.terminationReason, .uncaughtSignal)
        XCTAssertEqual(helper.terminationStatus, SIGSYS)
        XCTAssertEqual(records.count, 1, "read from \(KernelAuditLog.shared.sources), deduplicated by serial")
        let record = try XCTUnwrap(records.first)
        XCTAssertEqual(record.action, "kill-process")
        XCTAssertEqual(record.signal, 31)
        XCTAssertEqual(record.comm, "killme")
        XCTAssertEqual(record.exe, helper.executableURL?.path)
        let denial = record.denial(runStartKernelUsec: start)
        XCTAssertEqual(denial.syscall, "getppid")
        XCTAssertEqual(denial.pid, helper.processIdentifier)
        XCTAssertLessThan(denial.timeMs, 10_000)
    }

    /// SCMP_ACT_LOG is logged without any filter flag; the process goes on.
    func testLiveLogActionIsRecorded() throws {
        let logged = ProcFiles.read("/proc/sys/kernel/seccomp/actions_logged") ?? ""
        try skipUnlessHost(logged.contains("log"), "kernel.seccomp.actions_logged lacks log")
        let (helper, records, _) = try recordsOfHelper(["log"])
        XCTAssertEqual(helper.terminationReason, .exit)
        XCTAssertEqual(helper.terminationStatus, 0)
        XCTAssertEqual(records.map(\.action), ["log"])
        XCTAssertEqual(records.first?.signal, 0)
    }

    /// TRAP and ERRNO are logged only for filters loaded with SECCOMP_FILTER_FLAG_LOG, and the record
    /// carries the action without the errno value.
    func testLiveTrapAndErrnoWithLogFlagAreRecorded() throws {
        let logged = ProcFiles.read("/proc/sys/kernel/seccomp/actions_logged") ?? ""
        try skipUnlessHost(logged.contains("trap") && logged.contains("errno"), "actions_logged lacks trap/errno")
        let trap = try recordsOfHelper(["trap", "logflag"])
        XCTAssertEqual(trap.helper.terminationStatus, SIGSYS)
        XCTAssertEqual(trap.records.map(\.action), ["trap"])
        let denied = try recordsOfHelper(["errno", "logflag"])
        XCTAssertEqual(denied.helper.terminationStatus, 0)
        XCTAssertEqual(denied.records.map(\.action), ["errno"])
        XCTAssertEqual(denied.records.first?.code, 0x0005_0000)
        XCTAssertNil(denied.records.first?.errnoValue)
    }

    func testCancelledSubscriptionCollectsNothing() throws {
        let log = KernelAuditLog.shared
        try skipUnlessHost(log.isAvailable, log.unavailableReason ?? "/dev/kmsg unavailable")
        let subscription = log.subscribe()
        subscription.cancel()
        let line = Self.kmsgKillProcess
        subscription.deliver(try XCTUnwrap(AuditRecord.parse(line: line)))
        XCTAssertEqual(subscription.drain(), [])
    }
}
