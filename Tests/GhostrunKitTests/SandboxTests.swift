import CGhostrun
import Foundation
import XCTest

@testable import GhostrunKit

final class SeccompCompilerTests: XCTestCase {
    func testCompilesRulesForTheNativeArchitecture() throws {
        let policy = SeccompPolicy(defaultAction: .allow, rules: [
            SeccompRule(syscalls: ["pidfd_open", "pidfd_send_signal"], action: .trap),
            SeccompRule(syscalls: ["eventfd2"], action: .errno(1)),
            SeccompRule(syscalls: ["socket"], action: .errno(13),
                        args: [SeccompArgCondition(index: 0, op: .eq, value: 40)]),
        ])
        let filter = try SeccompCompiler.compile(policy)
        XCTAssertEqual(filter.ruleCount, 4)
        // An architecture check, a syscall load, the rules and the default return at least.
        XCTAssertGreaterThan(filter.instructions.count, 6)
        // The last instruction of a libseccomp program is a return (BPF_RET|BPF_K = 0x06).
        XCTAssertEqual(filter.instructions.last?.code, 0x06)
    }

    func testLaterUnconditionalRuleOverridesEarlierOnes() {
        let policy = SeccompPolicy(defaultAction: .allow, rules: [
            SeccompRule(syscalls: ["openat"], action: .errno(13)),
            SeccompRule(syscalls: ["openat", "getppid"], action: .trap),
            SeccompRule(syscalls: ["getppid"], action: .allow),
        ])
        let rules = SeccompCompiler.effectiveRules(policy)
        XCTAssertEqual(rules.map(\.syscall), ["openat"], "getppid back to the default action is dropped")
        XCTAssertEqual(rules.first?.action, .trap)
    }

    func testUnknownSyscallNamesTheRuleLocation() {
        let location = SourceLocation(file: "x.yaml", line: 7)
        let policy = SeccompPolicy(rules: [SeccompRule(syscalls: ["no_such_call"], action: .trap, location: location)])
        XCTAssertThrowsError(try SeccompCompiler.compile(policy)) { error in
            XCTAssertTrue("\(error)".contains("x.yaml:7"), "\(error)")
            XCTAssertTrue("\(error)".contains("no_such_call"), "\(error)")
        }
    }

    func testActionEncodingsMatchTheKernel() {
        XCTAssertEqual(SeccompCompiler.actionValue(.killProcess), 0x8000_0000)
        XCTAssertEqual(SeccompCompiler.actionValue(.trap), 0x0003_0000)
        XCTAssertEqual(SeccompCompiler.actionValue(.errno(1)), 0x0005_0001)
        XCTAssertEqual(SeccompCompiler.actionValue(.log), 0x7ffc_0000)
        XCTAssertEqual(SeccompCompiler.actionValue(.allow), 0x7fff_0000)
    }
}

final class CgroupHierarchyTests: XCTestCase {
    /// Recorded from this project's machines: v1 controllers plus v2 at /sys/fs/cgroup/unified (the controllers'
    /// lines are shared with `CgroupPlacementTests`).
    static let hybridControllers = """
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
        39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """
    let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" + CgroupHierarchyTests.hybridControllers
    /// A systemd host with the unified hierarchy only.
    let unified = """
        25 20 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
        """

    func testFindsV2AndV1MountsFromMountinfo() {
        let h = CgroupHierarchies.parse(mountinfo: hybrid)
        XCTAssertEqual(h.v2, "/sys/fs/cgroup/unified")
        XCTAssertEqual(h.v1["freezer"], "/sys/fs/cgroup/freezer")
        XCTAssertEqual(h.v1["pids"], "/sys/fs/cgroup/pids")
        XCTAssertEqual(h.v1["memory"], "/sys/fs/cgroup/memory")
        XCTAssertNil(h.v1["systemd"])
    }

    func testFindsUnifiedOnlyHost() {
        let h = CgroupHierarchies.parse(mountinfo: unified)
        XCTAssertEqual(h.v2, "/sys/fs/cgroup")
        XCTAssertTrue(h.v1.isEmpty)
    }

    func testRunNamesCarryTheOwnerPid() {
        let name = RunCgroup.runName(owner: 4242, sequence: 3, scenario: "pidfd open/trap")
        XCTAssertEqual(name, "r4242-3-pidfd_open_trap")
        XCTAssertEqual(RunCgroup.owner(ofRunName: name), 4242)
        XCTAssertNil(RunCgroup.owner(ofRunName: "other"))
    }

    func testLiveCgroupLimitsFreezeAndTeardown() throws {
        try requireRoot()
        let h = CgroupHierarchies.discover()
        try requireHost(h.v2 != nil || !h.v1.isEmpty, "no cgroup hierarchy mounted")
        let request = CgroupRequest(pidsMax: 7, memoryMax: 64 << 20,
                                    freeze: [FreezeStep(trigger: .after(.zero), hold: nil)])
        let group = try RunCgroup(name: RunCgroup.runName(owner: getpid(), sequence: 9000, scenario: "unit"),
                                  hierarchies: h, request: request)
        let paths = group.allPaths
        XCTAssertFalse(paths.isEmpty)
        let pidsFile = (group.pidsVia == "v2" ? group.v2Path! : group.v1Paths["pids"]!) + "/pids.max"
        XCTAssertEqual(try String(contentsOfFile: pidsFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), "7")

        // A real process in the cgroup, frozen and thawed.
        var plan = SpawnPlan(executable: "/bin/sleep", arguments: ["sleep", "30"], environment: [])
        plan.cgroupDescriptors = group.joinDescriptors
        let pid = try Spawner.spawn(plan)
        XCTAssertTrue(eventually { group.pids().contains(pid) })
        try group.freeze()
        XCTAssertTrue(eventually { group.isFrozen() }, "cgroup never reported frozen")
        try group.thaw()
        XCTAssertTrue(eventually { !group.isFrozen() })
        try group.freeze()
        group.destroy()
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, 0), pid)
        XCTAssertEqual(status & 0x7f, SIGKILL, "teardown kills with SIGKILL, even when frozen")
        for path in paths { XCTAssertFalse(FileManager.default.fileExists(atPath: path), "\(path) left behind") }
    }

    func testSweepRemovesCgroupsOfDeadOwners() throws {
        try requireRoot()
        let h = CgroupHierarchies.discover()
        try requireHost(h.v2 != nil, "no cgroup v2")
        // A pid that is not running: the highest possible pid minus one is practically never in use.
        let deadOwner: Int32 = 4_194_303
        try requireHost(kill(deadOwner, 0) != 0, "pid \(deadOwner) happens to exist")
        try h.placement?.prepare()
        let path = h.v2RunParent! + "/" + RunCgroup.runName(owner: deadOwner, sequence: 1, scenario: "left")
        try? FileManager.default.createDirectory(atPath: h.v2RunParent!, withIntermediateDirectories: true)
        XCTAssertEqual(mkdir(path, 0o755), 0)
        let removed = RunCgroup.sweep(hierarchies: h)
        XCTAssertTrue(removed.contains(path), "\(removed)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }
}

final class CgroupHostChangeTests: XCTestCase {
    /// A controller ghostrun enables in the v2 root's subtree_control (the host's) is recorded on its parent and
    /// disabled again when that parent is removed: the root ends as it started.
    func testControllerEnabledInTheRootIsUndoneWithTheParent() throws {
        try requireRoot()
        let h = CgroupHierarchies.discover()
        let root = try XCTUnwrap(h.v2, "no cgroup v2")
        try requireHost(h.placement?.kind != .delegated, "a delegated ghostrun never writes outside its cgroup")
        let control = root + "/cgroup.subtree_control"
        func words(_ path: String) -> Set<String> {
            Set(((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(whereSeparator: \.isWhitespace)
                .map(String.init))
        }
        let before = words(control)
        let offered = words(root + "/cgroup.controllers")
        // One the root offers but has not enabled; never cpuset (enabling it copies the CPU list down).
        let controller = try XCTUnwrap(
            offered.subtracting(before).subtracting(["cpuset"]).sorted().first,
            "every controller the root offers is enabled already (\(before.sorted()))")
        let parent = root + "/ghostrun-undo-test-\(getpid())"
        XCTAssertEqual(mkdir(parent, 0o755), 0)
        CgroupLock.holding(root) { RunCgroup.enableInRoot(controller, root: root, parent: parent) }
        XCTAssertTrue(words(control).contains(controller), "not enabled in the root")
        XCTAssertTrue(RunCgroup.enabledControllers(parent: parent).contains(controller), "not recorded")
        RunCgroup.removeStandaloneParent(parent)
        XCTAssertFalse(FileManager.default.fileExists(atPath: parent))
        XCTAssertEqual(words(control), before, "the root's subtree_control changed")
    }
}

final class SpawnerTests: XCTestCase {
    private func status(of pid: pid_t) throws -> [String: String] {
        let text = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return fields
    }

    private func reap(_ pid: pid_t) {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    func testRestrictionsReachTheExecutedProgram() throws {
        try requireRoot()
        var plan = SpawnPlan(executable: "/bin/sleep", arguments: ["sleep", "30"], environment: ["A=1"])
        plan.capabilities = try CapabilityPlan.make(request: CapabilityRequest(drop: .all), switchingToNonRoot: false)
        plan.noNewPrivs = true
        plan.filter = try SeccompCompiler.compile(SeccompPolicy(rules: [SeccompRule(syscalls: ["getppid"], action: .errno(1))]))
        plan.rlimits = [ResourceLimit(name: "nofile", resource: 7, soft: 17, hard: 17)]
        let pid = try Spawner.spawn(plan)
        defer { reap(pid) }
        let fields = try status(of: pid)
        XCTAssertEqual(fields["CapEff"], "0000000000000000")
        XCTAssertEqual(fields["CapBnd"], "0000000000000000")
        XCTAssertEqual(fields["NoNewPrivs"], "1")
        XCTAssertEqual(fields["Seccomp"], "2")
        XCTAssertEqual(fields["Seccomp_filters"], "1")
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        XCTAssertTrue(limits.split(separator: "\n").contains { $0.hasPrefix("Max open files") && $0.contains(" 17 ") },
                      limits)
        XCTAssertEqual(getpgid(pid), pid, "the child leads its own process group")
    }

    func testUserSwitchKeepsRequestedCapabilitiesThroughAmbient() throws {
        try requireRoot()
        var plan = SpawnPlan(executable: "/bin/sleep", arguments: ["sleep", "30"], environment: [])
        plan.user = (uid: 65534, gid: 65534)
        let netBind = CapabilityName.number(of: "CAP_NET_BIND_SERVICE")!
        plan.capabilities = try CapabilityPlan.make(
            request: CapabilityRequest(drop: .all, add: CapabilitySet(numbers: [netBind])), switchingToNonRoot: true)
        let pid = try Spawner.spawn(plan)
        defer { reap(pid) }
        let fields = try status(of: pid)
        XCTAssertTrue(fields["Uid"]?.hasPrefix("65534") ?? false, "\(fields["Uid"] ?? "")")
        XCTAssertTrue(fields["Gid"]?.hasPrefix("65534") ?? false)
        XCTAssertEqual(UInt64(fields["CapEff"] ?? "", radix: 16), UInt64(1) << UInt64(netBind))
        XCTAssertEqual(UInt64(fields["CapAmb"] ?? "", radix: 16), UInt64(1) << UInt64(netBind))
        XCTAssertEqual(fields["Groups"], "65534")
    }

    func testSeccompWithoutNoNewPrivsAfterDroppingSysAdmin() throws {
        try requireRoot()
        // no_new_privs false and CAP_SYS_ADMIN dropped: the filter must still load (CAP_SYS_ADMIN held until then).
        var plan = SpawnPlan(executable: "/bin/sleep", arguments: ["sleep", "30"], environment: [])
        plan.capabilities = try CapabilityPlan.make(request: CapabilityRequest(drop: .all), switchingToNonRoot: false)
        plan.filter = try SeccompCompiler.compile(SeccompPolicy(rules: [SeccompRule(syscalls: ["getppid"], action: .trap)]))
        let pid = try Spawner.spawn(plan)
        defer { reap(pid) }
        let fields = try status(of: pid)
        XCTAssertEqual(fields["Seccomp"], "2")
        XCTAssertEqual(fields["NoNewPrivs"], "0")
        XCTAssertEqual(fields["CapEff"], "0000000000000000")
    }

    func testFailingStepComesBackAsItsNameAndErrno() {
        let missing = SpawnPlan(executable: "/nonexistent/go", arguments: ["go"], environment: [])
        XCTAssertThrowsError(try Spawner.spawn(missing)) { error in
            let spawnError = error as? SpawnError
            XCTAssertEqual(spawnError?.step, "execve")
            XCTAssertEqual(spawnError?.errno, ENOENT)
        }
        var badDirectory = SpawnPlan(executable: "/bin/true", arguments: ["true"], environment: [])
        badDirectory.workdir = "/nonexistent-dir"
        XCTAssertThrowsError(try Spawner.spawn(badDirectory)) { error in
            XCTAssertEqual((error as? SpawnError)?.step, "chdir")
            XCTAssertEqual((error as? SpawnError)?.errno, ENOENT)
        }
    }

    func testErrnoAndCapabilityNames() {
        XCTAssertEqual(ErrnoName.value(of: "EPERM"), 1)
        XCTAssertEqual(ErrnoName.value(of: "enosys"), ENOSYS)
        XCTAssertEqual(ErrnoName.value(of: "13"), 13)
        XCTAssertNil(ErrnoName.value(of: "ENOPE"))
        XCTAssertEqual(ErrnoName.name(of: EACCES), "EACCES")
        XCTAssertEqual(CapabilityName.number(of: "CAP_SYS_ADMIN"), 21)
        XCTAssertEqual(CapabilityName.number(of: "setgid"), 6)
        XCTAssertNil(CapabilityName.number(of: "CAP_MAKE_COFFEE"))
        XCTAssertEqual(CapabilityName.name(of: 21), "CAP_SYS_ADMIN")
        XCTAssertEqual(SyscallName.number(of: "pidfd_open"), 434)
        XCTAssertEqual(SyscallName.name(of: 434), "pidfd_open")
        XCTAssertEqual(closestNames(to: "pidfd_opn", in: ["pidfd_open", "openat", "close"]).first, "pidfd_open")
    }

    func testDurationsSizesAndVersions() {
        XCTAssertEqual(parseDuration("300ms"), .milliseconds(300))
        XCTAssertEqual(parseDuration("1.5s"), .milliseconds(1500))
        XCTAssertEqual(parseDuration("2m"), .seconds(120))
        XCTAssertNil(parseDuration("5 parsecs"))
        XCTAssertEqual(parseSize("512MiB"), 512 << 20)
        XCTAssertEqual(parseSize("64KiB"), 64 << 10)
        XCTAssertEqual(parseSize("4096"), 4096)
        XCTAssertNil(parseSize("lots"))
        XCTAssertEqual(GoVersion("go1.23.4"), GoVersion(major: 1, minor: 23, patch: 4))
        XCTAssertTrue(VersionConstraint(">=1.23")!.allows(GoVersion("1.23.0")!))
        XCTAssertFalse(VersionConstraint(">=1.23")!.allows(GoVersion("1.21.13")!))
        XCTAssertTrue(VersionConstraint("<1.23")!.allows(GoVersion("1.21.13")!))
        XCTAssertTrue(VersionConstraint("1.21 - 1.23")!.allows(GoVersion("1.23.4")!))
        XCTAssertFalse(VersionConstraint("1.21 - 1.23")!.allows(GoVersion("1.27.3")!))
        XCTAssertTrue(VersionConstraint("==1.19")!.allows(GoVersion("1.19.8")!))
        XCTAssertNil(VersionConstraint(">=one"))
    }

    func testArtifactInference() {
        XCTAssertEqual(RunPlan.inferArtifact(arguments: ["go", "build", "-o", "out/app", "."], workdir: "/w",
                                                    gobin: nil, gopath: "/g"), "out/app")
        XCTAssertNil(RunPlan.inferArtifact(arguments: ["go", "version"], workdir: "/w", gobin: nil, gopath: "/g"))
    }
}
