import CGhostrun
import Foundation
import Glibc
import Synchronization
import XCTest

@testable import GhostrunKit

final class SystemLayerTests: XCTestCase {
    func testErrnoDescribesItselfAndHarnessErrorNamesStepCallAndHint() {
        let missing = Errno(rawValue: ENOENT)
        XCTAssertEqual(missing, .noSuchFile)
        XCTAssertEqual(missing.description, "No such file or directory")
        XCTAssertEqual(missing.name, "ENOENT")
        XCTAssertEqual(Errno(negated: -EPERM as Int32), .notPermitted)

        let error = HarnessError(
            step: "cgroup", syscall: "mkdir", path: "/sys/fs/cgroup/x", errno: .permissionDenied,
            "cannot create /sys/fs/cgroup/x", hint: "run as root")
        XCTAssertEqual(error.errno, EACCES)
        XCTAssertEqual(
            error.description, "cannot create /sys/fs/cgroup/x: Permission denied (EACCES) (hint: run as root)")
        let spawn = HarnessError(step: "execve", errno: ENOENT)
        XCTAssertEqual(spawn.step, "execve")
        XCTAssertEqual(spawn.description, "spawn step execve failed: No such file or directory (ENOENT)")
    }

    func testChokepointRetriesInterruptedCallsOnlyWhenAsked() {
        var calls = 0
        let interruptedTwice = { () -> Int32 in
            calls += 1
            if calls <= 2 {
                Glibc.errno = EINTR
                return -1
            }
            return 42
        }
        XCTAssertEqual(try valueOrErrno(interruptedTwice).get(), 42)
        XCTAssertEqual(calls, 3)

        calls = 0
        XCTAssertEqual(valueOrErrno(retryOnInterrupt: false, interruptedTwice), .failure(.interrupted))
        XCTAssertEqual(calls, 1)

        XCTAssertEqual(System.open("/nonexistent/ghostrun", O_RDONLY), .failure(.noSuchFile))
        XCTAssertEqual(valueOrNegatedErrno(Int32(-EBUSY)), .failure(.busy))
    }

    /// The C target takes these from the kernel's headers; the values are the kernel ABI, so they cannot change.
    func testKernelConstantsComeFromTheCTarget() {
        XCTAssertEqual(GHOSTRUN_SECCOMP_RET_KILL_PROCESS, 0x8000_0000)
        XCTAssertEqual(GHOSTRUN_SECCOMP_RET_ERRNO, 0x0005_0000)
        XCTAssertEqual(GHOSTRUN_SECCOMP_RET_USER_NOTIF, 0x7fc0_0000)
        XCTAssertEqual(GHOSTRUN_SECCOMP_RET_ALLOW, 0x7fff_0000)
        XCTAssertEqual(GHOSTRUN_SECCOMP_RET_ACTION_FULL, 0xffff_0000)
        XCTAssertEqual(GHOSTRUN_SECCOMP_FILTER_FLAG_LOG, 2)
        XCTAssertEqual(GHOSTRUN_SECCOMP_FILTER_FLAG_NEW_LISTENER, 8)
        XCTAssertEqual(GHOSTRUN_SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, 32)
        XCTAssertEqual(GHOSTRUN_RLIMIT_NOFILE, 7)
        XCTAssertEqual(GHOSTRUN_AUDIT_SECCOMP, 1326)
        XCTAssertEqual(MemoryLayout<ghostrun_sockaddr_nl>.size, 12)
        XCTAssertEqual(MemoryLayout<ghostrun_nlmsghdr>.size, 16)
        XCTAssertEqual(ResourceLimitName.resource(of: "nofile"), 7)
        XCTAssertEqual(AuditRecord.actionName(code: GHOSTRUN_SECCOMP_RET_ERRNO | 1), "errno")
    }

    func testSpawnJoiningACgroupPutsTheChildInIt() throws {
        try requireRoot()
        let hierarchies = CgroupHierarchies.discover()
        try requireHost(hierarchies.v2 != nil || !hierarchies.v1.isEmpty, "no cgroup hierarchy mounted")
        let group = try RunCgroup(
            name: RunCgroup.runName(owner: getpid(), sequence: 9099, scenario: "join"),
            hierarchies: hierarchies, request: CgroupRequest(pidsMax: 5, memoryMax: nil, freeze: []))
        defer { group.destroy() }
        let pid = try Spawner.spawn(
            SpawnPlan(executable: "/bin/sleep", arguments: ["sleep", "30"], environment: []), joining: group)
        XCTAssertTrue(group.pids().contains(pid), "the child joined before exec")
        group.destroy()
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, 0), pid)
        XCTAssertEqual(status & 0x7f, SIGKILL)
    }

    /// The signal teardown and the run both destroy a run's cgroup; its `cgroup.procs` descriptors must be closed
    /// once, never a second time after another thread was given the same number by open(2).
    func testConcurrentDestroyClosesTheCgroupDescriptorsOnce() throws {
        try requireRoot()
        let hierarchies = CgroupHierarchies.discover()
        try requireHost(hierarchies.v2 != nil || !hierarchies.v1.isEmpty, "no cgroup hierarchy mounted")
        for round in 0..<20 {
            let group = try RunCgroup(
                name: RunCgroup.runName(owner: getpid(), sequence: 9100 + round, scenario: "destroy-race"),
                hierarchies: hierarchies, request: CgroupRequest(pidsMax: 5, memoryMax: nil, freeze: []))
            let joinFds = group.joinDescriptors
            XCTAssertFalse(joinFds.isEmpty)
            // Half the workers destroy, the other half open files that may get the freed numbers at once.
            let opened = Mutex<[Int32]>([])
            DispatchQueue.concurrentPerform(iterations: 8) { worker in
                if worker % 2 == 0 {
                    group.destroy()
                } else {
                    let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
                    if fd >= 0 { opened.withLock { $0.append(fd) } }
                }
            }
            // A late destroy, after the numbers were certainly handed out again.
            let afterwards = open("/dev/null", O_RDONLY | O_CLOEXEC)
            group.destroy()
            let mine = opened.withLock { $0 } + [afterwards]
            for fd in mine {
                XCTAssertNotEqual(fcntl(fd, F_GETFD), -1, "fd \(fd) opened during teardown was closed by a destroy")
                close(fd)
            }
            XCTAssertEqual(group.joinDescriptors, [], "destroyed")
            let plan = SpawnPlan(executable: "/bin/true", arguments: ["true"], environment: [])
            XCTAssertThrowsError(try Spawner.spawn(plan, joining: group), "a torn-down cgroup starts nothing") {
                XCTAssertEqual(($0 as? HarnessError)?.step, "cgroup")
            }
            for path in group.allPaths {
                XCTAssertFalse(FileManager.default.fileExists(atPath: path), "\(path) left behind")
            }
        }
    }
}
