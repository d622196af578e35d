import Foundation

/// A value that only its condition lock can reach: read and change it in `withLock`, or sleep in `wait` until
/// it satisfies a predicate (the NSCondition counterpart of `Mutex`, which cannot wait).
///
/// `@unchecked Sendable` because the compiler cannot see that `value` is touched only with `condition` held;
/// every access below holds it, and nothing else can reach `value`. This is the one place such a promise is made
/// for waiting, so the types that need to wait (`AuditSubscription`) stay checked.
final class ConditionBox<Value>: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: Value

    init(_ value: Value) { self.value = value }

    /// Runs `body` with the value under the lock and wakes every waiter afterwards.
    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        return try body(&value)
    }

    /// Sleeps until `ready(value)` is true or `deadline` passes, then runs `body` under the lock either way.
    func wait<Result>(until deadline: Date, for ready: (Value) -> Bool, then body: (inout Value) -> Result) -> Result {
        condition.lock()
        defer { condition.unlock() }
        while !ready(value) {
            if !condition.wait(until: deadline) { break }
        }
        return body(&value)
    }
}
