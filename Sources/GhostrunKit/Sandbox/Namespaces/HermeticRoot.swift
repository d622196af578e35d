import CGhostrun
import Foundation

/// One line of `/proc/self/mountinfo`: where a mount is, its file system type and its per-mount flags.
public struct HostMount: Sendable, Equatable {
    /// The mount's id and its parent's (mountinfo's first two fields).
    public var id: Int = 0
    public var parentID: Int = 0
    public var mountPoint: String
    public var fileSystemType: String
    public var readOnly: Bool
    public var nosuid: Bool
    public var nodev: Bool
    public var noexec: Bool

    public init(mountPoint: String, fileSystemType: String, readOnly: Bool = false, nosuid: Bool = false,
                nodev: Bool = false, noexec: Bool = false) {
        self.mountPoint = mountPoint
        self.fileSystemType = fileSystemType
        self.readOnly = readOnly
        self.nosuid = nosuid
        self.nodev = nodev
        self.noexec = noexec
    }

    /// The mounts of a mountinfo text, in its order (parents before the mounts on them). Malformed lines are
    /// skipped: the kernel writes this file, and a line it would never write has nothing to replicate.
    public static func parse(mountinfo: String) -> [HostMount] {
        mountinfo.split(separator: "\n").compactMap { line in
            // id parent major:minor root mount-point options [optional fields...] - type source super-options
            let fields = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 10, let separator = fields[6...].firstIndex(of: "-"),
                separator + 1 < fields.count
            else { return nil }
            guard let id = Int(fields[0]), let parentID = Int(fields[1]) else { return nil }
            let options = Set(fields[5].split(separator: ",").map(String.init))
            var mount = HostMount(
                mountPoint: MountPlan.unescapeMountPath(fields[4]), fileSystemType: fields[separator + 1],
                readOnly: options.contains("ro"), nosuid: options.contains("nosuid"), nodev: options.contains("nodev"),
                noexec: options.contains("noexec"))
            mount.id = id
            mount.parentID = parentID
            return mount
        }
    }

    /// The mounts a process sees, parents before children, otherwise in the given order (the kernel lists a
    /// namespace's mounts in creation order, and a mount moved into place, such as a root set up by an init, can be
    /// listed after the mounts on it). A mount another one is stacked on (same mount point, the other's parent) is
    /// covered, and so is everything on a covered mount; those are left out.
    public static func visible(_ mounts: [HostMount]) -> [HostMount] {
        let ids = Set(mounts.map(\.id))
        let covered = Set(mounts.compactMap { mount in
            mounts.first { $0.id == mount.parentID && $0.mountPoint == mount.mountPoint }?.id
        })
        // Whether the place a mount sits is seen: its parent's place is seen, and the parent is not covered unless
        // this mount is the one stacked on it.
        var placeSeen: [Int: Bool] = [:]
        var emitted: Set<Int> = []
        var result: [HostMount] = []
        var pending = mounts
        while !pending.isEmpty {
            var progress = false
            pending.removeAll { mount in
                // A parent outside the list is above this namespace's root: the mount is a top of the tree.
                let parentDone = !ids.contains(mount.parentID) || emitted.contains(mount.parentID)
                guard parentDone else { return false }
                emitted.insert(mount.id)
                progress = true
                let seen: Bool
                if let parent = mounts.first(where: { $0.id == mount.parentID }) {
                    let parentPlace = placeSeen[parent.id] ?? false
                    seen = parent.mountPoint == mount.mountPoint
                        ? parentPlace : parentPlace && !covered.contains(parent.id)
                } else {
                    seen = true
                }
                placeSeen[mount.id] = seen
                if seen && !covered.contains(mount.id) { result.append(mount) }
                return true
            }
            if !progress { break }  // a cycle the kernel never writes: keep what was ordered
        }
        return result
    }
}

/// How a hermetic run saw the host's file systems (`evidence.filesystem`).
public struct FileSystemView: Codable, Equatable, Sendable {
    /// `overlay`: a copy-on-write view of the host, its upper layers discarded with the run; `host`:
    /// `--host-writes`, the run wrote to the host's file systems.
    public var mode: String
    /// The host mounts the run saw through an overlay (its writes there went to a discarded upper layer).
    public var overlaid: [String]
    /// Writable host mounts the run saw read-only: overlayfs cannot stack on their file system type, or the mount
    /// is a single file. Reads are the host's; a write fails with EROFS instead of reaching the host.
    public var readOnly: [String]
    /// Real directories bound through writable: the run's own tree (`$WORK` and its private Go directories) and
    /// the `--shared-cache` directory.
    public var writable: [String]
    /// Host mounts not in the view: automount triggers (`/proc/sys/fs/binfmt_misc (autofs trigger, not followed)`),
    /// and mounts that went away between the plan's read of the mount table and the run's copy of it (another
    /// program unmounted them), with the errno the step met (`/var/lib/x/shm (ENOENT)`).
    public var skipped: [String] = []

    enum CodingKeys: String, CodingKey {
        case mode, overlaid, readOnly = "read_only", writable, skipped
    }

    public init(mode: String, overlaid: [String], readOnly: [String], writable: [String]) {
        self.mode = mode
        self.overlaid = overlaid
        self.readOnly = readOnly
        self.writable = writable
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mode = try c.decode(String.self, forKey: .mode)
        overlaid = try c.decode([String].self, forKey: .overlaid)
        readOnly = try c.decode([String].self, forKey: .readOnly)
        writable = try c.decode([String].self, forKey: .writable)
        skipped = try c.decodeIfPresent([String].self, forKey: .skipped) ?? []
    }

    /// `--host-writes`.
    public static let hostWrites = FileSystemView(mode: "host", overlaid: [], readOnly: [], writable: [])
}

/// The child's copy-on-write view of the host (issue 14, "hermetic runs"): in its private mount namespace every
/// writable, storage-backed host mount is overlaid (lower: the host's mount, upper: a tmpfs that lives only in that
/// namespace), kernel interfaces (/proc, /sys, /dev, cgroup, bpf ...) and read-only mounts are bound as they are, the
/// run's own tree is bound through writable, and the new tree becomes the root. Whatever the run writes outside its
/// tree lands in the tmpfs and vanishes with the namespace, however ghostrun ends; permissions are the host's
/// (overlayfs checks the caller against the lower file's owner and mode).
public enum HermeticRoot {
    /// File systems overlayfs stacks on as a lower layer. Others that are writable (network and FUSE file systems,
    /// vfat ...) are shown read-only rather than risk a write reaching the host.
    static let overlayable: Set<String> = [
        "ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "tmpfs", "overlay", "zfs", "bcachefs", "jfs", "reiserfs",
    ]
    /// Kernel interfaces: bound as they are (their files are the kernel's state, not storage to protect).
    static let kernelInterfaces: Set<String> = [
        "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "bpf", "tracefs", "debugfs", "securityfs",
        "pstore", "mqueue", "hugetlbfs", "configfs", "fusectl", "binfmt_misc", "nsfs", "efivarfs",
        "rpc_pipefs", "selinuxfs",
    ]

    /// The mount steps, and what the evidence says about them. `stage` is an empty directory the child mounts its
    /// private tmpfs on (under the run's tree); `writable` are the real directories bound through (the run's tree
    /// first). `isDirectory` answers for the host's mount points (a single-file mount cannot take an overlay).
    public static func plan(mounts: [HostMount], stage: String, writable: [String],
                            isDirectory: (String) -> Bool = MountPlan.isDirectory)
        -> (operations: [MountOperation], view: FileSystemView) {
        let root = stage + "/root"
        var operations: [MountOperation] = [
            MountOperation(kind: .makeDirectory, target: stage, step: "hermetic-stage"),
            MountOperation(kind: .tmpfs(data: "mode=700"), target: stage, step: "hermetic-stage"),
            MountOperation(kind: .makeDirectory, target: root, step: "hermetic-stage"),
        ]
        var view = FileSystemView(mode: "overlay", overlaid: [], readOnly: [], writable: writable)
        var layer = 0
        func overlay(lower: String, target: String, mount: HostMount, step: String, replicates: String?) {
            let upper = "\(stage)/upper/\(layer)"
            let work = "\(stage)/work/\(layer)"
            layer += 1
            operations.append(MountOperation(kind: .makeDirectory, target: upper, step: step, replicates: replicates))
            operations.append(MountOperation(kind: .makeDirectory, target: work, step: step, replicates: replicates))
            operations.append(MountOperation(
                kind: .overlay(options: "lowerdir=\(escape(lower)),upperdir=\(escape(upper)),workdir=\(escape(work))"),
                target: target, flags: flags(of: mount), step: step, replicates: replicates))
        }

        // The root first; a host whose root cannot be overlaid cannot run hermetically.
        let rootMount = HostMount.visible(mounts).last(where: { $0.mountPoint == "/" })
            ?? HostMount(mountPoint: "/", fileSystemType: "unknown")
        overlay(lower: "/", target: root, mount: rootMount, step: "hermetic-root", replicates: nil)
        view.overlaid.append("/")

        // A mount shadowed by a later one at the same point is invisible on the host; replicating the visible ones in
        // the host's order reproduces what the host shows (a later mount covers what it covers there too).
        let ordered = HostMount.visible(mounts)
        let visible = ordered.enumerated().filter { index, mount in
            mount.mountPoint != "/" && mount.mountPoint.hasPrefix("/")
                && !ordered[(index + 1)...].contains(where: { $0.mountPoint == mount.mountPoint })
                && !writable.contains(where: { mount.mountPoint == $0 || mount.mountPoint.hasPrefix($0 + "/") })
                && mount.mountPoint != stage && !mount.mountPoint.hasPrefix(stage + "/")
        }.map(\.element)
        for (index, mount) in visible.enumerated() {
            // An autofs mount that nothing is mounted on yet is a trigger (systemd's proc-sys-fs-binfmt_misc.automount
            // on every systemd host): binding it would ask the host's automounter to mount there (a change on the
            // host), and from the run's namespace the lookup fails with ELOOP. The view shows the directory under it.
            if mount.fileSystemType == "autofs" {
                view.skipped.append("\(mount.mountPoint) (autofs trigger, not followed)")
                continue
            }
            let target = root + mount.mountPoint
            let step = "hermetic[\(index)]"
            let underKernelTree = ["/proc", "/sys"].contains {
                mount.mountPoint == $0 || mount.mountPoint.hasPrefix($0 + "/")
            }
            // Every step of a host mount's replica may find that mount gone (another program's): skipped, listed.
            let replicates = mount.mountPoint
            if mount.readOnly || kernelInterfaces.contains(mount.fileSystemType) || underKernelTree {
                operations.append(MountOperation(kind: .bindOne(source: mount.mountPoint), target: target, step: step,
                                                 replicates: replicates))
            } else if overlayable.contains(mount.fileSystemType) && isDirectory(mount.mountPoint) {
                overlay(lower: mount.mountPoint, target: target, mount: mount, step: step, replicates: replicates)
                view.overlaid.append(mount.mountPoint)
            } else {
                operations.append(MountOperation(kind: .bindOne(source: mount.mountPoint), target: target, step: step,
                                                 replicates: replicates))
                operations.append(MountOperation(kind: .setAttributes, target: target,
                                                 flags: UInt64(GHOSTRUN_MOUNT_RDONLY), step: step,
                                                 replicates: replicates))
                view.readOnly.append("\(mount.mountPoint) (\(mount.fileSystemType))")
            }
        }
        for path in writable {
            operations.append(MountOperation(kind: .makeDirectory, target: root + path, step: "hermetic-writable"))
            operations.append(MountOperation(kind: .bindOne(source: path), target: root + path,
                                             step: "hermetic-writable"))
        }
        operations.append(MountOperation(kind: .pivotRoot, target: root, step: "hermetic-pivot"))
        return (operations, view)
    }

    /// The per-mount flags a replica keeps (read-only mounts are bound, not overlaid).
    static func flags(of mount: HostMount) -> UInt64 {
        var flags: UInt64 = 0
        if mount.nosuid { flags |= UInt64(GHOSTRUN_MOUNT_NOSUID) }
        if mount.nodev { flags |= UInt64(GHOSTRUN_MOUNT_NODEV) }
        if mount.noexec { flags |= UInt64(GHOSTRUN_MOUNT_NOEXEC) }
        return flags
    }

    /// overlayfs splits its options at `,` and lower layers at `:`; a backslash escapes either.
    static func escape(_ path: String) -> String {
        var result = ""
        for character in path {
            if character == "\\" || character == "," || character == ":" { result.append("\\") }
            result.append(character)
        }
        return result
    }

    /// ghostrun's own mounts (the child's namespace starts as a copy of them).
    public static func currentMounts() -> [HostMount] {
        HostMount.parse(mountinfo: (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")
    }
}
