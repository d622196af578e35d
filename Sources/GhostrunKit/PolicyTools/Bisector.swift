import Foundation

/// One seccomp decision that refused a call in the failing run: the candidates `bisect` relaxes.
public struct RefusingDecision: Codable, Equatable, Hashable, Sendable {
    public var syscall: String
    /// The denial's action: `errno`, `trap`, `kill-process`, `kill-thread`.
    public var action: String
    public var errno: String?
    /// The rule that decided (`Denial.rule`): `scenario.yaml:14`, `docker-default syscalls[12]`, `default`, ...
    public var rule: String?

    public init(syscall: String, action: String, errno: String? = nil, rule: String? = nil) {
        self.syscall = syscall
        self.action = action
        self.errno = errno
        self.rule = rule
    }

    /// The distinct refusals of a run's denials, in the order they first happened. Logged calls and injected
    /// faults are not the policy refusing anything.
    public static func from(_ denials: [Denial]) -> [RefusingDecision] {
        var seen: Set<String> = []
        var decisions: [RefusingDecision] = []
        for denial in denials.sorted(by: { $0.timeMs < $1.timeMs })
        where denial.action != "log" && denial.action != "injected"
            && !seen.contains(denial.syscall)
        {
            seen.insert(denial.syscall)
            decisions.append(
                RefusingDecision(
                    syscall: denial.syscall, action: denial.action, errno: denial.errno, rule: denial.rule))
        }
        return decisions
    }
}

/// What `ghostrun bisect` found (`--json`: `{"culprits": [...], "runs": N}` plus the context of the search).
public struct BisectReport: Codable, Equatable, Sendable {
    public struct Culprit: Codable, Equatable, Sendable {
        public var syscall: String
        public var action: String
        public var errno: String?
        /// The rule that refused it.
        public var rule: String?
        /// The answers under which the run is `ok`: `ENOSYS`, `EPERM`, `allow` (in that order of preference).
        public var tolerated: [String]
    }

    public var scenario: String
    public var goVersion: String
    /// The outcome under the policy as written.
    public var outcome: Outcome
    /// Every decision that refused a call in the traced failing run.
    public var candidates: [RefusingDecision]
    public var culprits: [Culprit]
    /// Runs of go made, the traced one included.
    public var runs: Int
    /// False when the run cap stopped the search before the set was minimal.
    public var minimal: Bool

    enum CodingKeys: String, CodingKey {
        case scenario, goVersion = "go_version", outcome, candidates, culprits, runs, minimal
    }

    /// The fix as OCI profile rules to add to `syscalls` (the least permissive answer Go tolerates for each
    /// culprit), as pretty JSON.
    public func profilePatch() -> String {
        let rules: [[String: Any]] = culprits.map { culprit in
            for errno in ["ENOSYS", "EPERM"] where culprit.tolerated.contains(errno) {
                return [
                    "names": [culprit.syscall], "action": "SCMP_ACT_ERRNO",
                    "errnoRet": Int(ErrnoName.value(of: errno)!),
                ]
            }
            return ["names": [culprit.syscall], "action": "SCMP_ACT_ALLOW"]
        }
        let data =
            (try? JSONSerialization.data(withJSONObject: rules, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

/// Why `bisect` could not start or could not explain the failure.
public struct BisectError: Error, CustomStringConvertible {
    public var description: String
    /// 2 for bad input (nothing to bisect), 1 when the search ran but found no explanation.
    public var exitStatus: Int32
}

/// Delta debugging (Zeller's ddmin) over the decisions that refused a call: the smallest set whose relaxation to
/// allow alone makes the run `ok`.
///
/// Every probe is a real run of the scenario with rules added on top of its policy (`allow` for the relaxed
/// syscalls); a rule replaces the profile's rules for its syscalls, so a probe changes nothing else.
public final class Bisector {
    public typealias Runner = (Scenario) -> RunResult

    private let scenario: Scenario
    private let maxRuns: Int
    private let runner: Runner
    private let progress: (String) -> Void
    private var cache: [Set<String>: Bool] = [:]
    public private(set) var runs = 0

    public init(scenario: Scenario, maxRuns: Int, progress: @escaping (String) -> Void = { _ in },
                runner: @escaping Runner) {
        self.scenario = scenario
        self.maxRuns = maxRuns
        self.runner = runner
        self.progress = progress
    }

    /// The scenario with `answers` (syscall → action) added as rules on top of its policy.
    public static func relaxed(_ scenario: Scenario, _ answers: [String: SeccompAction]) -> Scenario {
        var scenario = scenario
        var policy = scenario.sandbox.seccomp ?? SeccompPolicy()
        let location = SourceLocation(file: "<bisect>", line: 1)
        for (syscall, action) in answers.sorted(by: { $0.key < $1.key }) {
            policy.rules.append(SeccompRule(syscalls: [syscall], action: action, location: location))
        }
        scenario.sandbox.seccomp = policy
        return scenario
    }

    public func bisect() throws -> BisectReport {
        guard scenario.sandbox.seccomp != nil else {
            throw BisectError(description: "\(scenario.name) has no seccomp policy to bisect", exitStatus: 2)
        }
        var traced = scenario
        traced.trace = .all
        let failing = probe(traced, "traced run under the policy as written")
        guard failing.outcome != .ok else {
            throw BisectError(
                description: "\(scenario.name)@\(failing.goVersion) is ok under its policy: nothing to bisect",
                exitStatus: 2)
        }
        guard failing.outcome != .harnessError, failing.outcome != .skipped else {
            throw BisectError(
                description: "\(scenario.name)@\(failing.goVersion): \(failing.outcome.rawValue): "
                    + (failing.reason ?? failing.summary),
                exitStatus: 2)
        }
        let candidates = RefusingDecision.from(failing.evidence.denials)
        progress("\(failing.outcome.rawValue); \(candidates.count) decision(s) refused a call: "
            + candidates.map(\.syscall).joined(separator: ", "))
        func report(_ culprits: [BisectReport.Culprit], minimal: Bool) -> BisectReport {
            BisectReport(
                scenario: scenario.name, goVersion: failing.goVersion, outcome: failing.outcome,
                candidates: candidates, culprits: culprits, runs: runs, minimal: minimal)
        }
        let names = candidates.map(\.syscall)
        guard !names.isEmpty, passes(names) else {
            throw BisectError(
                description: "relaxing every decision that refused a call (\(names.count)) does not make "
                    + "\(scenario.name) ok: the failure is not (only) seccomp's", exitStatus: 1)
        }
        var minimal = true
        var found = names
        do {
            found = try ddmin(names)
        } catch let capped as CapReached {
            found = capped.best
            minimal = false
        }
        var culprits: [BisectReport.Culprit] = []
        for name in found {
            let decision = candidates.first { $0.syscall == name }!
            var tolerated: [String] = []
            for errno in ["ENOSYS", "EPERM"] {
                guard runs < maxRuns else {
                    minimal = false
                    break
                }
                var answers = Dictionary(uniqueKeysWithValues: found.map { ($0, SeccompAction.allow) })
                answers[name] = .errno(ErrnoName.value(of: errno)!)
                let result = probe(Self.relaxed(scenario, answers), "\(name) answered \(errno)")
                if result.outcome == .ok { tolerated.append(errno) }
            }
            tolerated.append("allow")
            culprits.append(
                BisectReport.Culprit(
                    syscall: name, action: decision.action, errno: decision.errno, rule: decision.rule,
                    tolerated: tolerated))
        }
        return report(culprits, minimal: minimal)
    }

    private struct CapReached: Error { var best: [String] }

    /// Whether relaxing `names` to allow makes the run `ok`; each distinct set runs once.
    private func passes(_ names: [String]) -> Bool {
        let key = Set(names)
        if let known = cache[key] { return known }
        let result = probe(
            Self.relaxed(scenario, Dictionary(uniqueKeysWithValues: names.map { ($0, .allow) })),
            "allow " + names.joined(separator: ", "))
        cache[key] = result.outcome == .ok
        return result.outcome == .ok
    }

    private func probe(_ scenario: Scenario, _ what: String) -> RunResult {
        runs += 1
        progress("run \(runs)/\(maxRuns): \(what) ...")
        let result = runner(scenario)
        progress("run \(runs)/\(maxRuns): \(result.outcome.rawValue)")
        return result
    }

    /// ddmin: `names` pass when relaxed; returns a 1-minimal subset that still passes.
    private func ddmin(_ names: [String]) throws -> [String] {
        var current = names
        var granularity = 2
        while current.count >= 2 {
            let chunks = split(current, granularity)
            var reduced = false
            for chunk in chunks {
                try checkCap(current)
                if passes(chunk) {
                    current = chunk
                    granularity = 2
                    reduced = true
                    break
                }
            }
            if !reduced && granularity > 2 {
                for chunk in chunks {
                    let complement = current.filter { !chunk.contains($0) }
                    try checkCap(current)
                    if passes(complement) {
                        current = complement
                        granularity = max(granularity - 1, 2)
                        reduced = true
                        break
                    }
                }
            }
            if !reduced {
                if granularity >= current.count { break }
                granularity = min(current.count, granularity * 2)
            }
        }
        return current
    }

    private func checkCap(_ best: [String]) throws {
        if runs >= maxRuns { throw CapReached(best: best) }
    }

    private func split(_ names: [String], _ parts: Int) -> [[String]] {
        let size = Int((Double(names.count) / Double(parts)).rounded(.up))
        return stride(from: 0, to: names.count, by: size).map { Array(names[$0..<min($0 + size, names.count)]) }
    }
}
