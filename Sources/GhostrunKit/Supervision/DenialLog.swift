/// Denials of one run in bounded memory: the first `perKey` denials of each (syscall, action, errno, source) are
/// kept as they came, and every later one is counted exactly into one closing record (`Denial.repeated`) that
/// carries the last such denial's fields. A program making 2 M injected calls used to keep 2 M records
/// (3.37 GB RSS, a 769 MB report); now the report holds at most `perKey + 1` records per key.
struct DenialLog {
    private struct Key: Hashable {
        var syscall: String
        var action: String
        var errno: String?
        var source: String
    }

    /// Denials kept individually per key.
    static let defaultPerKey = 100

    let perKey: Int
    private var kept: [Denial] = []
    private var counts: [Key: Int] = [:]
    /// Key → the closing record (the latest denial past `perKey`, with `repeated` set).
    private var overflow: [Key: Denial] = [:]

    init(perKey: Int = DenialLog.defaultPerKey) {
        self.perKey = perKey
    }

    mutating func append(_ denial: Denial) {
        let key = Key(syscall: denial.syscall, action: denial.action, errno: denial.errno, source: denial.source)
        let count = counts[key, default: 0] + 1
        counts[key] = count
        if count <= perKey {
            kept.append(denial)
        } else {
            var closing = denial
            closing.repeated = count - perKey
            overflow[key] = closing
        }
    }

    /// Every denial seen, counted: `kept.count + sum(repeated)`.
    var total: Int { counts.values.reduce(0, +) }

    /// The kept denials followed by the closing records, in time order.
    var denials: [Denial] {
        (kept + overflow.values).enumerated().sorted { a, b in
            (a.element.timeMs, a.offset) < (b.element.timeMs, b.offset)
        }.map(\.element)
    }
}
