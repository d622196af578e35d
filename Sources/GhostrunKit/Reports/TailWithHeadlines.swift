import Foundation

/// A bounded excerpt of a long output that keeps its first diagnostic lines as well as its end.
///
/// `go test` and `go run` put a test binary's or program's crash on stdout, and the register and goroutine
/// dump that follows the headline (`SIGABRT: abort`, `fatal error: …`) easily fills the last few KiB, so the
/// end alone loses the one line that says what happened.
public enum TailWithHeadlines {
    /// How many headline lines an excerpt keeps at most.
    public static let maxHeadlines = 8

    /// Lines worth keeping from anywhere in the output: the Go runtime's death openings, `panic:`,
    /// `fatal error:`, go test's `FAIL` lines and `signal: …` reports of a killed test binary.
    public static func isHeadline(_ line: String) -> Bool {
        if line.hasPrefix("panic: ") || line.hasPrefix("--- FAIL: ") || line.hasPrefix("FAIL\t") || line == "FAIL"
            || line.hasPrefix("FAIL ") || line.hasPrefix("signal: ") || line.hasPrefix("runtime: ")
        {
            return true
        }
        return StderrReading.deathOpenings.contains(where: { line.hasPrefix($0) })
    }

    /// The text itself when it fits in `limit` bytes; else the first headline lines that the tail does not
    /// already show (at most `maxHeadlines`), a marker with the omitted size, and the tail.
    public static func excerpt(_ text: String, limit: Int = ResultBuilder.tailBytes) -> String {
        guard text.utf8.count > limit else { return text }
        var headlines: [String] = []
        var headBytes = 0
        for line in StderrReading.lines(text) where isHeadline(line) {
            // A bare `FAIL` says nothing the package line does not.
            if line == "FAIL" || headlines.contains(line) { continue }
            let kept = line.utf8.count > 200 ? String(line.prefix(200)) + "…" : line
            headlines.append(kept)
            headBytes += kept.utf8.count + 1
            if headlines.count >= maxHeadlines || headBytes > limit / 4 { break }
        }
        var tailText = ResultBuilder.tail(text, limit: limit - headBytes)
        let shown = headlines.filter { !tailText.contains($0) }
        if shown.isEmpty { return ResultBuilder.tail(text, limit: limit) }
        let shownBytes = shown.reduce(0) { $0 + $1.utf8.count + 1 }
        tailText = ResultBuilder.tail(text, limit: limit - shownBytes)
        let omitted = text.utf8.count - tailText.utf8.count
        return shown.joined(separator: "\n") + "\n… \(omitted) bytes omitted or shown above …\n" + tailText
    }
}
