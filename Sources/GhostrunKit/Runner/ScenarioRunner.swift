import CGhostrun
import Foundation
import Synchronization

/// How runs are carried out on this host.
public struct RunnerOptions: Sendable {
    public var hierarchies: CgroupHierarchies
    /// CI sets GHOSTRUN_REQUIRE_HOST=1: a missing host feature is then a harness error (exit 2), not `skipped`.
    public var requireHost: Bool
    /// Keep $WORK after the run (for debugging); default removes it.
    public var keepWork: Bool
    /// Shortest and longest sampling intervals: fast at first (short-lived processes), slower later.
    public var minimumInterval: Duration
    public var maximumInterval: Duration
    /// `--trace-out FILE`: every notified call as a JSON line (one run at a time writes it).
    public var traceOut: String?

    public init(hierarchies: CgroupHierarchies = .discover(),
                requireHost: Bool = ProcessInfo.processInfo.environment["GHOSTRUN_REQUIRE_HOST"] == "1",
                keepWork: Bool = false, minimumInterval: Duration = .milliseconds(10),
                maximumInterval: Duration = .milliseconds(50)) {
        self.hierarchies = hierarchies
        self.requireHost = requireHost
        self.keepWork = keepWork
        self.minimumInterval = minimumInterval
        self.maximumInterval = maximumInterval
    }
}

/// A run that could not be set up: becomes a `harness-error` (or `skipped` for host features).
struct RunSetupError: Error, CustomStringConvertible {
    var description: String
}

/// Runs live processes of the run, so shutdown paths (SIGINT) can kill them.
public final class ActiveRuns: @unchecked Sendable {
    public static let shared = ActiveRuns()
    private let lock = NSLock()
    private var cgroups: [Int: RunCgroup] = [:]
    private var workDirectories: [Int: WorkDirectory] = [:]
    private var toolchainUse: [String: Int] = [:]
    private var active: Set<Int> = []
    private var tornDown: Set<Int> = []
    private var shuttingDown = false

    func register(_ sequence: Int, cgroup: RunCgroup?, work: WorkDirectory?, goroot: String) {
        lock.lock()
        defer { lock.unlock() }
        // A run still setting up when the signal came registers after the teardown; it is torn down too, or
        // ghostrun would wait out its whole timeout before exiting.
        if shuttingDown { tornDown.insert(sequence) }
        active.insert(sequence)
        if let cgroup { cgroups[sequence] = cgroup }
        if let work { workDirectories[sequence] = work }
        toolchainUse[goroot, default: 0] += 1
    }

    func unregister(_ sequence: Int, goroot: String) {
        lock.lock()
        defer { lock.unlock() }
        cgroups[sequence] = nil
        workDirectories[sequence] = nil
        toolchainUse[goroot, default: 1] -= 1
        tornDown.remove(sequence)
        active.remove(sequence)
    }

    /// Whether `tearDownAll()` killed this run while it was active; checked by the run when it finishes, before
    /// it unregisters.
    func wasTornDown(_ sequence: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return tornDown.contains(sequence)
    }

    /// How many runs use this GOROOT now (audit records from its tools are attributable only when one does).
    func runsUsing(goroot: String) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return toolchainUse[goroot] ?? 0
    }

    /// Kills and removes everything of every active run, and marks them and every run that registers later as
    /// torn down (their results say `interrupted`); for SIGINT/SIGTERM handlers, after which the process exits.
    public func tearDownAll() {
        lock.lock()
        let groups = Array(cgroups.values)
        let works = Array(workDirectories.values)
        tornDown.formUnion(active)
        shuttingDown = true
        cgroups = [:]
        workDirectories = [:]
        lock.unlock()
        for group in groups { group.destroy() }
        for work in works { work.remove() }
    }
}

/// Runs one scenario on one toolchain: plan → spawn → observe → classify → result.
public final class ScenarioRunner: @unchecked Sendable {
    public let options: RunnerOptions
    private static let lastSequence = Mutex(0)

    public init(options: RunnerOptions = RunnerOptions()) {
        self.options = options
    }

    static func takeSequence() -> Int {
        lastSequence.withLock { last in
            last += 1
            return last
        }
    }

    public func run(_ scenario: Scenario, toolchain: Toolchain) -> RunResult {
        let started = ContinuousClock.now
        var result: RunResult
        if let constraint = scenario.goConstraint, !constraint.allows(toolchain.version) {
            result = skipped(
                scenario, toolchain, reason: "go \(toolchain.label) does not satisfy go: \"\(constraint)\"",
                cause: .goConstraint)
        } else if scenario.sandbox.seccomp?.profile != nil {
            result = skipped(scenario, toolchain,
                reason: "sandbox.seccomp.profile (OCI/Docker profile files) is not supported by this ghostrun version yet")
        } else {
            result = execute(scenario, toolchain: toolchain)
        }
        if result.durationMs == 0 { result.durationMs = (ContinuousClock.now - started).milliseconds }
        return result
    }

    private func skipped(_ scenario: Scenario, _ toolchain: Toolchain, reason: String, cause: SkipCause = .host)
        -> RunResult
    {
        ResultBuilder.skipped(
            name: scenario.name, goVersion: toolchain.label, reason: reason, cause: cause, goPath: toolchain.goBinary,
            scenarioFile: scenario.location.file, scenarioLine: scenario.location.line, tags: scenario.tags,
            expectation: scenario.expect)
    }

    /// The host (or this version) lacks a feature: skipped, or a harness error when CI requires the host.
    private func unsupportedHost(_ scenario: Scenario, _ toolchain: Toolchain, reason: String) -> RunResult {
        if options.requireHost { return harnessError(scenario, toolchain, message: reason + " (GHOSTRUN_REQUIRE_HOST=1)") }
        return skipped(scenario, toolchain, reason: reason)
    }

    private func harnessError(_ scenario: Scenario, _ toolchain: Toolchain, message: String) -> RunResult {
        ResultBuilder.harnessError(
            name: scenario.name, goVersion: toolchain.label, reason: message, goPath: toolchain.goBinary,
            scenarioFile: scenario.location.file, scenarioLine: scenario.location.line, tags: scenario.tags,
            expectation: scenario.expect)
    }

    // MARK: - The run

    private func execute(_ scenario: Scenario, toolchain: Toolchain) -> RunResult {
        let sequence = ScenarioRunner.takeSequence()
        let work: WorkDirectory
        do {
            work = try WorkDirectory.create(sequence: sequence)
        } catch {
            return harnessError(scenario, toolchain, message: "\(error)")
        }
        defer { if !options.keepWork { work.remove() } }

        let plan: PreparedRun
        do {
            plan = try prepare(scenario, toolchain: toolchain, work: work)
        } catch let error as HostUnsupported {
            return unsupportedHost(scenario, toolchain, reason: error.reason)
        } catch {
            return harnessError(scenario, toolchain, message: "\(error)")
        }

        let cgroup: RunCgroup
        do {
            cgroup = try RunCgroup(
                name: RunCgroup.runName(owner: getpid(), sequence: sequence, scenario: scenario.name),
                hierarchies: options.hierarchies, request: scenario.sandbox.cgroup)
        } catch let error as HostUnsupported {
            return unsupportedHost(scenario, toolchain, reason: error.reason)
        } catch {
            return unsupportedHost(scenario, toolchain, reason: "cannot create the run's cgroup: \(error) (root needed)")
        }
        ActiveRuns.shared.register(sequence, cgroup: cgroup, work: work, goroot: toolchain.goroot)
        defer {
            cgroup.destroy()
            ActiveRuns.shared.unregister(sequence, goroot: toolchain.goroot)
        }
        if ActiveRuns.shared.wasTornDown(sequence) {
            var result = skipped(
                scenario, toolchain, reason: "interrupted (SIGINT/SIGTERM) before the go command started",
                cause: .interrupted)
            result.passed = nil
            result.interrupted = true
            return result
        }

        let observation: RunObservation
        do {
            observation = try observe(scenario, plan: plan, cgroup: cgroup, work: work, toolchain: toolchain)
        } catch {
            var result = harnessError(scenario, toolchain, message: "\(error)")
            if ActiveRuns.shared.wasTornDown(sequence) { result.interrupted = true }
            return result
        }
        let classification = Classifier.classify(observation)
        var result = ResultBuilder.build(
            name: scenario.name, goVersion: toolchain.label, goPath: toolchain.goBinary,
            scenarioFile: scenario.location.file, scenarioLine: scenario.location.line, tags: scenario.tags,
            expectation: scenario.expect, observation: observation, classification: classification,
            requested: plan.requested)
        result.durationMs = observation.durationMs
        if ActiveRuns.shared.wasTornDown(sequence) { result.interrupted = true }
        return result
    }

    /// Everything decided before the fork.
    struct PreparedRun {
        var spawn: SpawnPlan
        var workdir: String
        var successArtifact: String?
        var expectArtifact: String?
        var requested: RequestedRestrictions
        /// Set when the scenario traces or injects faults.
        var supervisor: SupervisorPlan?
    }

    func prepare(_ scenario: Scenario, toolchain: Toolchain, work: WorkDirectory) throws -> PreparedRun {
        let substitutions = [("$WORK", work.work), ("$SCENARIO_DIR", scenario.scenarioDirectory),
                             ("$GOROOT", toolchain.goroot)]
        func expand(_ text: String) -> String {
            var result = text
            for (key, value) in substitutions {
                result = result.replacingOccurrences(of: "${\(key.dropFirst())}", with: value)
                result = result.replacingOccurrences(of: key, with: value)
            }
            return result
        }

        // Files and fixture first, then `paths:` in order, as root.
        if let fixture = scenario.fixture {
            let source = fixture.hasPrefix("/") ? fixture : scenario.scenarioDirectory + "/" + fixture
            try copyDirectory(from: source, to: work.work)
        }
        for (path, content) in scenario.files {
            let full = work.work + "/" + path
            try FileManager.default.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(expand(content).utf8).write(to: URL(fileURLWithPath: full))
        }
        if let user = scenario.sandbox.user { work.chown(uid: user.uid, gid: user.gid) }
        for step in scenario.paths {
            let path = expand(step.path)
            if step.mkdir { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
            if let content = step.content {
                try FileManager.default.createDirectory(
                    atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try Data(expand(content).utf8).write(to: URL(fileURLWithPath: path))
            }
            if let owner = step.owner, lchown(path, owner.uid, owner.gid) != 0 {
                throw RunSetupError(description: "paths: chown \(path): \(String(cString: strerror(errno)))")
            }
            if let mode = step.mode, chmod(path, mode_t(mode)) != 0 {
                throw RunSetupError(description: "paths: chmod \(path): \(String(cString: strerror(errno)))")
            }
        }

        // Environment: the harness's own minus every GO* variable, then the network-safe, private Go settings,
        // then the scenario's env.
        var environment: [(String, String)] = []
        let basePath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        let path = toolchain.goroot + "/bin:" + basePath
        if scenario.inheritEnvironment {
            environment = ProcessInfo.processInfo.environment.filter { $0.key != "PATH" }
                .sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            environment.append(("PATH", path))
        } else if scenario.envClear {
            environment = [("PATH", path)]
        } else {
            environment = ProcessInfo.processInfo.environment.filter {
                !$0.key.hasPrefix("GO") && $0.key != "PATH" && $0.key != "HOME" && $0.key != "XDG_CACHE_HOME"
                    && $0.key != "CGO_ENABLED"
            }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            environment.append(("PATH", path))
            environment += [("GOCACHE", work.gocache), ("GOPATH", work.gopath), ("GOTMPDIR", work.gotmpdir),
                            ("HOME", work.home), ("GOTRACEBACK", "all")]
        }
        // Nothing may touch the network, even under env_clear.
        if !scenario.inheritEnvironment {
            environment += [("GOTOOLCHAIN", "local"), ("GOPROXY", "off"), ("GOFLAGS", "-mod=mod")]
        }
        func set(_ name: String, _ value: String?) {
            environment.removeAll { $0.0 == name }
            if let value { environment.append((name, value)) }
        }
        for (name, value) in scenario.env { set(name, value.map(expand)) }
        func envValue(_ name: String) -> String? { environment.last(where: { $0.0 == name })?.1 }

        // argv[0] "go" is the toolchain under test; anything else is looked up on the run's PATH.
        var arguments = scenario.run.map(expand)
        let executable: String
        if arguments[0] == "go" {
            executable = toolchain.goBinary
        } else if let found = Toolchains.pathLookup(arguments[0], path: envValue("PATH") ?? path) {
            executable = found
        } else {
            throw RunSetupError(description: "run: \(arguments[0]) not found on PATH")
        }
        if arguments[0] == "go" { arguments[0] = "go" }

        let workdir = scenario.workdir.hasPrefix("/") ? expand(scenario.workdir)
            : (scenario.workdir == "." ? work.work : work.work + "/" + expand(scenario.workdir))

        // Success artifact: given, or inferred from `go build -o PATH` / `go install`.
        var successArtifact = scenario.success.artifact.map(expand)
        if successArtifact == nil {
            successArtifact = ScenarioRunner.inferArtifact(arguments: arguments, workdir: workdir,
                                                          gobin: envValue("GOBIN"), gopath: envValue("GOPATH"))
        }
        func absolute(_ p: String) -> String { p.hasPrefix("/") ? p : workdir + "/" + p }

        var spawn = SpawnPlan(executable: executable, arguments: arguments,
                              environment: environment.map { "\($0.0)=\($0.1)" })
        spawn.workdir = workdir
        spawn.rlimits = scenario.sandbox.rlimits
        spawn.noNewPrivs = scenario.sandbox.noNewPrivs
        let switching = scenario.sandbox.user.map { $0.uid != 0 } ?? false
        spawn.user = scenario.sandbox.user
        if let request = scenario.sandbox.capabilities {
            spawn.capabilities = try CapabilityPlan.make(request: request, switchingToNonRoot: switching)
        }
        if scenario.sandbox.cgroup.memoryMax != nil { ScenarioRunner.warmPageCache(toolchain) }
        var supervisor: SupervisorPlan?
        if !scenario.faults.isEmpty || scenario.trace != .off {
            let plan = SupervisorPlan(
                faults: scenario.faults, seed: scenario.seed ?? 0,
                policy: scenario.sandbox.seccomp ?? SeccompPolicy(), trace: scenario.trace, goroot: toolchain.goroot,
                workRoot: work.root,
                expand: { text in
                    var result = text
                    for (key, value) in substitutions { result = result.replacingOccurrences(of: key, with: value) }
                    return result
                }, traceOut: options.traceOut)
            let target = ScenarioRunner.handOverDescriptor()
            spawn.filter = try SeccompCompiler.compile(plan.policy, notify: plan.notifyPlan(handOverDescriptor: target))
            spawn.listenerSocketTarget = target
            // No FLAG_LOG here: it would log every notified call as an audit record. Errno denials come from the
            // supervisor instead; kills are logged by the kernel regardless; trap records are not available.
            spawn.seccompFlags = UInt32(SECCOMP_FILTER_FLAG_NEW_LISTENER_VALUE)
            // Go's SIGURG preemption interrupts notified syscalls, which then restart and can livelock; with
            // WAIT_KILLABLE_RECV (Linux 5.19) a received notification is only interrupted by a fatal signal.
            if CgroupHierarchies.kernelAtLeast(5, 19) {
                spawn.seccompFlags |= UInt32(SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV_VALUE)
            }
            supervisor = plan
        } else if let policy = scenario.sandbox.seccomp {
            spawn.filter = try SeccompCompiler.compile(policy)
            // FLAG_LOG asks the kernel to log trap and errno actions too, so they reach evidence.denials.
            spawn.seccompFlags = UInt32(SECCOMP_FILTER_FLAG_LOG_VALUE)
        }

        var expectedCapEff: UInt64?
        if let caps = spawn.capabilities {
            expectedCapEff = switching ? caps.ambient.rawValue : caps.effective.rawValue
        } else if switching {
            expectedCapEff = 0
        }
        let requested = RequestedRestrictions(
            seccompFilter: spawn.filter != nil, capEff: expectedCapEff, noNewPrivs: spawn.noNewPrivs,
            uid: scenario.sandbox.user?.uid)
        return PreparedRun(spawn: spawn, workdir: workdir, successArtifact: successArtifact.map(absolute),
                           expectArtifact: scenario.expect?.artifact.map(expand).map(absolute), requested: requested,
                           supervisor: supervisor)
    }

    /// `go build -o PATH` → PATH; `go install` of a main package → $GOBIN or $GOPATH/bin/<last element of the
    /// module or package path>.
    static func inferArtifact(arguments: [String], workdir: String, gobin: String?, gopath: String?) -> String? {
        guard arguments.count >= 2, arguments[0] == "go" else { return nil }
        switch arguments[1] {
        case "build":
            if let index = arguments.firstIndex(of: "-o"), index + 1 < arguments.count { return arguments[index + 1] }
            if let flag = arguments.first(where: { $0.hasPrefix("-o=") }) { return String(flag.dropFirst(3)) }
            return nil
        case "install":
            let packages = arguments.dropFirst(2).filter { !$0.hasPrefix("-") }
            guard packages.count <= 1 else { return nil }
            guard let module = try? String(contentsOfFile: workdir + "/go.mod", encoding: .utf8),
                let line = module.split(separator: "\n").first(where: { $0.hasPrefix("module ") })
            else { return nil }
            var importPath = line.dropFirst("module ".count).trimmingCharacters(in: .whitespaces)
            if let package = packages.first, package != ".", package.hasPrefix("./") {
                importPath += "/" + package.dropFirst(2)
            } else if let package = packages.first, package != "." {
                importPath = package
            }
            var name = String(importPath.split(separator: "/").last ?? "")
            if name.count >= 2, name.hasPrefix("v"), Int(name.dropFirst()) != nil {
                let parts = importPath.split(separator: "/")
                if parts.count >= 2 { name = String(parts[parts.count - 2]) }
            }
            guard !name.isEmpty else { return nil }
            if let gobin, !gobin.isEmpty { return gobin + "/" + name }
            guard let gopath = gopath?.split(separator: ":").first else { return nil }
            return gopath + "/bin/" + name
        default:
            return nil
        }
    }
}

let SECCOMP_FILTER_FLAG_LOG_VALUE = 2
let SECCOMP_FILTER_FLAG_NEW_LISTENER_VALUE = 8
let SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV_VALUE = 32

extension ScenarioRunner {
    /// Page cache is charged to the cgroup that first reads a page. If the toolchain's binaries are not cached when a
    /// memory-limited run starts, their text pages are charged to the run and, under the limit, evicted and read
    /// again and again: the build thrashes instead of meeting the OOM killer (measured here with cgroup v1, at
    /// 32–160 MiB). Reading them from ghostrun first keeps the limit about the build's own memory.
    static func warmPageCache(_ toolchain: Toolchain) {
        var files = [toolchain.goBinary]
        let tools = toolchain.goroot + "/pkg/tool"
        for platform in (try? FileManager.default.contentsOfDirectory(atPath: tools)) ?? [] {
            for tool in (try? FileManager.default.contentsOfDirectory(atPath: tools + "/" + platform)) ?? [] {
                files.append(tools + "/" + platform + "/" + tool)
            }
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        for file in files {
            let fd = open(file, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
            close(fd)
        }
    }

    /// A high descriptor number for the listener hand-over, below ghostrun's own RLIMIT_NOFILE soft limit (the
    /// child moves its socket there before the scenario's rlimits apply).
    static func handOverDescriptor() -> Int32 {
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(7 /* RLIMIT_NOFILE */), &limit)
        return Int32(min(UInt64(1000), UInt64(limit.rlim_cur) - 1))
    }
}
