import Foundation
import Synchronization

/// One cell of the scenario × toolchain matrix.
public struct MatrixEntry: Sendable {
    public var scenario: Scenario
    public var toolchain: Toolchain
    /// `name@go_version`, the same key a result carries, so a run file's timings find their entry.
    public var id: String { "\(scenario.name)@\(toolchain.label)" }
}

public enum Matrix {
    /// scenario × toolchain, sorted by scenario name then toolchain version, so every report has one order.
    public static func entries(scenarios: [Scenario], toolchains: [Toolchain]) -> [MatrixEntry] {
        let sortedToolchains = toolchains.sorted { $0.version < $1.version }
        return scenarios.sorted { $0.name < $1.name }.flatMap { scenario in
            sortedToolchains.map { MatrixEntry(scenario: scenario, toolchain: $0) }
        }
    }

    /// Shard `index` of `count` (1-based), round-robin over the sorted matrix: disjoint, and together complete.
    public static func shard(_ entries: [MatrixEntry], index: Int, count: Int) -> [MatrixEntry] {
        shard(entries, index: index, count: count, timings: nil)
    }

    /// Shard `index` of `count` (1-based), in matrix order. Without `timings`, round-robin. With them (previous
    /// `duration_ms` by `name@go_version`), balanced by expected cost; see `assignShards`. Every CI job computes
    /// its own shard independently, so the split must depend on nothing but the matrix, `count` and `timings`.
    public static func shard(_ entries: [MatrixEntry], index: Int, count: Int, timings: [String: Int]?)
        -> [MatrixEntry]
    {
        let assignment = assignShards(ids: entries.map(\.id), count: count, timings: timings)
        return entries.indices.filter { assignment[$0] == index - 1 }.map { entries[$0] }
    }

    /// The 0-based shard of each id. Without timings: round-robin. With timings: longest-processing-time-first
    /// greedy — entries in decreasing expected cost (ties in matrix order) each go to the shard with the least
    /// expected total so far (ties: fewer entries, then lower index). Entries without a timing cost the median of
    /// the known ones, a guess that neither starves nor floods a shard. Costs of 0 ms count as 1 ms, so that
    /// instant entries still spread out instead of piling onto shard 1.
    public static func assignShards(ids: [String], count: Int, timings: [String: Int]?) -> [Int] {
        precondition(count >= 1, "a matrix has at least one shard")
        guard let timings, !timings.isEmpty else { return ids.indices.map { $0 % count } }
        let known = ids.compactMap { timings[$0] }.sorted()
        let median = known.isEmpty ? 1 : known[known.count / 2]
        let costs = ids.map { max(1, timings[$0] ?? median) }
        let order = ids.indices.sorted { costs[$0] != costs[$1] ? costs[$0] > costs[$1] : $0 < $1 }
        var load = Array(repeating: 0, count: count)
        var sizes = Array(repeating: 0, count: count)
        var assignment = Array(repeating: 0, count: ids.count)
        for entry in order {
            var best = 0
            for shard in 1..<max(1, count) where (load[shard], sizes[shard]) < (load[best], sizes[best]) {
                best = shard
            }
            assignment[entry] = best
            load[best] += costs[entry]
            sizes[best] += 1
        }
        return assignment
    }

    /// `duration_ms` by `name@go_version` from a previous run file, for `shard(_:index:count:timings:)`.
    public static func timings(from file: RunFile) -> [String: Int] {
        var timings: [String: Int] = [:]
        for result in file.results {
            timings["\(result.name)@\(result.goVersion)"] = result.durationMs
        }
        return timings
    }
}

/// Runs matrix entries on `jobs` worker threads; results come back in matrix order whatever the parallelism.
public final class MatrixRunner: Sendable {
    let runner: ScenarioRunner
    let jobs: Int
    /// Whether `stop()` was called; workers check it before taking the next entry.
    private let stopped = Mutex(false)

    public init(runner: ScenarioRunner, jobs: Int) {
        self.runner = runner
        self.jobs = max(1, jobs)
    }

    /// Stops handing out new entries (SIGINT); entries never started are not in the results.
    public func stop() {
        stopped.withLock { $0 = true }
    }

    /// Runs `entries`; `onStart` is called as a worker takes an entry and `onResult` as it finishes (both from
    /// worker threads), so a caller can show what is running now.
    public func run(
        _ entries: [MatrixEntry], onStart: @escaping @Sendable (MatrixEntry) -> Void = { _ in },
        onResult: @escaping @Sendable (RunResult) -> Void
    ) -> [RunResult] {
        struct Progress {
            var results: [RunResult?]
            var next = 0
        }
        let progress = Mutex(Progress(results: Array(repeating: nil, count: entries.count)))
        let group = DispatchGroup()
        for _ in 0..<min(jobs, max(1, entries.count)) {
            group.enter()
            let thread = Thread { [self] in
                while true {
                    let taken: Int? = progress.withLock { progress in
                        if stopped.withLock({ $0 }) || progress.next >= entries.count { return nil }
                        progress.next += 1
                        return progress.next - 1
                    }
                    guard let index = taken else { break }
                    let entry = entries[index]
                    onStart(entry)
                    let result = runner.run(entry.scenario, toolchain: entry.toolchain)
                    progress.withLock { $0.results[index] = result }
                    onResult(result)
                }
                group.leave()
            }
            thread.stackSize = 1 << 22
            thread.start()
        }
        group.wait()
        return progress.withLock { $0.results.compactMap { $0 } }
    }
}
