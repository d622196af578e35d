import CGhostrun
import Foundation

/// A Landlock ruleset to build in the parent before fork: the rights it handles and the trees it allows.
public struct LandlockPlan: Sendable, Equatable {
    public struct Rule: Sendable, Equatable {
        public var path: String
        public var access: UInt64
    }

    /// The kernel ABI the rights were chosen for.
    public var abi: Int32
    public var handled: UInt64
    public var rules: [Rule]
}

/// The kernel's LANDLOCK_ACCESS_FS_* rights by the ABI that introduced them (include/uapi/linux/landlock.h).
public enum Landlock {
    public static let execute: UInt64 = 1 << 0
    public static let writeFile: UInt64 = 1 << 1
    public static let readFile: UInt64 = 1 << 2
    public static let readDir: UInt64 = 1 << 3
    public static let truncate: UInt64 = 1 << 14
    public static let ioctlDev: UInt64 = 1 << 15
    /// Rights that may appear on a rule for a regular file (others are for directories only).
    public static let fileRights: UInt64 = execute | writeFile | readFile | truncate | ioctlDev
    public static let readRights: UInt64 = execute | readFile | readDir

    /// Every file-system right of an ABI: 13 in ABI 1, REFER in 2, TRUNCATE in 3, IOCTL_DEV in 5.
    public static func fileSystemRights(abi: Int32) -> UInt64 {
        var rights: UInt64 = (1 << 13) - 1
        if abi >= 2 { rights |= 1 << 13 }
        if abi >= 3 { rights |= truncate }
        if abi >= 5 { rights |= ioctlDev }
        return rights
    }

    /// LANDLOCK_ACCESS_FS_* names by bit (include/uapi/linux/landlock.h), lower-cased without the prefix.
    public static let rightNames = [
        "execute", "write_file", "read_file", "read_dir", "remove_dir", "remove_file", "make_char", "make_dir",
        "make_reg", "make_sock", "make_fifo", "make_block", "make_sym", "refer", "truncate", "ioctl_dev",
    ]

    /// The names of the rights in `mask`, lowest bit first.
    public static func names(_ mask: UInt64) -> [String] {
        rightNames.enumerated().filter { mask & (1 << UInt64($0.offset)) != 0 }.map(\.element)
    }

    /// The running kernel's ABI, or why Landlock is unavailable.
    public static func abi() -> Result<Int32, HostUnsupported> {
        let value = ghostrun_landlock_abi()
        if value >= 1 { return .success(value) }
        let reason = switch -value {
        case EOPNOTSUPP: "Landlock is disabled on this kernel (add `landlock` to the lsm= boot parameter)"
        case ENOSYS: "the kernel was built without Landlock (CONFIG_SECURITY_LANDLOCK)"
        default: "Landlock is unavailable: \(Errno(rawValue: -value))"
        }
        return .failure(HostUnsupported(reason: reason))
    }

    /// The plan for a request: `write` trees get every right, `read` trees the read rights; without `read`, the read
    /// rights are not handled at all (reading stays unrestricted). `$WORK` is always writable.
    public static func plan(_ request: LandlockRequest, abi: Int32, work: String, expand: (String) -> String,
                            isDirectory: (String) -> Bool = MountPlan.isDirectory) -> LandlockPlan {
        let all = fileSystemRights(abi: abi)
        let handled = request.read == nil ? all & ~readRights : all
        var rules: [LandlockPlan.Rule] = []
        func add(_ path: String, _ access: UInt64) {
            let access = isDirectory(path) ? access : access & fileRights
            if let index = rules.firstIndex(where: { $0.path == path }) {
                rules[index].access |= access
            } else {
                rules.append(LandlockPlan.Rule(path: path, access: access))
            }
        }
        for path in [work] + request.write.map(expand) { add(path, handled) }
        for path in (request.read ?? []).map(expand) { add(path, readRights & handled) }
        return LandlockPlan(abi: abi, handled: handled, rules: rules)
    }

    /// Creates the ruleset (the rights it handles); the caller closes the returned descriptor after the spawn. The
    /// rules are added by the child after its mount steps: a rule holds the inode its path was opened on, and in a
    /// hermetic run (or under `sandbox.mounts`) the child's files are not the inodes ghostrun sees.
    static func createRuleset(_ plan: LandlockPlan) throws -> Int32 {
        let fd = ghostrun_landlock_create_ruleset(plan.handled)
        guard fd >= 0 else {
            throw HarnessError(step: "landlock", syscall: "landlock_create_ruleset", errno: Errno(rawValue: -fd),
                              "cannot create the Landlock ruleset")
        }
        return fd
    }
}

/// What `evidence.landlock` says about a run's Landlock domain: the ABI the rights were chosen for, the rights the
/// ruleset handles, each tree's allowed rights, and what let the child restrict itself.
public struct LandlockEvidence: Codable, Equatable, Sendable {
    public struct Rule: Codable, Equatable, Sendable {
        public var path: String
        public var access: [String]
    }

    public var abi: Int32
    public var handled: [String]
    public var rules: [Rule]
    /// `landlock_restrict_self` needs no_new_privs or CAP_SYS_ADMIN: the child calls it while it still holds
    /// ghostrun's CAP_SYS_ADMIN, before the scenario's capabilities, user and no_new_privs apply, so it is always
    /// "CAP_SYS_ADMIN" (the domain then holds whatever the go command's capabilities become).
    public var mechanism: String
    /// Linux (6.18 here) shows no Landlock domain in /proc/PID/status: the domain is attested by the restriction
    /// succeeding before exec, and inherited by every descendant (a domain can only be narrowed, never left).
    public var attestation: String

    public init(_ plan: LandlockPlan) {
        abi = plan.abi
        handled = Landlock.names(plan.handled)
        rules = plan.rules.map { Rule(path: $0.path, access: Landlock.names($0.access)) }
        mechanism = "CAP_SYS_ADMIN"
        attestation = "landlock_restrict_self succeeded in the go command's process before execve; every process "
            + "of the run descends from it and inherits the domain"
    }
}
