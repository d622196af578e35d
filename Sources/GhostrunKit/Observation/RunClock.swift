import Foundation

/// How much the host held a run back, and the time the run could actually run: what `timeout` and `hang_after`
/// count (contract, Additions version 3).
///
/// The measure is the time the host kept the run's whole tree from running: PSI's `full` stall of the run's cgroup
/// v2 (`cpu.pressure`, `io.pressure`, `memory.pressure`: the time every non-idle task of the cgroup waited for the
/// resource at once). A tree that competes only with itself (four compiles on two cores) has no `full` CPU stall,
/// so a quiet machine's budget is its wall time; a tree the host's other work starves stalls, and the stalled time
/// does not count. Where PSI is missing (no v2 cgroup for the run, a kernel without PSI, `cgroup.pressure` 0) the
/// run-queue wait of the tree's threads (`/proc/PID/task/TID/schedstat`) stands in: per round, the smallest wait of
/// any thread that was active. That estimates the time none of them ran and errs high (two threads that waited at
/// different times count as a stall), so the fallback errs towards more time, never towards a false hang.
/// `--max-stretch` bounds both.
public struct StallEvidence: Codable, Equatable, Sendable {
    public enum Source: String, Codable, Sendable {
        case psi
        case schedstat
    }
    public var source: Source
    public var wallMs: Int
    /// Wall time the host kept the whole tree from running (the sum of the resources' full stalls, capped at
    /// `wallMs`; they can overlap, e.g. reclaim that waits on I/O, so this errs towards more time).
    public var stalledMs: Int
    /// Full stall per resource (PSI), or the run-queue wait (schedstat, `cpuMs` only).
    public var cpuMs: Int
    public var ioMs: Int?
    public var memoryMs: Int?
    /// PSI `some` CPU stall: time at least one task of the run waited for a CPU (the tree's own parallelism counts
    /// here too; reported, not subtracted).
    public var cpuSomeMs: Int?
    /// The time the run could run: what the limits were measured against.
    public var runnableMs: Int
    /// The limits as applied (after `--timeout-scale`), and the stretch bound (`--max-stretch`).
    public var timeoutMs: Int
    public var hangAfterMs: Int
    public var maxStretch: Double
    /// The run reached `timeout × max-stretch` of wall time before its own limits: the verdict is inconclusive.
    public var boundReached: Bool

    enum CodingKeys: String, CodingKey {
        case source, wallMs = "wall_ms", stalledMs = "stalled_ms", cpuMs = "cpu_full_ms", ioMs = "io_full_ms",
            memoryMs = "memory_full_ms", cpuSomeMs = "cpu_some_ms", runnableMs = "runnable_ms",
            timeoutMs = "timeout_ms", hangAfterMs = "hang_after_ms", maxStretch = "max_stretch",
            boundReached = "bound_reached"
    }

    /// The stalled share of the wall time, 0...1.
    public var stalledFraction: Double { wallMs > 0 ? Double(stalledMs) / Double(wallMs) : 0 }

    /// `stalled on CPU 61% of 30.2 s` (the resources in order of stall), or nil for a run the host barely held
    /// back: under `threshold` of its wall time, or under `minimumMs` (a short run's few milliseconds waiting for a
    /// CPU after each exec are noise, not a busy host).
    public func summary(threshold: Double = 0.1, minimumMs: Int = 250) -> String? {
        guard stalledFraction >= threshold, stalledMs >= minimumMs else { return nil }
        let resources = [("CPU", cpuMs), ("I/O", ioMs ?? 0), ("memory", memoryMs ?? 0)].filter { $0.1 > 0 }
            .sorted { $0.1 > $1.1 }.map(\.0)
        let on = resources.isEmpty ? "" : " on " + resources.joined(separator: "+")
        return "stalled\(on) \(Int((stalledFraction * 100).rounded()))% of "
            + String(format: "%.1f s", Double(wallMs) / 1000)
    }
}

/// The limits one run is measured against: the scenario's, times `--timeout-scale`, and how far host stalls may
/// stretch them (`--max-stretch`).
public struct RunLimits: Equatable, Sendable {
    public var timeout: Duration
    public var hangAfter: Duration
    /// Wall time may reach `timeout × maxStretch` while stalls are subtracted; past it the run is inconclusive.
    public var maxStretch: Double

    public init(timeout: Duration, hangAfter: Duration, scale: Double = 1, maxStretch: Double = RunLimits.defaultMaxStretch) {
        self.timeout = timeout * scale
        self.hangAfter = hangAfter * scale
        self.maxStretch = max(1, maxStretch)
    }

    /// 6: a run keeps its verdict while the host takes up to 5/6 of its time. Measured: `--jobs 4` beside
    /// `stress-ng --cpu 4` on 2 CPUs stalled a spinning `go run` 76% (4.2× its wall time); 3 made it inconclusive.
    public static let defaultMaxStretch = 6.0

    /// The wall-time bound: `timeout × maxStretch`.
    public var wallBound: Duration { timeout * maxStretch }
}

/// A PSI file (`cpu.pressure` and friends): the `some` and `full` totals in microseconds.
public struct PressureTotals: Equatable, Sendable {
    public var someMicroseconds: UInt64
    public var fullMicroseconds: UInt64

    /// Parses `some avg10=0.00 avg60=0.00 avg300=0.00 total=12345\nfull ... total=0`. A file without a `full`
    /// line (the system-wide CPU file before 5.13) has full 0.
    public static func parse(_ text: String) -> PressureTotals? {
        var some: UInt64?
        var full: UInt64 = 0
        for line in text.split(separator: "\n") {
            guard let total = line.split(separator: " ").first(where: { $0.hasPrefix("total=") }),
                let value = UInt64(total.dropFirst(6))
            else { continue }
            if line.hasPrefix("some ") { some = value } else if line.hasPrefix("full ") { full = value }
        }
        return some.map { PressureTotals(someMicroseconds: $0, fullMicroseconds: full) }
    }
}

/// Follows one run's stalls round by round and says how long it could run.
struct RunClock {
    enum Source {
        /// The run's cgroup v2 directory, with its PSI totals at the start.
        case psi(directory: String, cpu: PressureTotals, io: PressureTotals?, memory: PressureTotals?)
        case schedstat
    }

    let source: Source
    let start: ContinuousClock.Instant
    private(set) var stalled: Duration = .zero
    private var cpuFull: UInt64 = 0
    private var cpuSome: UInt64 = 0
    private var ioFull: UInt64?
    private var memoryFull: UInt64?
    /// schedstat fallback: (run time, run-queue wait) in ns of each thread, as last read.
    private var threads: [Int32: (run: UInt64, wait: UInt64)] = [:]

    /// PSI when the run's v2 cgroup has it, unless `forceSchedstat` (`RunnerOptions.schedstatStalls`).
    init(cgroupV2: String?, start: ContinuousClock.Instant, forceSchedstat: Bool = false) {
        self.start = start
        if !forceSchedstat, let directory = cgroupV2,
            let cpu = RunClock.read(directory + "/cpu.pressure")
        {
            source = .psi(directory: directory, cpu: cpu, io: RunClock.read(directory + "/io.pressure"),
                          memory: RunClock.read(directory + "/memory.pressure"))
        } else {
            source = .schedstat
        }
    }

    static func read(_ path: String) -> PressureTotals? {
        ProcFiles.read(path, limit: 512).flatMap(PressureTotals.parse)
    }

    /// The time the run could run so far: wall time minus the stalls measured up to `now`.
    mutating func advance(to now: ContinuousClock.Instant, pids: [Int32]) -> Duration {
        let wall = now - start
        switch source {
        case .psi(let directory, let cpu0, let io0, let memory0):
            // A cgroup removed under us (the run ended) keeps the last totals.
            if let cpu = RunClock.read(directory + "/cpu.pressure") {
                cpuFull = cpu.fullMicroseconds &- cpu0.fullMicroseconds
                cpuSome = cpu.someMicroseconds &- cpu0.someMicroseconds
            }
            if let io0, let io = RunClock.read(directory + "/io.pressure") {
                ioFull = io.fullMicroseconds &- io0.fullMicroseconds
            }
            if let memory0, let memory = RunClock.read(directory + "/memory.pressure") {
                memoryFull = memory.fullMicroseconds &- memory0.fullMicroseconds
            }
            let total = cpuFull + (ioFull ?? 0) + (memoryFull ?? 0)
            stalled = min(wall, .microseconds(Int64(clamping: total)))
        case .schedstat:
            var waits: [UInt64] = []
            var seen: [Int32: (run: UInt64, wait: UInt64)] = [:]
            for pid in pids {
                for (tid, now) in RunClock.schedstat(pid: pid) {
                    seen[tid] = now
                    let before = threads[tid] ?? (0, 0)
                    let ran = now.run &- before.run, waited = now.wait &- before.wait
                    // Active this round: it ran or wanted to.
                    if ran > 0 || waited > 0 { waits.append(waited) }
                }
            }
            threads = seen
            // The kernel adds a wait to run_delay when the wait ends (the task gets a CPU), so one round may report
            // the waits of several: capped at the wall time as a whole, not per round.
            if let least = waits.min() {
                let wait = Duration.nanoseconds(Int64(clamping: least))
                stalled = min(wall, stalled + wait)
                cpuFull = UInt64(stalled.microseconds)
            }
        }
        return wall - stalled
    }

    /// `/proc/PID/task/TID/schedstat` of each thread: time on CPU and time waiting on a run queue, in ns.
    static func schedstat(pid: Int32) -> [(Int32, (run: UInt64, wait: UInt64))] {
        guard let tids = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return [] }
        return tids.compactMap { name in
            guard let tid = Int32(name), let text = ProcFiles.read("/proc/\(pid)/task/\(name)/schedstat", limit: 128),
                let parsed = parseSchedstat(text)
            else { return nil }
            return (tid, parsed)
        }
    }

    /// `RUN_NS WAIT_NS TIMESLICES`.
    static func parseSchedstat(_ text: String) -> (run: UInt64, wait: UInt64)? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count >= 2, let run = UInt64(fields[0]), let wait = UInt64(fields[1]) else { return nil }
        return (run, wait)
    }

    func evidence(wall: Duration, limits: RunLimits, boundReached: Bool) -> StallEvidence {
        let psi: Bool
        if case .psi = source { psi = true } else { psi = false }
        return StallEvidence(
            source: psi ? .psi : .schedstat, wallMs: wall.milliseconds, stalledMs: stalled.milliseconds,
            cpuMs: Int(cpuFull / 1000), ioMs: ioFull.map { Int($0 / 1000) }, memoryMs: memoryFull.map { Int($0 / 1000) },
            cpuSomeMs: psi ? Int(cpuSome / 1000) : nil, runnableMs: (wall - stalled).milliseconds,
            timeoutMs: limits.timeout.milliseconds, hangAfterMs: limits.hangAfter.milliseconds,
            maxStretch: limits.maxStretch, boundReached: boundReached)
    }
}

extension Duration {
    var microseconds: Int {
        Int(components.seconds) * 1_000_000 + Int(components.attoseconds / 1_000_000_000_000)
    }
}
