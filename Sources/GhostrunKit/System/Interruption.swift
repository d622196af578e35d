import Synchronization

/// Whether this ghostrun is stopping (SIGINT, SIGTERM or SIGHUP arrived). Set by the session's signal handler; long
/// loops of ghostrun's own (a fixture copy, a pattern search) read it and give up at their next step, so a signal
/// acts within a second in every phase, not only while a go command runs.
public enum Interruption {
    public static let requested = Atomic<Bool>(false)
}
