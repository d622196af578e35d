import Foundation

/// What a run plan depends on outside the scenario: this ghostrun process's environment and capabilities, the
/// kernel release, and read-only look-ups in the file system. A value, so plans resolve in tests without root,
/// without a process and without the host's files.
public struct PlanHost: Sendable {
    /// ghostrun's own environment (the child's starts from it unless `env_clear`).
    public var environment: [String: String]
    /// `--pass-env NAME`: variables of `environment` passed to the child besides the base ones.
    public var passEnvironment: Set<String> = []
    /// The running kernel's major and minor release, e.g. (6, 1).
    public var kernel: (major: Int, minor: Int)
    /// The capabilities ghostrun can hand on (its permitted set within its bounding set).
    public var availableCapabilities: CapabilitySet
    /// ghostrun's own mount and network namespaces (`mnt:[...]`, `net:[...]`), nil where unknown: what a process of a
    /// run with namespaces of its own must not show.
    public var namespaces: (mount: String?, network: String?) = (nil, nil)
    /// The descriptor number the child moves its listener socket to before exec.
    public var handOverDescriptor: Int32
    /// Reads a text file, nil when it does not exist (the plan reads `go.mod` to infer `go install`'s artifact).
    public var readFile: @Sendable (String) -> String?
    /// Finds an executable on a `PATH`-style search list, nil when it is not there.
    public var lookUpExecutable: @Sendable (_ name: String, _ searchPath: String) -> String?

    public init(environment: [String: String], kernel: (major: Int, minor: Int), availableCapabilities: CapabilitySet,
                handOverDescriptor: Int32, readFile: @escaping @Sendable (String) -> String?,
                lookUpExecutable: @escaping @Sendable (String, String) -> String?) {
        self.environment = environment
        self.kernel = kernel
        self.availableCapabilities = availableCapabilities
        self.handOverDescriptor = handOverDescriptor
        self.readFile = readFile
        self.lookUpExecutable = lookUpExecutable
    }

    /// Whether the kernel is at least `major.minor`.
    public func kernelAtLeast(_ major: Int, _ minor: Int) -> Bool { kernel >= (major, minor) }

    /// This host and this process, now.
    public static func current() -> PlanHost {
        var host = PlanHost(
            environment: ProcessInfo.processInfo.environment, kernel: kernelRelease(),
            availableCapabilities: CapabilityPlan.available(), handOverDescriptor: handOverDescriptor(),
            readFile: { try? String(contentsOfFile: $0, encoding: .utf8) },
            lookUpExecutable: { Toolchains.pathLookup($0, path: $1) })
        host.namespaces = ProcFiles.namespaces(pid: getpid())
        return host
    }

    /// The major and minor number of the running kernel's release, (0, 0) when uname does not tell.
    static func kernelRelease() -> (major: Int, minor: Int) {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) {
            String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard parts.count == 2 else { return (0, 0) }
        return (parts[0], parts[1])
    }

    /// A high descriptor number for the listener hand-over, below ghostrun's own RLIMIT_NOFILE soft limit (the
    /// child moves its socket there before the scenario's rlimits apply).
    static func handOverDescriptor() -> Int32 {
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        return Int32(min(UInt64(1000), UInt64(limit.rlim_cur) - 1))
    }
}
