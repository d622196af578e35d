import CGhostrun
import Foundation
import Synchronization

/// How many processes a run had, counted from the kernel's fork and exec events (the process events
/// connector), so that processes too short-lived for the /proc sampler are counted too.
public struct ProcessCount: Codable, Equatable, Sendable {
    /// The go command and every process forked below it (threads are not processes).
    public var processes: Int
    /// execve calls that succeeded in those processes.
    public var execs: Int
    /// False when the kernel dropped events (the socket's buffer overflowed): then `processes` is a lower bound.
    public var exact: Bool

    public init(processes: Int, execs: Int, exact: Bool) {
        self.processes = processes
        self.execs = execs
        self.exact = exact
    }
}

/// A process-wide listener on the process events connector (NETLINK_CONNECTOR, root only, no BPF). Runs take a
/// mark before they spawn and count their tree after: every fork below the run's first process, in the kernel's
/// order. Events are kept only while a run is between `begin` and `finish`.
public final class ProcessEvents: Sendable {
    /// The marker of a run's window of events.
    public struct Mark: Sendable {
        let run: Int
    }

    private struct Event {
        var what: UInt32
        var parentTgid: Int32
        var childPid: Int32
        var childTgid: Int32
    }

    private struct State {
        /// Absolute sequence number of `events[0]`.
        var base = 0
        var events: [Event] = []
        /// Sequence numbers at which the kernel reported lost events (ENOBUFS).
        var overflows: [Int] = []
        /// The marks of runs between begin and finish.
        var active: [Int: Int] = [:]
        var nextRun = 0
    }

    private let state = ConditionBox(State())
    private let descriptor: Int32

    /// Shared by every run of this process; nil when the connector cannot be opened (not root, no
    /// CONFIG_PROC_EVENTS), in which case runs report only the sampled count.
    public static let shared: ProcessEvents? = ProcessEvents()

    private init?() {
        // 4 MiB: a parallel `go build` on a busy host forks thousands of processes per second.
        let fd = ghostrun_proc_events_open(4 << 20)
        guard fd >= 0 else { return nil }
        descriptor = fd
        let thread = Thread { [self] in readLoop() }
        thread.name = "ghostrun-proc-events"
        thread.start()
    }

    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var parsed = [ghostrun_proc_event](repeating: ghostrun_proc_event(), count: 512)
        while true {
            let received = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if received < 0 {
                let error = Errno.current
                if error == Errno(rawValue: ENOBUFS) {
                    state.withLock { $0.overflows.append($0.base + $0.events.count) }
                    continue
                }
                if error == Errno(rawValue: EINTR) { continue }
                return
            }
            let count = buffer.withUnsafeBytes { raw in
                parsed.withUnsafeMutableBufferPointer {
                    ghostrun_proc_events_parse(raw.baseAddress, received, $0.baseAddress, Int32($0.count))
                }
            }
            guard count > 0 else { continue }
            state.withLock { state in
                guard !state.active.isEmpty else { return }
                for event in parsed[0..<Int(count)] {
                    state.events.append(Event(what: event.what, parentTgid: event.parent_tgid,
                                              childPid: event.child_pid, childTgid: event.child_tgid))
                }
            }
        }
    }

    /// Before the run's spawn: from here on its events are kept.
    public func begin() -> Mark {
        state.withLock { state in
            let sequence = state.base + state.events.count
            state.nextRun += 1
            state.active[state.nextRun] = sequence
            return Mark(run: state.nextRun)
        }
    }

    /// After the run's first process was reaped: the processes forked below `root` since `mark`. Waits up to
    /// `timeout` for the root's exit event, so that every event before it has been read.
    public func finish(_ mark: Mark, root: pid_t, timeout: Duration = .milliseconds(300)) -> ProcessCount? {
        func seenExit(_ state: State) -> Bool {
            guard let start = state.active[mark.run] else { return true }
            return state.events[max(0, start - state.base)...].contains {
                $0.what == GHOSTRUN_PROC_EVENT_EXIT && $0.childPid == root && $0.childTgid == root
            }
        }
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds)
            + Double(timeout.components.attoseconds) / 1e18)
        return state.wait(until: deadline, for: seenExit) { state -> ProcessCount? in
            let complete = seenExit(state)
            guard let start = state.active.removeValue(forKey: mark.run) else { return nil }
            defer { trim(&state) }
            var tree: Set<Int32> = [root]
            var processes = 1
            var execs = 0
            for event in state.events[max(0, start - state.base)...] {
                switch event.what {
                case GHOSTRUN_PROC_EVENT_FORK:
                    // A thread shares its parent's thread group; only a new group is a new process.
                    if tree.contains(event.parentTgid), event.childPid == event.childTgid,
                        tree.insert(event.childTgid).inserted
                    {
                        processes += 1
                    }
                case GHOSTRUN_PROC_EVENT_EXEC where tree.contains(event.childTgid):
                    execs += 1
                case GHOSTRUN_PROC_EVENT_EXIT where event.childPid == event.childTgid && event.childTgid != root:
                    // The pid may be reused by an unrelated process later in the window.
                    tree.remove(event.childTgid)
                default:
                    break
                }
            }
            let lost = state.overflows.contains { $0 >= start }
            return ProcessCount(processes: processes, execs: execs, exact: complete && !lost)
        }
    }

    /// Drops the events no active run still needs.
    private func trim(_ state: inout State) {
        let keepFrom = state.active.values.min() ?? (state.base + state.events.count)
        let drop = keepFrom - state.base
        if drop > 0 {
            state.events.removeFirst(min(drop, state.events.count))
            state.base = keepFrom
        }
        state.overflows.removeAll { $0 < keepFrom }
    }
}
