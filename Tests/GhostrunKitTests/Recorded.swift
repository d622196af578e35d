import GhostrunKit

/// Builders for recorded observations, so each test states only what matters to its rule.
enum Recorded {
    static func status(
        _ comm: String, pid: Int32, state: String, seccomp: Int = 0, capEff: UInt64 = 0,
        noNewPrivs: Int = 0, uid: UInt32 = 0
    ) -> ProcStatus {
        var s = ProcStatus()
        s.name = comm
        s.pid = pid
        s.state = state
        s.seccomp = seccomp
        s.seccompFilters = seccomp == 2 ? 1 : 0
        s.capEff = capEff
        s.noNewPrivs = noNewPrivs
        s.uid = [uid, uid, uid, uid]
        s.threads = 5
        return s
    }

    static func process(
        _ comm: String, pid: Int32, ppid: Int32 = 1, exe: String? = nil, state: String = "S",
        wchan: String? = nil, cpuTicks: UInt64 = 10, exited: Bool = false, seccomp: Int = 0,
        capEff: UInt64 = 0, noNewPrivs: Int = 0, uid: UInt32 = 0
    ) -> ProcessObservation {
        let s = status(
            comm, pid: pid, state: state, seccomp: seccomp, capEff: capEff, noNewPrivs: noNewPrivs,
            uid: uid)
        return ProcessObservation(
            pid: pid, ppid: ppid, comm: comm, exe: exe ?? "/usr/lib/go-1.19/bin/\(comm)",
            first: ProcessSample(timeMs: 5, status: s, cpuTicks: 1, wchan: wchan),
            last: ProcessSample(timeMs: 900, status: s, cpuTicks: cpuTicks, wchan: wchan), exited: exited)
    }

    static func exited(_ code: Int32, stderr: String, stdout: String = "") -> RunObservation {
        RunObservation(termination: .exited(code), durationMs: 420, stdout: stdout, stderr: stderr)
    }
}
