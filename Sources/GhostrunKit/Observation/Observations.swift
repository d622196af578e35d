import Foundation

/// Fields of `/proc/PID/status` that tell what restrictions a process really runs under.
public struct ProcStatus: Codable, Equatable, Sendable {
    public var name: String = ""
    /// One-letter state (`R`, `S`, `D`, `T`, `t`, `Z`, `X`, `I`).
    public var state: String = ""
    public var pid: Int32 = 0
    public var ppid: Int32 = 0
    public var uid: [UInt32] = []
    public var gid: [UInt32] = []
    public var capInh: UInt64 = 0
    public var capPrm: UInt64 = 0
    public var capEff: UInt64 = 0
    public var capBnd: UInt64 = 0
    public var capAmb: UInt64 = 0
    public var noNewPrivs: Int = 0
    /// 0 disabled, 1 strict, 2 filter.
    public var seccomp: Int = 0
    public var seccompFilters: Int = 0
    public var threads: Int = 0
    /// `/proc/PID/ns/mnt` and `/proc/PID/ns/net` (`mnt:[4026532301]`), read when the process is first seen and at
    /// each exec: which namespaces the process really ran in. Not in `status`; nil when unreadable.
    public var mountNamespace: String?
    public var networkNamespace: String?
    public init() {}
}

/// One sample of one process.
public struct ProcessSample: Codable, Equatable, Sendable {
    /// Milliseconds since the run started.
    public var timeMs: Int
    public var status: ProcStatus
    /// utime + stime in clock ticks, from `/proc/PID/stat`.
    public var cpuTicks: UInt64
    public var wchan: String?
    /// First field of `/proc/PID/syscall`: a syscall number, `running`, or -1 (not in a syscall).
    public var syscall: String?
    public init(timeMs: Int, status: ProcStatus, cpuTicks: UInt64, wchan: String? = nil, syscall: String? = nil) {
        self.timeMs = timeMs
        self.status = status
        self.cpuTicks = cpuTicks
        self.wchan = wchan
        self.syscall = syscall
    }
}

/// What was seen of one process over the run.
public struct ProcessObservation: Codable, Equatable, Sendable {
    public var pid: Int32
    public var ppid: Int32
    public var comm: String
    public var exe: String?
    public var first: ProcessSample
    public var last: ProcessSample
    /// Each time the State letter changed: (time, new state, wchan at that moment).
    public var stateChanges: [StateChange]
    /// Whether the process was still present at the last sample before the run ended.
    public var exited: Bool
    public init(pid: Int32, ppid: Int32, comm: String, exe: String?, first: ProcessSample, last: ProcessSample,
                stateChanges: [StateChange] = [], exited: Bool = true) {
        self.pid = pid
        self.ppid = ppid
        self.comm = comm
        self.exe = exe
        self.first = first
        self.last = last
        self.stateChanges = stateChanges
        self.exited = exited
    }
}

public struct StateChange: Codable, Equatable, Sendable {
    public var timeMs: Int
    public var state: String
    public var wchan: String?
    public init(timeMs: Int, state: String, wchan: String?) {
        self.timeMs = timeMs
        self.state = state
        self.wchan = wchan
    }
    enum CodingKeys: String, CodingKey {
        case timeMs = "time_ms", state, wchan
    }
}

/// A denied or injected syscall: from the kernel's audit records (kill, trap, log) or the supervisor.
public struct Denial: Codable, Equatable, Sendable {
    public var pid: Int32
    public var comm: String
    public var exe: String?
    public var syscall: String
    public var syscallNumber: Int?
    /// `kill-process`, `kill-thread`, `trap`, `errno`, `log`, `injected`.
    public var action: String
    public var errno: String?
    /// Signal number delivered by the kernel (31 for SIGSYS), when the record gives one.
    public var signal: Int?
    public var timeMs: Int
    /// Where the record came from: `audit` or `supervisor`.
    public var source: String
    /// The toolchain component (`go`, `compile`, `link`, `program`, ...) when the supervisor saw the call.
    public var role: String?
    /// The decoded path argument of a file syscall, when the supervisor read it.
    public var path: String?
    /// The policy rule that decided: `scenario.yaml:14`, `docker-default syscalls[12]`, `default`; several
    /// separated by ` | ` when an audit record (which carries no arguments) fits more than one argument rule.
    public var rule: String?
    /// On the one record that closes a flood (`DenialLog`): how many denials of the same syscall, action and
    /// errno past the first 100 it stands for, itself included, exactly. Its other fields are the last one's.
    public var repeated: Int?
    /// An injected fault: the process's stable identity (its command line with the run's paths named, see
    /// `ProcessIdentity`) and which of that process's matching calls it was. Two runs with one seed inject the
    /// same (process, match) pairs.
    public var process: String?
    public var match: Int?
    public init(pid: Int32, comm: String, exe: String? = nil, syscall: String, syscallNumber: Int? = nil,
                action: String, errno: String? = nil, signal: Int? = nil, timeMs: Int, source: String,
                role: String? = nil, path: String? = nil) {
        self.role = role
        self.path = path
        self.pid = pid
        self.comm = comm
        self.exe = exe
        self.syscall = syscall
        self.syscallNumber = syscallNumber
        self.action = action
        self.errno = errno
        self.signal = signal
        self.timeMs = timeMs
        self.source = source
    }
    enum CodingKeys: String, CodingKey {
        case pid, comm, exe, syscall, syscallNumber = "syscall_number", action, errno, signal, timeMs = "time_ms",
            rule, source, role, path, repeated, process, match
    }
}

/// A line of `cgroup.events` (or the v1 freezer's state) at a moment of the run.
public struct CgroupEvent: Codable, Equatable, Sendable {
    public var timeMs: Int
    /// `frozen`, `thawed`, `populated`, `empty`, `freeze-requested`, `thaw-requested`, `oom-kill`, `pids-max`...
    public var event: String
    public var detail: String?
    public init(timeMs: Int, event: String, detail: String? = nil) {
        self.timeMs = timeMs
        self.event = event
        self.detail = detail
    }
    enum CodingKeys: String, CodingKey {
        case timeMs = "time_ms", event, detail
    }
}

public struct CgroupObservation: Codable, Equatable, Sendable {
    public var path: String
    public var extraPaths: [String]
    public var frozenSeen: Bool
    public var events: [CgroupEvent]
    /// pids.events `max` counter, memory `oom_kill` counter at the end, when available.
    public var pidsMaxHits: Int?
    public var oomKills: Int?
    /// `cpu_max`: the quota and the throttling it caused.
    public var cpu: CPUThrottling?
    /// Which hierarchy served each controller the run used (`v2` or `v1`), nil where the run asked for none: what a
    /// reviewer checks on a v2-only host.
    public var pidsVia: String?
    public var memoryVia: String?
    public var freezeVia: String?
    public init(path: String, extraPaths: [String] = [], frozenSeen: Bool = false, events: [CgroupEvent] = [],
                pidsMaxHits: Int? = nil, oomKills: Int? = nil) {
        self.path = path
        self.extraPaths = extraPaths
        self.frozenSeen = frozenSeen
        self.events = events
        self.pidsMaxHits = pidsMaxHits
        self.oomKills = oomKills
    }
    enum CodingKeys: String, CodingKey {
        case path, extraPaths = "extra_paths", frozenSeen = "frozen_seen", events, pidsMaxHits = "pids_max_hits",
            oomKills = "oom_kills", cpu, pidsVia = "pids_via", memoryVia = "memory_via", freezeVia = "freeze_via"
    }
}

/// A run's CPU quota (`sandbox.cgroup.cpu_max`) and what it did: from `cpu.max`/`cpu.cfs_quota_us` and `cpu.stat`.
public struct CPUThrottling: Codable, Equatable, Sendable {
    /// "v2" or "v1".
    public var via: String
    public var quotaMicroseconds: Int?
    public var periodMicroseconds: Int
    /// Periods in which the run had runnable threads, and those in which it hit the quota.
    public var periods: Int?
    public var throttledPeriods: Int?
    /// Total time the run's threads were held back by the quota.
    public var throttledMs: Int?

    /// The quota in CPUs (quota / period).
    public var cpus: Double? { quotaMicroseconds.map { Double($0) / Double(periodMicroseconds) } }

    enum CodingKeys: String, CodingKey {
        case via, quotaMicroseconds = "quota_us", periodMicroseconds = "period_us", periods = "nr_periods",
            throttledPeriods = "nr_throttled", throttledMs = "throttled_ms"
    }
}

/// Per-process state captured just before a hung run is killed.
public struct HangSnapshot: Codable, Equatable, Sendable {
    public var pid: Int32
    public var comm: String
    public var state: String
    public var wchan: String?
    public var syscall: String?
    public var stack: String?
    /// The TCP connections the process held (`/proc/PID/fd` matched with `/proc/PID/net/tcp*`), when any.
    public var connections: [HangConnection]?
    public init(pid: Int32, comm: String, state: String, wchan: String?, syscall: String?, stack: String?) {
        self.pid = pid
        self.comm = comm
        self.state = state
        self.wchan = wchan
        self.syscall = syscall
        self.stack = stack
    }
}

/// How the go command ended.
public enum Termination: Codable, Equatable, Sendable {
    case exited(Int32)
    case signaled(Int32)
    /// ghostrun killed it: the timeout or the no-progress limit ran out.
    case killedByHarness(reason: HangTrigger)
}

public enum HangTrigger: String, Codable, Sendable {
    case timeout
    case noProgress = "no-progress"
    /// Wall time reached `timeout × --max-stretch` while host stalls kept the run's own limits from running out:
    /// the host, not the target, decided; the result is `inconclusive`.
    case stretchBound = "stretch-bound"
}

/// Everything observed during one run: the classifier's only input.
public struct RunObservation: Codable, Equatable, Sendable {
    public var termination: Termination
    public var durationMs: Int
    public var stdout: String
    public var stderr: String
    /// Success criteria after resolution (artifact path relative to the workdir, inferred or given).
    public var successArtifact: String?
    public var artifactExists: Bool?
    public var successStdout: String?
    /// Whether `expect.artifact` exists after the run (nil when not expected).
    public var expectArtifactExists: Bool?
    public var processes: [ProcessObservation]
    public var denials: [Denial]
    public var cgroup: CgroupObservation?
    /// Filled when the run was judged hung.
    public var hangSnapshots: [HangSnapshot]
    /// Goroutine dumps from SIGQUIT (part of stderr, kept separately for the report).
    public var goroutineDump: String?
    /// Whether the CPU time of the run's processes kept moving in the last hang window.
    public var cpuMovingAtEnd: Bool
    public var rootPid: Int32
    /// What the supervisor saw, when the scenario traced or injected faults.
    public var trace: TraceSummary?
    /// Per-package and per-test results, for `go test` runs (nil for any other command).
    public var goTest: GoTestRun?
    /// What ghostrun's BPF program saw (the exact process tree with each process's restrictions, syscall counts),
    /// when the run was observed through BPF.
    public var bpf: BPFObservation?
    /// Audit records from the run's toolchain whose pid the run never held: dropped, not guessed (`AuditAttribution`).
    public var unattributedAuditRecords = 0
    /// Every process of the run, counted from the kernel's fork/exec events (nil when they cannot be read).
    public var processCount: ProcessCount?
    /// `--keep-work`: the files with the whole output.
    public var outputFiles: OutputFiles?
    /// How much the host stalled the run, and the time its limits were measured in (`RunClock`).
    public var stall: StallEvidence?
    /// Host mounts left out of the hermetic view because another program removed them while the run started.
    public var skippedMounts: [String] = []
    public init(termination: Termination, durationMs: Int, stdout: String, stderr: String,
                successArtifact: String? = nil, artifactExists: Bool? = nil, successStdout: String? = nil,
                processes: [ProcessObservation] = [], denials: [Denial] = [], cgroup: CgroupObservation? = nil,
                hangSnapshots: [HangSnapshot] = [], goroutineDump: String? = nil, cpuMovingAtEnd: Bool = false,
                rootPid: Int32 = 0) {
        self.termination = termination
        self.durationMs = durationMs
        self.stdout = stdout
        self.stderr = stderr
        self.successArtifact = successArtifact
        self.artifactExists = artifactExists
        self.successStdout = successStdout
        self.expectArtifactExists = nil
        self.processes = processes
        self.denials = denials
        self.cgroup = cgroup
        self.hangSnapshots = hangSnapshots
        self.goroutineDump = goroutineDump
        self.cpuMovingAtEnd = cpuMovingAtEnd
        self.rootPid = rootPid
    }
}
