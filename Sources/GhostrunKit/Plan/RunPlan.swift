import CGhostrun
import Foundation

/// Everything a run needs, decided before any process starts: what the child executes and under which
/// restrictions, what the supervisor and the monitor do, and what the result compares against. Resolved by a pure
/// function of the scenario, the toolchain, the host and the work paths; the file system is only read (`go.mod`,
/// `PATH`), never written.
public struct RunPlan: Sendable {
    /// The child: executable, argv, environment, workdir, rlimits, user, capabilities, no_new_privs, the compiled
    /// filter and its flags. The spawner adds the descriptors (output, cgroup, listener socket).
    public var spawn: SpawnPlan
    /// The go command's working directory (absolute).
    public var workdir: String
    /// The file `success.artifact` names, given or inferred from `go build -o` / `go install` (absolute).
    public var successArtifact: String?
    /// The file `expect.artifact` names (absolute).
    public var expectArtifact: String?
    /// What the result's attestation checks every process against.
    public var requested: RequestedRestrictions
    /// The run's cgroup settings (limits and the freeze schedule's steps).
    public var cgroup: CgroupRequest
    /// Set when the scenario injects faults, or traces through user notification.
    public var supervisor: SupervisorPlan?
    /// Set for `go test`: how its output is read (ghostrun adds `-json` when the command lacks it).
    public var goTestOutput: GoTestOutputMode?
    /// The run is observed by ghostrun's BPF program (`RunnerOptions.traceBackend` is `bpf`): it counts the calls
    /// and follows every process, and user notification serves only the faults.
    public var observeWithBPF = false
    /// Whether the toolchain's files are read into the page cache before the run, so a memory limit is about the
    /// build's own memory (see `ScenarioRunner.warmPageCache`).
    public var warmPageCache: Bool
    /// The seccomp profile applied, for `evidence.policy`.
    public var policyEvidence: ProfileEvidence?
    /// The seccomp policy resolved once (nil without a filter): the filter was compiled from it, the supervisor
    /// answers from it, and evidence names the rule that decided each denial from it.
    public var decisions: SeccompDecisionTable?

    /// How the run sees the host's file systems: a copy-on-write view (hermetic, the default) or the host's own
    /// (`--host-writes`); for `evidence.filesystem`.
    public var fileSystemView: FileSystemView = .hostWrites

    /// `sandbox.stall` endpoints, served by a `StallServer` whose namespace the child joins.
    public var stallEndpoints: [StallEndpoint] = []

    /// Starts the stall server (nil without endpoints) and makes the child join its namespace.
    public mutating func startStallServer() throws -> StallServer? {
        guard !stallEndpoints.isEmpty else { return nil }
        let server = try StallServer(endpoints: stallEndpoints)
        spawn.joinNetworkNamespace = server.namespaceDescriptor
        return server
    }

    /// The freeze steps of `sandbox.cgroup.freeze`, in order.
    public var freezeSteps: [FreezeStep] { cgroup.freeze }

    /// Resolves a scenario for one toolchain on one host. `work` gives `$WORK` and the private Go directories;
    /// nothing under it needs to exist except for `go install`'s artifact inference, which reads `go.mod`.
    /// Throws `RunSetupError` (a program not on PATH, capabilities ghostrun lacks) and the seccomp compiler's
    /// errors; these become the run's `harness-error` (or `skipped` for `HostUnsupported`).
    /// `sharedCache` (`--shared-cache DIR`, already per toolchain) replaces the private GOCACHE where
    /// `usesSharedCache` allows. `hermetic` (the host's mounts, nil for `--host-writes`) gives the run a copy-on-write
    /// view of the host: see `HermeticRoot`.
    public static func resolve(scenario: Scenario, toolchain: Toolchain, host: PlanHost, work: WorkDirectory,
                               traceOut: String? = nil, observeWithBPF: Bool = false, sharedCache: String? = nil,
                               hermetic hostMounts: [HostMount]? = nil)
        throws -> RunPlan {
        let substitutions = Substitutions(work: work, scenario: scenario, toolchain: toolchain)
        var (environment, path) = environment(scenario: scenario, toolchain: toolchain, host: host, work: work,
                                              substitutions: substitutions)
        var sharedCacheUsed: String?
        if let sharedCache, usesSharedCache(scenario),
            let index = environment.firstIndex(where: { $0.0 == "GOCACHE" && $0.1 == work.gocache })
        {
            environment[index].1 = sharedCache
            sharedCacheUsed = sharedCache
        }
        func envValue(_ name: String) -> String? { environment.last(where: { $0.0 == name })?.1 }

        // argv[0] "go" is the toolchain under test; anything else is looked up on the run's PATH.
        var arguments = scenario.run.map(substitutions.expand)
        let executable: String
        if arguments[0] == "go" {
            executable = toolchain.goBinary
        } else if let found = host.lookUpExecutable(arguments[0], envValue("PATH") ?? path) {
            executable = found
        } else {
            throw RunSetupError(description: "run: \(arguments[0]) not found on PATH")
        }
        let goTest = GoTestCommand.rewrite(arguments)
        if let goTest { arguments = goTest.arguments }

        let workdir = scenario.workdir.hasPrefix("/") ? substitutions.expand(scenario.workdir)
            : (scenario.workdir == "." ? work.work : work.work + "/" + substitutions.expand(scenario.workdir))
        func absolute(_ p: String) -> String { p.hasPrefix("/") ? p : workdir + "/" + p }

        // Success artifact: given, or inferred from `go build -o PATH` / `go install`.
        var successArtifact = scenario.success.artifact.map(substitutions.expand)
        if successArtifact == nil {
            successArtifact = inferArtifact(arguments: arguments, workdir: workdir, gobin: envValue("GOBIN"),
                                            gopath: envValue("GOPATH"), readFile: host.readFile)
        }

        var spawn = SpawnPlan(executable: executable, arguments: arguments,
                              environment: environment.map { "\($0.0)=\($0.1)" })
        spawn.workdir = workdir
        spawn.rlimits = scenario.sandbox.rlimits
        spawn.noNewPrivs = scenario.sandbox.noNewPrivs
        let switching = scenario.sandbox.user.map { $0.uid != 0 } ?? false
        spawn.user = scenario.sandbox.user
        if let request = scenario.sandbox.capabilities {
            spawn.capabilities = try CapabilityPlan.make(request: request, switchingToNonRoot: switching,
                                                         available: host.availableCapabilities)
        }
        // A profile is resolved against the capabilities the go command will have (its bounding set, as moby
        // checks `caps`), the host's kernel and the native architecture; scenario rules go on top of it.
        let profile = scenario.sandbox.seccomp.flatMap { seccomp in
            seccomp.profileDocument.map { document in
                SeccompProfileResolver.resolve(
                    document,
                    context: ProfileResolutionContext(
                        capabilities: spawn.capabilities?.bounding ?? host.availableCapabilities,
                        kernel: KernelRelease(major: host.kernel.major, minor: host.kernel.minor),
                        runtime: seccomp.runtime),
                    extraNames: seccomp.rules.flatMap(\.syscalls),
                    defaultOverride: seccomp.defaultGiven ? seccomp.defaultAction : nil)
            }
        }
        let policy = profile.map { $0.policy(scenarioRules: scenario.sandbox.seccomp?.rules ?? []) }
            ?? scenario.sandbox.seccomp
        let decisions = try policy.map(SeccompDecisionTable.init)
        let supervisor = try filter(scenario: scenario, decisions: decisions, toolchain: toolchain, host: host,
                                    work: work, substitutions: substitutions, traceOut: traceOut,
                                    observeWithBPF: observeWithBPF, spawn: &spawn)
        spawn.seccompFlags |= ProfileFlags.value(of: profile?.flags ?? [])
        try namespaces(scenario.sandbox, work: work, toolchain: toolchain, substitutions: substitutions,
                       spawn: &spawn)
        var fileSystemView = FileSystemView.hostWrites
        if let hostMounts {
            let hermetic = HermeticRoot.plan(mounts: hostMounts, stage: work.root + "/hermetic",
                                             writable: [work.root] + (sharedCacheUsed.map { [$0] } ?? []))
            spawn.newMountNamespace = true
            spawn.mountOperations = hermetic.operations + spawn.mountOperations
            fileSystemView = hermetic.view
            // What the run writes outside its tree is discarded with the namespace: an artifact there could never
            // be found afterwards, and the check would fail for a reason that is not the go command's.
            let outside = [successArtifact, scenario.expect?.artifact.map(substitutions.expand)].compactMap { $0 }
                .map(absolute).first { !($0 == work.root || $0.hasPrefix(work.root + "/")) }
            if let outside {
                throw RunSetupError(description: "artifact \(outside) is outside $WORK: a hermetic run's writes "
                    + "there are discarded (hint: write it under $WORK, or run with --host-writes)")
            }
        }

        var expectedCapEff: UInt64?
        if let caps = spawn.capabilities {
            expectedCapEff = switching ? caps.ambient.rawValue : caps.effective.rawValue
        } else if switching {
            expectedCapEff = 0
        }
        let ownNetwork = spawn.newNetworkNamespace || !scenario.sandbox.stall.isEmpty
        let requested = RequestedRestrictions(
            seccompFilter: spawn.filter != nil, capEff: expectedCapEff, noNewPrivs: spawn.noNewPrivs,
            uid: scenario.sandbox.user?.uid,
            hostMountNamespace: spawn.newMountNamespace ? host.namespaces.mount : nil,
            hostNetworkNamespace: ownNetwork ? host.namespaces.network : nil)
        var plan = RunPlan(
            spawn: spawn, workdir: workdir, successArtifact: successArtifact.map(absolute),
            expectArtifact: scenario.expect?.artifact.map(substitutions.expand).map(absolute), requested: requested,
            cgroup: scenario.sandbox.cgroup, supervisor: supervisor, goTestOutput: goTest?.mode,
            warmPageCache: scenario.sandbox.cgroup.memoryMax != nil, policyEvidence: profile.map { ProfileEvidence($0) },
            decisions: decisions)
        plan.observeWithBPF = observeWithBPF
        plan.fileSystemView = fileSystemView
        plan.stallEndpoints = scenario.sandbox.stall
        return plan
    }

    /// `sandbox.mounts` and `sandbox.network` become namespaces the child unshares and the mount steps it applies.
    static func namespaces(_ sandbox: Sandbox, work: WorkDirectory, toolchain: Toolchain,
                           substitutions: Substitutions, spawn: inout SpawnPlan) throws {
        if !sandbox.mounts.isEmpty {
            spawn.newMountNamespace = true
            spawn.mountOperations = MountPlan.operations(for: sandbox.mounts, work: work.work,
                                                         toolchain: toolchain.goroot, expand: substitutions.expand)
        }
        if let network = sandbox.network {
            spawn.newNetworkNamespace = true
            spawn.loopbackUp = network == .loopback
        }
        if let request = sandbox.landlock {
            // A host without Landlock makes the run `skipped` with the reason (HostUnsupported).
            let abi = try Landlock.abi().get()
            spawn.landlock = Landlock.plan(request, abi: abi, work: work.work, expand: substitutions.expand)
        }
    }

    /// Whether a scenario may use `--shared-cache`: only when it leaves the cache as ghostrun sets it up. A scenario
    /// that runs as another user, prepares `paths:`, injects faults or sets GOCACHE itself is testing the cache (or
    /// could poison it for later runs), and one under cgroup limits, a freeze schedule or rlimits measures the
    /// compile itself (a warm cache skips it: measured, a build of 39 s took 1 s), so they keep a private one.
    public static func usesSharedCache(_ scenario: Scenario) -> Bool {
        scenario.sandbox.user == nil && scenario.paths.isEmpty && scenario.faults.isEmpty
            && scenario.sandbox.cgroup == CgroupRequest() && scenario.sandbox.rlimits.isEmpty
            && !scenario.env.contains { $0.0 == "GOCACHE" } && !scenario.envClear && !scenario.inheritEnvironment
    }

    /// Which of the harness's variables reach the child: the locale (`LANG`, `LANGUAGE`, `LC_*`), `TERM`, and the
    /// names given with `--pass-env` (`PATH` is always set, toolchain first).
    static func baseEnvironmentNames(host: PlanHost) -> Set<String> {
        var names: Set<String> = Set(["LANG", "LANGUAGE", "TERM"]).union(host.passEnvironment)
        names.formUnion(host.environment.keys.filter { $0.hasPrefix("LC_") })
        names.remove("PATH")
        return names
    }

    /// The child's environment in order, and the PATH ghostrun gives it: the harness's locale, TERM and
    /// `--pass-env` variables (all of its environment under `ghostrun trace`), then the network-safe, private Go
    /// settings, then the scenario's `env:`.
    static func environment(scenario: Scenario, toolchain: Toolchain, host: PlanHost, work: WorkDirectory,
                            substitutions: Substitutions) -> (environment: [(String, String)], path: String) {
        var environment: [(String, String)] = []
        let basePath = host.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        let path = toolchain.goroot + "/bin:" + basePath
        if scenario.inheritEnvironment {
            environment = host.environment.filter { $0.key != "PATH" }
                .sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            environment.append(("PATH", path))
        } else if scenario.envClear {
            environment = [("PATH", path)]
        } else {
            // A scenario is a stranger's code: it sees the harness's locale and terminal, not its secrets.
            environment = host.environment.filter { baseEnvironmentNames(host: host).contains($0.key) }
                .sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            environment.append(("PATH", path))
            environment += [("GOCACHE", work.gocache), ("GOPATH", work.gopath), ("GOTMPDIR", work.gotmpdir),
                            ("HOME", work.home), ("GOTRACEBACK", "all")]
        }
        // Nothing may touch the network, even under env_clear.
        if !scenario.inheritEnvironment {
            environment += [("GOTOOLCHAIN", "local"), ("GOPROXY", "off"), ("GOFLAGS", "-mod=mod")]
        }
        // A passed variable that ghostrun sets itself (HOME, GOFLAGS...) keeps ghostrun's value.
        var seen: Set<String> = []
        environment = environment.reversed().filter { seen.insert($0.0).inserted }.reversed()
        for (name, value) in scenario.env {
            environment.removeAll { $0.0 == name }
            if let value { environment.append((name, substitutions.expand(value))) }
        }
        return (environment, path)
    }

    /// Compiles the seccomp filter into `spawn` with its flags, and returns the supervisor plan when the scenario
    /// traces or injects faults.
    static func filter(scenario: Scenario, decisions: SeccompDecisionTable?, toolchain: Toolchain, host: PlanHost,
                       work: WorkDirectory, substitutions: Substitutions, traceOut: String?, observeWithBPF: Bool,
                       spawn: inout SpawnPlan) throws
        -> SupervisorPlan?
    {
        // With the BPF backend the kernel counts every call: only faulted syscalls are notified.
        let notifiedTrace = observeWithBPF ? TraceRequest.off : scenario.trace
        if !scenario.faults.isEmpty || notifiedTrace != .off {
            let table = try decisions ?? SeccompDecisionTable(SeccompPolicy())
            var plan = SupervisorPlan(
                faults: scenario.faults, seed: scenario.seed ?? 0,
                policy: table.policy, trace: notifiedTrace, goroot: toolchain.goroot,
                workRoot: work.root, expand: substitutions.expandInFaultPath,
                traceOut: observeWithBPF ? nil : traceOut)
            plan.decisions = table
            let target = host.handOverDescriptor
            spawn.filter = try SeccompCompiler.compile(table, notify: plan.notifyPlan(handOverDescriptor: target))
            spawn.listenerSocketTarget = target
            // No FLAG_LOG here: it would log every notified call as an audit record. Errno denials come from the
            // supervisor instead; kills are logged by the kernel regardless; trap records are not available.
            spawn.seccompFlags = UInt32(GHOSTRUN_SECCOMP_FILTER_FLAG_NEW_LISTENER)
            // Go's SIGURG preemption interrupts notified syscalls, which then restart and can livelock; with
            // WAIT_KILLABLE_RECV (Linux 5.19) a received notification is only interrupted by a fatal signal.
            if host.kernelAtLeast(5, 19) {
                spawn.seccompFlags |= UInt32(GHOSTRUN_SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)
            }
            return plan
        }
        if let decisions {
            spawn.filter = try SeccompCompiler.compile(decisions, notify: nil)
            // FLAG_LOG asks the kernel to log trap and errno actions too, so they reach evidence.denials.
            spawn.seccompFlags = UInt32(GHOSTRUN_SECCOMP_FILTER_FLAG_LOG)
        }
        return nil
    }

    /// `go build -o PATH` → PATH; `go install` of a main package → $GOBIN or $GOPATH/bin/<last element of the
    /// module or package path>.
    static func inferArtifact(arguments: [String], workdir: String, gobin: String?, gopath: String?,
                              readFile: (String) -> String? = { try? String(contentsOfFile: $0, encoding: .utf8) })
        -> String?
    {
        guard arguments.count >= 2, arguments[0] == "go" else { return nil }
        switch arguments[1] {
        case "build":
            if let index = arguments.firstIndex(of: "-o"), index + 1 < arguments.count { return arguments[index + 1] }
            if let flag = arguments.first(where: { $0.hasPrefix("-o=") }) { return String(flag.dropFirst(3)) }
            return nil
        case "install":
            let packages = arguments.dropFirst(2).filter { !$0.hasPrefix("-") }
            guard packages.count <= 1 else { return nil }
            guard let module = readFile(workdir + "/go.mod"),
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

/// `$WORK`, `$SCENARIO_DIR` and `$GOROOT` (also as `${NAME}`) in scenario strings.
struct Substitutions: Sendable {
    let pairs: [(key: String, value: String)]

    init(work: WorkDirectory, scenario: Scenario, toolchain: Toolchain) {
        pairs = [("$WORK", work.work), ("$SCENARIO_DIR", scenario.scenarioDirectory), ("$GOROOT", toolchain.goroot)]
    }

    func expand(_ text: String) -> String {
        var result = text
        for (key, value) in pairs {
            result = result.replacingOccurrences(of: "${\(key.dropFirst())}", with: value)
            result = result.replacingOccurrences(of: key, with: value)
        }
        return result
    }

    /// Fault paths know only the `$NAME` form (as before the plan stage).
    var expandInFaultPath: @Sendable (String) -> String {
        let pairs = self.pairs
        return { text in
            var result = text
            for (key, value) in pairs { result = result.replacingOccurrences(of: key, with: value) }
            return result
        }
    }
}

