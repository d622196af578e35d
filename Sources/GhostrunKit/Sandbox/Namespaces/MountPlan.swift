import CGhostrun
import Foundation

/// One step of the child's mount setup (see `ghostrun_mount_op` in CGhostrun.h), ready to hand to the C target.
public struct MountOperation: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case tmpfs(data: String)
        case bind(source: String)
        /// mount_setattr, recursively.
        case setAttributes
        /// Clones the tree at the target (before other entries can cover it) into a kept slot.
        case keep(slot: Int32)
        /// Creates the target's directories if an earlier entry hid them, then attaches the kept tree there.
        case restore(slot: Int32)
        /// mkdir -p.
        case makeDirectory
        /// An overlay mount; `options` holds `lowerdir=...,upperdir=...,workdir=...`.
        case overlay(options: String)
        /// Binds that one mount (not the mounts below it), keeping its flags.
        case bindOne(source: String)
        /// Makes the target the root: pivot_root, the old root detached.
        case pivotRoot

        /// The call the C target makes for the step, for a failure's message.
        public var syscall: String {
            switch self {
            case .tmpfs, .bind, .overlay, .bindOne: "mount"
            case .setAttributes: "mount_setattr"
            case .keep: "open_tree"
            case .restore: "move_mount"
            case .makeDirectory: "mkdir"
            case .pivotRoot: "pivot_root"
            }
        }
    }

    public var kind: Kind
    public var target: String
    /// GHOSTRUN_MOUNT_* flags (the kernel's MOUNT_ATTR_* values).
    public var flags: UInt64 = 0
    /// Names the step in a failure: `sandbox.mounts[1]`, `keep-work`, `restore-work`.
    public var step: String
    /// The host mount a hermetic view's step replicates (its mount point), when that mount may vanish under the run:
    /// another program can unmount it between the plan's read of the mount table and the child's copy. Such a
    /// mount's remaining steps are then skipped and listed (`FileSystemView.skipped`), never a harness error.
    public var replicates: String?

    public init(kind: Kind, target: String, flags: UInt64 = 0, step: String, replicates: String? = nil) {
        self.kind = kind
        self.target = target
        self.flags = flags
        self.step = step
        self.replicates = replicates
    }
}

/// Turns `sandbox.mounts` into the child's mount steps.
///
/// `$WORK` (which holds the run's HOME, GOCACHE, GOPATH and GOTMPDIR) stays reachable and writable whatever the
/// entries say: its tree is cloned before the first entry and attached again at its path after the last entry that
/// does not name it, so a tmpfs over /tmp or a read-only / does not reach it. Entries that name `$WORK` or a path
/// under it apply after that, in their written order, so they are the only ones that can restrict it.
public enum MountPlan {
    ///
    /// `toolchain` (the GOROOT under test) must stay reachable too: a tmpfs, hide or bind over one of its ancestors
    /// (a tmpfs over /tmp while the toolchain lives under /tmp, as in a CI checkout there) would otherwise make the
    /// go command itself vanish. It is kept and attached again only when such an entry covers it, so a read-only
    /// or noexec entry still applies to it as written.
    public static func operations(
        for entries: [MountEntry], work: String, toolchain: String? = nil, expand: (String) -> String,
        isDirectory: (String) -> Bool = MountPlan.isDirectory,
        isMountPoint: (String) -> Bool = MountPlan.isMountPoint
    ) -> [MountOperation] {
        guard !entries.isEmpty else { return [] }
        func namesWork(_ entry: MountEntry) -> Bool {
            let path = expand(entry.path)
            return path == work || path.hasPrefix(work + "/")
        }
        func covers(_ entry: MountEntry, _ path: String) -> Bool {
            // Flags alone (readonly, noexec, ...) change the existing tree in place; they hide nothing.
            if case .flags = entry.kind { return false }
            let target = expand(entry.path)
            return target == "/" || path == target || path.hasPrefix(target + "/")
        }
        let keptToolchain = toolchain.flatMap { root -> String? in
            guard root != work, !root.hasPrefix(work + "/"),
                entries.contains(where: { !namesWork($0) && covers($0, root) })
            else { return nil }
            return root
        }
        var operations: [MountOperation] = [MountOperation(kind: .keep(slot: 0), target: work, step: "keep-work")]
        if let keptToolchain {
            operations.append(MountOperation(kind: .keep(slot: 1), target: keptToolchain, step: "keep-toolchain"))
        }
        for (index, entry) in entries.enumerated() where !namesWork(entry) {
            operations += steps(entry, index: index, expand: expand, isDirectory: isDirectory,
                                isMountPoint: isMountPoint)
        }
        if let keptToolchain {
            operations.append(
                MountOperation(kind: .restore(slot: 1), target: keptToolchain, step: "restore-toolchain"))
        }
        operations.append(MountOperation(kind: .restore(slot: 0), target: work, step: "restore-work"))
        for (index, entry) in entries.enumerated() where namesWork(entry) {
            operations += steps(entry, index: index, expand: expand, isDirectory: isDirectory,
                                isMountPoint: isMountPoint)
        }
        return operations
    }

    static func steps(_ entry: MountEntry, index: Int, expand: (String) -> String, isDirectory: (String) -> Bool,
                      isMountPoint: (String) -> Bool) -> [MountOperation] {
        let target = expand(entry.path)
        let step = "sandbox.mounts[\(index)]"
        var flags: UInt64 = 0
        if entry.readonly { flags |= UInt64(GHOSTRUN_MOUNT_RDONLY) }
        if entry.nosuid { flags |= UInt64(GHOSTRUN_MOUNT_NOSUID) }
        if entry.nodev { flags |= UInt64(GHOSTRUN_MOUNT_NODEV) }
        if entry.noexec { flags |= UInt64(GHOSTRUN_MOUNT_NOEXEC) }
        switch entry.kind {
        case .tmpfs(let size):
            return [MountOperation(kind: .tmpfs(data: "size=\(size),mode=1777"), target: target, flags: flags,
                                   step: step)]
        case .hide:
            // As Docker masks paths (moby's oci defaults, runc's maskPaths): a directory gets an empty read-only
            // tmpfs, a file gets /dev/null.
            if isDirectory(target) {
                return [MountOperation(kind: .tmpfs(data: "size=4096,mode=755"), target: target,
                                       flags: UInt64(GHOSTRUN_MOUNT_RDONLY), step: step)]
            }
            return [MountOperation(kind: .bind(source: "/dev/null"), target: target, step: step)]
        case .bind(let source):
            var result = [MountOperation(kind: .bind(source: expand(source)), target: target, step: step)]
            if flags != 0 {
                result.append(MountOperation(kind: .setAttributes, target: target, flags: flags, step: step))
            }
            return result
        case .flags:
            // mount_setattr changes the mount that holds the path: a path that is not a mount point is first bound
            // onto itself, so only its tree changes.
            var result: [MountOperation] = []
            if !isMountPoint(target) {
                result.append(MountOperation(kind: .bind(source: target), target: target, step: step))
            }
            result.append(MountOperation(kind: .setAttributes, target: target, flags: flags, step: step))
            return result
        }
    }

    public static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// Whether `path` is a mount point in ghostrun's namespace (the child's starts as a copy of it).
    public static func isMountPoint(_ path: String) -> Bool {
        guard path != "/" else { return true }
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return false }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 4, unescapeMountPath(String(fields[4])) == path { return true }
        }
        return false
    }

    /// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
    static func unescapeMountPath(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count,
               let value = UInt8(String(decoding: utf8[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                bytes.append(value)
                i += 4
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
