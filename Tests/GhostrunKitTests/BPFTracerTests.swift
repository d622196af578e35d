import Foundation
import XCTest

@testable import GhostrunKit

/// The eBPF backend on the real kernel: real cgroups, real `go build`s, real seccomp filters.
final class BPFTracerTests: XCTestCase {
    private func requireBPF() throws {
        try requireRoot()
        try requireHost(BPFTracer.hostProblem() == nil, BPFTracer.hostProblem() ?? "")
        try requireHost(CgroupHierarchies.discover().v2 != nil, "no cgroup v2 hierarchy")
    }

    private func makeCgroup(_ sequence: Int) throws -> RunCgroup {
        try RunCgroup(
            name: RunCgroup.runName(owner: getpid(), sequence: sequence, scenario: "bpf-unit"),
            hierarchies: .discover(), request: CgroupRequest())
    }

    private func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }

    /// A module with two packages, so `go build` runs go, compile (×2+) and link.
    private func makeModule() throws -> String {
        let root = NSTemporaryDirectory() + "ghostrun-bpf-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: root + "/src/lib", withIntermediateDirectories: true)
        try "module example.com/m\ngo 1.19\n".write(toFile: root + "/src/go.mod", atomically: true, encoding: .utf8)
        try "package lib\nfunc Hello() string { return \"hi\" }\n".write(
            toFile: root + "/src/lib/lib.go", atomically: true, encoding: .utf8)
        try "package main\nimport (\"fmt\"; \"example.com/m/lib\")\nfunc main() { fmt.Println(lib.Hello()) }\n"
            .write(toFile: root + "/src/main.go", atomically: true, encoding: .utf8)
        return root
    }

    private func goEnvironment(_ root: String) -> [String] {
        [
            "PATH=/usr/bin:/bin", "HOME=\(root)", "GOCACHE=\(root)/cache", "GOPATH=\(root)/gopath",
            "GOTOOLCHAIN=local", "GOPROXY=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0",
        ]
    }

    func testGoBuildIsCountedAndEveryProcessAttestedWhileAConcurrentRunStaysApart() throws {
        try requireBPF()
        let toolchain = try TestToolchains.require(TestToolchains.static123, "go >= 1.23")
        let root = try makeModule()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let build = try makeCgroup(9101)
        defer { build.destroy() }
        let other = try makeCgroup(9102)
        defer { other.destroy() }

        let start = ContinuousClock.now
        let buildTracer = try BPFTracer(cgroupDirectory: build.v2Path!, runStart: start)
        let otherTracer = try BPFTracer(cgroupDirectory: other.v2Path!, runStart: start)

        // The build runs under a filter, no_new_privs and a reduced capability set: the attestation must show them.
        var plan = SpawnPlan(
            executable: toolchain.goBinary,
            arguments: ["go", "build", "-o", root + "/app", "."], environment: goEnvironment(root))
        plan.workdir = root + "/src"
        plan.cgroupDescriptors = build.joinDescriptors
        plan.noNewPrivs = true
        let netRaw = CapabilityName.number(of: "CAP_NET_RAW")!
        plan.capabilities = try CapabilityPlan.make(
            request: CapabilityRequest(drop: CapabilitySet(numbers: [netRaw])), switchingToNonRoot: false)
        plan.filter = try SeccompCompiler.compile(
            SeccompPolicy(rules: [SeccompRule(syscalls: ["getppid"], action: .errno(1))]))
        var loop = SpawnPlan(
            executable: "/bin/sh", arguments: ["sh", "-c", "for i in 1 2 3 4 5; do /bin/true; done"],
            environment: ["PATH=/usr/bin:/bin"])
        loop.cgroupDescriptors = other.joinDescriptors
        let buildPid = try Spawner.spawn(plan)
        let loopPid = try Spawner.spawn(loop)
        XCTAssertEqual(wait(loopPid), 0)
        XCTAssertEqual(wait(buildPid), 0, "go build failed")
        let seen = buildTracer.stop()
        let seenOther = otherTracer.stop()

        // The tree: the go command (forked before... its exec is seen) and every child, each exactly once.
        let pids = Set(seen.processes.map(\.pid))
        XCTAssertEqual(pids.count, seen.processes.count)
        XCTAssertTrue(pids.contains(buildPid), "go itself is missing: \(seen.processes.map(\.comm))")
        XCTAssertEqual(seen.processes.count, seen.forks + 1, "every fork in the cgroup, plus the go command")
        XCTAssertEqual(
            seen.exits, seen.processes.count,
            "every process exited; lost \(seen.lostKeys), forks \(seen.forks), "
                + "execs \(seen.execs), not exited: \(seen.processes.filter { $0.exitMs == nil }.map(\.comm)), "
                + "threads \(seen.threads)")
        XCTAssertTrue(seen.processes.allSatisfy { $0.exitMs != nil })
        let comms = Set(seen.processes.map(\.comm))
        XCTAssertTrue(comms.isSuperset(of: ["go", "compile", "link"]), "\(comms)")
        XCTAssertGreaterThanOrEqual(seen.processes.filter { $0.comm == "compile" }.count, 2)
        XCTAssertEqual(seen.execs, seen.processes.reduce(0) { $0 + $1.execs })
        XCTAssertTrue(
            seen.processes.filter { $0.comm == "compile" }.allSatisfy {
                $0.exe?.hasPrefix(toolchain.goroot + "/pkg/tool/") ?? false
            })
        for process in seen.processes {
            let a = process.attestation
            XCTAssertEqual(a.seccompMode, 2, "\(process.comm) \(process.pid)")
            XCTAssertEqual(a.seccompFilters, 1, "\(process.comm) \(process.pid)")
            XCTAssertEqual(a.noNewPrivs, 1, "\(process.comm) \(process.pid)")
            XCTAssertEqual(a.capEff & (1 << UInt64(netRaw)), 0, "\(process.comm) still holds CAP_NET_RAW")
            XCTAssertEqual(a.capBnd & (1 << UInt64(netRaw)), 0)
            XCTAssertNotEqual(a.capEff, 0)
            XCTAssertEqual(a.uid, 0)
            XCTAssertNotEqual(a.namespaces["mnt"], 0)
        }
        // Every call of the tree is counted, attributed to one of its processes.
        XCTAssertGreaterThan(seen.totalCalls, 10_000)
        XCTAssertEqual(seen.calls.reduce(0) { $0 + $1.calls }, seen.totalCalls)
        XCTAssertTrue(Set(seen.calls.map(\.pid)).isSubset(of: pids))
        XCTAssertEqual(seen.lostKeys, 0)
        let syscalls = Set(seen.calls.map(\.syscall))
        XCTAssertTrue(
            syscalls.isSuperset(of: ["openat", "read", "execve", "exit_group", "clone", "mmap"])
                || syscalls.isSuperset(of: ["openat", "read", "execve", "exit_group", "clone3", "mmap"]),
            "\(syscalls.sorted())")
        // openat of a missing file is an ordinary error, counted by errno with its path.
        XCTAssertTrue(seen.errors.contains { $0.syscall == "openat" || $0.syscall == "newfstatat" })

        // The concurrent run saw only its own: sh and five /bin/true, none of the build's.
        XCTAssertTrue(Set(seenOther.processes.map(\.pid)).isDisjoint(with: pids))
        XCTAssertTrue(Set(seenOther.calls.map(\.pid)).isDisjoint(with: pids))
        XCTAssertEqual(seenOther.processes.count, 6, "\(seenOther.processes.map(\.comm))")
        XCTAssertEqual(seenOther.processes.filter { $0.comm == "true" }.count, 5)
        XCTAssertFalse(pids.contains(getpid()))
    }

    func testErrnoDenialIsSeenAtSysExitWithItsPath() throws {
        try requireBPF()
        let group = try makeCgroup(9103)
        defer { group.destroy() }
        let tracer = try BPFTracer(cgroupDirectory: group.v2Path!, runStart: .now)
        let target = "/tmp/ghostrun-bpf-denied-\(getpid())"
        var plan = SpawnPlan(executable: "/bin/mkdir", arguments: ["mkdir", target], environment: [])
        plan.cgroupDescriptors = group.joinDescriptors
        // seccomp answers EACCES before sys_enter: only sys_exit sees these calls.
        plan.filter = try SeccompCompiler.compile(
            SeccompPolicy(rules: [SeccompRule(syscalls: ["mkdir", "mkdirat"], action: .errno(EACCES))]))
        let pid = try Spawner.spawn(plan)
        XCTAssertNotEqual(wait(pid), 0, "mkdir should have failed")
        let seen = tracer.stop()
        XCTAssertFalse(FileManager.default.fileExists(atPath: target))
        let denied = seen.errors.filter { ($0.syscall == "mkdir" || $0.syscall == "mkdirat") && $0.errno == "EACCES" }
        XCTAssertEqual(denied.count, 1, "\(seen.errors)")
        XCTAssertEqual(denied.first?.path, target)
        XCTAssertEqual(denied.first?.pid, pid)
        let counted = seen.calls.first { $0.syscall == denied.first?.syscall && $0.pid == pid }
        XCTAssertEqual(counted?.calls, 1)
        XCTAssertEqual(counted?.errors, 1)
        XCTAssertEqual(seen.processes.first?.comm, "mkdir")
        XCTAssertEqual(seen.processes.first?.attestation.seccompMode, 2)
    }

    func testStopDetachesTheProgramsWhenNoRunIsLeft() throws {
        try requireBPF()
        let group = try makeCgroup(9104)
        defer { group.destroy() }
        let tracer = try BPFTracer(cgroupDirectory: group.v2Path!, runStart: .now)
        let ids = Set(BPFTracerTests.attachedProgramIDs())
        let seen = tracer.stop()
        XCTAssertEqual(seen.programIDs.count, 5)
        XCTAssertTrue(Set(seen.programIDs).isSubset(of: ids), "attached while the run was registered: \(ids)")
        XCTAssertEqual(seen.totalCalls, 0, "nothing ran in the cgroup")
        // The links are gone once the last run stopped and the grace period passed: an idle ghostrun costs the host
        // nothing.
        XCTAssertTrue(eventually(5) { Set(BPFTracerTests.attachedProgramIDs()).isDisjoint(with: seen.programIDs) },
                      "the programs were still attached seconds after the last run stopped")
    }

    func testTraceOutRecordsEveryCallThroughTheRingBuffer() throws {
        try requireBPF()
        let group = try makeCgroup(9105)
        defer { group.destroy() }
        let out = NSTemporaryDirectory() + "ghostrun-bpf-trace-\(getpid()).jsonl"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let tracer = try BPFTracer(cgroupDirectory: group.v2Path!, runStart: .now, traceOut: out)
        var plan = SpawnPlan(
            executable: "/bin/cat", arguments: ["cat", "/etc/hostname", "/nonexistent-ghostrun"],
            environment: [])
        plan.cgroupDescriptors = group.joinDescriptors
        plan.stdout = open("/dev/null", O_WRONLY)
        plan.stderr = plan.stdout
        let pid = try Spawner.spawn(plan)
        _ = wait(pid)
        close(plan.stdout)
        let seen = tracer.stop()
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(seen.lostRecords, 0)
        XCTAssertEqual(lines.count, seen.totalCalls, "one line per counted call")
        let objects = lines.compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        XCTAssertEqual(objects.count, lines.count, "every line is a JSON object")
        XCTAssertTrue(
            objects.contains {
                $0["syscall"] as? String == "openat" && $0["path"] as? String == "/nonexistent-ghostrun"
                    && $0["errno"] as? String == "ENOENT"
            })
        XCTAssertTrue(objects.contains { $0["syscall"] as? String == "exit_group" && ($0["pid"] as? Int) == Int(pid) })
    }

    /// The programs of every BPF link on the host (`bpftool link list`).
    static func attachedProgramIDs() -> [UInt32] {
        let process = Process()
        let pipe = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/bpftool")
        process.arguments = ["-j", "link", "list"]
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return [] }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let links = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] ?? []
        return links.compactMap { ($0["prog_id"] as? Int).map(UInt32.init) }
    }

    static func programExists(_ id: UInt32) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/bpftool")
        process.arguments = ["prog", "show", "id", String(id)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}
