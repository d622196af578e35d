import Foundation

extension Duration {
    /// Whole milliseconds, rounded down.
    public var milliseconds: Int {
        let parts = components
        return Int(parts.seconds) * 1000 + Int(parts.attoseconds / 1_000_000_000_000_000)
    }
    public var timeInterval: TimeInterval { Double(milliseconds) / 1000 }
}

/// The longest duration a scenario may give (7 days): longer ones are typos, and past ~9.2e18 ms the conversion to
/// `Duration` would trap.
public let largestDuration: Duration = .seconds(7 * 24 * 3600)

/// Parses `300ms`, `2s`, `1.5s`, `1m`, `2h`; nil when malformed, negative or longer than `largestDuration`.
public func parseDuration(_ text: String) -> Duration? {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
    for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
        let number = trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
        // Digits and one dot only: Double() also takes "inf", "nan", "1e400" and hexadecimal.
        guard !number.isEmpty, number.allSatisfy({ ($0.isASCII && $0.isNumber) || $0 == "." }),
            let value = Double(number), value >= 0, value.isFinite
        else { return nil }
        let milliseconds = (value * factor).rounded()
        guard milliseconds <= Double(largestDuration.milliseconds) else { return nil }
        return .milliseconds(Int(milliseconds))
    }
    return nil
}

/// Parses `512MiB`, `64KiB`, `1GiB`, `4096`, also `M`/`MB`-style suffixes as binary units; nil when malformed.
public func parseSize(_ text: String) -> UInt64? {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    let units: [(String, UInt64)] = [
        ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
        ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("B", 1),
    ]
    for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
        let number = trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
        guard let value = UInt64(number) else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: factor)
        return overflow ? nil : product
    }
    return UInt64(trimmed)
}

/// Whether `text` is a well-formed duration that `parseDuration` refused only for its length.
func exceedsDurationLimit(_ text: String) -> Bool {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    for suffix in ["ms", "s", "m", "h"] where trimmed.hasSuffix(suffix) {
        let number = trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
        guard !number.isEmpty, number.allSatisfy({ ($0.isASCII && $0.isNumber) || $0 == "." }),
            let value = Double(number), value.isFinite, value > 0
        else { return false }
        return parseDuration(trimmed) == nil
    }
    return false
}
