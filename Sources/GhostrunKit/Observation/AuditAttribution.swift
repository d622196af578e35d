/// Which kernel audit records are one run's. A record names only a pid, a comm and an exe, and every run (in this
/// ghostrun with `--jobs`, or in another ghostrun) executes the same toolchain's binaries; so a record is the run's
/// only when its pid is one the run's cgroup held (as the sampler saw it each round) or its exe lies in the run's
/// own temporary tree. A record from the run's toolchain whose pid the run never saw is not guessed: it is dropped
/// and counted (`evidence.unattributed_audit_records`).
struct AuditAttribution {
    /// The run's temporary root (`/tmp/ghostrun-...`): programs built there (`go run`, `go test`) are the run's.
    let workRoot: String
    /// The toolchain's GOROOT: a record from its programs might have been the run's.
    let goroot: String
    private(set) var unattributed = 0

    init(workRoot: String, goroot: String) {
        self.workRoot = workRoot
        self.goroot = goroot
    }

    /// The denials among `records` that belong to the run whose cgroup held `pids`; the run's toolchain's records
    /// from other pids are counted as unattributed. `user-notif` records only repeat what the supervisor saw.
    mutating func denials(
        from records: [AuditRecord], pids: Set<Int32>, runStartKernelUsec: UInt64
    ) -> [Denial] {
        var denials: [Denial] = []
        for record in records where record.action != "user-notif" {
            let exe = record.exe ?? ""
            if pids.contains(record.pid) || exe.hasPrefix(workRoot + "/") {
                denials.append(record.denial(runStartKernelUsec: runStartKernelUsec))
            } else if exe.hasPrefix(goroot + "/") {
                unattributed += 1
            }
        }
        return denials
    }
}
