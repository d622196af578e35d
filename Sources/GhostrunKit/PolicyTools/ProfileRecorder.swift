import Foundation

/// The syscalls traced runs made, gathered into a least-privilege OCI seccomp profile (`ghostrun record`).
public struct ProfileRecording: Sendable {
    /// syscall → toolchain label → roles (`go`, `compile`, `link`, `program`, ...) that made it.
    public private(set) var seen: [String: [String: Set<String>]] = [:]
    /// entry id (`name@go_version`) → the syscall names of each of its runs.
    private var perRun: [String: [Set<String>]] = [:]
    /// `TraceSummary.recordedArguments` syscalls → every argument value any run made them with.
    public private(set) var argumentValues: [String: Set<UInt64>] = [:]
    /// Of those, the syscalls some run made without its values recorded (too many distinct values, or a trace
    /// without arguments): their rules stay unconditional.
    public private(set) var unrestricted: Set<String> = []

    public init() {}

    /// Adds one traced run of `entryId` on `toolchain`.
    public mutating func add(_ result: RunResult, entryId: String, toolchain: String) {
        var names: Set<String> = []
        for (role, calls) in result.evidence.trace?.byRole ?? [:] {
            for call in calls {
                seen[call.syscall, default: [:]][toolchain, default: []].insert(role)
                names.insert(call.syscall)
            }
        }
        perRun[entryId, default: []].append(names)
        let arguments = result.evidence.trace?.arguments ?? [:]
        for name in names where TraceSummary.recordedArguments[name] != nil {
            if let values = arguments[name] {
                argumentValues[name, default: []].formUnion(values)
            } else {
                unrestricted.insert(name)
            }
        }
    }

    /// The namespace flags of clone(2) moby's default profile refuses without CAP_SYS_ADMIN: CLONE_NEWNS,
    /// CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET (= 2114060288).
    public static let cloneNamespaceFlags: UInt64 = 0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000
        | 0x1000_0000 | 0x2000_0000 | 0x4000_0000

    /// The `args` conditions for `name` when `--args` restricts it, one list per rule; nil keeps the rule
    /// unconditional. `socket` and `personality`: one rule per value seen (SCMP_CMP_EQ on argument 0). `clone`: as
    /// moby, no namespace flag (SCMP_CMP_MASKED_EQ: flags & mask == 0), when no recorded call set one.
    func argumentRules(_ name: String) -> [[[String: Any]]]? {
        guard let index = TraceSummary.recordedArguments[name], !unrestricted.contains(name),
            let values = argumentValues[name], !values.isEmpty
        else { return nil }
        switch name {
        case "clone":
            guard values.allSatisfy({ $0 & Self.cloneNamespaceFlags == 0 }) else { return nil }
            return [[["index": index, "value": Self.cloneNamespaceFlags, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"]]]
        default:
            return values.sorted().map { [["index": index, "value": $0, "op": "SCMP_CMP_EQ"]] }
        }
    }

    /// Names that some runs of an entry made and others did not (a sign that `--runs` is too small), with the
    /// entries where that happened.
    public var unstable: [String: [String]] {
        var result: [String: [String]] = [:]
        for (entry, runs) in perRun where runs.count > 1 {
            let union = runs.reduce(Set<String>()) { $0.union($1) }
            let everywhere = runs.reduce(union) { $0.intersection($1) }
            for name in union.subtracting(everywhere) { result[name, default: []].append(entry) }
        }
        return result.mapValues { $0.sorted() }
    }

    /// The profile: every name seen allowed, one rule per name with a `comment` naming the toolchains and roles;
    /// everything else gets `SCMP_ACT_ERRNO` with `defaultErrno`.
    /// With `restrictArguments` (`record --args`), `socket`, `clone` and `personality` are allowed only with the
    /// argument values the runs used (`argumentRules`).
    public func profileJSON(defaultErrno: Int32, restrictArguments: Bool = false) throws -> Data {
        let rules: [[String: Any]] = seen.keys.sorted().flatMap { name -> [[String: Any]] in
            let comment = seen[name]!.keys.sorted().map { toolchain in
                "go \(toolchain): " + seen[name]![toolchain]!.sorted().joined(separator: ", ")
            }.joined(separator: "; ")
            if restrictArguments, let conditions = argumentRules(name) {
                return conditions.map { ["names": [name], "action": "SCMP_ACT_ALLOW", "args": $0, "comment": comment] }
            }
            return [["names": [name], "action": "SCMP_ACT_ALLOW", "comment": comment]]
        }
        let document: [String: Any] = [
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": Int(defaultErrno), "syscalls": rules,
        ]
        var data = try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys])
        data.append(UInt8(ascii: "\n"))
        return data
    }

    /// Names allowed for each toolchain (the profile size per toolchain).
    public var sizePerToolchain: [String: Int] {
        var sizes: [String: Int] = [:]
        for toolchains in seen.values { for toolchain in toolchains.keys { sizes[toolchain, default: 0] += 1 } }
        return sizes
    }
}

extension Scenario {
    /// The scenario with its seccomp policy replaced by `document` as `runtime` applies it, nothing else changed.
    public func replacingSeccomp(with reference: String, document: SeccompProfileDocument, runtime: SeccompRuntime)
        -> Scenario
    {
        var copy = self
        var policy = SeccompPolicy(profile: reference)
        policy.profileDocument = document
        policy.runtime = runtime
        copy.sandbox.seccomp = policy
        return copy
    }
}
