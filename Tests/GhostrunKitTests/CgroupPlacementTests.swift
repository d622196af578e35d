import Foundation
import XCTest

@testable import GhostrunKit

/// The cgroup v2 placement decision on the data each layout records (/proc/self/mountinfo, /proc/self/cgroup,
/// /proc/1/comm, the v2 root's entries, systemd's delegate xattr).
final class CgroupPlacementTests: XCTestCase {
    /// This project's hosts: v2 at /sys/fs/cgroup/unified beside v1 controllers, PID 1 is not systemd.
    let hybridMountinfo = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        """ + "\n" + CgroupHierarchyTests.hybridControllers
    let hybridSelfCgroup = """
        9:name=systemd:/
        8:pids:/
        6:freezer:/
        4:memory:/process_api/77a736dbd3d6e41b2d90473fb6ced55e
        1:cpu:/
        0::/
        """
    let hybridRoot = ["cgroup.controllers", "cgroup.procs", "cgroup.subtree_control", "cpu.pressure", "ghostrun"]

    /// The Debian 12 VM (systemd 252, unified hierarchy only), recorded by scripts/vm-test.sh (results/facts/).
    let unifiedMountinfo = """
        22 27 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
        31 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
        34 23 0:29 / /proc/sys/fs/binfmt_misc rw,relatime shared:13 - autofs systemd-1 rw,fd=30,pgrp=1,timeout=0,minproto=5,maxproto=5,direct,pipe_ino=11117
        """
    let systemdRoot = [
        "cgroup.controllers", "cgroup.max.depth", "cgroup.max.descendants", "cgroup.pressure", "cgroup.procs",
        "cgroup.stat", "cgroup.subtree_control", "cgroup.threads", "cpu.pressure", "cpu.stat", "cpuset.cpus.effective",
        "cpuset.mems.effective", "dev-hugepages.mount", "dev-mqueue.mount", "init.scope", "io.cost.model",
        "io.cost.qos", "io.pressure", "io.stat", "memory.numa_stat", "memory.pressure", "memory.reclaim", "memory.stat",
        "misc.capacity", "sys-fs-fuse-connections.mount", "sys-kernel-config.mount", "sys-kernel-debug.mount",
        "sys-kernel-tracing.mount", "system.slice", "user.slice",
    ]

    func facts(_ mountinfo: String, _ selfCgroup: String, pid1: String, root: [String],
               delegated: Set<String> = [], reexec: Bool = false) -> CgroupHostFacts {
        CgroupHostFacts(mountinfo: mountinfo, selfCgroup: selfCgroup, pid1Command: pid1 + "\n", v2RootEntries: root,
                        delegateMarks: { delegated.contains($0) }, startedByDelegationReexec: reexec)
    }

    func testThisHostsHybridLayoutStaysStandalone() throws {
        let placement = try XCTUnwrap(CgroupPlacement.decide(
            facts(hybridMountinfo, hybridSelfCgroup, pid1: "process_api", root: hybridRoot)))
        XCTAssertEqual(placement.kind, .standalone)
        XCTAssertEqual(placement.runParent, "/sys/fs/cgroup/unified/ghostrun")
        XCTAssertEqual(placement.controllerSource, "/sys/fs/cgroup/unified")
        XCTAssertNil(placement.supervisorLeaf)
        XCTAssertEqual(placement.ownCgroup, "/sys/fs/cgroup/unified")
        XCTAssertTrue(placement.reason.contains("PID 1 is process_api"), placement.reason)
    }

    func testHierarchiesWithoutAPlacementKeepTheOldParent() {
        let h = CgroupHierarchies.parse(mountinfo: hybridMountinfo)
        XCTAssertEqual(h.v2RunParent, "/sys/fs/cgroup/unified/ghostrun")
        XCTAssertEqual(h.v2ControllerSource, "/sys/fs/cgroup/unified")
    }

    func testSystemdLoginSessionIsNotDelegated() throws {
        let placement = try XCTUnwrap(CgroupPlacement.decide(
            facts(unifiedMountinfo, "0::/user.slice/user-0.slice/session-1.scope\n", pid1: "systemd",
                  root: systemdRoot)))
        XCTAssertEqual(placement.kind, .undelegated)
        XCTAssertEqual(placement.ownCgroup, "/sys/fs/cgroup/user.slice/user-0.slice/session-1.scope")
        // Only used when the re-exec is impossible or refused (GHOSTRUN_CGROUP_SCOPE=never).
        XCTAssertEqual(placement.runParent, "/sys/fs/cgroup/ghostrun")
    }

    func testSystemdServiceWithoutDelegateIsNotDelegated() throws {
        let placement = try XCTUnwrap(CgroupPlacement.decide(
            facts(unifiedMountinfo, "0::/system.slice/ghostrun-vm.service\n", pid1: "systemd", root: systemdRoot)))
        XCTAssertEqual(placement.kind, .undelegated)
        XCTAssertEqual(placement.ownCgroup, "/sys/fs/cgroup/system.slice/ghostrun-vm.service")
    }

    func testDelegatedScopeGetsRunsBesideTheSupervisorLeaf() throws {
        let scope = "/sys/fs/cgroup/system.slice/run-r6c1d.scope"
        let placement = try XCTUnwrap(CgroupPlacement.decide(
            facts(unifiedMountinfo, "0::/system.slice/run-r6c1d.scope\n", pid1: "systemd", root: systemdRoot,
                  delegated: [scope])))
        XCTAssertEqual(placement.kind, .delegated)
        XCTAssertEqual(placement.runParent, scope)
        XCTAssertEqual(placement.supervisorLeaf, scope + "/supervisor")
        XCTAssertEqual(placement.controllerSource, scope)
        XCTAssertEqual(CgroupHierarchies(v2: "/sys/fs/cgroup", v1: [:], placement: placement).v2RunParent, scope)
    }

    func testAfterTheMoveTheLeafStillMeansTheDelegatedCgroup() throws {
        // ghostrun after `prepare()`, and its reaper (started in the leaf), decide the same.
        let scope = "/sys/fs/cgroup/system.slice/run-r6c1d.scope"
        let placement = try XCTUnwrap(CgroupPlacement.decide(
            facts(unifiedMountinfo, "0::/system.slice/run-r6c1d.scope/supervisor\n", pid1: "systemd",
                  root: systemdRoot, delegated: [scope])))
        XCTAssertEqual(placement.kind, .delegated)
        XCTAssertEqual(placement.runParent, scope)
        XCTAssertEqual(placement.ownCgroup, scope + "/supervisor")
    }

    func testReexecMarkerCountsWhenSystemdSetsNoXattr() throws {
        // systemd < 252 delegates without the trusted.delegate xattr; the scope ghostrun asked for is delegated.
        let placement = try XCTUnwrap(CgroupPlacement.decide(
            facts(unifiedMountinfo, "0::/system.slice/run-r1.scope\n", pid1: "systemd", root: systemdRoot,
                  reexec: true)))
        XCTAssertEqual(placement.kind, .delegated)
    }

    func testRootCgroupIsNeverTakenAsDelegated() throws {
        let placement = try XCTUnwrap(CgroupPlacement.decide(
            facts(unifiedMountinfo, "0::/\n", pid1: "systemd", root: systemdRoot, delegated: ["/sys/fs/cgroup"])))
        XCTAssertEqual(placement.kind, .undelegated)
    }

    func testSystemdHybridHostManagesItsUnifiedHierarchy() throws {
        // systemd in hybrid mode: v1 controllers and its own tree mirrored in /sys/fs/cgroup/unified.
        let mountinfo = """
            27 26 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw
            28 26 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:6 - cgroup cgroup rw,xattr,name=systemd
            """
        let placement = try XCTUnwrap(CgroupPlacement.decide(
            facts(mountinfo, "1:name=systemd:/user.slice/user-0.slice/session-3.scope\n0::/user.slice/user-0.slice/session-3.scope\n",
                  pid1: "systemd", root: systemdRoot)))
        XCTAssertEqual(placement.kind, .undelegated)
        XCTAssertEqual(placement.ownCgroup, "/sys/fs/cgroup/unified/user.slice/user-0.slice/session-3.scope")
    }

    func testContainerWithACgroupNamespaceAndNoSystemdIsStandalone() throws {
        let mountinfo = "620 610 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate\n"
        let placement = try XCTUnwrap(CgroupPlacement.decide(
            facts(mountinfo, "0::/\n", pid1: "bash", root: ["cgroup.procs", "cgroup.controllers"])))
        XCTAssertEqual(placement.kind, .standalone)
        XCTAssertEqual(placement.runParent, "/sys/fs/cgroup/ghostrun")
    }

    func testBindMountedSubtreeMapsOwnCgroupUnderTheMount() {
        XCTAssertEqual(
            CgroupPlacement.ownCgroup(selfCgroup: "0::/system.slice/ci.service/job\n", mountRoot: "/system.slice/ci.service",
                                      mountPoint: "/sys/fs/cgroup"),
            "/sys/fs/cgroup/job")
        XCTAssertNil(CgroupPlacement.ownCgroup(selfCgroup: "0::/elsewhere\n", mountRoot: "/system.slice/ci.service",
                                               mountPoint: "/sys/fs/cgroup"))
    }

    func testNoCgroup2MountNoPlacement() {
        XCTAssertNil(CgroupPlacement.decide(facts("", "0::/\n", pid1: "systemd", root: [])))
    }

    func testReexecArgumentsKeepTheCommandLine() {
        XCTAssertEqual(
            CgroupDelegation.arguments(systemdRun: "/usr/bin/systemd-run", executable: "/opt/ghostrun",
                                       arguments: ["run", "scenarios/", "--go-version", "1.19"]),
            ["/usr/bin/systemd-run", "--scope", "--quiet", "--collect", "-p", "Delegate=yes",
             "--description=ghostrun run scenarios/ --go-version", "--", "/opt/ghostrun", "run", "scenarios/",
             "--go-version", "1.19"])
    }

    func testReexecIsRefusedWhenTurnedOffOrAlreadyDone() {
        let undelegated = CgroupPlacement(kind: .undelegated, runParent: "/sys/fs/cgroup/ghostrun",
                                          supervisorLeaf: nil, ownCgroup: "/sys/fs/cgroup/user.slice", reason: "r")
        if case .success = CgroupDelegation.plan(undelegated, environment: ["GHOSTRUN_CGROUP_SCOPE": "never"]) {
            XCTFail("GHOSTRUN_CGROUP_SCOPE=never must keep ghostrun where it is")
        }
        if case .success = CgroupDelegation.plan(undelegated, environment: ["GHOSTRUN_DELEGATED_SCOPE": "1"]) {
            XCTFail("a second re-exec would loop")
        }
        let standalone = CgroupPlacement(kind: .standalone, runParent: "/sys/fs/cgroup/unified/ghostrun",
                                         supervisorLeaf: nil, ownCgroup: nil, reason: "r")
        if case .success = CgroupDelegation.plan(standalone, environment: [:]) { XCTFail("nothing to re-exec for") }
    }
}
