import Foundation

/// `GHOSTRUN_TIMING=1`: one stderr line per run with the time each phase took (work tree, preparation, plan,
/// cgroup, the run itself, classification, teardown), to find where ghostrun's fixed cost per run goes.
struct PhaseTimer {
    static let enabled = ProcessInfo.processInfo.environment["GHOSTRUN_TIMING"] == "1"
    private var last = ContinuousClock.now
    private var phases: [(String, Duration)] = []
    let label: String

    init(_ label: String) { self.label = label }

    mutating func mark(_ phase: String) {
        guard PhaseTimer.enabled else { return }
        let now = ContinuousClock.now
        phases.append((phase, now - last))
        last = now
    }

    func report() {
        guard PhaseTimer.enabled else { return }
        let parts = phases.map { phase, duration in
            let (seconds, attoseconds) = duration.components
            return phase + " " + String(format: "%.1f", Double(seconds) * 1000 + Double(attoseconds) / 1e15)
        }
        FileHandle.standardError.write(Data("timing \(label) (ms): \(parts.joined(separator: ", "))\n".utf8))
    }
}
