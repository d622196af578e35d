import Synchronization

/// Whether this ghostrun is stopping (SIGINT, SIGTERM or SIGHUP arrived): the one flag for it. Set by the session's
/// signal handler; long loops of ghostrun's own (a fixture copy, a pattern search over a scenario's regex) read it
/// and give up at their next step, so a signal acts within a second in every phase, not only while a go command
/// runs. A new session resets it (`RunSession.handleSignals`).
public enum Interruption {
    private static let requested = Atomic<Bool>(false)

    public static var isRequested: Bool { requested.load(ordering: .relaxed) }

    public static func request() { requested.store(true, ordering: .relaxed) }

    public static func reset() { requested.store(false, ordering: .relaxed) }
}
