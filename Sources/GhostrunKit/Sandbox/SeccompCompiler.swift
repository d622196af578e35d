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

    /// Compiles the policy; with `notify`, the syscalls the supervisor must see return NOTIFY instead: the traced
    /// and faulted ones, and, while tracing, those the policy fails with an errno (the supervisor answers them
    /// with the same errno). Kill and trap stay in the kernel (their audit records are the evidence), and so do
    /// rules with argument conditions. A sendmsg on the hand-over descriptor is always allowed, so passing the
    /// listener to ghostrun is never itself notified.
    public static func compile(_ policy: SeccompPolicy, notify: NotifyPlan?) throws -> CompiledFilter {
        let rules = effectiveRules(policy)
        var defaultAction = actionValue(policy.defaultAction)
        var entries: [(syscall: String, action: UInt32, args: [SeccompArgCondition], location: SourceLocation?)] = []
        if let notify {
            let notifiable: (SeccompAction) -> Bool = {
                switch $0 {
                case .allow, .errno, .log: return true
                default: return false
                }
            }
            let notifyByDefault = notify.traceAll && notifiable(policy.defaultAction)
            if notifyByDefault { defaultAction = notifyAction }
            var bySyscall: [String: [(SeccompAction, [SeccompArgCondition], SourceLocation?)]] = [:]
            for rule in rules { bySyscall[rule.syscall, default: []].append((rule.action, rule.args, rule.location)) }
            // Every syscall named anywhere, plus those only the notify plan names.
            let named = Set(bySyscall.keys).union(notify.traced).union(notify.faulted)
            for syscall in named.sorted() {
                let conditions = bySyscall[syscall] ?? []
                if conditions.contains(where: { !$0.1.isEmpty }) {
                    // Conditional rules stay in the kernel as written.
                    for (action, args, location) in conditions {
                        entries.append((syscall, actionValue(action), args, location))
                    }
                    continue
                }
                let action = conditions.first?.0 ?? policy.defaultAction
                let location = conditions.first?.2
                let wanted = notify.traceAll || notify.traced.contains(syscall) || notify.faulted.contains(syscall)
                    || { if case .errno = action { return true } else { return false } }()
                let value = wanted && notifiable(action) ? notifyAction : actionValue(action)
                if value != defaultAction { entries.append((syscall, value, [], location)) }
            }
            if defaultAction != actionValue(.allow) || entries.contains(where: { $0.syscall == "sendmsg" }) {
                entries.removeAll { $0.syscall == "sendmsg" && $0.args.isEmpty && $0.action == notifyAction }
                entries.append(("sendmsg", actionValue(.allow),
                                [SeccompArgCondition(index: 0, op: .eq, value: UInt64(notify.handOverDescriptor))], nil))
                // With NOTIFY as the default the other descriptors are notified already (libseccomp refuses a
                // rule that repeats the default action).
                if !notifyByDefault && (notify.traced.contains("sendmsg") || notify.faulted.contains("sendmsg")) {
                    entries.append(("sendmsg", notifyAction,
                                    [SeccompArgCondition(index: 0, op: .ne, value: UInt64(notify.handOverDescriptor))],
                                    nil))
                }
            }
        } else {
            entries = rules.map { ($0.syscall, actionValue($0.action), $0.args, $0.location) }
        }

        guard let context = seccomp_init(defaultAction) else {
            throw SeccompCompileError(message: "libseccomp could not create a filter context")
        }
        defer { seccomp_release(context) }
        // Like runc for long rule sets: a binary tree instead of a linear chain (docker-default has ~380 rules).
        if entries.count > 32 { _ = seccomp_attr_set(context, SCMP_FLTATR_CTL_OPTIMIZE, 2) }
        for rule in entries {
            guard let number = SyscallName.number(of: rule.syscall) else {
                throw SeccompCompileError(message: "unknown syscall \(rule.syscall)", location: rule.location)
            }
            var comparisons = rule.args.map { condition -> scmp_arg_cmp in
                if condition.op == .masked_eq {
                    return scmp_arg_cmp(arg: condition.index, op: compareOp(condition.op), datum_a: condition.mask,
                                        datum_b: condition.value)
                }
                return scmp_arg_cmp(arg: condition.index, op: compareOp(condition.op), datum_a: condition.value,
                                    datum_b: 0)
            }
            let status = comparisons.withUnsafeMutableBufferPointer { buffer in
                seccomp_rule_add_array(context, rule.action, number, UInt32(buffer.count), buffer.baseAddress)
            }
            if status != 0 {
                throw SeccompCompileError(
                    message: "libseccomp rejected the rule for \(rule.syscall) (action 0x\(String(rule.action, radix: 16))): "
                        + String(cString: strerror(-status)), location: rule.location)
            }
        }
        var instructions = try export(context)
        if let threshold = policy.enosysAbove {
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
    /// default. The supervisor answers notified calls with this when no fault matches.
    public static func policyAction(for syscall: String, in policy: SeccompPolicy) -> SeccompAction {
        let rules = effectiveRules(policy).filter { $0.syscall == syscall }
        if let rule = rules.first, rules.count == 1, rule.args.isEmpty { return rule.action }
        return policy.defaultAction
    }

    /// libseccomp 2.5 exports BPF to a file descriptor only, so go through a memfd.
    private static func export(_ context: scmp_filter_ctx) throws -> [ghostrun_bpf_insn] {
        let fd = ghostrun_memfd("ghostrun-bpf")
        guard fd >= 0 else { throw SeccompCompileError(message: "memfd_create: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let status = seccomp_export_bpf(context, fd)
        guard status == 0 else {
            throw SeccompCompileError(message: "seccomp_export_bpf: \(String(cString: strerror(-status)))")
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
