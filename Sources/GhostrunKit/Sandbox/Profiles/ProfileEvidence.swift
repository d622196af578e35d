import Foundation

/// `evidence.policy`: which profile a run applied and how, so a result says what was tested.
public struct ProfileEvidence: Codable, Equatable, Sendable {
    public var profile: String
    public var runtime: String
    public var architecture: String
    public var defaultAction: String
    /// Syscalls numbered above this answered ENOSYS (runc's stub); nil without a stub.
    public var enosysAbove: Int32?
    /// Rules in the filter (redundant ones, with the default's action, left out as runc does).
    public var rules: Int
    public var skipped: [ResolvedProfile.SkippedName]
    /// Entries moby left out on this host (`includes`/`excludes`).
    public var excluded: [ResolvedProfile.ExcludedEntry]
    public var flags: [String]

    enum CodingKeys: String, CodingKey {
        case profile, runtime, architecture
        case defaultAction = "default_action"
        case enosysAbove = "enosys_above"
        case rules,
            skipped, excluded, flags
    }

    public init(_ resolved: ResolvedProfile) {
        profile = resolved.label
        runtime = resolved.runtime.rawValue
        architecture = resolved.architecture.rawValue
        defaultAction = resolved.defaultAction.description
        enosysAbove = resolved.enosysAbove
        rules = resolved.rules.filter { !$0.redundant }.count
        skipped = resolved.skipped
        excluded = resolved.excluded
        flags = resolved.flags
    }
}

/// A profile's `flags` as seccomp(2) filter flags. TSYNC needs nothing (ghostrun's child is single-threaded when
/// it loads the filter, and runc treats it the same); WAIT_KILLABLE_RECV only means something with a listener,
/// which ghostrun adds itself when it supervises.
public enum ProfileFlags {
    public static func value(of flags: [String]) -> UInt32 {
        var value: UInt32 = 0
        for flag in flags {
            switch flag {
            case "SECCOMP_FILTER_FLAG_LOG": value |= 2
            case "SECCOMP_FILTER_FLAG_SPEC_ALLOW": value |= 4
            default: break
            }
        }
        return value
    }
}
