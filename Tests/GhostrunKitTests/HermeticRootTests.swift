import CGhostrun
import Foundation
import XCTest

@testable import GhostrunKit

/// The hermetic root's plan from recorded mount tables: what is overlaid, bound, shown read-only, and in which order.
final class HermeticRootTests: XCTestCase {
    /// This host's table (kernel 6.18 VM): the root was moved into place after /proc, /sys and /dev were mounted on
    /// it, /dev/pts and /dev/shm are stacked twice, cgroup v1 and v2 under a tmpfs in /sys.
    let vmTable = """
        22 27 0:21 / /proc rw,relatime - proc proc rw
        23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
        24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334492k,nr_inodes=3083623,mode=755
        25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684092k
        26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
        27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
        28 27 0:25 / /mnt/tools ro,nosuid,nodev,relatime - tmpfs tools ro,size=4k,mode=755
        29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
        30 25 0:27 / /dev/shm rw,nosuid,nodev,relatime - tmpfs tmpfs rw
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw
        32 31 0:29 / /sys/fs/cgroup/pids rw,relatime shared:5 - cgroup cgroup rw,pids
        33 31 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """

    private func targets(_ operations: [MountOperation], _ kind: (MountOperation.Kind) -> Bool) -> [String] {
        operations.filter { kind($0.kind) }.map(\.target)
    }

    func testParsesIdsTypesAndPerMountFlags() {
        let mounts = HostMount.parse(mountinfo: vmTable + "\ngarbage line\n")
        XCTAssertEqual(mounts.count, 12)
        let tools = try? XCTUnwrap(mounts.first { $0.mountPoint == "/mnt/tools" })
        XCTAssertEqual(tools?.readOnly, true)
        XCTAssertEqual(tools?.nosuid, true)
        XCTAssertEqual(tools?.nodev, true)
        XCTAssertEqual(tools?.fileSystemType, "tmpfs")
        let pids = mounts.first { $0.mountPoint == "/sys/fs/cgroup/pids" }
        XCTAssertEqual(pids?.fileSystemType, "cgroup", "optional fields before the separator are skipped")
        XCTAssertEqual(pids?.parentID, 31)
        XCTAssertEqual(HostMount.parse(mountinfo: #"40 27 8:1 / /mnt/with\040space rw - ext4 /dev/x rw"#)
            .first?.mountPoint, "/mnt/with space")
    }

    func testVisibleOrdersParentsFirstAndDropsCoveredMounts() {
        let visible = HostMount.visible(HostMount.parse(mountinfo: vmTable))
        let points = visible.map(\.mountPoint)
        XCTAssertEqual(points.first, "/", "the root was listed after its children but comes first")
        // The first /dev/pts and /dev/shm are covered by the ones stacked on them.
        XCTAssertEqual(visible.filter { $0.mountPoint == "/dev/pts" }.map(\.id), [29])
        XCTAssertEqual(visible.filter { $0.mountPoint == "/dev/shm" }.map(\.id), [30])
        let all = HostMount.parse(mountinfo: vmTable)
        for mount in visible where mount.mountPoint != "/" {
            // A mount stacked on another sits where its (covered) parent was: check that parent's parent.
            var parentID = mount.parentID
            while let parent = all.first(where: { $0.id == parentID }), parent.mountPoint == mount.mountPoint {
                parentID = parent.parentID
            }
            let parent = visible.firstIndex { $0.id == parentID }
            let index = visible.firstIndex { $0.id == mount.id }!
            XCTAssertNotNil(parent, "\(mount.mountPoint)'s parent is visible")
            XCTAssertLessThan(parent!, index, "\(mount.mountPoint) comes after its parent")
        }
    }

    func testMountsOnACoveredMountAreLeftOut() {
        let table = """
            1 0 8:1 / / rw - ext4 /dev/a rw
            2 1 0:2 / /x rw - tmpfs t rw
            3 2 0:3 / /x/y rw - tmpfs t rw
            4 2 0:4 / /x rw - tmpfs t rw
            """
        XCTAssertEqual(HostMount.visible(HostMount.parse(mountinfo: table)).map(\.id), [1, 4])
    }

    func testPlanOverlaysStorageBindsKernelInterfacesAndPivotsLast() {
        let stage = "/tmp/ghostrun-1-1-abc/hermetic"
        let plan = HermeticRoot.plan(
            mounts: HostMount.parse(mountinfo: vmTable), stage: stage, writable: ["/tmp/ghostrun-1-1-abc"],
            isDirectory: { _ in true })
        let ops = plan.operations
        let root = stage + "/root"
        // The stage tmpfs first, the pivot last.
        XCTAssertEqual(ops.first?.target, stage)
        XCTAssertEqual(ops.first { if case .tmpfs = $0.kind { true } else { false } }?.target, stage)
        XCTAssertEqual(ops.last?.kind, .pivotRoot)
        XCTAssertEqual(ops.last?.target, root)

        let overlays = ops.compactMap { op -> (String, String)? in
            if case .overlay(let options) = op.kind { return (op.target, options) }
            return nil
        }
        XCTAssertEqual(overlays.map(\.0), [root, root + "/dev/shm"])
        XCTAssertEqual(overlays[0].1, "lowerdir=/,upperdir=\(stage)/upper/0,workdir=\(stage)/work/0")
        XCTAssertEqual(overlays[1].1, "lowerdir=/dev/shm,upperdir=\(stage)/upper/1,workdir=\(stage)/work/1")
        // The host mount's nosuid and nodev carry over to its overlay.
        XCTAssertEqual(ops.first { $0.target == root + "/dev/shm" && $0.kind != .makeDirectory }?.flags,
                       UInt64(GHOSTRUN_MOUNT_NOSUID | GHOSTRUN_MOUNT_NODEV))

        let bound = targets(ops) { if case .bindOne = $0 { true } else { false } }
        XCTAssertEqual(Set(bound), [
            root + "/proc", root + "/sys", root + "/dev", root + "/dev/pts", root + "/mnt/tools",
            root + "/sys/fs/cgroup", root + "/sys/fs/cgroup/pids", root + "/sys/fs/cgroup/unified",
            root + "/tmp/ghostrun-1-1-abc",
        ])
        // /dev comes before what is mounted on it; the run's own tree is bound last, before the pivot.
        XCTAssertLessThan(bound.firstIndex(of: root + "/dev")!, bound.firstIndex(of: root + "/dev/pts")!)
        XCTAssertLessThan(bound.firstIndex(of: root + "/sys")!, bound.firstIndex(of: root + "/sys/fs/cgroup")!)
        XCTAssertEqual(bound.last, root + "/tmp/ghostrun-1-1-abc")
        XCTAssertEqual(plan.view.overlaid, ["/", "/dev/shm"])
        XCTAssertEqual(plan.view.readOnly, [])
        XCTAssertEqual(plan.view.writable, ["/tmp/ghostrun-1-1-abc"])
        XCTAssertTrue(ops.allSatisfy { $0.step.hasPrefix("hermetic") && $0.step.utf8.count < 32 })
        // Only the replicas of the host's mounts may be skipped when their mount vanished (issue 18): the stage, the
        // root, the run's own tree and the pivot must work or the run is a harness error.
        for op in ops {
            if op.step.hasPrefix("hermetic[") {
                XCTAssertNotNil(op.replicates, "\(op)")
                XCTAssertTrue(op.target == root + op.replicates! || op.target.hasPrefix(stage + "/upper/")
                              || op.target.hasPrefix(stage + "/work/"), "\(op)")
            } else {
                XCTAssertNil(op.replicates, "\(op.step) must not be skippable")
            }
        }
    }

    /// Every systemd host has /proc/sys/fs/binfmt_misc as an autofs automount (recorded in the Debian 12 VM of
    /// scripts/vm-test.sh): replicating it failed the first hermetic run with ELOOP, and following it would make the
    /// host's automounter mount there. An untriggered autofs is left out and listed; a triggered one is covered by
    /// the binfmt_misc mount on it, which is bound.
    func testAnAutomountTriggerIsNotFollowed() {
        let table = """
            27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
            23 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
            34 23 0:29 / /proc/sys/fs/binfmt_misc rw,relatime shared:13 - autofs systemd-1 rw,fd=30,pgrp=1,direct
            """
        let plan = HermeticRoot.plan(mounts: HostMount.parse(mountinfo: table), stage: "/s", writable: [],
                                     isDirectory: { _ in true })
        XCTAssertFalse(plan.operations.contains { $0.target.hasSuffix("/binfmt_misc") }, "\(plan.operations)")
        XCTAssertEqual(plan.view.skipped, ["/proc/sys/fs/binfmt_misc (autofs trigger, not followed)"])
        let triggered = HermeticRoot.plan(
            mounts: HostMount.parse(mountinfo: table + "\n51 34 0:45 / /proc/sys/fs/binfmt_misc rw,relatime - binfmt_misc binfmt_misc rw"),
            stage: "/s", writable: [], isDirectory: { _ in true })
        XCTAssertTrue(triggered.operations.contains { $0.target == "/s/root/proc/sys/fs/binfmt_misc" })
        XCTAssertEqual(triggered.view.skipped, [])
    }

    /// A container's root: an overlay root, a file bound from the host (ext4, writable), an NFS home.
    func testSingleFilesAndUnstackableFileSystemsAreShownReadOnly() {
        let table = """
            500 400 0:50 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
            501 500 0:51 / /proc rw,nosuid,nodev,noexec - proc proc rw
            502 500 8:1 /docker/hosts /etc/hosts rw,relatime - ext4 /dev/sda1 rw
            503 500 0:52 / /home rw,relatime - nfs4 server:/home rw
            504 500 8:1 /data /data rw,noexec - xfs /dev/sdb rw
            """
        let plan = HermeticRoot.plan(
            mounts: HostMount.parse(mountinfo: table), stage: "/s", writable: ["/w"],
            isDirectory: { $0 != "/etc/hosts" })
        XCTAssertEqual(plan.view.overlaid, ["/", "/data"])
        XCTAssertEqual(plan.view.readOnly, ["/etc/hosts (ext4)", "/home (nfs4)"])
        for target in ["/s/root/etc/hosts", "/s/root/home"] {
            XCTAssertTrue(plan.operations.contains { $0.target == target && $0.kind == .bindOne(source: String(target.dropFirst(7))) })
            XCTAssertTrue(plan.operations.contains {
                $0.target == target && $0.kind == .setAttributes && $0.flags == UInt64(GHOSTRUN_MOUNT_RDONLY)
            }, target)
        }
        XCTAssertEqual(plan.operations.first { $0.target == "/s/root/data" && $0.kind != .makeDirectory }?.flags,
                       UInt64(GHOSTRUN_MOUNT_NOEXEC))
    }

    func testOverlayOptionsEscapeSeparators() {
        XCTAssertEqual(HermeticRoot.escape("/a,b:c\\d"), "/a\\,b\\:c\\\\d")
        let table = "1 0 8:1 / / rw - ext4 /dev/a rw\n2 1 8:2 / /odd,dir rw - ext4 /dev/b rw"
        let plan = HermeticRoot.plan(mounts: HostMount.parse(mountinfo: table), stage: "/s", writable: [],
                                     isDirectory: { _ in true })
        XCTAssertTrue(plan.operations.contains { $0.kind == .overlay(options: "lowerdir=/odd\\,dir,upperdir=/s/upper/1,workdir=/s/work/1") })
    }

    func testRunPlanIsHermeticUnlessHostWritesAndRefusesArtifactsOutsideWork() throws {
        let toolchain = Toolchain(goBinary: "/go/bin/go", goroot: "/go", version: GoVersion(major: 1, minor: 23, patch: 4),
                                  versionString: "go1.23.4")
        let work = WorkDirectory(root: "/tmp/ghostrun-9-9-xyz")
        let host = PlanHost(environment: ["PATH": "/usr/bin"], kernel: (6, 18), availableCapabilities: .all,
                            handOverDescriptor: 900, readFile: { _ in nil }, lookUpExecutable: { n, _ in "/usr/bin/" + n })
        let mounts = HostMount.parse(mountinfo: vmTable)
        let hermetic = try RunPlan.resolve(scenario: try scenario("name: h\nrun: [go, version]\n"), toolchain: toolchain,
                                           host: host, work: work, hermetic: mounts)
        XCTAssertTrue(hermetic.spawn.newMountNamespace)
        XCTAssertEqual(hermetic.fileSystemView.mode, "overlay")
        XCTAssertEqual(hermetic.spawn.mountOperations.last?.kind, .pivotRoot)

        let hostWrites = try RunPlan.resolve(scenario: try scenario("name: h\nrun: [go, version]\n"), toolchain: toolchain,
                                             host: host, work: work, hermetic: nil)
        XCTAssertFalse(hostWrites.spawn.newMountNamespace)
        XCTAssertEqual(hostWrites.fileSystemView, .hostWrites)

        // User mounts apply inside the new root, after the pivot.
        let withMounts = try RunPlan.resolve(
            scenario: try scenario("name: h\nrun: [go, version]\nsandbox:\n  mounts:\n    - {path: /, readonly: true}\n"),
            toolchain: toolchain, host: host, work: work, hermetic: mounts)
        let pivot = withMounts.spawn.mountOperations.firstIndex { $0.kind == .pivotRoot }!
        let entry = withMounts.spawn.mountOperations.firstIndex { $0.step == "sandbox.mounts[0]" }!
        XCTAssertLessThan(pivot, entry)

        XCTAssertThrowsError(try RunPlan.resolve(
            scenario: try scenario("name: h\nrun: [go, build, -o, /usr/local/bin/x, .]\n"), toolchain: toolchain,
            host: host, work: work, hermetic: mounts)) { error in
            XCTAssertTrue("\(error)".contains("--host-writes"), "\(error)")
        }
        XCTAssertNoThrow(try RunPlan.resolve(
            scenario: try scenario("name: h\nrun: [go, build, -o, /usr/local/bin/x, .]\n"), toolchain: toolchain,
            host: host, work: work, hermetic: nil))
    }
}

/// "Was the restriction applied to every process?" covers the namespaces: a process of a run with namespaces of its
/// own that shows ghostrun's is a mismatch.
final class NamespaceAttestationTests: XCTestCase {
    func testAProcessInGhostrunsNamespaceIsAMismatch() {
        let requested = RequestedRestrictions(hostMountNamespace: "mnt:[1]", hostNetworkNamespace: "net:[2]")
        XCTAssertFalse(requested.isEmpty)
        var status = ProcStatus()
        status.mountNamespace = "mnt:[7]"
        status.networkNamespace = "net:[8]"
        XCTAssertEqual(ResultBuilder.restrictionProblems(status, requested: requested), [])
        status.mountNamespace = "mnt:[1]"
        status.networkNamespace = "net:[2]"
        XCTAssertEqual(ResultBuilder.restrictionProblems(status, requested: requested), [
            "mount namespace mnt:[1] is ghostrun's own, expected the run's",
            "network namespace net:[2] is ghostrun's own, expected the run's",
        ])
        status.mountNamespace = nil
        status.networkNamespace = nil
        XCTAssertEqual(ResultBuilder.restrictionProblems(status, requested: requested), [],
                       "a namespace that could not be read is no evidence")
    }

    func testHermeticAndNetworkRunsRequestTheirOwnNamespaces() throws {
        let toolchain = Toolchain(goBinary: "/go/bin/go", goroot: "/go", version: GoVersion(major: 1, minor: 23, patch: 4),
                                  versionString: "go1.23.4")
        var host = PlanHost(environment: ["PATH": "/usr/bin"], kernel: (6, 18), availableCapabilities: .all,
                            handOverDescriptor: 900, readFile: { _ in nil }, lookUpExecutable: { n, _ in "/usr/bin/" + n })
        host.namespaces = (mount: "mnt:[1]", network: "net:[2]")
        let work = WorkDirectory(root: "/tmp/ghostrun-9-9-xyz")
        let mounts = HostMount.parse(mountinfo: "1 0 8:1 / / rw - ext4 /dev/a rw")
        let plain = try RunPlan.resolve(scenario: try scenario("name: p\nrun: [go, version]\n"), toolchain: toolchain,
                                        host: host, work: work, hermetic: mounts)
        XCTAssertEqual(plain.requested.hostMountNamespace, "mnt:[1]")
        XCTAssertNil(plain.requested.hostNetworkNamespace)
        let network = try RunPlan.resolve(
            scenario: try scenario("name: p\nrun: [go, version]\nsandbox:\n  network: none\n"), toolchain: toolchain,
            host: host, work: work, hermetic: nil)
        XCTAssertNil(network.requested.hostMountNamespace, "--host-writes without mounts: no mount namespace")
        XCTAssertEqual(network.requested.hostNetworkNamespace, "net:[2]")
    }
}
