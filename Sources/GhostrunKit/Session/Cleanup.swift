import CGhostrun
import Foundation
import Synchronization

/// Cleanup of what killed runs left behind, and the watchdog that does it if ghostrun itself is killed.
public enum Cleanup {
    /// Removes cgroups and temporary directories of ghostrun processes that are gone.
    @discardableResult
    public static func sweepDead() -> [String] {
        RunCgroup.sweep(hierarchies: .discover()) + WorkDirectory.sweep()
    }

    /// Removes everything owned by `owner` (the reaper's job after its ghostrun died).
    @discardableResult
    public static func sweep(owner: Int32) -> [String] {
        RunCgroup.sweep(hierarchies: .discover(), ownerFilter: { $0 == owner })
            + WorkDirectory.sweep(ownerFilter: { $0 == owner })
    }

    /// The write end of the reaper's pipe, held open for this process's lifetime; -1 before the reaper starts.
    private static let reaperPipe = Mutex<Int32>(-1)

    /// Starts a watchdog process that sweeps this process's runs once it is gone, however it died.
    /// `executable` is this program; it is run as `executable __reap OWNER`.
    public static func startReaper(executable: String) {
        reaperPipe.withLock { pipe in
            guard pipe < 0 else { return }
            pipe = spawnReaper(executable: executable)
        }
    }

    private static func spawnReaper(executable: String) -> Int32 {
        var fds: [Int32] = [0, 0]
        guard ghostrun_pipe_cloexec(&fds) == 0 else { return -1 }
        // The read end must survive the reaper's exec: the reaper clears its close-on-exec flag after the fork. In
        // ghostrun both ends stay close-on-exec, so a go command spawned meanwhile on another thread never holds it.
        let arguments = [executable, "__reap", String(getpid())]
        var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        let pid = cArguments.withUnsafeMutableBufferPointer { buffer in
            ghostrun_spawn_reaper(executable, buffer.baseAddress, fds[0])
        }
        close(fds[0])
        if pid > 0 { return fds[1] }
        close(fds[1])
        return -1
    }
}
