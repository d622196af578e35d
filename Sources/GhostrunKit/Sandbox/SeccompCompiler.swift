import CGhostrun
import CSeccomp
import Foundation

/// Which syscalls the supervisor must be notified of.
public struct NotifyPlan: Sendable, Equatable {
    public var traceAll: Bool
    public var traced: Set<String>
    public var faulted: Set<String>
    /// The descriptor the child sends the listener on (the filter lets sendmsg on it through).
    public var handOverDescriptor: Int32
    public init(traceAll: Bool, traced: Set<String>, faulted: Set<String>, handOverDescriptor: Int32) {
        self.traceAll = traceAll
        self.traced = traced
        self.faulted = faulted
        self.handOverDescriptor = handOverDescriptor
    }
}

/// A classic BPF seccomp program ready to hand to the child.
public struct CompiledFilter: Sendable {
    public var instructions: [ghostrun_bpf_insn]
    /// Syscalls whose action is not the default, for reports and doctor.
    public var ruleCount: Int
}

public struct SeccompCompileError: Error, CustomStringConvertible {
    public var message: String
    public var location: SourceLocation?
    public var description: String {
        if let location { return "\(location): sandbox.seccomp: \(message)" }
        return "sandbox.seccomp: \(message)"
    }
}

/// Compiles a scenario's seccomp policy with libseccomp for the native architecture.
public enum SeccompCompiler {
    /// libseccomp's action encodings (its SCMP_ACT_* macros are function-like and do not import into Swift).
    static func actionValue(_ action: SeccompAction) -> UInt32 {
        switch action {
        case .allow: return 0x7fff_0000
        case .errno(let value): return 0x0005_0000 | (UInt32(value) & 0xffff)
        case .trap: return 0x0003_0000
        case .killProcess: return 0x8000_0000
        case .killThread: return 0x0000_0000
        case .log: return 0x7ffc_0000
        }
    }

    static func compareOp(_ op: SeccompArgCondition.Op) -> scmp_compare {
        switch op {
        case .eq: return SCMP_CMP_EQ
        case .ne: return SCMP_CMP_NE
        case .lt: return SCMP_CMP_LT
        case .le: return SCMP_CMP_LE
        case .gt: return SCMP_CMP_GT
        case .ge: return SCMP_CMP_GE
        case .masked_eq: return SCMP_CMP_MASKED_EQ
        }
    }

    /// The rules that remain once later rules have overridden earlier ones: an unconditional rule for a
    /// syscall replaces everything said before about it; conditional rules accumulate.
    static func effectiveRules(_ policy: SeccompPolicy) -> [(syscall: String, action: SeccompAction,
        args: [SeccompArgCondition], location: SourceLocation?)]
    {
        var bySyscall: [String: [(SeccompAction, [SeccompArgCondition], SourceLocation?)]] = [:]
        var order: [String] = []
        for rule in policy.rules {
            for name in rule.syscalls {
                if bySyscall[name] == nil { order.append(name) }
                if rule.args.isEmpty {
                    bySyscall[name] = [(rule.action, [], rule.location)]
                } else {
                    bySyscall[name, default: []].append((rule.action, rule.args, rule.location))
                }
            }
        }
        var result: [(String, SeccompAction, [SeccompArgCondition], SourceLocation?)] = []
        for name in order {
            for (action, args, location) in bySyscall[name] ?? [] where action != policy.defaultAction {
                result.append((name, action, args, location))
            }
        }
        return result
    }

    public static func compile(_ policy: SeccompPolicy) throws -> CompiledFilter {
        try compile(policy, notify: nil)
    }

    /// SECCOMP_RET_USER_NOTIF.
    static let notifyAction: UInt32 = 0x7fc0_0000

    /// Compiles the policy; with `notify`, see `compile(_:notify:)` on a decision table.
    public static func compile(_ policy: SeccompPolicy, notify: NotifyPlan?) throws -> CompiledFilter {
        try compile(SeccompDecisionTable(policy), notify: notify)
    }

    /// One rule handed to libseccomp.
    struct FilterEntry: Equatable {
        var syscall: String
        var number: Int32
        var action: UInt32
        var args: [SeccompArgCondition]
        var location: SourceLocation?
    }

    /// What the filter is made of: its default action and its rules, from the decision table.
    ///
    /// With `notify`, the calls the supervisor must see return NOTIFY instead: the traced and faulted syscalls,
    /// and, while a supervisor runs, unconditional errno rules (the supervisor answers them with the same errno
    /// and records the denial, since the filter has no FLAG_LOG then). A syscall is only notified when the
    /// supervisor can answer every call of it as the plain filter would (`isAnswerable`): then one unconditional
    /// NOTIFY covers its argument rules and their fallback, and the supervisor evaluates the conditions itself.
    /// Otherwise (kill or trap in its rules, or argument rules whose order would matter) its rules stay in the
    /// kernel as written. A sendmsg on the hand-over descriptor is always allowed, so passing the listener to
    /// ghostrun is never itself notified.
    static func filterEntries(_ table: SeccompDecisionTable, notify: NotifyPlan?) -> (
        defaultAction: UInt32, entries: [FilterEntry]
    ) {
        let policyDefault = table.defaultDecision.action
        func location(_ decision: SeccompDecision) -> SourceLocation? {
            if case .scenario(let location, _) = decision.origin { return location }
            return nil
        }
        func asWritten(_ syscall: String, _ number: Int32, _ decision: SyscallDecision) -> [FilterEntry] {
            switch decision {
            case .unconditional(let decision):
                guard decision.action != policyDefault else { return [] }
                return [FilterEntry(syscall: syscall, number: number, action: actionValue(decision.action), args: [],
                                    location: location(decision))]
            case .conditional(let rules, _):
                return rules.map {
                    FilterEntry(syscall: syscall, number: number, action: actionValue($0.decision.action),
                                args: $0.conditions, location: location($0.decision))
                }
            }
        }
        guard let notify else {
            return (actionValue(policyDefault), table.entries.flatMap { asWritten($0.syscall, $0.number, $0.decision) })
        }

        let notifyByDefault = notify.traceAll && policyDefault.isAnswerableBySupervisor
        let defaultAction = notifyByDefault ? notifyAction : actionValue(policyDefault)
        var named: [(String, Int32)] = table.entries.map { ($0.syscall, $0.number) }
        let known = Set(named.map(\.0))
        for name in notify.traced.union(notify.faulted).subtracting(known).sorted() {
            if let number = SyscallName.number(of: name) { named.append((name, number)) }
        }
        var entries: [FilterEntry] = []
        for (syscall, number) in named {
            let decision = table.decision(number: number)
            var wanted = notify.traceAll || notify.traced.contains(syscall) || notify.faulted.contains(syscall)
            if case .unconditional(let rule) = decision, case .errno = rule.action, rule.action != policyDefault {
                wanted = true
            }
            if wanted && table.isAnswerable(decision) {
                if defaultAction != notifyAction {
                    entries.append(FilterEntry(syscall: syscall, number: number, action: notifyAction, args: []))
                }
            } else {
                entries += asWritten(syscall, number, decision).filter { $0.action != defaultAction }
            }
        }
        if let sendmsg = SyscallName.number(of: "sendmsg"),
            defaultAction != actionValue(.allow) || entries.contains(where: { $0.number == sendmsg })
        {
            let handOver = UInt64(notify.handOverDescriptor)
            let own = entries.filter { $0.number == sendmsg }
            entries.removeAll { $0.number == sendmsg }
            if defaultAction != actionValue(.allow) {
                entries.append(FilterEntry(syscall: "sendmsg", number: sendmsg, action: actionValue(.allow),
                                           args: [SeccompArgCondition(index: 0, op: .eq, value: handOver)]))
            }
            if own.count == 1, var only = own.first, only.args.isEmpty {
                // An unconditional sendmsg rule applies to every other descriptor.
                only.args = [SeccompArgCondition(index: 0, op: .ne, value: handOver)]
                entries.append(only)
            } else {
                entries += own
            }
        }
        return (defaultAction, entries)
    }

    /// Compiles a resolved policy; with `notify`, the calls the supervisor must see return NOTIFY
    /// (`filterEntries`).
    public static func compile(_ table: SeccompDecisionTable, notify: NotifyPlan?) throws -> CompiledFilter {
        let (defaultAction, entries) = filterEntries(table, notify: notify)
        guard let context = seccomp_init(defaultAction) else {
            throw SeccompCompileError(message: "libseccomp could not create a filter context")
        }
        defer { seccomp_release(context) }
        // Like runc for long rule sets: a binary tree instead of a linear chain (docker-default has ~380 rules).
        if entries.count > 32 { _ = seccomp_attr_set(context, SCMP_FLTATR_CTL_OPTIMIZE, 2) }
        for rule in entries {
            var comparisons = rule.args.map { condition -> scmp_arg_cmp in
                if condition.op == .masked_eq {
                    return scmp_arg_cmp(arg: condition.index, op: compareOp(condition.op), datum_a: condition.mask,
                                        datum_b: condition.value)
                }
                return scmp_arg_cmp(arg: condition.index, op: compareOp(condition.op), datum_a: condition.value,
                                    datum_b: 0)
            }
            let status = comparisons.withUnsafeMutableBufferPointer { buffer in
                seccomp_rule_add_array(context, rule.action, rule.number, UInt32(buffer.count), buffer.baseAddress)
            }
            if status != 0 {
                throw SeccompCompileError(
                    message: "libseccomp rejected the rule for \(rule.syscall) "
                        + "(action 0x\(String(rule.action, radix: 16))): "
                        + Errno(negated: status).description, location: rule.location)
            }
        }
        var instructions = try export(context)
        if let threshold = table.enosysAbove {
            // While tracing every call, stubbed calls are notified too, and the supervisor answers them ENOSYS
            // (`Supervisor`): the same decision, recorded.
            let notifyStubbed = notify.map { plan in
                plan.traceAll || plan.traced.union(plan.faulted).contains { name in
                    SyscallName.number(of: name).map { $0 > threshold } ?? false
                }
            } ?? false
            instructions = EnosysStub.instructions(
                threshold: threshold, action: notifyStubbed ? notifyAction : EnosysStub.enosysAction) + instructions
            guard instructions.count <= 4096 else { throw SeccompCompileError(message: "filter too long") }
        }
        return CompiledFilter(instructions: instructions, ruleCount: entries.count)
    }

    /// What the policy does with `syscall` when no argument condition applies: its unconditional rule, or the
    /// default.
    public static func policyAction(for syscall: String, in policy: SeccompPolicy) -> SeccompAction {
        guard let table = try? SeccompDecisionTable(policy) else { return policy.defaultAction }
        switch table.decision(syscall: syscall) {
        case .unconditional(let decision): return decision.action
        case .conditional(_, let fallback): return fallback.action
        }
    }

    /// libseccomp 2.5 exports BPF to a file descriptor only, so go through a memfd.
    private static func export(_ context: scmp_filter_ctx) throws -> [ghostrun_bpf_insn] {
        let fd = ghostrun_memfd("ghostrun-bpf")
        guard fd >= 0 else { throw SeccompCompileError(message: "memfd_create: \(Errno.current.description)") }
        defer { close(fd) }
        let status = seccomp_export_bpf(context, fd)
        guard status == 0 else {
            throw SeccompCompileError(message: "seccomp_export_bpf: \(Errno(negated: status).description)")
        }
        let size = lseek(fd, 0, SEEK_END)
        guard size > 0, size % off_t(MemoryLayout<ghostrun_bpf_insn>.stride) == 0 else {
            throw SeccompCompileError(message: "libseccomp exported a program of \(size) bytes")
        }
        var program = [ghostrun_bpf_insn](repeating: ghostrun_bpf_insn(), count: Int(size) / 8)
        let read = program.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard read == Int(size) else { throw SeccompCompileError(message: "could not read the exported program") }
        guard program.count <= Int(UInt16.max) else { throw SeccompCompileError(message: "filter too long") }
        return program
    }
}
