import CGhostrun
import Foundation

/// Everything the child needs, prepared in the parent before fork.
public struct SpawnPlan: Sendable {
    public var executable: String
    public var arguments: [String]
    public var environment: [String]
    public var workdir: String?
    public var stdin: Int32 = -1
    public var stdout: Int32 = -1
    public var stderr: Int32 = -1
    public var cgroupDescriptors: [Int32] = []
    /// The run's cgroup v2 directory (-1: none): the child is created in it (clone3 CLONE_INTO_CGROUP) instead of
    /// migrating itself, and `cgroupDescriptors[cgroupDirectoryProcsIndex]` is then not written.
    public var cgroupDirectory: Int32 = -1
    public var cgroupDirectoryProcsIndex: Int32 = 0
    public var rlimits: [ResourceLimit] = []
    public var user: (uid: UInt32, gid: UInt32)?
    public var capabilities: CapabilityPlan?
    public var noNewPrivs = false
    public var filter: CompiledFilter?
    public var seccompFlags: UInt32 = 0
    /// User notification: the child's end of the socket the listener is sent on, and the descriptor number it is
    /// moved to first (the filter lets sendmsg on that number through). -1 when there is no supervisor.
    public var listenerSocket: Int32 = -1
    public var listenerSocketTarget: Int32 = -1
    /// A private mount namespace (mounts made private first), then these steps; see `MountPlan`.
    public var newMountNamespace = false
    public var mountOperations: [MountOperation] = []
    /// A private network namespace; `loopbackUp` brings `lo` up in it.
    public var newNetworkNamespace = false
    public var loopbackUp = false
    /// A Landlock ruleset, built just before fork and restricted in the child.
    public var landlock: LandlockPlan?
    /// A network namespace descriptor to join instead of creating one (the stall server's), or -1.
    public var joinNetworkNamespace: Int32 = -1
    /// `freeze: {after: 0ms}` on cgroup v2: the child freezes the run's cgroup itself right before execve (the
    /// monitor's first round could come after a short `go version` had ended on a loaded host).
    public var freezeBeforeExec = false
    /// The run's `cgroup.freeze`, opened by `spawnChild(_:joining:)` when `freezeBeforeExec` is set.
    var freezeDescriptor: Int32 = -1

    public init(executable: String, arguments: [String], environment: [String]) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
    }
}

/// The capability sets the child ends with.
public struct CapabilityPlan: Sendable, Equatable {
    public var bounding: CapabilitySet
    public var effective: CapabilitySet
    public var permitted: CapabilitySet
    public var inheritable: CapabilitySet
    public var ambient: CapabilitySet

    /// From a scenario's request. `available` is what ghostrun itself holds (CapPrm ∩ CapBnd): a container may
    /// already lack some capabilities, and asking the kernel for more than we have fails with EPERM.
    /// Root keeps its kept set as effective/permitted; a switch to another user raises the added capabilities as
    /// inheritable and ambient so they survive execve (the only way a non-root program keeps capabilities
    /// without file capabilities).
    public static func make(request: CapabilityRequest, switchingToNonRoot: Bool,
                            available: CapabilitySet = CapabilityPlan.available()) throws -> CapabilityPlan {
        let wanted = request.add.union(request.ambient)
        let missing = wanted.subtracting(available)
        if !missing.isEmpty {
            throw HarnessError(
                step: "capabilities",
                "sandbox.capabilities asks for \(missing.names.joined(separator: ", ")), "
                    + "which ghostrun itself does not hold")
        }
        let kept = request.kept(from: available).intersection(available)
        var ambient = request.ambient
        var inheritable = request.ambient
        if switchingToNonRoot {
            ambient.formUnion(request.add)
            inheritable.formUnion(ambient)
        }
        return CapabilityPlan(bounding: kept, effective: kept, permitted: kept, inheritable: inheritable,
                              ambient: ambient)
    }

    /// The capabilities this process can hand on: its permitted set within its bounding set.
    public static func available() -> CapabilitySet {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return .all }
        var permitted: UInt64 = 0, bounding: UInt64 = 0
        for line in text.split(separator: "\n") {
            if line.hasPrefix("CapPrm:") { permitted = UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) ?? 0 }
            if line.hasPrefix("CapBnd:") { bounding = UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) ?? 0 }
        }
        return CapabilitySet(rawValue: permitted & bounding)
    }
}

/// A child that reached execve, and the host mounts its hermetic view skipped because they vanished.
public struct SpawnedChild: Sendable {
    public var pid: pid_t
    /// `mount point (ERRNO)` of each replicated host mount that went away before the child could copy it.
    public var skippedMounts: [String]
}

public enum Spawner {
    /// Forks and execs the plan with the child joining `cgroup` before anything else.
    public static func spawn(_ plan: SpawnPlan, joining cgroup: RunCgroup) throws -> pid_t {
        try spawnChild(plan, joining: cgroup).pid
    }

    /// Forks and execs the plan; returns the child's pid once execve succeeded.
    public static func spawn(_ plan: SpawnPlan) throws -> pid_t {
        try spawnChild(plan).pid
    }

    /// Forks and execs the plan with the child joining `cgroup` before anything else.
    ///
    /// The cgroup's descriptors are used under its lock, so a concurrent teardown waits for the spawn instead of
    /// closing them under it; a cgroup already torn down throws and starts nothing (the child would run outside it).
    public static func spawnChild(_ plan: SpawnPlan, joining cgroup: RunCgroup) throws -> SpawnedChild {
        try cgroup.withJoinDescriptors { descriptors in
            var plan = plan
            plan.cgroupDescriptors = descriptors
            // The v2 cgroup's procs descriptor is the first (`RunCgroup.allPaths`); opened under the cgroup's lock,
            // so the directory cannot be removed in between.
            var directory: Int32 = -1
            if let v2Path = cgroup.v2Path, case .success(let fd) = System.open(v2Path, O_RDONLY | O_DIRECTORY) {
                directory = fd
                plan.cgroupDirectory = fd
                plan.cgroupDirectoryProcsIndex = 0
            }
            defer { if directory >= 0 { System.close(directory) } }
            var freeze: Int32 = -1
            if plan.freezeBeforeExec, let v2Path = cgroup.v2Path {
                switch System.open(v2Path + "/cgroup.freeze", O_WRONLY) {
                case .success(let fd): freeze = fd
                case .failure(let error):
                    throw HarnessError(step: "freeze-before-exec", syscall: "open", path: v2Path + "/cgroup.freeze",
                                       errno: error, "cannot open the run's cgroup.freeze")
                }
            }
            defer { if freeze >= 0 { System.close(freeze) } }
            plan.freezeDescriptor = freeze
            return try spawnChild(plan)
        }
    }

    /// Forks and execs the plan; returns the child once execve succeeded. A failing step between fork and
    /// exec throws a `HarnessError` whose `step` is the step's name (`chdir`, `execve`, ...).
    public static func spawnChild(_ plan: SpawnPlan) throws -> SpawnedChild {
        var config = ghostrun_spawn_config()
        var allocations: [UnsafeMutablePointer<CChar>] = []
        defer { allocations.forEach { free($0) } }
        func cString(_ s: String) -> UnsafeMutablePointer<CChar> {
            let pointer = strdup(s)!
            allocations.append(pointer)
            return pointer
        }
        let argv: [UnsafeMutablePointer<CChar>?] = plan.arguments.map(cString) + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = plan.environment.map(cString) + [nil]
        let path = cString(plan.executable)
        let workdir = plan.workdir.map(cString)

        config.stdin_fd = plan.stdin
        config.stdout_fd = plan.stdout
        config.stderr_fd = plan.stderr

        guard plan.cgroupDescriptors.count <= Int(GHOSTRUN_MAX_CGROUP_FDS) else {
            throw HarnessError.spawn(step: "prepare-cgroups", errno: E2BIG)
        }
        withUnsafeMutableBytes(of: &config.cgroup_fds) { raw in
            let fds = raw.bindMemory(to: Int32.self)
            for (i, fd) in plan.cgroupDescriptors.enumerated() { fds[i] = fd }
        }
        config.cgroup_fd_count = Int32(plan.cgroupDescriptors.count)
        config.cgroup_into_fd = plan.cgroupDirectory
        config.cgroup_into_index = plan.cgroupDirectoryProcsIndex

        guard plan.rlimits.count <= Int(GHOSTRUN_MAX_RLIMITS) else { throw HarnessError.spawn(step: "prepare-rlimits", errno: E2BIG) }
        withUnsafeMutableBytes(of: &config.rlimit_resources) { raw in
            let resources = raw.bindMemory(to: Int32.self)
            for (i, limit) in plan.rlimits.enumerated() { resources[i] = limit.resource }
        }
        withUnsafeMutableBytes(of: &config.rlimits) { raw in
            let limits = raw.bindMemory(to: rlimit.self)
            for (i, limit) in plan.rlimits.enumerated() {
                limits[i] = rlimit(rlim_cur: rlim_t(limit.soft), rlim_max: rlim_t(limit.hard))
            }
        }
        config.rlimit_count = Int32(plan.rlimits.count)

        if let user = plan.user {
            config.switch_ids = 1
            config.uid = user.uid
            config.gid = user.gid
            config.group_count = 1
            withUnsafeMutableBytes(of: &config.groups) { $0.bindMemory(to: gid_t.self)[0] = user.gid }
        }
        if let caps = plan.capabilities {
            config.set_capabilities = 1
            config.last_cap = Int32(CapabilityName.lastCapability)
            config.cap_bounding = caps.bounding.rawValue
            config.cap_effective = caps.effective.rawValue
            config.cap_permitted = caps.permitted.rawValue
            config.cap_inheritable = caps.inheritable.rawValue
            config.cap_ambient = caps.ambient.rawValue
        }
        config.no_new_privs = plan.noNewPrivs ? 1 : 0
        config.seccomp_flags = plan.seccompFlags
        config.listener_socket = plan.listenerSocket
        config.listener_socket_target = plan.listenerSocketTarget
        config.new_mount_namespace = plan.newMountNamespace ? 1 : 0
        config.new_network_namespace = plan.newNetworkNamespace ? 1 : 0
        config.loopback_up = plan.loopbackUp ? 1 : 0
        config.landlock_ruleset = -1
        config.freeze_before_exec_fd = plan.freezeDescriptor
        config.join_network_namespace = plan.joinNetworkNamespace
        if plan.joinNetworkNamespace >= 0 { config.new_network_namespace = 0 }
        if let landlock = plan.landlock { config.landlock_ruleset = try Landlock.createRuleset(landlock) }
        defer { if config.landlock_ruleset >= 0 { close(config.landlock_ruleset) } }
        // Steps replicating one host mount share a group: the C target skips the rest of a group whose mount vanished.
        var groups: [String: Int32] = [:]
        let mountOperations = plan.mountOperations.map { operation -> ghostrun_mount_op in
            var op = ghostrun_mount_op()
            op.target = UnsafePointer(cString(operation.target))
            op.flags = operation.flags
            op.group = -1
            if let replicated = operation.replicates {
                op.group = groups[replicated] ?? Int32(groups.count)
                groups[replicated] = op.group
            }
            switch operation.kind {
            case .tmpfs(let data):
                op.kind = GHOSTRUN_MOUNT_TMPFS
                op.data = UnsafePointer(cString(data))
            case .bind(let source):
                op.kind = GHOSTRUN_MOUNT_BIND
                op.source = UnsafePointer(cString(source))
            case .setAttributes: op.kind = GHOSTRUN_MOUNT_SETATTR
            case .keep(let slot):
                op.kind = GHOSTRUN_MOUNT_KEEP
                op.slot = slot
            case .restore(let slot):
                op.kind = GHOSTRUN_MOUNT_RESTORE
                op.slot = slot
            case .makeDirectory: op.kind = GHOSTRUN_MOUNT_MKDIR
            case .overlay(let options):
                op.kind = GHOSTRUN_MOUNT_OVERLAY
                op.data = UnsafePointer(cString(options))
            case .bindOne(let source):
                op.kind = GHOSTRUN_MOUNT_BIND_ONE
                op.source = UnsafePointer(cString(source))
            case .pivotRoot: op.kind = GHOSTRUN_MOUNT_PIVOT
            }
            withUnsafeMutableBytes(of: &op.step) { raw in
                let bytes = Array(operation.step.utf8.prefix(Int(GHOSTRUN_STEP_LEN) - 1))
                for (i, byte) in bytes.enumerated() { raw[i] = byte }
            }
            return op
        }

        let landlockPaths: [UnsafePointer<CChar>?] = (plan.landlock?.rules ?? []).map { UnsafePointer(cString($0.path)) }
        let landlockAccess: [UInt64] = (plan.landlock?.rules ?? []).map(\.access)

        var pid: pid_t = 0
        var step = [CChar](repeating: 0, count: Int(GHOSTRUN_STEP_LEN))
        var skippedOps = [Int32](repeating: -1, count: max(1, mountOperations.count))
        var skippedErrors = [Int32](repeating: 0, count: max(1, mountOperations.count))
        var skippedCount: Int32 = 0
        let instructions = plan.filter?.instructions ?? []
        let status: Int32 = argv.withUnsafeBufferPointer { argvBuffer in
            envp.withUnsafeBufferPointer { envpBuffer in
                instructions.withUnsafeBufferPointer { filterBuffer in
                  mountOperations.withUnsafeBufferPointer { mountBuffer in
                  landlockPaths.withUnsafeBufferPointer { landlockPathBuffer in
                  landlockAccess.withUnsafeBufferPointer { landlockAccessBuffer in
                    config.landlock_paths = landlockPathBuffer.baseAddress
                    config.landlock_access = landlockAccessBuffer.baseAddress
                    config.landlock_rule_count = Int32(landlockPathBuffer.count)
                    config.mount_ops = mountBuffer.baseAddress
                    config.mount_op_count = Int32(mountBuffer.count)
                    return skippedOps.withUnsafeMutableBufferPointer { skippedBuffer in
                    skippedErrors.withUnsafeMutableBufferPointer { errorBuffer in
                    withUnsafeMutablePointer(to: &skippedCount) { countPointer in
                    config.skipped_ops = skippedBuffer.baseAddress
                    config.skipped_errors = errorBuffer.baseAddress
                    config.skipped_count = countPointer
                    config.path = UnsafePointer(path)
                    config.workdir = workdir.map { UnsafePointer($0) }
                    config.argv = UnsafePointer(argvBuffer.baseAddress)
                    config.envp = UnsafePointer(envpBuffer.baseAddress)
                    if plan.filter != nil {
                        config.filter = filterBuffer.baseAddress
                        config.filter_len = UInt16(filterBuffer.count)
                    }
                    return ghostrun_spawn(&config, &pid, &step)
                    }
                    }
                    }
                  }
                  }
                  }
                }
            }
        }
        if status != 0 {
            let stepName = String(cString: step)
            // A mount step names the path it failed on, and a hermetic one says how to run without the overlay.
            if let operation = plan.mountOperations.first(where: { $0.step == stepName }) {
                let hermetic = stepName.hasPrefix("hermetic")
                throw HarnessError(
                    step: stepName, syscall: operation.kind.syscall, path: operation.target,
                    errno: Errno(rawValue: status), "spawn step \(stepName) failed on \(operation.target)",
                    hint: hermetic
                        ? "the run's copy-on-write view of the host could not be built; --host-writes runs without it"
                        : nil)
            }
            throw HarnessError.spawn(step: stepName, errno: status)
        }
        let skipped = (0..<Int(skippedCount)).compactMap { index -> String? in
            let op = Int(skippedOps[index])
            guard plan.mountOperations.indices.contains(op) else { return nil }
            let mountPoint = plan.mountOperations[op].replicates ?? plan.mountOperations[op].target
            return "\(mountPoint) (\(Errno(rawValue: skippedErrors[index]).name ?? String(skippedErrors[index])))"
        }
        return SpawnedChild(pid: pid, skippedMounts: skipped)
    }
}
