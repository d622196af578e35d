import Foundation

/// One scenario × toolchain result, in the shape of the contract's result JSON.
public struct RunResult: Codable, Equatable, Sendable {
    public var name: String
    public var goVersion: String
    /// The toolchain binary the run used.
    public var goPath: String?
    public var scenarioFile: String?
    public var scenarioLine: Int?
    public var tags: [String]
    public var outcome: Outcome
    /// true / false, or nil when nothing was expected.
    public var passed: Bool?
    public var expected: ExpectedJSON?
    /// Each expectation key that did not hold, with what was seen instead.
    public var failures: [String]
    public var exitCode: Int32?
    public var signal: String?
    public var hangKind: HangKind?
    public var durationMs: Int
    public var stderrTail: String
    public var stdoutTail: String
    /// Why the run was skipped or could not be set up.
    public var reason: String?
    /// For a skipped result: whether the scenario's own `go:` constraint excluded the toolchain (an intended skip)
    /// or the host could not run it (which fails a scenario that expects something, unless skips are allowed).
    public var skipCause: SkipCause?
    public var summary: String
    public var firstDiagnostic: String?
    public var failingProcess: String?
    public var evidence: Evidence
    /// True when SIGINT/SIGTERM tore the run down before it finished by itself: its outcome describes a run
    /// that was cut short, not what the toolchain would have done.
    public var interrupted: Bool?
    /// `--keep-work`: the run's $WORK, left on disk for debugging (absent otherwise).
    public var workDir: String?
    /// `--keep-work`: the files holding the go command's whole stdout and stderr (the tails above are bounded).
    public var outputFiles: OutputFiles?

    enum CodingKeys: String, CodingKey {
        case name, goVersion = "go_version", goPath = "go_path", scenarioFile = "scenario_file",
            scenarioLine = "scenario_line", tags, outcome, passed, expected, failures, exitCode = "exit_code",
            signal, hangKind = "hang_kind", durationMs = "duration_ms", stderrTail = "stderr_tail",
            stdoutTail = "stdout_tail", reason, skipCause = "skip_cause", summary, firstDiagnostic = "first_diagnostic",
            failingProcess = "failing_process", evidence, interrupted, workDir = "work_dir",
            outputFiles = "output_files"
    }

    public init(name: String, goVersion: String, outcome: Outcome, summary: String, evidence: Evidence = Evidence()) {
        self.name = name
        self.goVersion = goVersion
        self.goPath = nil
        self.scenarioFile = nil
        self.scenarioLine = nil
        self.tags = []
        self.outcome = outcome
        self.passed = nil
        self.expected = nil
        self.failures = []
        self.exitCode = nil
        self.signal = nil
        self.hangKind = nil
        self.durationMs = 0
        self.stderrTail = ""
        self.stdoutTail = ""
        self.reason = nil
        self.summary = summary
        self.firstDiagnostic = nil
        self.failingProcess = nil
        self.evidence = evidence
        self.interrupted = nil
        self.workDir = nil
    }

    // Required contract fields are always written, as null when absent.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(goVersion, forKey: .goVersion)
        try c.encodeIfPresent(goPath, forKey: .goPath)
        try c.encodeIfPresent(scenarioFile, forKey: .scenarioFile)
        try c.encodeIfPresent(scenarioLine, forKey: .scenarioLine)
        try c.encode(tags, forKey: .tags)
        try c.encode(outcome, forKey: .outcome)
        try c.encode(passed, forKey: .passed)
        try c.encode(expected, forKey: .expected)
        try c.encode(failures, forKey: .failures)
        try c.encode(exitCode, forKey: .exitCode)
        try c.encode(signal, forKey: .signal)
        try c.encode(hangKind, forKey: .hangKind)
        try c.encode(durationMs, forKey: .durationMs)
        try c.encode(stderrTail, forKey: .stderrTail)
        try c.encode(stdoutTail, forKey: .stdoutTail)
        try c.encodeIfPresent(reason, forKey: .reason)
        try c.encodeIfPresent(skipCause, forKey: .skipCause)
        try c.encode(summary, forKey: .summary)
        try c.encodeIfPresent(firstDiagnostic, forKey: .firstDiagnostic)
        try c.encodeIfPresent(failingProcess, forKey: .failingProcess)
        try c.encode(evidence, forKey: .evidence)
        // Only when true: the field is an exception, and run files of complete runs stay as they were.
        if interrupted == true { try c.encode(true, forKey: .interrupted) }
        try c.encodeIfPresent(workDir, forKey: .workDir)
        try c.encodeIfPresent(outputFiles, forKey: .outputFiles)
    }
}

/// Where `--keep-work` wrote a run's whole output, and how much: every byte the go command wrote, streamed to disk
/// as it was read.
public struct OutputFiles: Codable, Equatable, Sendable {
    public var stdout: String
    public var stderr: String
    public var stdoutBytes: Int
    public var stderrBytes: Int
    /// Why a file holds less than everything (a write failed, e.g. the disk is full); absent when complete.
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case stdout, stderr, stdoutBytes = "stdout_bytes", stderrBytes = "stderr_bytes", error
    }
}

/// Why a result was skipped.
public enum SkipCause: String, Codable, Sendable {
    /// The toolchain fails the scenario's `go:` constraint: the scenario says it does not apply.
    case goConstraint = "go-constraint"
    /// The host lacks a feature the scenario needs: nothing was tested.
    case host
    /// SIGINT/SIGTERM came before the go command started.
    case interrupted
}

/// The `expect:` block as written, for reports.
public struct ExpectedJSON: Codable, Equatable, Sendable {
    public var outcome: [Outcome]?
    public var exit: Int32?
    public var signal: String?
    public var stderr: String?
    public var stdout: String?
    public var artifact: String?
    public var hangKind: HangKind?
    public var tests: TestsExpectation?
    enum CodingKeys: String, CodingKey {
        case outcome, exit, signal, stderr, stdout, artifact, hangKind = "hang_kind", tests
    }
    public init(_ e: Expectation) {
        outcome = e.outcomes
        exit = e.exit
        signal = e.signal
        stderr = e.stderr
        stdout = e.stdout
        artifact = e.artifact
        hangKind = e.hangKind
        tests = e.tests
    }
}

public struct Evidence: Codable, Equatable, Sendable {
    public var processes: [ProcessEvidence] = []
    public var denials: [Denial] = []
    public var firstDenial: Denial?
    public var cgroup: CgroupObservation?
    public var hangSnapshots: [HangSnapshot] = []
    public var goroutineDump: String?
    /// Whether every process seen ran with the Seccomp mode and CapEff the scenario asked for.
    public var restrictionsConfirmed: RestrictionCheck?
    /// Per-role and per-process syscall counts from the supervisor (`trace:` or `faults:` scenarios).
    public var trace: TraceSummary?
    /// The seccomp profile applied (`sandbox.seccomp.profile` or `--seccomp-profile`): which, how, what was skipped.
    public var policy: ProfileEvidence?
    /// `go test` runs: one entry per package (`test` null) and per test (contract, Additions version 2).
    public var tests: [GoTestRecord]?
    /// `go test` runs cut short: the tests that had started and not ended.
    public var testsRunning: [GoTestName]?
    /// Every process of the run from fork to exit, with the restrictions the kernel held for it at its fork and
    /// last exec (BPF observation only; `processes` has the /proc samples).
    public var processTree: [BPFProcess]?
    /// Seccomp audit records from the run's toolchain that no pid of the run explains (another run's, or one too
    /// short-lived for the sampler): dropped rather than guessed, and counted here when there were any.
    public var unattributedAuditRecords: Int?
    /// How the run saw the host's file systems: hermetic (a discarded copy-on-write view) or `--host-writes`.
    public var filesystem: FileSystemView?
    /// `sandbox.landlock`: the ABI, the handled rights, each tree's rights, and how the domain was entered.
    public var landlock: LandlockEvidence?
    /// How much the host stalled the run (PSI or schedstat) and the runnable time its limits were measured in.
    public var stall: StallEvidence?
    enum CodingKeys: String, CodingKey {
        case processes, denials, firstDenial = "first_denial", cgroup, hangSnapshots = "hang_snapshots",
            goroutineDump = "goroutine_dump", restrictionsConfirmed = "restrictions_confirmed", trace, policy, tests,
            testsRunning = "tests_running", processTree = "process_tree",
            unattributedAuditRecords = "unattributed_audit_records", filesystem, landlock, stall
    }
    public init() {}
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(processes, forKey: .processes)
        try c.encode(denials, forKey: .denials)
        try c.encode(firstDenial, forKey: .firstDenial)
        try c.encode(cgroup, forKey: .cgroup)
        try c.encode(hangSnapshots, forKey: .hangSnapshots)
        try c.encodeIfPresent(goroutineDump, forKey: .goroutineDump)
        try c.encodeIfPresent(restrictionsConfirmed, forKey: .restrictionsConfirmed)
        try c.encodeIfPresent(trace, forKey: .trace)
        try c.encodeIfPresent(policy, forKey: .policy)
        try c.encodeIfPresent(tests, forKey: .tests)
        try c.encodeIfPresent(testsRunning, forKey: .testsRunning)
        try c.encodeIfPresent(processTree, forKey: .processTree)
        try c.encodeIfPresent(unattributedAuditRecords, forKey: .unattributedAuditRecords)
        try c.encodeIfPresent(filesystem, forKey: .filesystem)
        try c.encodeIfPresent(landlock, forKey: .landlock)
        try c.encodeIfPresent(stall, forKey: .stall)
    }
}

/// The per-process fields the contract requires, first and last values.
public struct ProcessEvidence: Codable, Equatable, Sendable {
    public var pid: Int32
    public var ppid: Int32
    public var comm: String
    public var exe: String?
    public var firstState: String
    public var lastState: String
    public var capEff: String
    public var capPrm: String
    public var capBnd: String
    public var capAmb: String
    public var noNewPrivs: Int
    public var seccomp: Int
    public var seccompFilters: Int
    public var uid: UInt32?
    public var threads: Int
    public var cpuTicks: UInt64
    public var stateChanges: [StateChange]
    /// The namespaces the process ran in after its last exec (`/proc/PID/ns/mnt`, `/proc/PID/ns/net`).
    public var mountNamespace: String?
    public var networkNamespace: String?
    enum CodingKeys: String, CodingKey {
        case pid, ppid, comm, exe, firstState = "first_state", lastState = "last_state", capEff = "CapEff",
            capPrm = "CapPrm", capBnd = "CapBnd", capAmb = "CapAmb", noNewPrivs = "NoNewPrivs", seccomp = "Seccomp",
            seccompFilters = "Seccomp_filters", uid, threads = "Threads", cpuTicks = "cpu_ticks",
            stateChanges = "state_changes", mountNamespace = "mnt_ns", networkNamespace = "net_ns"
    }
    public init(_ p: ProcessObservation) {
        pid = p.pid
        ppid = p.ppid
        comm = p.comm
        exe = p.exe
        firstState = p.first.status.state
        lastState = p.last.status.state
        let s = p.first.status
        capEff = String(format: "%016llx", s.capEff)
        capPrm = String(format: "%016llx", s.capPrm)
        capBnd = String(format: "%016llx", s.capBnd)
        capAmb = String(format: "%016llx", s.capAmb)
        noNewPrivs = s.noNewPrivs
        seccomp = s.seccomp
        seccompFilters = s.seccompFilters
        uid = s.uid.first
        threads = max(p.first.status.threads, p.last.status.threads)
        cpuTicks = p.last.cpuTicks
        stateChanges = p.stateChanges
        mountNamespace = p.last.status.mountNamespace
        networkNamespace = p.last.status.networkNamespace
    }
}

public struct RestrictionCheck: Codable, Equatable, Sendable {
    public var confirmed: Bool
    public var checkedProcesses: Int
    public var mismatches: [String]
    /// `bpf`: every process of the tree was checked (read by the BPF program at fork and exec); nil: the processes
    /// the /proc sampler caught.
    public var source: String?
    /// How many processes the run had, from fork events (the go command and everything below it), when known:
    /// `checked_processes` of `total_processes`.
    public var totalProcesses: Int?
    /// False when the kernel dropped fork events, so `total_processes` is a lower bound.
    public var totalExact: Bool?
    enum CodingKeys: String, CodingKey {
        case confirmed, checkedProcesses = "checked_processes", mismatches, source, totalProcesses = "total_processes",
            totalExact = "total_exact"
    }
    public init(confirmed: Bool, checkedProcesses: Int, mismatches: [String], source: String? = nil,
                totalProcesses: Int? = nil) {
        self.confirmed = confirmed
        self.checkedProcesses = checkedProcesses
        self.mismatches = mismatches
        self.source = source
        self.totalProcesses = totalProcesses
    }

    /// Nothing was checked: no process lived long enough to be sampled. That is a gap in the evidence, not a
    /// process found without its restrictions.
    public var nothingSampled: Bool { checkedProcesses == 0 && source == nil }
}

/// Facts about the host, written in every run file and report.
public struct HostFacts: Codable, Equatable, Sendable {
    public var kernel: String
    public var libseccomp: String
    public var cgroup: String
    public var ghostrunVersion: String
    public var hostname: String
    enum CodingKeys: String, CodingKey {
        case kernel, libseccomp, cgroup, ghostrunVersion = "ghostrun_version", hostname
    }
    public init(kernel: String, libseccomp: String, cgroup: String, ghostrunVersion: String, hostname: String) {
        self.kernel = kernel
        self.libseccomp = libseccomp
        self.cgroup = cgroup
        self.ghostrunVersion = ghostrunVersion
        self.hostname = hostname
    }
}

/// `{"ghostrun": VERSION, "host": {...}, "results": [...]}`
public struct RunFile: Codable, Equatable, Sendable {
    public var ghostrun: String
    public var host: HostFacts
    public var results: [RunResult]
    /// ghostrun's own cost for the whole run (its sampler, readers and setup; children excluded).
    public var harness: HarnessStats?
    /// Which part of which matrix these results are (absent in run files of ghostrun before 0.3).
    public var matrix: MatrixRecord?
    /// The comparison with an earlier run file, when `--baseline` was given.
    public var baseline: BaselineComparison?
    public init(ghostrun: String, host: HostFacts, results: [RunResult], harness: HarnessStats? = nil,
                matrix: MatrixRecord? = nil, baseline: BaselineComparison? = nil) {
        self.ghostrun = ghostrun
        self.host = host
        self.results = results
        self.harness = harness
        self.matrix = matrix
        self.baseline = baseline
    }
}

/// The shard a run file holds and the whole matrix it was cut from, so that `merge` can prove that the shards
/// it combines add up to exactly that matrix: none missing, none run against another matrix.
public struct MatrixRecord: Codable, Equatable, Sendable {
    /// 1-based.
    public var shardIndex: Int
    public var shardCount: Int
    /// Entries in the whole matrix (every shard).
    public var size: Int
    /// `fnv1a64:` and the FNV-1a hash of the whole matrix's sorted `name@go_version` ids, one per line. It tells
    /// matrices apart; it is not a security measure.
    public var digest: String
    /// The `name@go_version` ids this shard was given.
    public var entries: [String]

    enum CodingKeys: String, CodingKey {
        case shard, size, digest, entries
    }

    public init(shardIndex: Int, shardCount: Int, size: Int, digest: String, entries: [String]) {
        self.shardIndex = shardIndex
        self.shardCount = shardCount
        self.size = size
        self.digest = digest
        self.entries = entries
    }

    /// The record of shard `index`/`count` holding `shardIds`, cut from the matrix of `allIds`.
    public init(allIds: [String], shardIds: [String], index: Int = 1, count: Int = 1) {
        self.init(shardIndex: index, shardCount: count, size: allIds.count, digest: Self.digest(of: allIds),
                  entries: shardIds)
    }

    public static func digest(of ids: [String]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in ids.sorted().joined(separator: "\n").utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return "fnv1a64:" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// `2/3`.
    public var shard: String { "\(shardIndex)/\(shardCount)" }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let shard = try c.decode(String.self, forKey: .shard)
        let parts = shard.split(separator: "/").compactMap { Int($0) }
        guard parts.count == 2, parts[0] >= 1, parts[0] <= parts[1] else {
            throw DecodingError.dataCorruptedError(
                forKey: .shard, in: c, debugDescription: "`\(shard)` is not a shard I/N with 1 <= I <= N")
        }
        shardIndex = parts[0]
        shardCount = parts[1]
        size = try c.decode(Int.self, forKey: .size)
        digest = try c.decode(String.self, forKey: .digest)
        entries = try c.decode([String].self, forKey: .entries)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(shard, forKey: .shard)
        try c.encode(size, forKey: .size)
        try c.encode(digest, forKey: .digest)
        try c.encode(entries, forKey: .entries)
    }
}

/// CPU time of the ghostrun process itself (RUSAGE_SELF), for the overhead benchmark.
public struct HarnessStats: Codable, Equatable, Sendable {
    public var cpuUserMs: Int
    public var cpuSystemMs: Int
    public var wallMs: Int
    enum CodingKeys: String, CodingKey {
        case cpuUserMs = "cpu_user_ms", cpuSystemMs = "cpu_system_ms", wallMs = "wall_ms"
    }
    public init(cpuUserMs: Int, cpuSystemMs: Int, wallMs: Int) {
        self.cpuUserMs = cpuUserMs
        self.cpuSystemMs = cpuSystemMs
        self.wallMs = wallMs
    }

    /// This process's CPU time so far.
    public static func current(wallMs: Int) -> HarnessStats {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func ms(_ t: timeval) -> Int { Int(t.tv_sec) * 1000 + Int(t.tv_usec) / 1000 }
        return HarnessStats(cpuUserMs: ms(usage.ru_utime), cpuSystemMs: ms(usage.ru_stime), wallMs: wallMs)
    }
}

public enum GhostrunVersion {
    public static let current = "0.1.0"
}
