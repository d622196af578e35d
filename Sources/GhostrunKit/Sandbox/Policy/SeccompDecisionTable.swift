import Foundation

/// Where a seccomp decision comes from, named in evidence (`Denial.rule`).
public enum RuleOrigin: Sendable, Equatable, CustomStringConvertible {
    /// A rule of the scenario's `sandbox.seccomp.rules`: its file and line, or its position when built in code.
    case scenario(location: SourceLocation?, index: Int)
    /// A rule of a seccomp profile, e.g. name `docker-default`, path `syscalls[12]`.
    case profile(name: String, path: String)
    /// The policy's `default`.
    case policyDefault
    /// runc's ENOSYS stub of a profile (`runtime: runc`): syscalls numbered above the highest the profile names.
    case enosysStub(profile: String, above: Int32)
    /// ghostrun's own rule: the sendmsg that hands the notification listener over.
    case harness

    /// `scenario.yaml:14`, `docker-default syscalls[12]`, `default`, `ghostrun`.
    public var description: String {
        switch self {
        case .scenario(let location?, _):
            return "\((location.file as NSString).lastPathComponent):\(location.line)"
        case .scenario(nil, let index): return "rules[\(index)]"
        case .profile(let name, let path): return "\(name) \(path)"
        case .policyDefault: return "default"
        case .enosysStub(let profile, let above): return "\(profile) runc ENOSYS stub (above \(above))"
        case .harness: return "ghostrun"
        }
    }
}

/// An action and the rule it comes from.
public struct SeccompDecision: Sendable, Equatable {
    public var action: SeccompAction
    public var origin: RuleOrigin
    public init(action: SeccompAction, origin: RuleOrigin) {
        self.action = action
        self.origin = origin
    }
}

/// A rule with argument conditions: its decision applies when every condition holds.
public struct ConditionalRule: Sendable, Equatable {
    public var conditions: [SeccompArgCondition]
    public var decision: SeccompDecision

    /// Whether a condition compares by order (lt, le, gt, ge), which only the kernel's filter decides exactly.
    public var hasOrderedComparison: Bool {
        conditions.contains { [.lt, .le, .gt, .ge].contains($0.op) }
    }

    /// Whether every condition holds for the call's six arguments (compared as unsigned 64-bit values, as
    /// libseccomp's filter does).
    public func matches(_ args: [UInt64]) -> Bool {
        conditions.allSatisfy { $0.holds(for: args[Int($0.index)]) }
    }
}

extension SeccompArgCondition {
    func holds(for argument: UInt64) -> Bool {
        switch op {
        case .eq: return argument == value
        case .ne: return argument != value
        case .lt: return argument < value
        case .le: return argument <= value
        case .gt: return argument > value
        case .ge: return argument >= value
        case .masked_eq: return argument & mask == value
        }
    }
}

/// What the policy says about one syscall.
public enum SyscallDecision: Sendable, Equatable {
    /// Every call gets this, whatever its arguments.
    case unconditional(SeccompDecision)
    /// The first rule whose conditions hold decides; when none holds, `fallback` (the policy's default).
    case conditional(rules: [ConditionalRule], fallback: SeccompDecision)
}

/// A seccomp policy resolved once: per syscall, an unconditional decision or argument rules and their fallback;
/// plus the default. The BPF compiler emits it and the supervisor answers notified calls from it, so the two
/// cannot disagree; evidence names the deciding rule from it.
///
/// It keeps libseccomp's semantics exactly, because the filter the kernel runs is libseccomp's: a later
/// unconditional rule replaces what was said before about a syscall; conditional rules accumulate; a conditional
/// rule after an unconditional one is ignored (libseccomp keeps the unconditional rule); conditional rules equal to
/// the default are dropped (libseccomp refuses them).
public struct SeccompDecisionTable: Sendable {
    public let defaultDecision: SeccompDecision
    /// Syscalls the policy names, in the order it first names them, with their numbers on this architecture.
    public let entries: [(syscall: String, number: Int32, decision: SyscallDecision)]
    private let byNumber: [Int32: Int]
    private let byName: [String: Int]
    /// runc's stub: every syscall numbered above `enosysAbove` answers ENOSYS before any rule.
    public let enosysAbove: Int32?
    private let stubDecision: SeccompDecision?

    /// The policy the table was resolved from.
    public let policy: SeccompPolicy

    /// Resolves `policy`; a syscall this architecture does not know is an error naming the rule's location.
    public init(_ policy: SeccompPolicy) throws {
        self.policy = policy
        defaultDecision = SeccompDecision(action: policy.defaultAction, origin: .policyDefault)
        var unconditional: [String: SeccompDecision] = [:]
        var conditional: [String: [ConditionalRule]] = [:]
        var order: [String] = []
        for (index, rule) in policy.rules.enumerated() {
            let decision = SeccompDecision(action: rule.action,
                                           origin: rule.origin ?? .scenario(location: rule.location, index: index))
            for name in rule.syscalls {
                if unconditional[name] == nil && conditional[name] == nil { order.append(name) }
                if rule.args.isEmpty {
                    unconditional[name] = decision
                    conditional[name] = nil
                } else {
                    conditional[name, default: []].append(ConditionalRule(conditions: rule.args, decision: decision))
                }
            }
        }
        var entries: [(String, Int32, SyscallDecision)] = []
        for name in order {
            guard let number = SyscallName.number(of: name) else {
                let location = policy.rules.first { $0.syscalls.contains(name) }?.location
                throw SeccompCompileError(message: "unknown syscall \(name)", location: location)
            }
            let rules = (conditional[name] ?? []).filter { $0.decision.action != policy.defaultAction }
            if let decision = unconditional[name], decision.action != policy.defaultAction || rules.isEmpty {
                // An unconditional rule equal to the default is not given to libseccomp: its conditional rules
                // (written after it) then decide.
                entries.append((name, number, .unconditional(decision)))
            } else if !rules.isEmpty {
                entries.append((name, number, .conditional(rules: rules, fallback: defaultDecision)))
            }
        }
        self.entries = entries
        enosysAbove = policy.enosysAbove
        stubDecision = policy.enosysAbove.map {
            SeccompDecision(action: .errno(ENOSYS), origin: .enosysStub(profile: policy.profile ?? "profile", above: $0))
        }
        byNumber = Dictionary(entries.enumerated().map { ($1.1, $0) }, uniquingKeysWith: { first, _ in first })
        byName = Dictionary(entries.enumerated().map { ($1.0, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// What the policy says about the syscall with this number.
    public func decision(number: Int32) -> SyscallDecision {
        if let stubDecision, let enosysAbove, number > enosysAbove { return .unconditional(stubDecision) }
        return byNumber[number].map { entries[$0].decision } ?? .unconditional(defaultDecision)
    }

    /// What the policy says about the syscall with this name.
    public func decision(syscall: String) -> SyscallDecision {
        if let number = byName[syscall].map({ entries[$0].number }) ?? SyscallName.number(of: syscall) {
            return decision(number: number)
        }
        return .unconditional(defaultDecision)
    }

    /// The decision for one call. Argument rules that overlap with different actions are not ordered by
    /// libseccomp (it sorts them by argument); such calls are never notified (`isAnswerable`), and here the first
    /// matching rule in the policy's order answers.
    public func decide(number: Int32, args: [UInt64]) -> SeccompDecision {
        switch decision(number: number) {
        case .unconditional(let decision): return decision
        case .conditional(let rules, let fallback):
            return rules.first { $0.matches(args) }?.decision ?? fallback
        }
    }

    /// Every rule whose conditions hold for the call (the unconditional decision, or the matching argument rules,
    /// or the fallback when none holds).
    public func candidates(number: Int32, args: [UInt64]) -> [SeccompDecision] {
        switch decision(number: number) {
        case .unconditional(let decision): return [decision]
        case .conditional(let rules, let fallback):
            let matching = rules.filter { $0.matches(args) }.map(\.decision)
            return matching.isEmpty ? [fallback] : matching
        }
    }

    /// The rules that could have decided a call whose arguments are unknown (an audit record) and whose action
    /// was `kind` (`errno`, `kill-process`, `trap`, `log`...) with `errno`: the unconditional decision, or the
    /// argument rules and the fallback with that action.
    public func candidates(syscall: String, kind: String, errno: Int32?) -> [SeccompDecision] {
        func fits(_ action: SeccompAction) -> Bool {
            guard action.kind == kind else { return false }
            if case .errno(let value) = action, let errno { return value == errno }
            return true
        }
        switch decision(syscall: syscall) {
        case .unconditional(let decision): return fits(decision.action) ? [decision] : []
        case .conditional(let rules, let fallback):
            return (rules.map(\.decision) + [fallback]).filter { fits($0.action) }
        }
    }

    /// Whether the supervisor can answer every call of this syscall exactly as the plain filter would: no action
    /// it cannot emulate (kill, trap); no argument rules whose order would matter (two rules with different
    /// actions that can hold for the same call: libseccomp does not keep the policy's order between them); and no
    /// ordered comparison (lt, le, gt, ge), because libseccomp 2.5 compiles those on 64-bit arguments so that the
    /// kernel's result can differ from the arithmetic (the property test found `socket(_, 2, 1)` answered by a
    /// rule `a1 > 4294967297`), and the filter, not the table, is what the kernel runs without a supervisor.
    public func isAnswerable(_ decision: SyscallDecision) -> Bool {
        switch decision {
        case .unconditional(let decision): return decision.action.isAnswerableBySupervisor
        case .conditional(let rules, let fallback):
            guard fallback.action.isAnswerableBySupervisor,
                rules.allSatisfy({ $0.decision.action.isAnswerableBySupervisor && !$0.hasOrderedComparison })
            else { return false }
            for (i, a) in rules.enumerated() {
                for b in rules[(i + 1)...] where a.decision.action != b.decision.action {
                    if !Self.disjoint(a.conditions, b.conditions) { return false }
                }
            }
            return true
        }
    }

    /// Whether no call can satisfy both condition lists: some argument is pinned by an `eq` in one list to a
    /// value the other list's condition on that argument refuses.
    static func disjoint(_ a: [SeccompArgCondition], _ b: [SeccompArgCondition]) -> Bool {
        for (pinned, other) in [(a, b), (b, a)] {
            for equality in pinned where equality.op == .eq {
                if other.contains(where: { $0.index == equality.index && !$0.holds(for: equality.value) }) {
                    return true
                }
            }
        }
        return false
    }
}

extension SeccompAction {
    /// The supervisor can only let a call run or fail it with an errno; kill and trap must stay in the kernel.
    var isAnswerableBySupervisor: Bool {
        switch self {
        case .allow, .errno, .log: return true
        case .trap, .killProcess, .killThread: return false
        }
    }
}

extension Denial {
    /// The denial with the rule that decided it, looked up in the run's policy (an audit record's denial carries
    /// none: the kernel does not say which rule matched, and no arguments to evaluate).
    public func attributed(to decisions: SeccompDecisionTable?) -> Denial {
        guard rule == nil, let decisions else { return self }
        let errnoValue = errno.flatMap { ErrnoName.value(of: $0) ?? Int32($0) }
        let candidates = decisions.candidates(syscall: syscall, kind: action, errno: errnoValue)
        var attributed = self
        attributed.rule = candidates.isEmpty ? nil : candidates.map(\.origin.description).joined(separator: " | ")
        // The kernel's audit record carries the action, not the errno (seccomp_log passes the action only): when
        // every decision that could have refused the call answers with one errno, that is the one.
        if attributed.errno == nil {
            let answers = Set(candidates.compactMap { decision -> Int32? in
                if case .errno(let value) = decision.action { return value }
                return nil
            })
            if answers.count == 1, candidates.count == candidates.filter({
                if case .errno = $0.action { return true } else { return false }
            }).count, let value = answers.first {
                attributed.errno = ErrnoName.name(of: value) ?? String(value)
            }
        }
        return attributed
    }
}
