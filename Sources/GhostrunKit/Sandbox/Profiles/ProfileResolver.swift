import Foundation

/// How a container runtime turns a resolved profile into a filter.
public enum SeccompRuntime: String, Sendable, Equatable, CaseIterable {
    /// runc >= 1.0.0-rc93: before the profile's filter, a stub answers ENOSYS for every syscall numbered above the
    /// highest syscall the profile names (libcontainer/seccomp/patchbpf), so a kernel newer than the profile
    /// does not turn new calls into the default errno.
    case runc
    /// crun: the profile as written.
    case crun
}

/// What the resolution depends on: the native architecture, the capabilities the go command will have (its
/// bounding set, as moby checks `caps`), and the running kernel's major.minor.
public struct ProfileResolutionContext: Sendable, Equatable {
    public var architecture: NativeArchitecture
    public var capabilities: CapabilitySet
    public var kernel: KernelRelease
    public var runtime: SeccompRuntime

    public init(
        architecture: NativeArchitecture = .current, capabilities: CapabilitySet,
        kernel: KernelRelease = .running, runtime: SeccompRuntime = .runc
    ) {
        self.architecture = architecture
        self.capabilities = capabilities
        self.kernel = kernel
        self.runtime = runtime
    }
}

/// A profile resolved for one host and capability set: a plain value, the same for the BPF compiler, the
/// supervisor, `profile show` and the evidence.
public struct ResolvedProfile: Sendable, Equatable {
    public var label: String
    public var defaultAction: SeccompAction
    /// The default as written, e.g. `SCMP_ACT_ERRNO(EPERM)`.
    public var defaultWritten: ProfileAction
    /// The scenario's `default:` replaced the profile's.
    public var defaultOverridden: Bool
    /// Every rule runc adds to its filter, in profile order, one per syscall name (and per condition group).
    public var rules: [Rule]
    /// Names the filter cannot hold on this architecture, with why, as runc skips them.
    public var skipped: [SkippedName]
    /// Entries moby left out for this host (`includes`/`excludes` not met), with why.
    public var excluded: [ExcludedEntry]
    /// runc's ENOSYS stub: syscalls numbered above this answer ENOSYS before the filter runs; nil without a stub
    /// (crun, or a permissive default).
    public var enosysAbove: Int32?
    public var flags: [String]
    public var runtime: SeccompRuntime
    public var architecture: NativeArchitecture

    public struct Rule: Sendable, Equatable {
        public var syscall: String
        public var number: Int32
        public var action: SeccompAction
        public var written: ProfileAction
        public var conditions: [SeccompArgCondition]
        /// The JSON path of the entry, `syscalls[3]`.
        public var path: String
        /// `docker-default syscalls[3]`.
        public var origin: String
        /// Same action as the default: runc leaves it out of the filter (it still counts for the stub).
        public var redundant: Bool
    }

    public struct SkippedName: Sendable, Equatable, Codable {
        public var name: String
        public var reason: String
        public var origin: String
    }

    public struct ExcludedEntry: Sendable, Equatable, Codable {
        public var origin: String
        public var names: [String]
        public var reason: String
    }

    public var defaultOrigin: String {
        defaultOverridden
            ? "the scenario's sandbox.seccomp.default (replacing \(label) defaultAction)" : "\(label) defaultAction"
    }
    public var stubOrigin: String? {
        enosysAbove.map { "runc ENOSYS stub (syscalls above \($0), the highest the profile names)" }
    }
}

/// Resolves profiles as moby (`profiles/seccomp` setupSeccomp) and then runc (`libcontainer/seccomp`) do.
public enum SeccompProfileResolver {
    /// moby: `archMap` entries of the native architecture, `includes`/`excludes` by `arches`, `caps` (includes:
    /// all listed present; excludes: any listed present) and `minKernel`. runc: names unknown on this
    /// architecture skipped; a rule with the default's action left out; conditions sharing an argument index
    /// split into one rule each (OR), others ANDed in one rule; the ENOSYS stub above the highest named syscall.
    /// `extraNames` are the syscalls of scenario rules applied on top: as if written into the profile, they
    /// count for the stub's threshold.
    /// `defaultOverride` is a scenario's `default:`, which replaces the profile's defaultAction.
    public static func resolve(
        _ document: SeccompProfileDocument, context: ProfileResolutionContext,
        extraNames: [String] = [], defaultOverride: SeccompAction? = nil
    ) -> ResolvedProfile {
        let table = SyscallTable.table(for: context.architecture)
        let arch = context.architecture.mobyName
        var rules: [ResolvedProfile.Rule] = []
        var skipped: [ResolvedProfile.SkippedName] = []
        var excluded: [ResolvedProfile.ExcludedEntry] = []
        var highest: Int32 = -1
        let defaultAction = defaultOverride ?? document.defaultAction.seccompAction
        let permissiveDefault =
            defaultOverride.map { $0 == .allow || $0 == .log } ?? document.defaultAction.isPermissive

        func capabilityHeld(_ name: String) -> Bool {
            CapabilityName.number(of: name).map { context.capabilities.contains(number: $0) } ?? false
        }

        for entry in document.entries {
            let origin = "\(document.label) \(entry.path)"
            if let reason = exclusionReason(entry, arch: arch, kernel: context.kernel, held: capabilityHeld) {
                excluded.append(.init(origin: origin, names: entry.names, reason: reason))
                continue
            }
            let groups: [[SeccompArgCondition]]
            let conditions = entry.args.map(\.condition)
            if Set(conditions.map(\.index)).count < conditions.count {
                groups = conditions.map { [$0] }
            } else {
                groups = [conditions]
            }
            for name in entry.names {
                guard let number = table.number(of: name) else {
                    let reason =
                        SyscallTable.existsOnOtherArchitecture(name)
                        ? "not a syscall of \(context.architecture.rawValue)"
                        : "in neither the x86_64 nor the aarch64 table (\(SyscallTable.source)) "
                            + "and unknown to libseccomp"
                    skipped.append(.init(name: name, reason: reason, origin: origin))
                    continue
                }
                highest = max(highest, number)
                let action = entry.action.seccompAction
                for group in groups {
                    rules.append(
                        .init(
                            syscall: name, number: number, action: action, written: entry.action,
                            conditions: group, path: entry.path, origin: origin, redundant: action == defaultAction))
                }
            }
        }
        for name in extraNames {
            if let number = table.number(of: name) { highest = max(highest, number) }
        }
        var stub: Int32?
        if context.runtime == .runc, !permissiveDefault, highest >= 0 {
            stub = highest
        }
        return ResolvedProfile(
            label: document.label, defaultAction: defaultAction, defaultWritten: document.defaultAction,
            defaultOverridden: defaultOverride != nil,
            rules: rules, skipped: skipped, excluded: excluded, enosysAbove: stub, flags: document.flags,
            runtime: context.runtime, architecture: context.architecture)
    }

    /// Why moby leaves this entry out for this host, or nil when it is included.
    static func exclusionReason(
        _ entry: ProfileEntry, arch: String, kernel: KernelRelease,
        held: (String) -> Bool
    ) -> String? {
        if let excludes = entry.excludes {
            if excludes.arches.contains(arch) { return "excludes.arches has \(arch)" }
            if let cap = excludes.caps.first(where: held) { return "excludes.caps: the go command holds \(cap)" }
            if let minimum = excludes.minKernel, kernel >= minimum {
                return "excludes.minKernel \(minimum): the kernel is \(kernel)"
            }
        }
        if let includes = entry.includes {
            if !includes.arches.isEmpty && !includes.arches.contains(arch) {
                return "includes.arches \(includes.arches.joined(separator: ",")) lacks \(arch)"
            }
            if let cap = includes.caps.first(where: { !held($0) }) {
                return "includes.caps: the go command lacks \(cap)"
            }
            if let minimum = includes.minKernel, kernel < minimum {
                return "includes.minKernel \(minimum): the kernel is \(kernel)"
            }
        }
        return nil
    }
}

extension ResolvedProfile {
    /// The policy the filter compiler and the supervisor use: the profile's rules (those runc adds), with the
    /// scenario's `rules:` replacing the profile's rules for the syscalls they name.
    public func policy(scenarioRules: [SeccompRule]) -> SeccompPolicy {
        let replaced = Set(scenarioRules.flatMap(\.syscalls))
        var result: [SeccompRule] = []
        for rule in rules where !rule.redundant && !replaced.contains(rule.syscall) {
            var policyRule = SeccompRule(syscalls: [rule.syscall], action: rule.action, args: rule.conditions)
            policyRule.origin = .profile(name: label, path: rule.path)
            result.append(policyRule)
        }
        result += scenarioRules
        var policy = SeccompPolicy(profile: label, defaultAction: defaultAction, rules: result)
        policy.enosysAbove = enosysAbove
        policy.runtime = runtime
        return policy
    }

    /// Which profile rule decides an unconditional call of `syscall`, for `profile show` and evidence: the ENOSYS
    /// stub, the rule(s), or the default.
    public func decision(for syscall: String) -> (action: String, origin: String) {
        let table = SyscallTable.table(for: architecture)
        if let stub = enosysAbove, let number = table.number(of: syscall), number > stub {
            return ("errno:ENOSYS", stubOrigin ?? "")
        }
        let matching = rules.filter { $0.syscall == syscall }
        if matching.isEmpty { return (defaultAction.description, defaultOrigin) }
        if matching.allSatisfy({ $0.conditions.isEmpty }), let last = matching.last {
            return (last.action.description, last.origin)
        }
        let conditional = matching.map { rule -> String in
            let text = rule.conditions.map { condition -> String in
                condition.op == .masked_eq
                    ? "arg\(condition.index) & 0x\(String(condition.mask, radix: 16)) == \(condition.value)"
                    : "arg\(condition.index) \(condition.op.rawValue) \(condition.value)"
            }.joined(separator: " && ")
            return "\(rule.action) if \(text)"
        }
        return (
            conditional.joined(separator: "; ") + "; else \(defaultAction)",
            Array(Set(matching.map(\.origin))).sorted().joined(separator: ", ")
        )
    }
}
