import CGhostrun
import CSeccomp
import Foundation

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
        guard let context = seccomp_init(actionValue(policy.defaultAction)) else {
            throw SeccompCompileError(message: "libseccomp could not create a filter context")
        }
        defer { seccomp_release(context) }
        let rules = effectiveRules(policy)
        for rule in rules {
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
                seccomp_rule_add_array(context, actionValue(rule.action), number, UInt32(buffer.count),
                                       buffer.baseAddress)
            }
            if status != 0 {
                throw SeccompCompileError(
                    message: "libseccomp rejected the rule for \(rule.syscall) (\(rule.action)): "
                        + String(cString: strerror(-status)), location: rule.location)
            }
        }
        return CompiledFilter(instructions: try export(context), ruleCount: rules.count)
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
