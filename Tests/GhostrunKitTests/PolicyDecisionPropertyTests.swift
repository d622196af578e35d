import CGhostrun
import Foundation
import XCTest

@testable import GhostrunKit

/// Runs a classic BPF seccomp program on one `struct seccomp_data` (nr, arch, instruction pointer, six args), as
/// the kernel does, and returns the action word.
struct SeccompBPFInterpreter {
    static let nativeArch: UInt32 = {
        #if arch(x86_64)
            return 0xC000_003E
        #elseif arch(arm64)
            return 0xC000_00B7
        #else
            fatalError("unknown architecture for the test's seccomp_data")
        #endif
    }()

    let program: [ghostrun_bpf_insn]

    func run(number: Int32, args: [UInt64], arch: UInt32 = nativeArch) throws -> UInt32 {
        // seccomp_data, little-endian: nr at 0, arch at 4, instruction_pointer at 8, args at 16 + 8 i.
        var data = [UInt8](repeating: 0, count: 64)
        func put32(_ value: UInt32, at offset: Int) {
            for byte in 0..<4 { data[offset + byte] = UInt8(truncatingIfNeeded: value >> (8 * byte)) }
        }
        put32(UInt32(bitPattern: number), at: 0)
        put32(arch, at: 4)
        for (i, arg) in args.enumerated() {
            put32(UInt32(truncatingIfNeeded: arg), at: 16 + 8 * i)
            put32(UInt32(truncatingIfNeeded: arg >> 32), at: 20 + 8 * i)
        }
        func word(_ offset: UInt32) throws -> UInt32 {
            guard offset % 4 == 0, offset + 4 <= 64 else { throw Failure("load at \(offset)") }
            return (0..<4).reduce(UInt32(0)) { $0 | UInt32(data[Int(offset) + $1]) << (8 * $1) }
        }
        var a: UInt32 = 0, x: UInt32 = 0
        var memory = [UInt32](repeating: 0, count: 16)
        var pc = 0
        var steps = 0
        while pc < program.count {
            steps += 1
            guard steps <= 100_000 else { throw Failure("no return") }
            let insn = program[pc]
            let k = insn.k
            pc += 1
            switch insn.code & 0x07 {
            case 0x00:  // BPF_LD
                switch insn.code {
                case 0x20: a = try word(k)  // LD W ABS
                case 0x00: a = k  // LD IMM
                case 0x60: a = memory[Int(k)]  // LD MEM
                case 0x80: a = 64  // LD W LEN
                default: throw Failure("ld 0x\(String(insn.code, radix: 16))")
                }
            case 0x01:  // BPF_LDX
                switch insn.code {
                case 0x01: x = k
                case 0x61: x = memory[Int(k)]
                case 0x81: x = 64
                default: throw Failure("ldx 0x\(String(insn.code, radix: 16))")
                }
            case 0x02: memory[Int(k)] = a  // ST
            case 0x03: memory[Int(k)] = x  // STX
            case 0x04:  // BPF_ALU
                let operand = insn.code & 0x08 != 0 ? x : k
                switch insn.code & 0xf0 {
                case 0x00: a = a &+ operand
                case 0x10: a = a &- operand
                case 0x20: a = a &* operand
                case 0x40: a |= operand
                case 0x50: a &= operand
                case 0x60: a = operand < 32 ? a << operand : 0
                case 0x70: a = operand < 32 ? a >> operand : 0
                case 0x80: a = 0 &- a
                case 0xa0: a ^= operand
                default: throw Failure("alu 0x\(String(insn.code, radix: 16))")
                }
            case 0x05:  // BPF_JMP
                let operand = insn.code & 0x08 != 0 ? x : k
                let taken: Bool
                switch insn.code & 0xf0 {
                case 0x00:  // JA
                    pc += Int(k)
                    continue
                case 0x10: taken = a == operand
                case 0x20: taken = a > operand
                case 0x30: taken = a >= operand
                case 0x40: taken = a & operand != 0
                default: throw Failure("jmp 0x\(String(insn.code, radix: 16))")
                }
                pc += Int(taken ? insn.jt : insn.jf)
            case 0x06:  // BPF_RET
                return insn.code & 0x18 == 0x10 ? a : k
            case 0x07:  // BPF_MISC
                if insn.code & 0xf8 == 0x00 { x = a } else { a = x }  // TAX / TXA
            default: throw Failure("class of 0x\(String(insn.code, radix: 16))")
            }
        }
        throw Failure("ran off the end")
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = "BPF: " + description }
    }
}

/// A reproducible stream of random numbers (splitmix64).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &+ 0x9E37_79B9_7F4A_7C15
        return FaultMatcher.splitmix64(state)
    }
}

/// Random policies with argument rules under errno, kill and allow defaults.
enum RandomPolicies {
    /// Syscalls the probe can make harmlessly (it must be able to start: see `SyscallProbe.startup`).
    static let syscalls = ["socket", "getpid", "getppid", "getuid", "dup", "close"]
    static let values: [UInt64] = [0, 1, 2, 40, 1000, 0xffff_ffff, 1 << 32 | 1, UInt64.max]
    static let errnos: [Int32] = [EPERM, EACCES, ENOSYS, EIO]

    static func action(_ random: inout SeededGenerator, kills: Bool) -> SeccompAction {
        switch Int.random(in: 0..<(kills ? 6 : 4), using: &random) {
        case 0: return .allow
        case 1, 2: return .errno(errnos.randomElement(using: &random)!)
        case 3: return .log
        case 4: return .trap
        default: return .killProcess
        }
    }

    static func policy(_ random: inout SeededGenerator, kills: Bool = true, extraRules: [SeccompRule] = [])
        -> SeccompPolicy
    {
        let defaults: [SeccompAction] = kills
            ? [.errno(EPERM), .errno(EACCES), .killProcess, .allow] : [.errno(EPERM), .errno(EACCES), .allow]
        var rules = extraRules
        for line in 0..<Int.random(in: 1...7, using: &random) {
            let names = (0..<Int.random(in: 1...2, using: &random)).map { _ in syscalls.randomElement(using: &random)! }
            var conditions: [SeccompArgCondition] = []
            if Bool.random(using: &random) {
                for _ in 0..<Int.random(in: 1...2, using: &random) {
                    let op = SeccompArgCondition.Op.allCases.randomElement(using: &random)!
                    let value = values.randomElement(using: &random)!
                    conditions.append(SeccompArgCondition(
                        index: UInt32.random(in: 0...2, using: &random), op: op,
                        value: op == .masked_eq ? value & 0xff : value, mask: op == .masked_eq ? 0xff : 0))
                }
            }
            rules.append(SeccompRule(syscalls: Array(Set(names)).sorted(), action: action(&random, kills: kills),
                                     args: conditions, location: SourceLocation(file: "random.yaml", line: line + 1)))
        }
        return SeccompPolicy(defaultAction: defaults.randomElement(using: &random)!, rules: rules)
    }

    static func arguments(_ random: inout SeededGenerator) -> [UInt64] {
        (0..<6).map { _ in values.randomElement(using: &random)! }
    }
}

/// The decision table, the filter compiled from it (run by a BPF interpreter) and the supervisor's answer agree.
final class PolicyDecisionPropertyTests: XCTestCase {
    static let notifyAction: UInt32 = 0x7fc0_0000
    static let handOver: Int32 = 1000

    func testTableFilterAndSupervisorAgreeOnRandomPolicies() throws {
        var random = SeededGenerator(state: 0x6768_6f73_7472_756e)  // "ghostrun"
        let numbers = RandomPolicies.syscalls.map { SyscallName.number(of: $0)! } + [SyscallName.number(of: "openat")!]
        var compared = 0, notified = 0, refused = 0, orderedCalls = 0, libseccompDiffers = 0
        for round in 0..<100 {
            let policy = RandomPolicies.policy(&random)
            let table = try SeccompDecisionTable(policy)
            let plain: CompiledFilter
            do {
                plain = try SeccompCompiler.compile(policy)
            } catch {
                // libseccomp refuses two rules with the same conditions and different actions (EEXIST).
                XCTAssertTrue("\(error)".contains("rejected"), "\(error)")
                refused += 1
                continue
            }
            let plainFilter = SeccompBPFInterpreter(program: plain.instructions)
            let plans: [NotifyPlan?] = [
                nil, NotifyPlan(traceAll: true, traced: [], faulted: [], handOverDescriptor: Self.handOver),
                NotifyPlan(traceAll: false, traced: ["socket", "getppid"], faulted: [],
                           handOverDescriptor: Self.handOver),
                NotifyPlan(traceAll: false, traced: [], faulted: ["dup", "getpid"], handOverDescriptor: Self.handOver),
            ]
            for plan in plans {
                let filter = SeccompBPFInterpreter(
                    program: try SeccompCompiler.compile(table, notify: plan).instructions)
                for _ in 0..<30 {
                    let number = numbers.randomElement(using: &random)!
                    let args = RandomPolicies.arguments(&random)
                    let context = "round \(round), \(SyscallName.name(of: Int(number))!)\(args), policy \(policy), "
                        + "notify \(String(describing: plan))"
                    let kernel = try plainFilter.run(number: number, args: args)
                    let candidates = table.candidates(number: number, args: args)
                    // The table's decision is the kernel's; when rules with different actions overlap, libseccomp
                    // picks one of them (it orders rules by argument, not as written). Ordered comparisons are the
                    // kernel's alone (libseccomp 2.5's 64-bit lt/le/gt/ge differ from the arithmetic): the
                    // supervisor never answers those syscalls, which the checks below verify.
                    let ordered: Bool
                    if case .conditional(let rules, _) = table.decision(number: number) {
                        ordered = rules.contains { $0.hasOrderedComparison }
                    } else {
                        ordered = false
                    }
                    if ordered {
                        orderedCalls += 1
                        if !table.candidates(number: number, args: args).contains(where: {
                            SeccompCompiler.actionValue($0.action) == kernel
                        }) { libseccompDiffers += 1 }
                    }
                    if !ordered {
                    XCTAssertTrue(candidates.contains { SeccompCompiler.actionValue($0.action) == kernel },
                                  "plain filter 0x\(String(kernel, radix: 16)), table \(candidates): \(context)")
                    if candidates.allSatisfy({ $0.action == candidates[0].action }) {
                        XCTAssertEqual(SeccompCompiler.actionValue(table.decide(number: number, args: args).action),
                                       kernel, context)
                    }
                    }
                    guard plan != nil else { continue }
                    let result = try filter.run(number: number, args: args)
                    compared += 1
                    if result == Self.notifyAction {
                        notified += 1
                        let answer = Supervisor.answer(table, number: number) { args }
                        XCTAssertTrue(answer.action.isAnswerableBySupervisor, context)
                        XCTAssertEqual(SeccompCompiler.actionValue(answer.action), kernel,
                                       "supervisor answered \(answer): \(context)")
                    } else {
                        XCTAssertEqual(result, kernel, "with the supervisor's filter: \(context)")
                    }
                }
                // The hand-over sendmsg always passes.
                XCTAssertEqual(
                    try filter.run(number: SyscallName.number(of: "sendmsg")!,
                                   args: [UInt64(Self.handOver), 0, 0, 0, 0, 0]),
                    plan == nil ? SeccompCompiler.actionValue(table.decide(
                        number: SyscallName.number(of: "sendmsg")!, args: [UInt64(Self.handOver), 0, 0, 0, 0, 0]).action)
                        : SeccompCompiler.actionValue(.allow))
            }
        }
        print("property test: \(compared) calls compared, \(notified) answered by the supervisor, \(refused) policies "
            + "refused by libseccomp; libseccomp's filter differs from the arithmetic on \(libseccompDiffers) of "
            + "\(orderedCalls) calls to syscalls with ordered comparisons")
        XCTAssertGreaterThan(compared, 5_000)
        XCTAssertGreaterThan(notified, 1_000, "the supervisor should answer a good share")
        XCTAssertLessThan(refused, 40)
    }

    func testOriginsNameTheRule() throws {
        let location = SourceLocation(file: "/somewhere/scenario.yaml", line: 14)
        let policy = SeccompPolicy(defaultAction: .errno(EPERM), rules: [
            SeccompRule(syscalls: ["socket"], action: .errno(EACCES),
                        args: [SeccompArgCondition(index: 0, op: .eq, value: 40)], location: location),
            SeccompRule(syscalls: ["socket"], action: .killProcess,
                        args: [SeccompArgCondition(index: 0, op: .eq, value: 41)],
                        origin: .profile(name: "docker-default", path: "syscalls[12]")),
            SeccompRule(syscalls: ["getppid"], action: .errno(EPERM), location: SourceLocation(file: "s.yaml", line: 3)),
        ])
        let table = try SeccompDecisionTable(policy)
        let socket = SyscallName.number(of: "socket")!
        XCTAssertEqual(table.decide(number: socket, args: [40, 0, 0, 0, 0, 0]).origin.description, "scenario.yaml:14")
        XCTAssertEqual(table.decide(number: socket, args: [41, 0, 0, 0, 0, 0]).origin.description,
                       "docker-default syscalls[12]")
        XCTAssertEqual(table.decide(number: socket, args: [2, 0, 0, 0, 0, 0]).origin, .policyDefault)
        XCTAssertEqual(table.decide(number: SyscallName.number(of: "getppid")!, args: []).origin.description, "s.yaml:3")
        // Audit records carry no arguments: every rule of the syscall with the record's action is named.
        let audit = Denial(pid: 1, comm: "x", syscall: "socket", action: "errno", errno: "EPERM", timeMs: 0,
                           source: "audit")
        XCTAssertEqual(audit.attributed(to: table).rule, "default")
        XCTAssertEqual(Denial(pid: 1, comm: "x", syscall: "socket", action: "kill-process", timeMs: 0, source: "audit")
            .attributed(to: table).rule, "docker-default syscalls[12]")
        XCTAssertEqual(Denial(pid: 1, comm: "x", syscall: "getppid", action: "errno", errno: "EPERM", timeMs: 0,
                              source: "audit").attributed(to: table).rule, "s.yaml:3")
        // The kernel's audit record has no errno: the one errno every candidate answers with is filled in; with two
        // possible answers (EACCES and the default's EPERM for socket) none is guessed.
        let noErrno = Denial(pid: 1, comm: "x", syscall: "getppid", action: "errno", timeMs: 0, source: "audit")
            .attributed(to: table)
        XCTAssertEqual(noErrno.errno, "EPERM")
        XCTAssertEqual(noErrno.rule, "s.yaml:3")
        XCTAssertNil(Denial(pid: 1, comm: "x", syscall: "socket", action: "errno", timeMs: 0, source: "audit")
            .attributed(to: table).errno)
        // A kill rule keeps socket in the kernel even while traced; the supervisor never answers it.
        XCTAssertFalse(table.isAnswerable(table.decision(number: socket)))
    }
}

/// The same random policies on the real kernel: the probe's results are identical with and without a supervisor.
final class PolicyDecisionProbeTests: XCTestCase {
    let runner = ScenarioRunner()

    override func setUpWithError() throws {
        try requireRoot()
    }

    /// The probe is built per test run: each class that may build it removes it, so no temp directory is left.
    override class func tearDown() {
        SyscallProbe.removeBuild()
        super.tearDown()
    }

    private func yaml(_ action: SeccompAction) -> String {
        switch action {
        case .errno(let value): return "action: errno, errno: \(ErrnoName.name(of: value)!)"
        default: return "action: \(action.kind)"
        }
    }

    /// Runs the probe under `policy` with `extra` top-level keys; its output, exit status and signal.
    private func run(_ policy: SeccompPolicy, calls: [String], extra: String) throws -> String {
        let program = try SyscallProbe.path()
        let defaultAction = policy.defaultAction
        var lines = ["default: \(defaultAction.kind == "errno" ? defaultAction.description : defaultAction.kind)", "rules:"]
        for rule in policy.rules {
            var line = "  - {syscalls: [\(rule.syscalls.joined(separator: ", "))], \(yaml(rule.action))"
            if !rule.args.isEmpty {
                line += ", args: [" + rule.args.map {
                    "{index: \($0.index), op: \($0.op.rawValue), value: \($0.value)"
                        + ($0.op == .masked_eq ? ", mask: \($0.mask)}" : "}")
                }.joined(separator: ", ") + "]"
            }
            lines.append(line + "}")
        }
        let quoted = ([program] + calls).map { "\"\($0)\"" }.joined(separator: ", ")
        let text = """
            name: probe
            run: [\(quoted)]
            \(extra)
            sandbox:
              seccomp:
            \(lines.map { "    " + $0 }.joined(separator: "\n"))
            """
        let result = runner.run(try scenario(text), toolchain: try TestToolchains.require(TestToolchains.all.first, "go"))
        XCTAssertNotEqual(result.outcome, .harnessError, result.summary)
        return "\(result.stdoutTail)exit \(result.exitCode.map(String.init) ?? "-") signal \(result.signal ?? "-")"
    }

    func testProbeResultsAreTheSameWithAndWithoutTracingAndFaults() throws {
        var random = SeededGenerator(state: 42)
        let startup = SeccompRule(syscalls: SyscallProbe.startup, action: .allow)
        var policies: [SeccompPolicy] = []
        while policies.count < 4 {
            let policy = RandomPolicies.policy(&random, extraRules: [startup])
            if (try? SeccompCompiler.compile(policy)) != nil { policies.append(policy) }
        }
        for policy in policies {
            // Calls whose results do not depend on the process (pids and fds print as their sign).
            let calls = (0..<8).map { _ -> String in
                let name = RandomPolicies.syscalls.randomElement(using: &random)!
                let args = RandomPolicies.arguments(&random).prefix(3)
                return ([UInt64(SyscallName.number(of: name)!)] + args).map { String($0) }.joined(separator: ",")
            }.filter { !$0.hasPrefix("\(SyscallName.number(of: "close")!),1,") && !$0.hasPrefix("\(SyscallName.number(of: "close")!),2,") }
            let plain = try run(policy, calls: calls, extra: "")
            XCTAssertEqual(try run(policy, calls: calls, extra: "trace: true"), plain, "trace: true, policy \(policy)")
            XCTAssertEqual(
                try run(policy, calls: calls,
                        extra: "faults: [{syscall: socket, errno: EIO, process: no-such-process}]"),
                plain, "with a fault that never applies, policy \(policy)")
        }
    }
}
