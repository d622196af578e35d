import Foundation
import Synchronization

/// The registry of a session's live runs, so shutdown paths (SIGINT/SIGTERM) can kill them. Owned by a
/// `RunSession` (or a test) and passed to the runner, not a global.
public final class ActiveRuns: Sendable {
    private struct State {
        var cgroups: [Int: RunCgroup] = [:]
        var workDirectories: [Int: WorkDirectory] = [:]
        var toolchainUse: [String: Int] = [:]
        var active: Set<Int> = []
        var tornDown: Set<Int> = []
        var shuttingDown = false
    }

    private let state = Mutex(State())

    public init() {}

    func register(_ sequence: Int, cgroup: RunCgroup?, work: WorkDirectory?, goroot: String) {
        state.withLock { state in
            // A run still setting up when the signal came registers after the teardown; it is torn down too, or
            // ghostrun would wait out its whole timeout before exiting.
            if state.shuttingDown { state.tornDown.insert(sequence) }
            state.active.insert(sequence)
            if let cgroup { state.cgroups[sequence] = cgroup }
            if let work { state.workDirectories[sequence] = work }
            state.toolchainUse[goroot, default: 0] += 1
        }
    }

    func unregister(_ sequence: Int, goroot: String) {
        state.withLock { state in
            state.cgroups[sequence] = nil
            state.workDirectories[sequence] = nil
            state.toolchainUse[goroot, default: 1] -= 1
            state.tornDown.remove(sequence)
            state.active.remove(sequence)
        }
    }

    /// Whether `tearDownAll()` killed this run while it was active; checked by the run when it finishes, before
    /// it unregisters.
    func wasTornDown(_ sequence: Int) -> Bool {
        state.withLock { $0.tornDown.contains(sequence) }
    }

    /// How many runs use this GOROOT now (audit records from its tools are attributable only when one does).
    func runsUsing(goroot: String) -> Int {
        state.withLock { $0.toolchainUse[goroot] ?? 0 }
    }

    /// Kills and removes everything of every active run, and marks them and every run that registers later as
    /// torn down (their results say `interrupted`); for SIGINT/SIGTERM handlers, after which the process exits.
    public func tearDownAll() {
        let (groups, works) = state.withLock { state in
            let taken = (Array(state.cgroups.values), Array(state.workDirectories.values))
            state.tornDown.formUnion(state.active)
            state.shuttingDown = true
            state.cgroups = [:]
            state.workDirectories = [:]
            return taken
        }
        // Outside the lock: destroying a cgroup kills and waits, and the runs' own threads need the lock meanwhile.
        for group in groups { group.destroy() }
        for work in works { work.remove() }
    }
}
