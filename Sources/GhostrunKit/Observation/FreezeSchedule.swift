import Foundation

/// The freeze schedule of one run (`sandbox.cgroup.freeze`): steps in order, each armed when the previous one
/// thawed. The monitor asks it twice per round: before sampling with no new processes, so a due time-based step
/// (`after: 0ms`) freezes even a run that ends before its first sample, and after sampling with the processes that
/// appeared, for `on_process` steps.
struct FreezeSchedule {
    private var steps: [FreezeStep]
    private var index = 0
    private var frozenAt: ContinuousClock.Instant?
    private var stepArmedAt: ContinuousClock.Instant

    init(steps: [FreezeStep], start: ContinuousClock.Instant) {
        self.steps = steps
        self.stepArmedAt = start
    }

    enum Action { case freeze, thaw }

    /// What to do now, given the time and the processes that appeared since the last call.
    mutating func next(now: ContinuousClock.Instant, newProcessNames: [String]) -> Action? {
        guard index < steps.count else { return nil }
        let step = steps[index]
        if let frozenAt {
            guard let hold = step.hold, now - frozenAt >= hold else { return nil }
            self.frozenAt = nil
            index += 1
            stepArmedAt = now
            return .thaw
        }
        let due: Bool
        switch step.trigger {
        case .after(let delay): due = now - stepArmedAt >= delay
        case .onProcess(let name): due = newProcessNames.contains(name)
        }
        guard due else { return nil }
        frozenAt = now
        return .freeze
    }

    /// Whether the current step is holding the cgroup frozen.
    var isHolding: Bool { frozenAt != nil }
}
