import CGhostrun
import Foundation
import Synchronization

/// Receives the listener from the child and runs the supervisor, starting before spawn so that nothing the
/// child does between loading its filter and exec can wait on an absent supervisor.
final class SupervisorStart: Sendable {
    private let socket: Int32
    private let plan: SupervisorPlan
    private let runStart: ContinuousClock.Instant
    private let ready = DispatchSemaphore(value: 0)
    /// Set by the listener thread before it signals `ready`: the running supervisor, or why there is none.
    private let outcome = Mutex<(supervisor: Supervisor?, failure: String?)>((nil, nil))

    init(socket: Int32, plan: SupervisorPlan, runStart: ContinuousClock.Instant) {
        self.socket = socket
        self.plan = plan
        self.runStart = runStart
    }

    func begin() {
        let thread = Thread { [self] in
            // The child sends the listener right after loading its filter; a spawn that fails earlier closes the
            // socket (every copy of the child's end is gone) and the receive ends with EPIPE.
            let fd = ghostrun_receive_fd(socket, 30_000)
            if fd >= 0 {
                do {
                    let supervisor = try Supervisor(listener: fd, plan: plan, runStart: runStart)
                    supervisor.startThread()
                    outcome.withLock { $0.supervisor = supervisor }
                } catch {
                    System.close(fd)
                    outcome.withLock { $0.failure = "\(error)" }
                }
            } else {
                let failure = "no listener received: \(Errno(rawValue: -fd))"
                outcome.withLock { $0.failure = failure }
            }
            ready.signal()
        }
        thread.name = "ghostrun-listener"
        thread.start()
    }

    /// Stops the supervisor (call once the tree is gone) and returns what it saw.
    func finish() -> (trace: TraceSummary?, denials: [Denial], failure: String?) {
        ready.wait()
        System.close(socket)
        let (supervisor, failure) = outcome.withLock { $0 }
        guard let supervisor else { return (nil, [], failure) }
        let seen = supervisor.stop()
        return (seen.trace, seen.denials, nil)
    }
}
