import Foundation
import XCTest

@testable import GhostrunKit

final class InspectTests: XCTestCase {
    func testReportOfRestrictedRecordedStatus() throws {
        let status = ProcFiles.parseStatus(ProcFilesTests.restrictedStatus)
        let report = InspectReport(status: status, comm: "st", exe: "/tmp/st", wchan: nil, syscallField: "running")
        XCTAssertEqual(report.pid, 10419)
        XCTAssertEqual(report.seccompMode, "filter")
        XCTAssertEqual(report.seccompFilters, 1)
        XCTAssertTrue(report.noNewPrivs)
        XCTAssertEqual(report.capEff.names, [])
        XCTAssertEqual(report.capBnd.hex, "0000000000000000")
        XCTAssertEqual(report.uid, [65534, 65534, 65534, 65534])
        XCTAssertEqual(report.syscall, "running")
        XCTAssertNil(report.syscallNumber)
        let text = report.text()
        XCTAssertTrue(text.contains("CapEff      0000000000000000 (none)\n"), text)
        XCTAssertTrue(text.contains("Seccomp     filter (1 filter)\n"), text)
        XCTAssertTrue(text.contains("NoNewPrivs  1\n"), text)
        XCTAssertTrue(text.contains("State       R (running)\n"), text)
    }

    func testCapabilitySummaries() throws {
        var status = ProcFiles.parseStatus(ProcFilesTests.rootStatus)
        status.capEff = 1 << 21
        status.capPrm = (1 << 0) | (1 << 21)
        status.capBnd = CapabilitySet.all.rawValue
        let report = InspectReport(status: status, comm: nil, exe: nil, wchan: "do_wait", syscallField: "61")
        XCTAssertEqual(report.capEff.names, ["CAP_SYS_ADMIN"])
        let text = report.text()
        XCTAssertTrue(text.contains("CapEff      0000000000200000 (CAP_SYS_ADMIN)\n"), text)
        XCTAssertTrue(text.contains("CapPrm      0000000000200001 (CAP_CHOWN, CAP_SYS_ADMIN)\n"), text)
        let all = CapabilitySet.all
        XCTAssertTrue(
            text.contains("CapBnd      \(InspectReport.Capabilities.hex(all.rawValue)) (all \(all.numbers.count))\n"),
            text)
        var mostly = status
        mostly.capBnd = all.rawValue & ~(UInt64(1) << 24)
        let mostlyText = InspectReport(status: mostly, comm: nil, exe: nil, wchan: nil, syscallField: nil).text()
        XCTAssertTrue(
            mostlyText.contains("(all \(all.numbers.count) except CAP_SYS_RESOURCE)\n"), mostlyText)
        XCTAssertEqual(report.syscall, "wait4")
        XCTAssertEqual(report.syscallNumber, 61)
        XCTAssertTrue(text.contains("Syscall     wait4 (61)\n"), text)
        XCTAssertTrue(text.contains("Seccomp     disabled\n"), text)
        XCTAssertEqual(
            InspectReport(status: status, comm: nil, exe: nil, wchan: nil, syscallField: "-1").syscall, "none")
    }

    func testInspectSelf() throws {
        let report = try InspectReport.make(pid: getpid())
        XCTAssertEqual(report.pid, getpid())
        XCTAssertEqual(report.ppid, getppid())
        XCTAssertEqual(report.state, "R")
        XCTAssertEqual(report.stateDescription, "running")
        XCTAssertEqual(report.comm, report.name)
        XCTAssertGreaterThanOrEqual(report.threads, 1)
        XCTAssertEqual(report.uid.first, getuid())
        let own = try XCTUnwrap(ProcFiles.status(pid: getpid()))
        XCTAssertEqual(report.capEff.names, CapabilitySet(rawValue: own.capEff).names)
        XCTAssertEqual(report.seccompMode, ["disabled", "strict", "filter"][own.seccomp])
    }

    func testInspectSleepingChildAndJSON() throws {
        let child = try SleepingChild(seconds: 30, testCase: self)
        XCTAssertTrue(child.waitForState("S"))
        let report = try InspectReport.make(pid: child.pid)
        XCTAssertEqual(report.ppid, getpid())
        XCTAssertEqual(report.comm, "sleep")
        XCTAssertEqual(report.exe, "/usr/bin/sleep")
        XCTAssertEqual(report.state, "S")
        XCTAssertNotNil(report.wchan)
        XCTAssertEqual(report.syscall, "clock_nanosleep")
        let text = report.text()
        XCTAssertTrue(text.contains("State       S (sleeping)\n"), text)
        XCTAssertTrue(text.contains("Exe         /usr/bin/sleep\n"), text)

        let json = try JSONEncoder().encode(report)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: json) as? [String: Any])
        XCTAssertEqual(object["seccomp_mode"] as? String, report.seccompMode)
        XCTAssertNotNil(object["cap_eff"] as? [String: Any])
        XCTAssertEqual(object["no_new_privs"] as? Bool, report.noNewPrivs)
        XCTAssertEqual(try JSONDecoder().decode(InspectReport.self, from: json), report)
    }

    func testInspectGoneProcessThrows() throws {
        let child = try SleepingChild(seconds: 30, testCase: self)
        let pid = child.pid
        kill(pid, SIGKILL)
        child.process.waitUntilExit()
        XCTAssertThrowsError(try InspectReport.make(pid: pid)) { error in
            XCTAssertEqual(error as? InspectReport.InspectError, .noProcess(pid))
            XCTAssertEqual("\(error)", "no process \(pid)")
        }
    }
}
