import Foundation

/// Samples `/proc` for every process of a run and keeps what the classifier needs of each.
///
/// Not threaded and not thread-safe: the runner calls `sample(pids:)` from its own loop (every 20 ms or
/// so) and reads `observations()` when the run is over.
public final class ProcessSampler {
    /// A process seen for the first time, or one that exec'd another program since the last round.
    public struct NewProcess: Equatable, Sendable {
        public var pid: Int32
        public var comm: String
        public var exe: String?
        public init(pid: Int32, comm: String, exe: String?) {
            self.pid = pid
            self.comm = comm
            self.exe = exe
        }
    }

    /// What one round saw.
    public struct SampleRound: Sendable {
        /// Milliseconds since the run started.
        public var timeMs: Int
        /// Every live process sampled this round, including descendants found through `children`.
        public var pids: [Int32]
        /// utime + stime of the live processes plus the last-seen ticks of every process that has
        /// exited, so the total never goes down when a busy process ends.
        public var totalCPUTicks: UInt64
        /// Processes first seen this round, and processes whose command changed (they exec'd).
        public var newProcesses: [NewProcess]
        /// Every live, non-zombie process is stopped (`T`) or in a tracing stop (`t`).
        public var allStoppedOrTraced: Bool
        /// Some process sleeps in the freezer: see `isFrozen(state:wchan:)`. A task frozen by cgroup v2
        /// shows State `S`, so the state letter alone cannot tell.
        public var anyFrozenWchan: Bool
        /// State letter of each live process.
        public var states: [Int32: String]
        /// utime + stime of each live process.
        public var cpuTicks: [Int32: UInt64] = [:]
    }

    /// Kernel functions only a frozen task sleeps in (older kernels, where they are not inlined).
    public static let freezerWchans: Set<String> = ["do_freezer_trap", "__refrigerator"]

    /// Whether a task with this State and wchan is frozen, as far as `/proc` can tell.
    ///
    /// Measured on Linux 6.18: a task frozen by cgroup v2 (`cgroup.freeze`) is `S` in `get_signal`, where
    /// `do_freezer_trap` is inlined; the only other sleeps in `get_signal` are job-control and ptrace stops,
    /// which are `T` and `t`. A task frozen by the v1 freezer shows `D` with the wchan it slept in before
    /// (the kernel's TASK_FROZEN since 6.1), which no wchan test can tell from disk sleep: read
    /// `freezer.state` for v1.
    public static func isFrozen(state: String, wchan: String?) -> Bool {
        guard let wchan else { return false }
        return freezerWchans.contains(wchan) || (state == "S" && wchan == "get_signal")
    }

    private struct Record {
        var pid: Int32
        var startTime: UInt64
        var ppid: Int32
        var comm: String
        var exe: String?
        var first: ProcessSample
        var last: ProcessSample
        var stateChanges: [StateChange]
        var exited: Bool
        var order: Int
    }

    private let runStart: ContinuousClock.Instant
    private let discoverDescendants: Bool
    private var records: [Record] = []
    /// Index into `records` of the live record of each pid.
    private var live: [Int32: Int] = [:]
    /// CPU ticks of processes that have exited, as last seen.
    private var exitedTicks: UInt64 = 0

    /// - Parameters:
    ///   - runStart: the instant the run started; sample times are milliseconds after it.
    ///   - discoverDescendants: also follow `/proc/PID/task/*/children` of the listed pids, so a process
    ///     that lives between two reads of `cgroup.procs`, or one outside the cgroup, is still seen.
    public init(runStart: ContinuousClock.Instant, discoverDescendants: Bool = true) {
        self.runStart = runStart
        self.discoverDescendants = discoverDescendants
    }

    /// Samples the given processes (and their descendants); processes seen before but not found this
    /// round are marked exited.
    ///
    /// A process's state changes start with its state when first seen, so the list is its whole timeline.
    @discardableResult
    public func sample(pids: [Int32]) -> SampleRound {
        let elapsed = ContinuousClock.now - runStart
        let timeMs = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)

        var queue: [Int32] = []
        var queued = Set<Int32>()
        for pid in pids where queued.insert(pid).inserted { queue.append(pid) }

        var round = SampleRound(
            timeMs: timeMs, pids: [], totalCPUTicks: 0, newProcesses: [], allStoppedOrTraced: false,
            anyFrozenWchan: false, states: [:])
        var seen = Set<Int32>()
        var liveTicks: UInt64 = 0
        var activeCount = 0
        var stoppedCount = 0

        var next = 0
        while next < queue.count {
            let pid = queue[next]
            next += 1
            guard let observed = observe(pid: pid, timeMs: timeMs, round: &round) else { continue }
            seen.insert(pid)
            round.pids.append(pid)
            round.states[pid] = observed.status.state
            round.cpuTicks[pid] = observed.cpuTicks
            liveTicks += observed.cpuTicks
            if observed.status.state != "Z" && observed.status.state != "X" {
                activeCount += 1
                if observed.status.state == "T" || observed.status.state == "t" { stoppedCount += 1 }
            }
            if Self.isFrozen(state: observed.status.state, wchan: observed.wchan) { round.anyFrozenWchan = true }
            if discoverDescendants {
                for child in ProcFiles.children(pid: pid) where queued.insert(child).inserted {
                    queue.append(child)
                }
            }
        }

        for (pid, index) in live where !seen.contains(pid) {
            retire(index)
            live[pid] = nil
        }
        round.totalCPUTicks = liveTicks + exitedTicks
        round.allStoppedOrTraced = activeCount > 0 && stoppedCount == activeCount
        return round
    }

    /// Reads one process; updates or creates its record. Nil when the process is gone.
    private func observe(pid: Int32, timeMs: Int, round: inout SampleRound) -> ProcessSample? {
        guard let stat = ProcFiles.stat(pid: pid), var status = ProcFiles.status(pid: pid) else { return nil }
        // A zombie's status may lack fields; stat's letter is the kernel's word for both files.
        if status.state.isEmpty { status.state = stat.state }
        let state = status.state
        let wchan = ["S", "D", "T", "t"].contains(state) ? ProcFiles.wchan(pid: pid) : nil
        let ticks = stat.utime + stat.stime

        if let index = live[pid], records[index].startTime != stat.startTime {
            // Same pid, different start time: the old process is gone and the pid was reused.
            retire(index)
            live[pid] = nil
        }

        if let index = live[pid] {
            var record = records[index]
            var sample = ProcessSample(timeMs: timeMs, status: status, cpuTicks: ticks, wchan: wchan)
            if state != record.last.status.state {
                sample.syscall = ProcFiles.syscall(pid: pid)
                record.stateChanges.append(StateChange(timeMs: timeMs, state: state, wchan: wchan))
            } else {
                sample.syscall = record.last.syscall
            }
            (sample.status.mountNamespace, sample.status.networkNamespace) =
                stat.comm != record.comm ? ProcFiles.namespaces(pid: pid)
                : (record.last.status.mountNamespace, record.last.status.networkNamespace)
            if stat.comm != record.comm {
                // The comm changes at exec: a fork of `go` becomes `compile`, and must be named so.
                record.comm = stat.comm
                record.exe = ProcFiles.exe(pid: pid) ?? record.exe
                round.newProcesses.append(NewProcess(pid: pid, comm: record.comm, exe: record.exe))
            }
            record.ppid = status.ppid
            record.last = sample
            records[index] = record
            return sample
        }

        var sample = ProcessSample(timeMs: timeMs, status: status, cpuTicks: ticks, wchan: wchan)
        sample.syscall = ProcFiles.syscall(pid: pid)
        (sample.status.mountNamespace, sample.status.networkNamespace) = ProcFiles.namespaces(pid: pid)
        let exe = ProcFiles.exe(pid: pid)
        let record = Record(
            pid: pid, startTime: stat.startTime, ppid: status.ppid != 0 ? status.ppid : stat.ppid,
            comm: stat.comm, exe: exe, first: sample, last: sample,
            stateChanges: [StateChange(timeMs: timeMs, state: state, wchan: wchan)], exited: false,
            order: records.count)
        live[pid] = records.count
        records.append(record)
        round.newProcesses.append(NewProcess(pid: pid, comm: stat.comm, exe: exe))
        return sample
    }

    private func retire(_ index: Int) {
        guard !records[index].exited else { return }
        records[index].exited = true
        exitedTicks += records[index].last.cpuTicks
    }

    /// Marks every process still considered live as exited.
    ///
    /// `sample` marks a process exited when a later round no longer finds it; the runner calls this once
    /// the run's processes have been reaped, because no later round will come to notice. It is not
    /// called for a run killed as hung, so `exited == false` keeps saying "still there at the end".
    public func markGone() {
        for index in live.values { retire(index) }
        live.removeAll()
    }

    /// Every process seen, in the order first seen.
    public func observations() -> [ProcessObservation] {
        records.sorted { ($0.first.timeMs, $0.order) < ($1.first.timeMs, $1.order) }.map { record in
            ProcessObservation(
                pid: record.pid, ppid: record.ppid, comm: record.comm, exe: record.exe, first: record.first,
                last: record.last, stateChanges: record.stateChanges, exited: record.exited)
        }
    }

    /// Where each process is stuck, for the report of a hung run: State, wchan, current syscall and the
    /// kernel stack. Processes that are gone are left out.
    /// `stalled` are the scenario's stalled endpoints (`127.0.0.1:8099`): a connection to one is marked.
    public func snapshot(pids: [Int32], stalled: Set<String> = []) -> [HangSnapshot] {
        pids.compactMap { pid in
            guard let status = ProcFiles.status(pid: pid) else { return nil }
            let comm = live[pid].map { records[$0].comm } ?? ProcFiles.comm(pid: pid) ?? status.name
            var snapshot = HangSnapshot(
                pid: pid, comm: comm, state: status.state, wchan: ProcFiles.wchan(pid: pid),
                syscall: ProcFiles.syscall(pid: pid), stack: ProcFiles.stack(pid: pid))
            let connections = SocketTable.connections(pid: pid, stalled: stalled)
            if !connections.isEmpty { snapshot.connections = connections }
            return snapshot
        }
    }
}
