import Foundation

/// The syscalls traced runs made, gathered into a least-privilege OCI seccomp profile (`ghostrun record`).
public struct ProfileRecording: Sendable {
    /// syscall → toolchain label → roles (`go`, `compile`, `link`, `program`, ...) that made it.
    public private(set) var seen: [String: [String: Set<String>]] = [:]
    /// entry id (`name@go_version`) → the syscall names of each of its runs.
    private var perRun: [String: [Set<String>]] = [:]

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
    public func profileJSON(defaultErrno: Int32) throws -> Data {
        let rules: [[String: Any]] = seen.keys.sorted().map { name in
            let comment = seen[name]!.keys.sorted().map { toolchain in
                "go \(toolchain): " + seen[name]![toolchain]!.sorted().joined(separator: ", ")
            }.joined(separator: "; ")
            return ["names": [name], "action": "SCMP_ACT_ALLOW", "comment": comment]
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
