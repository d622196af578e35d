/// The order in which a matrix's entries start (`run --order`). Reports keep the matrix order (scenario name, then
/// Go version) whatever it is; only execution changes, so a CI job can show that results do not depend on which run
/// came first.
public enum RunOrder: Sendable, Equatable, CustomStringConvertible {
    case given
    case reverse
    /// A permutation fixed by the seed (SplitMix64 driving a Fisher–Yates shuffle): the same seed, the same order.
    case shuffle(seed: UInt64)

    /// Parses `given`, `reverse`, `shuffle` (a seed drawn now, printed so the order can be repeated) or
    /// `shuffle:SEED`; nil for anything else.
    public static func parse(_ text: String, randomSeed: () -> UInt64 = { UInt64.random(in: 0...UInt64(UInt32.max)) })
        -> RunOrder?
    {
        switch text {
        case "given": return .given
        case "reverse": return .reverse
        case "shuffle": return .shuffle(seed: randomSeed())
        default:
            guard text.hasPrefix("shuffle:"), let seed = UInt64(text.dropFirst("shuffle:".count)) else { return nil }
            return .shuffle(seed: seed)
        }
    }

    public var description: String {
        switch self {
        case .given: "given"
        case .reverse: "reverse"
        case .shuffle(let seed): "shuffle:\(seed)"
        }
    }

    /// `items` in this order.
    public func apply<T>(_ items: [T]) -> [T] {
        switch self {
        case .given: return items
        case .reverse: return items.reversed()
        case .shuffle(let seed):
            var state = seed
            func next() -> UInt64 {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                return z ^ (z >> 31)
            }
            var result = items
            guard result.count > 1 else { return result }
            for i in stride(from: result.count - 1, to: 0, by: -1) {
                let j = Int(next() % UInt64(i + 1))
                result.swapAt(i, j)
            }
            return result
        }
    }
}
