import Foundation
import XCTest

@testable import GhostrunKit

/// Skips a test the host cannot run, unless CI demands the host (GHOSTRUN_REQUIRE_HOST=1): then it fails.
func skipUnlessHost(_ condition: Bool, _ reason: String) throws {
    guard !condition else { return }
    if ProcessInfo.processInfo.environment["GHOSTRUN_REQUIRE_HOST"] == "1" {
        XCTFail("host requirement not met: \(reason)")
    }
    throw XCTSkip(reason)
}

/// A `sleep` child that is always killed and reaped, even when the test fails.
final class SleepingChild {
    let process = Process()
    var pid: Int32 { process.processIdentifier }

    init(seconds: Int = 30, testCase: XCTestCase) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sleep")
        process.arguments = [String(seconds)]
        try process.run()
        let process = self.process
        testCase.addTeardownBlock {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }

    /// Waits until the child's State is `letter` (a fresh child is briefly `R` before it sleeps) and, for
    /// `S`, until it has left the run queue: the kernel reports wchan 0 for a task still on it.
    func waitForState(_ letter: String, timeout: TimeInterval = 2) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if ProcFiles.status(pid: pid)?.state == letter, letter != "S" || ProcFiles.wchan(pid: pid) != nil {
                return true
            }
            usleep(5000)
        }
        return false
    }
}

final class ProcFilesTests: XCTestCase {
    /// Recorded from a process run with `setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all
    /// --bounding-set=-all --no-new-privs` that then loaded a libseccomp filter (abridged: Vm*, Sig* lines).
    static let restrictedStatus = """
        Name:\tst
        Umask:\t0022
        State:\tR (running)
        Tgid:\t10419
        Ngid:\t0
        Pid:\t10419
        PPid:\t10407
        TracerPid:\t0
        Uid:\t65534\t65534\t65534\t65534
        Gid:\t65534\t65534\t65534\t65534
        FDSize:\t256
        Groups:\t 
        NStgid:\t10419
        NSpid:\t10419
        VmRSS:\t    1296 kB
        Threads:\t1
        SigQ:\t0/96365
        CapInh:\t0000000000000000
        CapPrm:\t0000000000000000
        CapEff:\t0000000000000000
        CapBnd:\t0000000000000000
        CapAmb:\t0000000000000000
        NoNewPrivs:\t1
        Seccomp:\t2
        Seccomp_filters:\t1
        Speculation_Store_Bypass:\tvulnerable
        Cpus_allowed_list:\t0-1
        voluntary_ctxt_switches:\t6

        """

    /// A root shell's status: full capabilities, no seccomp.
    static let rootStatus = """
        Name:\tbash
        State:\tS (sleeping)
        Pid:\t5237
        PPid:\t1
        Uid:\t0\t0\t0\t0
        Gid:\t0\t0\t0\t0
        Threads:\t1
        CapInh:\t0000000000000000
        CapPrm:\t000001ffffffffff
        CapEff:\t000001ffffffffff
        CapBnd:\t000001ffffffffff
        CapAmb:\t0000000000000000
        NoNewPrivs:\t0
        Seccomp:\t0
        Seccomp_filters:\t0

        """

    func testParseStatusOfRestrictedProcess() {
        let status = ProcFiles.parseStatus(Self.restrictedStatus)
        XCTAssertEqual(status.name, "st")
        XCTAssertEqual(status.state, "R")
        XCTAssertEqual(status.pid, 10419)
        XCTAssertEqual(status.ppid, 10407)
        XCTAssertEqual(status.uid, [65534, 65534, 65534, 65534])
        XCTAssertEqual(status.gid, [65534, 65534, 65534, 65534])
        XCTAssertEqual(status.capInh, 0)
        XCTAssertEqual(status.capPrm, 0)
        XCTAssertEqual(status.capEff, 0)
        XCTAssertEqual(status.capBnd, 0)
        XCTAssertEqual(status.capAmb, 0)
        XCTAssertEqual(status.noNewPrivs, 1)
        XCTAssertEqual(status.seccomp, 2)
        XCTAssertEqual(status.seccompFilters, 1)
        XCTAssertEqual(status.threads, 1)
    }

    func testParseStatusOfRootProcess() {
        let status = ProcFiles.parseStatus(Self.rootStatus)
        XCTAssertEqual(status.state, "S")
        XCTAssertEqual(status.capEff, 0x1ff_ffff_ffff)
        XCTAssertEqual(status.capBnd, 0x1ff_ffff_ffff)
        XCTAssertEqual(status.noNewPrivs, 0)
        XCTAssertEqual(status.seccomp, 0)
    }

    func testParseStatusKeepsDefaultsForMissingFields() {
        let status = ProcFiles.parseStatus("Name:\tzombie\nState:\tZ (zombie)\nPid:\t7\n")
        XCTAssertEqual(status.name, "zombie")
        XCTAssertEqual(status.state, "Z")
        XCTAssertEqual(status.pid, 7)
        XCTAssertEqual(status.uid, [])
        XCTAssertEqual(status.capBnd, 0)
        XCTAssertEqual(status.threads, 0)
        XCTAssertEqual(ProcFiles.parseStatus(""), ProcStatus())
    }

    func testParseStatWithParenthesesAndSpacesInComm() throws {
        // Recorded from a copy of sleep named `a) (b`.
        let line =
            "10421 (a) (b) S 10407 10407 5237 0 -1 4194304 132 0 0 0 7 3 0 0 20 0 1 0 116405 2990080 430 "
            + "18446744073709551615 94106278219776 94106278237705 140722242306960 0 0 0 0 6 0 1 0 0 17 1 0 0 0 0 0\n"
        let stat = try XCTUnwrap(ProcFiles.parseStat(line))
        XCTAssertEqual(stat.comm, "a) (b")
        XCTAssertEqual(stat.state, "S")
        XCTAssertEqual(stat.ppid, 10407)
        XCTAssertEqual(stat.pgrp, 10407)
        XCTAssertEqual(stat.utime, 7)
        XCTAssertEqual(stat.stime, 3)
        XCTAssertEqual(stat.numThreads, 1)
        XCTAssertEqual(stat.startTime, 116405)
    }

    func testParseStatRejectsMalformedLines() {
        XCTAssertNil(ProcFiles.parseStat(""))
        XCTAssertNil(ProcFiles.parseStat("12 (go) S 1 2 3"))
        XCTAssertNil(ProcFiles.parseStat("12 go S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"))
    }

    func testParseSyscallAndPids() {
        XCTAssertEqual(ProcFiles.parseSyscall("230 0x1 0x0 0x7ffd 0x0 0x0 0x0 0x7ffd 0x7f\n"), "230")
        XCTAssertEqual(ProcFiles.parseSyscall("running\n"), "running")
        XCTAssertEqual(ProcFiles.parseSyscall("-1 0x7ffd 0x401000\n"), "-1")
        XCTAssertNil(ProcFiles.parseSyscall(""))
        XCTAssertEqual(ProcFiles.parsePids("12\n345\n"), [12, 345])
        XCTAssertEqual(ProcFiles.parsePids("12 345 "), [12, 345])
        XCTAssertEqual(ProcFiles.parsePids(""), [])
    }

    func testReadsSelf() throws {
        let pid = getpid()
        let status = try XCTUnwrap(ProcFiles.status(pid: pid))
        XCTAssertEqual(status.pid, pid)
        XCTAssertEqual(status.ppid, getppid())
        XCTAssertEqual(status.uid.first, getuid())
        XCTAssertGreaterThanOrEqual(status.threads, 1)
        let stat = try XCTUnwrap(ProcFiles.stat(pid: pid))
        XCTAssertEqual(stat.ppid, getppid())
        XCTAssertEqual(stat.state, "R", "a process reading its own stat is running")
        XCTAssertEqual(ProcFiles.comm(pid: pid), status.name)
        XCTAssertEqual(
            ProcFiles.exe(pid: pid),
            Bundle.main.executablePath.map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path })
        // Reading one's own syscall file shows the read(2) doing it.
        XCTAssertEqual(ProcFiles.syscall(pid: pid).flatMap { Int($0) }.flatMap { SyscallName.name(of: $0) }, "read")
    }

    func testReadersReturnNilForGoneProcess() throws {
        let child = try SleepingChild(seconds: 30, testCase: self)
        let pid = child.pid
        kill(pid, SIGKILL)
        child.process.waitUntilExit()
        XCTAssertNil(ProcFiles.status(pid: pid))
        XCTAssertNil(ProcFiles.stat(pid: pid))
        XCTAssertNil(ProcFiles.wchan(pid: pid))
        XCTAssertNil(ProcFiles.syscall(pid: pid))
        XCTAssertNil(ProcFiles.exe(pid: pid))
        XCTAssertNil(ProcFiles.comm(pid: pid))
        XCTAssertNil(ProcFiles.stack(pid: pid))
        XCTAssertEqual(ProcFiles.children(pid: pid), [])
        XCTAssertEqual(ProcFiles.listPids(cgroupProcsPath: "/nonexistent/cgroup.procs"), [])
    }

    func testReadsSleepingChild() throws {
        let child = try SleepingChild(seconds: 30, testCase: self)
        XCTAssertTrue(child.waitForState("S"), "sleep never went to sleep")
        let status = try XCTUnwrap(ProcFiles.status(pid: child.pid))
        XCTAssertEqual(status.ppid, getpid())
        XCTAssertEqual(ProcFiles.stat(pid: child.pid)?.comm, "sleep")
        XCTAssertNotNil(ProcFiles.wchan(pid: child.pid))
        XCTAssertEqual(ProcFiles.exe(pid: child.pid), "/usr/bin/sleep")
        XCTAssertEqual(ProcFiles.comm(pid: child.pid), "sleep")
        // sleep waits in clock_nanosleep.
        XCTAssertEqual(
            ProcFiles.syscall(pid: child.pid).flatMap { Int($0) }.flatMap { SyscallName.name(of: $0) },
            "clock_nanosleep")
        XCTAssertTrue(ProcFiles.children(pid: getpid()).contains(child.pid))
        if getuid() == 0 {
            XCTAssertNotNil(ProcFiles.stack(pid: child.pid), "root can read /proc/PID/stack")
        }
    }

    func testListPidsReadsCgroupProcs() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("ghostrun-procs-\(getpid())")
        try "12\n34\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        XCTAssertEqual(ProcFiles.listPids(cgroupProcsPath: file.path), [12, 34])
        // The cgroup this test runs in lists this process.
        let ownCgroup = try XCTUnwrap(ProcFiles.read("/proc/self/cgroup"))
        if let line = ownCgroup.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) {
            let relative = String(line.dropFirst(3))
            for mount in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
                let path = mount + relative + "/cgroup.procs"
                guard FileManager.default.fileExists(atPath: path) else { continue }
                XCTAssertTrue(ProcFiles.listPids(cgroupProcsPath: path).contains(getpid()), path)
                break
            }
        }
    }

    func testReadHandlesFilesLargerThanOneChunk() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("ghostrun-large-\(getpid())")
        let text = String(repeating: "0123456789abcdef\n", count: 700)
        try text.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        XCTAssertEqual(ProcFiles.read(file.path, limit: 64 * 1024), text)
        XCTAssertNil(ProcFiles.read("/nonexistent/file"))
    }
}

// MARK: - ProcessSampler
// In the same test class so that `swift test --filter ProcFilesTests` runs the sampler's tests too.

extension ProcFilesTests {
    func testSamplerFollowsStopAndExit() throws {
        let child = try SleepingChild(seconds: 30, testCase: self)
        XCTAssertTrue(child.waitForState("S"))
        let sampler = ProcessSampler(runStart: .now, discoverDescendants: false)
        let first = sampler.sample(pids: [child.pid])
        XCTAssertEqual(first.pids, [child.pid])
        XCTAssertEqual(first.states[child.pid], "S")
        XCTAssertEqual(first.newProcesses, [.init(pid: child.pid, comm: "sleep", exe: "/usr/bin/sleep")])
        XCTAssertFalse(first.allStoppedOrTraced)
        XCTAssertFalse(first.anyFrozenWchan)

        kill(child.pid, SIGSTOP)
        XCTAssertTrue(child.waitForState("T"))
        let stopped = sampler.sample(pids: [child.pid])
        XCTAssertEqual(stopped.states[child.pid], "T")
        XCTAssertTrue(stopped.allStoppedOrTraced)
        XCTAssertEqual(stopped.newProcesses, [])

        kill(child.pid, SIGKILL)
        child.process.waitUntilExit()
        let gone = sampler.sample(pids: [child.pid])
        XCTAssertEqual(gone.pids, [])
        XCTAssertGreaterThanOrEqual(gone.totalCPUTicks, stopped.totalCPUTicks, "the total must not go down")

        let observations = sampler.observations()
        XCTAssertEqual(observations.count, 1)
        let observation = try XCTUnwrap(observations.first)
        XCTAssertEqual(observation.pid, child.pid)
        XCTAssertEqual(observation.ppid, getpid())
        XCTAssertEqual(observation.comm, "sleep")
        XCTAssertEqual(observation.exe, "/usr/bin/sleep")
        XCTAssertTrue(observation.exited)
        XCTAssertEqual(observation.first.status.state, "S")
        XCTAssertEqual(observation.last.status.state, "T")
        XCTAssertEqual(observation.stateChanges.map(\.state), ["S", "T"])
        XCTAssertNotNil(observation.first.wchan, "\(observation)")
        XCTAssertNotNil(observation.first.syscall)
    }

    func testSamplerDiscoversDescendantsAndMarksGone() throws {
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", "sleep 30 & wait"]
        try shell.run()
        addTeardownBlock {
            // Kill the grandchild first: it would outlive the shell otherwise.
            for pid in ProcFiles.children(pid: shell.processIdentifier) { kill(pid, SIGKILL) }
            if shell.isRunning { kill(shell.processIdentifier, SIGKILL) }
            shell.waitUntilExit()
        }
        let sampler = ProcessSampler(runStart: .now)
        var grandchild: Int32?
        let deadline = Date(timeIntervalSinceNow: 2)
        while grandchild == nil, Date() < deadline {
            let round = sampler.sample(pids: [shell.processIdentifier])
            grandchild = round.newProcesses.first(where: { $0.comm == "sleep" })?.pid
            if grandchild == nil { usleep(10_000) }
        }
        let sleeper = try XCTUnwrap(grandchild, "the shell's sleep child was never discovered")
        XCTAssertEqual(ProcFiles.status(pid: sleeper)?.ppid, shell.processIdentifier)

        let observations = sampler.observations()
        XCTAssertEqual(observations.first?.pid, shell.processIdentifier, "sorted by first-seen time")
        XCTAssertTrue(observations.contains(where: { $0.pid == sleeper && !$0.exited }))

        // Just discovered, the child may still be starting up (R); a snapshot of it asleep is wanted.
        let asleep = Date(timeIntervalSinceNow: 2)
        while Date() < asleep, ProcFiles.status(pid: sleeper)?.state != "S" || ProcFiles.wchan(pid: sleeper) == nil {
            usleep(5000)
        }
        let snapshots = sampler.snapshot(pids: [shell.processIdentifier, sleeper])
        XCTAssertEqual(snapshots.map(\.pid), [shell.processIdentifier, sleeper])
        XCTAssertEqual(snapshots.last?.comm, "sleep")
        XCTAssertEqual(snapshots.last?.state, "S")
        XCTAssertNotNil(snapshots.last?.wchan)
        XCTAssertNotNil(snapshots.last?.syscall)

        sampler.markGone()
        XCTAssertTrue(sampler.observations().allSatisfy(\.exited))
    }

    func testFrozenWchanRules() {
        XCTAssertTrue(ProcessSampler.isFrozen(state: "S", wchan: "get_signal"))
        XCTAssertTrue(ProcessSampler.isFrozen(state: "S", wchan: "do_freezer_trap"))
        XCTAssertTrue(ProcessSampler.isFrozen(state: "D", wchan: "__refrigerator"))
        XCTAssertFalse(ProcessSampler.isFrozen(state: "T", wchan: "get_signal"), "a SIGSTOP stop")
        XCTAssertFalse(ProcessSampler.isFrozen(state: "S", wchan: "hrtimer_nanosleep"))
        XCTAssertFalse(ProcessSampler.isFrozen(state: "R", wchan: nil))
    }

    func testCgroupV2FreezeIsSeenInWchan() throws {
        try skipUnlessHost(getuid() == 0, "creating a cgroup needs root")
        let mountinfo = try XCTUnwrap(ProcFiles.read("/proc/self/mountinfo", limit: 1024 * 1024))
        // Field 5 is the mount point; the filesystem type follows the " - " separator.
        let mount = mountinfo.split(separator: "\n").first { $0.contains(" - cgroup2 ") }
            .map { String($0.split(separator: " ")[4]) }
        try skipUnlessHost(mount != nil, "no cgroup v2 mount")
        let directory = "\(mount!)/ghostrun-observe-test-\(getpid())"
        XCTAssertEqual(mkdir(directory, 0o755), 0, String(cString: strerror(errno)))
        let child = try SleepingChild(seconds: 30, testCase: self)
        addTeardownBlock {
            try? "0".write(toFile: "\(directory)/cgroup.freeze", atomically: false, encoding: .utf8)
            kill(child.pid, SIGKILL)
            child.process.waitUntilExit()
            rmdir(directory)
        }
        XCTAssertTrue(child.waitForState("S"))
        try "\(child.pid)".write(toFile: "\(directory)/cgroup.procs", atomically: false, encoding: .utf8)
        XCTAssertEqual(ProcFiles.listPids(cgroupProcsPath: "\(directory)/cgroup.procs"), [child.pid])
        let sampler = ProcessSampler(runStart: .now, discoverDescendants: false)
        XCTAssertFalse(sampler.sample(pids: [child.pid]).anyFrozenWchan)
        try "1".write(toFile: "\(directory)/cgroup.freeze", atomically: false, encoding: .utf8)
        var frozen = false
        let deadline = Date(timeIntervalSinceNow: 2)
        while !frozen, Date() < deadline {
            let round = sampler.sample(pids: [child.pid])
            frozen = round.anyFrozenWchan
            if frozen { XCTAssertEqual(round.states[child.pid], "S", "a frozen task looks asleep") }
            usleep(10_000)
        }
        XCTAssertTrue(frozen, "wchan \(ProcFiles.wchan(pid: child.pid) ?? "nil")")
    }

    func testExecIsReportedWithTheNewCommand() throws {
        // A forked `go` becomes `compile` at exec: the sampler must report the new name, not the first one.
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", "sleep 0.3; exec /usr/bin/sleep 30"]
        try shell.run()
        addTeardownBlock {
            if shell.isRunning { kill(shell.processIdentifier, SIGKILL) }
            shell.waitUntilExit()
        }
        let pid = shell.processIdentifier
        let sampler = ProcessSampler(runStart: .now, discoverDescendants: false)
        var reported: [ProcessSampler.NewProcess] = []
        let deadline = Date(timeIntervalSinceNow: 3)
        while Date() < deadline, !reported.contains(where: { $0.comm == "sleep" && $0.pid == pid }) {
            reported += sampler.sample(pids: [pid]).newProcesses
            usleep(10_000)
        }
        let shellPath = URL(fileURLWithPath: "/bin/sh").resolvingSymlinksInPath().path
        XCTAssertEqual(reported.first, .init(pid: pid, comm: "sh", exe: shellPath))
        XCTAssertTrue(
            reported.contains(.init(pid: pid, comm: "sleep", exe: "/usr/bin/sleep")), "\(reported)")
        let observation = try XCTUnwrap(sampler.observations().first)
        XCTAssertEqual(sampler.observations().count, 1, "exec keeps the process")
        XCTAssertEqual(observation.comm, "sleep")
        XCTAssertEqual(observation.exe, "/usr/bin/sleep")
        XCTAssertEqual(observation.first.status.name, "sh")
    }

    func testPidReuseStartsANewRecord() throws {
        // Forces the kernel to hand out the same pid again through ns_last_pid (root only). Other
        // processes on the host may take the pid first, so it is tried a few times.
        try skipUnlessHost(getuid() == 0, "setting /proc/sys/kernel/ns_last_pid needs root")
        let first = try SleepingChild(seconds: 30, testCase: self)
        XCTAssertTrue(first.waitForState("S"))
        let pid = first.pid
        let sampler = ProcessSampler(runStart: .now, discoverDescendants: false)
        sampler.sample(pids: [pid])
        sampler.sample(pids: [pid])
        XCTAssertEqual(sampler.observations().count, 1, "the same process sampled twice is one record")
        kill(pid, SIGKILL)
        first.process.waitUntilExit()
        // Start times are in clock ticks (10 ms): the new process must start in a later tick than the first, or
        // nothing tells them apart (seen once on a loaded host).
        usleep(30_000)

        // posix_spawn directly: Foundation's Process may start a thread between the write and the spawn,
        // and a thread id takes a pid too.
        var reusedPid: pid_t = 0
        for _ in 0..<50 {
            let control = open("/proc/sys/kernel/ns_last_pid", O_WRONLY)
            guard control >= 0 else { break }
            let lastPid = Array("\(pid - 1)".utf8)
            let written = write(control, lastPid, lastPid.count)
            close(control)
            guard written == lastPid.count else { break }
            var spawned: pid_t = 0
            let arguments: [UnsafeMutablePointer<CChar>?] =
                ["/usr/bin/sleep", "30"].map { (text: String) in strdup(text) } + [nil]
            defer { arguments.forEach { free($0) } }
            guard posix_spawn(&spawned, "/usr/bin/sleep", nil, nil, arguments, environ) == 0 else { break }
            addTeardownBlock {
                kill(spawned, SIGKILL)
                var status: Int32 = 0
                waitpid(spawned, &status, 0)
            }
            if spawned == pid {
                reusedPid = spawned
                break
            }
        }
        try skipUnlessHost(reusedPid == pid, "could not get pid \(pid) again: other processes took it")
        let asleep = Date(timeIntervalSinceNow: 2)
        while Date() < asleep, ProcFiles.status(pid: pid)?.state != "S" { usleep(5000) }
        // The round that sees the new process without a round in between: only the start time tells.
        let round = sampler.sample(pids: [pid])
        XCTAssertEqual(round.newProcesses.map(\.pid), [pid])
        let observations = sampler.observations()
        XCTAssertEqual(observations.map(\.pid), [pid, pid])
        XCTAssertEqual(observations.map(\.exited), [true, false])
    }

    /// Prints the cost of one round over ten sleeping processes (no assertion on time: hosts differ).
    func testSampleCostOfTenProcesses() throws {
        let children = try (0..<10).map { _ in try SleepingChild(seconds: 30, testCase: self) }
        for child in children { XCTAssertTrue(child.waitForState("S")) }
        let pids = children.map(\.pid)
        let sampler = ProcessSampler(runStart: .now)
        sampler.sample(pids: pids)
        let rounds = 200
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            for _ in 0..<rounds { sampler.sample(pids: pids) }
        }
        let micros =
            (Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12)
            / Double(rounds)
        print("ProcessSampler.sample of \(pids.count) processes: \(Int(micros)) µs per round")
        XCTAssertEqual(sampler.observations().count, 10)
        XCTAssertTrue(sampler.observations().allSatisfy { !$0.exited })
    }
}
