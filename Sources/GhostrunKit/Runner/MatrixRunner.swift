import Foundation

/// One cell of the scenario × toolchain matrix.
public struct MatrixEntry: Sendable {
    public var scenario: Scenario
    public var toolchain: Toolchain
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
        entries.enumerated().filter { $0.offset % count == index - 1 }.map(\.element)
    }
}

/// Runs matrix entries on `jobs` worker threads; results come back in matrix order whatever the parallelism.
public final class MatrixRunner: @unchecked Sendable {
    let runner: ScenarioRunner
    let jobs: Int
    private let lock = NSLock()
    private var stopped = false

    public init(runner: ScenarioRunner, jobs: Int) {
        self.runner = runner
        self.jobs = max(1, jobs)
    }

    /// Stops handing out new entries (SIGINT); entries never started are not in the results.
    public func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
    }

    public func run(_ entries: [MatrixEntry], onResult: @escaping @Sendable (RunResult) -> Void) -> [RunResult] {
        final class Progress: @unchecked Sendable {
            var results: [RunResult?]
            var next = 0
            init(count: Int) { results = Array(repeating: nil, count: count) }
        }
        let progress = Progress(count: entries.count)
        let group = DispatchGroup()
        for _ in 0..<min(jobs, max(1, entries.count)) {
            group.enter()
            let thread = Thread { [self] in
                while true {
                    lock.lock()
                    if stopped || progress.next >= entries.count {
                        lock.unlock()
                        break
                    }
                    let index = progress.next
                    progress.next += 1
                    lock.unlock()
                    let entry = entries[index]
                    let result = runner.run(entry.scenario, toolchain: entry.toolchain)
                    lock.lock()
                    progress.results[index] = result
                    lock.unlock()
                    onResult(result)
                }
                group.leave()
            }
            thread.stackSize = 1 << 22
            thread.start()
        }
        group.wait()
        return progress.results.compactMap { $0 }
    }
}
