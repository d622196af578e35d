import Foundation

/// Where a value came from in a scenario file, for error messages a user can act on.
public struct SourceLocation: Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }
    public var description: String { "\(file):\(line)" }
}

/// One scenario as the user wrote it, with every name already resolved and checked.
public struct Scenario: Sendable {
    public var name: String
    public var description: String?
    public var tags: [String]
    public var goConstraint: VersionConstraint?
    public var run: [String]
    public var files: [(path: String, content: String)]
    public var fixture: String?
    public var workdir: String
    public var env: [(name: String, value: String?)]
    public var envClear: Bool
    /// `ghostrun trace`: run with ghostrun's own environment as it is (no private cache, no network settings),
    /// like strace would. Not a scenario key.
    public var inheritEnvironment = false
    public var paths: [PathStep]
    public var sandbox: Sandbox
    public var faults: [Fault]
    public var seed: UInt64?
    public var trace: TraceRequest
    public var success: SuccessCriteria
    public var timeout: Duration
    public var hangAfter: Duration
    public var expect: Expectation?
    /// The file the scenario came from and the line of its `name:` key.
    public var location: SourceLocation
    public var scenarioDirectory: String

    public init(name: String, run: [String], location: SourceLocation, scenarioDirectory: String) {
        self.name = name
        self.description = nil
        self.tags = []
        self.goConstraint = nil
        self.run = run
        self.files = []
        self.fixture = nil
        self.workdir = "."
        self.env = []
        self.envClear = false
        self.paths = []
        self.sandbox = Sandbox()
        self.faults = []
        self.seed = nil
        self.trace = .off
        self.success = SuccessCriteria()
        self.timeout = .seconds(60)
        self.hangAfter = .seconds(10)
        self.expect = nil
        self.location = location
        self.scenarioDirectory = scenarioDirectory
    }
}

/// `paths:` entries, prepared in order before the run as root.
public struct PathStep: Sendable, Equatable {
    public var path: String
    public var mkdir: Bool
    public var mode: UInt32?
    public var owner: (uid: UInt32, gid: UInt32)?
    public var content: String?
    public init(path: String, mkdir: Bool = false, mode: UInt32? = nil, owner: (uid: UInt32, gid: UInt32)? = nil,
                content: String? = nil) {
        self.path = path
        self.mkdir = mkdir
        self.mode = mode
        self.owner = owner
        self.content = content
    }
    public static func == (a: PathStep, b: PathStep) -> Bool {
        a.path == b.path && a.mkdir == b.mkdir && a.mode == b.mode && a.owner?.uid == b.owner?.uid
            && a.owner?.gid == b.owner?.gid && a.content == b.content
    }
}

public struct Sandbox: Sendable {
    public var user: (uid: UInt32, gid: UInt32)?
    public var noNewPrivs: Bool = false
    public var capabilities: CapabilityRequest?
    public var seccomp: SeccompPolicy?
    public var rlimits: [ResourceLimit] = []
    public var cgroup: CgroupRequest = CgroupRequest()
    /// `sandbox.mounts`: a private mount namespace when not empty.
    public var mounts: [MountEntry] = []
    /// `sandbox.network`: a private network namespace when set.
    public var network: NetworkMode?
    /// `sandbox.landlock`.
    public var landlock: LandlockRequest?
    /// `sandbox.stall`: endpoints that accept and never answer (with `network: loopback`).
    public var stall: [StallEndpoint] = []
    public init() {}
}

/// `capabilities:`: drop, then add; ambient on top.
public struct CapabilityRequest: Sendable, Equatable {
    /// `preset:`: start from a runtime's default set instead of everything ghostrun holds.
    public var preset: CapabilityPreset?
    public var drop: CapabilitySet
    public var add: CapabilitySet
    public var ambient: CapabilitySet
    public init(drop: CapabilitySet = [], add: CapabilitySet = [], ambient: CapabilitySet = []) {
        self.drop = drop
        self.add = add
        self.ambient = ambient
    }
    /// The capabilities the go command keeps, starting from `full` (what root has).
    public func kept(from full: CapabilitySet) -> CapabilitySet {
        let base = preset.map { $0.capabilities.intersection(full) } ?? full
        return base.subtracting(drop).union(add).union(ambient)
    }
}

public enum SeccompAction: Sendable, Equatable, CustomStringConvertible {
    case allow
    case errno(Int32)
    case trap
    case killProcess
    case killThread
    case log

    public var description: String {
        switch self {
        case .allow: return "allow"
        case .errno(let value): return "errno:\(ErrnoName.name(of: value) ?? String(value))"
        case .trap: return "trap"
        case .killProcess: return "kill-process"
        case .killThread: return "kill-thread"
        case .log: return "log"
        }
    }
    /// The short name used in evidence (`errno`, `trap`, `kill-process`, ...).
    public var kind: String {
        switch self {
        case .errno: return "errno"
        default: return description
        }
    }
}

public struct SeccompArgCondition: Sendable, Equatable {
    public enum Op: String, Sendable, CaseIterable { case eq, ne, lt, le, gt, ge, masked_eq }
    public var index: UInt32
    public var op: Op
    public var value: UInt64
    public var mask: UInt64
    public init(index: UInt32, op: Op, value: UInt64, mask: UInt64 = 0) {
        self.index = index
        self.op = op
        self.value = value
        self.mask = mask
    }
}

public struct SeccompRule: Sendable, Equatable {
    public var syscalls: [String]
    public var action: SeccompAction
    public var args: [SeccompArgCondition]
    public var location: SourceLocation?
    /// Where the rule comes from when not from the scenario's own `rules:` (a profile's rule); nil means the
    /// scenario rule at `location`.
    public var origin: RuleOrigin?
    public init(syscalls: [String], action: SeccompAction, args: [SeccompArgCondition] = [],
                location: SourceLocation? = nil, origin: RuleOrigin? = nil) {
        self.syscalls = syscalls
        self.action = action
        self.args = args
        self.location = location
        self.origin = origin
    }
}

public struct SeccompPolicy: Sendable, Equatable {
    /// `profile:` as written (a built-in name or a path).
    public var profile: String?
    public var defaultAction: SeccompAction
    public var rules: [SeccompRule]
    /// `default:` was written: with a profile, it replaces the profile's defaultAction.
    public var defaultGiven = false
    /// `runtime:` (runc unless given): how a profile is applied.
    public var runtime: SeccompRuntime = .runc
    /// The profile file, read and checked when the scenario was loaded.
    public var profileDocument: SeccompProfileDocument?
    /// runc's ENOSYS stub: syscalls numbered above this answer ENOSYS before any rule (set once a profile is
    /// resolved for a run).
    public var enosysAbove: Int32?
    public init(profile: String? = nil, defaultAction: SeccompAction = .allow, rules: [SeccompRule] = []) {
        self.profile = profile
        self.defaultAction = defaultAction
        self.rules = rules
    }
}

public struct ResourceLimit: Sendable, Equatable {
    public var name: String
    public var resource: Int32
    public var soft: UInt64
    public var hard: UInt64
    public init(name: String, resource: Int32, soft: UInt64, hard: UInt64) {
        self.name = name
        self.resource = resource
        self.soft = soft
        self.hard = hard
    }
}

public struct FreezeStep: Sendable, Equatable {
    public enum Trigger: Sendable, Equatable {
        case after(Duration)
        case onProcess(String)
    }
    public var trigger: Trigger
    /// Thaw after this long; nil keeps the cgroup frozen until the timeout.
    public var hold: Duration?
    public init(trigger: Trigger, hold: Duration?) {
        self.trigger = trigger
        self.hold = hold
    }
}

public struct CgroupRequest: Sendable, Equatable {
    /// PID_MAX_LIMIT on 64-bit kernels: pids.max refuses more.
    public static let largestPidsMax = 4_194_304
    /// One page.
    public static let smallestMemoryMax: UInt64 = 4096
    /// The cgroup v1 page counter's maximum (PAGE_COUNTER_MAX × 4 KiB, rounded down to a whole GiB): memory.max and
    /// memory.limit_in_bytes take no more.
    public static let largestMemoryMax: UInt64 = 1 << 62
    /// The CFS bandwidth period ghostrun uses for `cpu_max`: 100 ms, the kernel's default.
    public static let cpuPeriodMicroseconds = 100_000
    /// The smallest quota the kernel takes is 1 ms per period: 0.01 CPU at a 100 ms period.
    public static let smallestCPUMax = 0.01
    /// A sanity bound far above any host (the kernel caps a quota at about 17.6 million CPUs' worth).
    public static let largestCPUMax = 4096.0
    public var pidsMax: Int?
    public var memoryMax: UInt64?
    /// `cpu_max`: CPUs' worth of run time per period (0.5 = half of one CPU), as cgroup v2 `cpu.max` or v1
    /// `cpu.cfs_quota_us`.
    public var cpuMax: Double?
    public var freeze: [FreezeStep] = []
    public init(pidsMax: Int? = nil, memoryMax: UInt64? = nil, cpuMax: Double? = nil, freeze: [FreezeStep] = []) {
        self.pidsMax = pidsMax
        self.memoryMax = memoryMax
        self.cpuMax = cpuMax
        self.freeze = freeze
    }

    /// The quota in microseconds per `cpuPeriodMicroseconds`.
    public var cpuQuotaMicroseconds: Int? {
        cpuMax.map { Int(($0 * Double(CgroupRequest.cpuPeriodMicroseconds)).rounded()) }
    }
}

/// `faults:` entries (the supervisor that applies them comes with syscall tracing).
public struct Fault: Sendable, Equatable {
    public enum When: Sendable, Equatable {
        case nth(Int)
        case every
        case probability(Double)
    }
    public var syscall: String
    public var errno: Int32?
    public var path: String?
    public var process: String?
    public var when: When
    public var delay: Duration?
    public var location: SourceLocation?
    public init(syscall: String, errno: Int32?, path: String? = nil, process: String? = nil, when: When = .every,
                delay: Duration? = nil, location: SourceLocation? = nil) {
        self.syscall = syscall
        self.errno = errno
        self.path = path
        self.process = process
        self.when = when
        self.delay = delay
        self.location = location
    }
}

public enum TraceRequest: Sendable, Equatable {
    case off
    case all
    case syscalls([String])
}

public struct SuccessCriteria: Sendable, Equatable {
    public var artifact: String?
    public var stdout: String?
    public init(artifact: String? = nil, stdout: String? = nil) {
        self.artifact = artifact
        self.stdout = stdout
    }
}

public struct Expectation: Sendable, Equatable {
    public var outcomes: [Outcome]?
    public var exit: Int32?
    public var signal: String?
    public var stderr: String?
    public var stdout: String?
    public var artifact: String?
    public var hangKind: HangKind?
    /// `summary:` a regular expression the result's one-line summary must match (the headline ghostrun derives
    /// from the evidence: `go waits on 127.0.0.1:8099 (stalled endpoint, ESTABLISHED)`).
    public var summary: String?
    /// `tests:` for go test runs: which tests must have failed, passed, been skipped, which binaries crashed.
    public var tests: TestsExpectation?
    public init() {}
}
