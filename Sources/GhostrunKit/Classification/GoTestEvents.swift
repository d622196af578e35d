import Foundation
import Synchronization

/// One `go test -json` (test2json) event. Only the fields the classifier reads are kept.
public struct GoTestEvent: Equatable, Sendable {
    public var action: String
    public var package: String?
    public var test: String?
    public var output: String?
    public var elapsed: Double?

    /// The string fields an event keeps.
    static let keptFields: Set<String> = ["Action", "Package", "Test", "Output", "ImportPath"]

    /// Decodes one event line, or nil when the line is not a flat test2json object (plain text, a
    /// truncated line). Hand-written because a run can print millions of events: this reads the bytes
    /// once and allocates only the fields it keeps, where `JSONDecoder` costs several times more.
    public static func decode<C: Collection>(_ line: C) -> GoTestEvent? where C.Element == UInt8, C.Index == Int {
        var reader = FlatJSONReader(bytes: line)
        return reader.event()
    }
}

/// A reader for the flat objects test2json writes: string, number, boolean and null values only.
struct FlatJSONReader<C: Collection> where C.Element == UInt8, C.Index == Int {
    let bytes: C
    var index: Int

    init(bytes: C) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    mutating func event() -> GoTestEvent? {
        skipSpace()
        guard take(UInt8(ascii: "{")) else { return nil }
        var event = GoTestEvent(action: "")
        var sawAction = false
        skipSpace()
        if take(UInt8(ascii: "}")) { return nil }
        while true {
            skipSpace()
            guard let key = key() else { return nil }
            skipSpace()
            guard take(UInt8(ascii: ":")) else { return nil }
            skipSpace()
            guard index < bytes.endIndex else { return nil }
            if bytes[index] == UInt8(ascii: "\"") {
                // `Time` and other fields the classifier does not read are skipped without building a String.
                guard GoTestEvent.keptFields.contains(key) else {
                    guard skipString() else { return nil }
                    skipSpace()
                    if take(UInt8(ascii: ",")) { continue }
                    if take(UInt8(ascii: "}")) { break }
                    return nil
                }
                guard let value = string() else { return nil }
                switch key {
                case "Action":
                    event.action = value
                    sawAction = true
                case "Package": event.package = value
                case "Test": event.test = value
                case "Output": event.output = value
                // Go 1.24+ reports build output under ImportPath (`build-output`, `build-fail`).
                case "ImportPath": if event.package == nil { event.package = value }
                default: break
                }
            } else {
                let start = index
                while index < bytes.endIndex, !isDelimiter(bytes[index]) { index += 1 }
                guard index > start else { return nil }
                if key == "Elapsed" {
                    event.elapsed = Double(String(decoding: bytes[start..<index], as: UTF8.self))
                }
            }
            skipSpace()
            if take(UInt8(ascii: ",")) { continue }
            if take(UInt8(ascii: "}")) { break }
            return nil
        }
        return sawAction ? event : nil
    }

    func isDelimiter(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: ",") || byte == UInt8(ascii: "}") || byte == UInt8(ascii: " ")
            || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
    }

    mutating func skipSpace() {
        while index < bytes.endIndex,
            bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\t")
                || bytes[index] == UInt8(ascii: "\r")
        {
            index += 1
        }
    }

    mutating func take(_ byte: UInt8) -> Bool {
        guard index < bytes.endIndex, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    /// A key: test2json's keys are short ASCII words, so they are read without unescaping.
    mutating func key() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = index
        while index < bytes.endIndex, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\") {
            index += 1
        }
        guard index < bytes.endIndex, bytes[index] == UInt8(ascii: "\"") else {
            index = start - 1
            return string()
        }
        defer { index += 1 }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    /// Steps over a JSON string at `index` without decoding it.
    mutating func skipString() -> Bool {
        guard take(UInt8(ascii: "\"")) else { return false }
        while index < bytes.endIndex {
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "\\") {
                index += 1
            } else if byte == UInt8(ascii: "\"") {
                return true
            }
        }
        return false
    }

    /// A JSON string at `index`, unescaped.
    mutating func string() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = index
        // Fast path: no escapes.
        while index < bytes.endIndex, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\") {
            index += 1
        }
        guard index < bytes.endIndex else { return nil }
        if bytes[index] == UInt8(ascii: "\"") {
            defer { index += 1 }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }
        var out = [UInt8](bytes[start..<index])
        while index < bytes.endIndex {
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            guard byte == UInt8(ascii: "\\") else {
                out.append(byte)
                continue
            }
            guard index < bytes.endIndex else { return nil }
            let escaped = bytes[index]
            index += 1
            switch escaped {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                guard var scalar = hex4() else { return nil }
                // A UTF-16 surrogate pair is written as two escapes.
                if (0xD800..<0xDC00).contains(scalar), index + 1 < bytes.endIndex,
                    bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                {
                    index += 2
                    guard let low = hex4() else { return nil }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low &- 0xDC00)
                }
                let character = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(character)).utf8))
            default: out.append(escaped)  // \" \\ \/
            }
        }
        return nil
    }

    mutating func hex4() -> UInt32? {
        guard index + 4 <= bytes.endIndex else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            index += 1
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: return nil
            }
            value = value << 4 | digit
        }
        return value
    }
}

/// The last `limit` bytes of a text, kept in a buffer that never grows past twice the limit, so a test
/// printing gigabytes costs the same memory as one printing a line.
struct BoundedTail {
    let limit: Int
    private var bytes: [UInt8] = []
    private(set) var dropped = 0

    init(limit: Int) { self.limit = limit }

    mutating func append(_ text: String) {
        bytes.append(contentsOf: text.utf8)
        if bytes.count > 2 * limit {
            let cut = bytes.count - limit
            dropped += cut
            bytes.removeFirst(cut)
        }
    }

    /// The tail, starting at a line boundary when the cut fell inside a line.
    var text: String { ResultBuilder.tail(String(decoding: bytes, as: UTF8.self), limit: limit) }

    var isEmpty: Bool { bytes.isEmpty }
}

/// Lines of `go test` output that decide an outcome. Pure text functions.
public enum GoTestText {
    /// What a line of test output announces.
    public enum Line: Equatable, Sendable {
        /// A Go runtime death (`fatal error:`, `SIGSYS: bad system call`, `runtime/cgo: …`).
        case runtimeDeath
        /// `panic: …` not yet known to be a crash: a goroutine header must follow.
        case panic
        /// `panic: test timed out after 2s`: go test's own alarm.
        case timeoutPanic
        /// `signal: killed`: the go command saw the test binary die by a signal.
        case signal(name: String)
        /// `--- FAIL: TestX (0.00s)` and the like (plain output).
        case testResult(GoTestOutcome, test: String, elapsedMs: Int?)
        /// `=== RUN   TestX` (plain output with -v).
        case testRun(String)
        /// `ok  \tpkg\t0.01s`, `FAIL\tpkg\t0.01s`, `?   \tpkg\t[no test files]` (plain output).
        case packageResult(GoTestOutcome, package: String, elapsedMs: Int?)
        case other
    }

    /// `strsignal` texts the go command prints for a test binary killed by a signal (`signal: killed`).
    static let signalTexts: [String: String] = [
        "killed": "SIGKILL", "bad system call": "SIGSYS", "aborted": "SIGABRT", "segmentation fault": "SIGSEGV",
        "bus error": "SIGBUS", "terminated": "SIGTERM", "quit": "SIGQUIT", "interrupt": "SIGINT",
        "illegal instruction": "SIGILL", "floating point exception": "SIGFPE", "trace/breakpoint trap": "SIGTRAP",
        "hangup": "SIGHUP", "user defined signal 1": "SIGUSR1", "user defined signal 2": "SIGUSR2",
        "broken pipe": "SIGPIPE", "alarm clock": "SIGALRM", "CPU time limit exceeded": "SIGXCPU",
        "file size limit exceeded": "SIGXFSZ",
    ]

    /// A cheap first look: only lines opening like these can be anything but `.other` or a goroutine header,
    /// so the millions of ordinary lines of a chatty test cost one byte comparison each.
    /// In test2json output the events carry the results, so only death, signal and timeout lines matter.
    static func mayMatter(_ line: String) -> Bool {
        guard let first = line.utf8.first else { return false }
        switch first {
        case UInt8(ascii: "p"), UInt8(ascii: "f"), UInt8(ascii: "S"), UInt8(ascii: "r"), UInt8(ascii: "s"),
            UInt8(ascii: "u"), UInt8(ascii: "g"):
            return true
        default:
            return false
        }
    }

    public static func classify(_ line: String) -> Line {
        if line.hasPrefix("panic: test timed out after") { return .timeoutPanic }
        if line.hasPrefix("panic: ") || line == "panic:" {
            // testing's tRunner re-panics a test's panic with `[recovered]`: the test failed, and is named.
            return line.hasSuffix("[recovered]") ? .other : .panic
        }
        if StderrReading.deathOpenings.contains(where: { line.hasPrefix($0) }) { return .runtimeDeath }
        if line.hasPrefix("signal: "), let name = signalTexts[String(line.dropFirst("signal: ".count))] {
            return .signal(name: name)
        }
        if line.hasPrefix("=== RUN   ") { return .testRun(String(line.dropFirst("=== RUN   ".count))) }
        let trimmed = line.drop(while: { $0 == " " })
        for (prefix, outcome) in [("--- FAIL: ", GoTestOutcome.fail), ("--- PASS: ", .pass), ("--- SKIP: ", .skip)]
        where trimmed.hasPrefix(prefix) {
            let rest = trimmed.dropFirst(prefix.count)
            let name = rest.prefix(while: { $0 != " " })
            return .testResult(outcome, test: String(name), elapsedMs: parenthesizedSeconds(rest))
        }
        let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
        if fields.count >= 2 {
            let head = fields[0].trimmingCharacters(in: .whitespaces)
            let package = String(fields[1])
            let elapsed = fields.count >= 3 ? seconds(fields[2]) : nil
            switch head {
            case "ok":
                return .packageResult(.pass, package: package, elapsedMs: elapsed)
            case "FAIL":
                return .packageResult(.fail, package: package, elapsedMs: elapsed)
            case "?":
                return .packageResult(.skip, package: package, elapsedMs: nil)
            default: break
            }
        }
        // `FAIL example.com/x [build failed]` uses a space, not a tab.
        if line.hasPrefix("FAIL "), line.hasSuffix(" failed]"), let space = line.dropFirst(5).firstIndex(of: " ") {
            return .packageResult(
                .fail, package: String(line[line.index(line.startIndex, offsetBy: 5)..<space]),
                elapsedMs: nil)
        }
        return .other
    }

    /// `(0.25s)` → 250.
    static func parenthesizedSeconds(_ text: Substring) -> Int? {
        guard let open = text.firstIndex(of: "("), let close = text[open...].firstIndex(of: ")") else { return nil }
        return seconds(text[text.index(after: open)..<close])
    }

    /// `0.015s` → 15.
    static func seconds(_ text: Substring) -> Int? {
        guard text.hasSuffix("s"), let value = Double(text.dropLast()) else { return nil }
        return Int((value * 1000).rounded())
    }

    /// Whether a line says something about why a test failed, rather than framing (`=== RUN`, `--- FAIL`,
    /// `FAIL`, blank) or a dump line.
    static func isMessage(_ line: String) -> Bool {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty || trimmed == "FAIL" || trimmed == "PASS" { return false }
        for framing in ["=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- FAIL", "--- PASS", "--- SKIP"]
        where trimmed.hasPrefix(framing) {
            return false
        }
        return !StderrReading.isDumpLine(line) && !StderrReading.isGoroutineHeader(line)
    }
}

/// Reads `go test` output as it arrives, test2json events or plain text, keeping per package and per
/// test only an outcome, an elapsed time, a headline and a bounded output tail.
///
/// Fed from the output reader's thread and finished by the runner afterwards, so its state sits
/// behind a lock. Memory is bounded whatever the run prints: partial lines are cut at `maxLineBytes`,
/// tails at `tailBytes`, and past `maxRecords` passed tests are counted instead of kept.
public final class GoTestStream: Sendable {
    /// Output kept per test (and per package, for output outside tests).
    public static let tailBytes = GoTestParser.tailBytes
    public static let maxLineBytes = GoTestParser.maxLineBytes
    public static let maxRecords = GoTestParser.maxRecords

    private let parser: Mutex<GoTestParser>

    /// - Parameter plainTextLimit: how much of the reconstructed plain output (`Output` of each event) to keep.
    public init(plainTextLimit: Int = 1 << 20) {
        parser = Mutex(GoTestParser(plainTextLimit: plainTextLimit))
    }

    /// Feeds a chunk of stdout as read from the pipe; lines may span chunks.
    public func feed<C: Collection>(_ chunk: C) where C.Element == UInt8 {
        let bytes = chunk.withContiguousStorageIfAvailable { Array($0) } ?? Array(chunk)
        parser.withLock { $0.feed(bytes) }
    }

    /// What the output showed, with the last unterminated line read too.
    public func finish() -> GoTestRun { parser.withLock { $0.finish() } }

    /// The output as plain `go test` would have printed it (the `Output` of each event, or the text itself),
    /// with the first diagnostic lines and the last `plainTextLimit` bytes kept.
    public var plainText: String { parser.withLock { $0.plain.text } }

    /// Whether any line was a test2json event.
    public var sawEvents: Bool { parser.withLock { $0.sawEvent } }
}

/// The parser behind `GoTestStream`, used only with the stream's lock held.
final class GoTestParser {
    /// Output kept per test (and per package, for output outside tests).
    public static let tailBytes = 2048
    /// Output kept for a test that passed or was skipped: its output rarely matters.
    public static let passedTailBytes = 256
    public static let maxLineBytes = 256 << 10
    public static let maxRecords = 20_000

    private final class TestState {
        var outcome: GoTestOutcome?
        var elapsedMs: Int?
        var tail = BoundedTail(limit: GoTestParser.tailBytes)
        var headline: String?
        var order: Int
        init(order: Int) { self.order = order }
    }

    private final class PackageState {
        let name: String
        var tests: [String: TestState] = [:]
        var testOrder: [String] = []
        var outcome: GoTestOutcome?
        var elapsedMs: Int?
        var tail = BoundedTail(limit: GoTestParser.tailBytes)
        /// The first runtime death (or confirmed panic) line, and whether it was a panic awaiting its goroutine.
        var death: String?
        var pendingPanic: String?
        var signal: (name: String, line: String)?
        var timeout: String?
        var timeoutRunningList: [String] = []
        var readingRunningList = false
        var spinning = false
        var goroutinesAfterTimeout = 0
        /// The test output was last attributed to (plain output has no test field).
        var currentTest: String?
        init(name: String) { self.name = name }
    }

    private var partial: [UInt8] = []
    private var skippingLongLine = false
    private var packages: [String: PackageState] = [:]
    private var packageOrder: [String] = []
    /// Plain output: tests reported before their package's result line belong to the next package named.
    private var pendingPlain = PackageState(name: "")
    fileprivate(set) var sawEvent = false
    private var sawPlainLine = false
    private var recordCount = 0
    private var omittedPassed = 0
    private var nextOrder = 0
    fileprivate(set) var plain: PlainTextBuffer

    init(plainTextLimit: Int) {
        plain = PlainTextBuffer(tailLimit: plainTextLimit)
    }

    func feed(_ bytes: [UInt8]) {
        var start = 0
        while start < bytes.count {
            let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n"))
            let end = newline ?? bytes.count
            if !skippingLongLine {
                if partial.isEmpty, newline != nil {
                    handleLine(bytes[start..<end])  // the common case: a whole line inside the chunk
                } else {
                    partial.append(
                        contentsOf: bytes[start..<min(end, start + GoTestParser.maxLineBytes - partial.count)])
                    if newline != nil {
                        handleLine(partial[...])
                        partial.removeAll(keepingCapacity: true)
                    } else if partial.count >= GoTestParser.maxLineBytes {
                        // A line this long is no event and no headline; its start is kept as text, the rest dropped.
                        handleLine(partial[...])
                        partial.removeAll(keepingCapacity: true)
                        skippingLongLine = true
                    }
                }
            }
            if newline != nil { skippingLongLine = false }
            start = end + 1
        }
    }

    func finish() -> GoTestRun {
        if !partial.isEmpty, !skippingLongLine {
            handleLine(partial[...])
            partial.removeAll()
        }
        return snapshot()
    }

    // MARK: - Lines

    private func handleLine(_ bytes: ArraySlice<UInt8>) {
        var line = bytes
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        if line.first == UInt8(ascii: "{"), let event = GoTestEvent.decode(line) {
            sawEvent = true
            handle(event)
            return
        }
        let text = String(decoding: line, as: UTF8.self)
        plain.append(text + "\n", headline: TailWithHeadlines.isHeadline(text))
        sawPlainLine = true
        handlePlain(text)
    }

    private func package(_ name: String) -> PackageState {
        if let state = packages[name] { return state }
        let state = PackageState(name: name)
        packages[name] = state
        packageOrder.append(name)
        return state
    }

    private func test(_ name: String, in package: PackageState) -> TestState {
        if let state = package.tests[name] { return state }
        let state = TestState(order: nextOrder)
        nextOrder += 1
        package.tests[name] = state
        package.testOrder.append(name)
        recordCount += 1
        return state
    }

    private func handle(_ event: GoTestEvent) {
        let packageName = event.package ?? ""
        let state = package(packageName)
        switch event.action {
        case "run":
            if let name = event.test { _ = test(name, in: state) }
        case "output", "build-output":
            guard let output = event.output else { return }
            let target = event.test.map { test($0, in: state) }
            // test2json writes one line (or a piece of a long one) per event.
            let line = output.hasSuffix("\n") ? String(output.dropLast()) : output
            let interesting = GoTestText.mayMatter(line) || (target != nil && target!.headline == nil)
            plain.append(output, headline: interesting && TailWithHeadlines.isHeadline(line))
            if interesting || state.readingRunningList {
                read(line, package: state, test: target, testName: event.test)
            }
            if let target { target.tail.append(output) } else { state.tail.append(output) }
        case "pass", "fail", "skip":
            let outcome = GoTestOutcome(rawValue: event.action)!
            let elapsed = event.elapsed.map { Int(($0 * 1000).rounded()) }
            if let name = event.test {
                end(name, outcome: outcome, elapsedMs: elapsed, in: state)
            } else {
                state.outcome = outcome
                state.elapsedMs = elapsed
            }
        case "build-fail":
            state.outcome = .fail
        default:
            break  // start, pause, cont, bench
        }
    }

    private func end(_ name: String, outcome: GoTestOutcome, elapsedMs: Int?, in state: PackageState) {
        let test = test(name, in: state)
        test.outcome = outcome
        if let elapsedMs { test.elapsedMs = elapsedMs }
        if outcome != .fail {
            var tail = BoundedTail(limit: GoTestParser.passedTailBytes)
            tail.append(test.tail.text)
            test.tail = tail
            if recordCount > GoTestParser.maxRecords {
                state.tests[name] = nil
                if state.testOrder.last == name {
                    state.testOrder.removeLast()
                } else {
                    state.testOrder.removeAll { $0 == name }
                }
                recordCount -= 1
                omittedPassed += 1
            }
        }
    }

    /// Reads one line of a package's output (in a test when `test` is set) for headlines and deaths.
    private func read(_ line: String, package state: PackageState, test target: TestState?, testName: String?) {
        if state.readingRunningList {
            // Go 1.21+: `running tests:` then one `\tTestX (2s)` line per test.
            if line.hasPrefix("\t"), let name = line.dropFirst().split(separator: " ").first {
                state.timeoutRunningList.append(String(name))
                return
            }
            state.readingRunningList = false
        }
        if state.timeout != nil, line == "running tests:" {
            state.readingRunningList = true
            return
        }
        switch GoTestText.classify(line) {
        case .timeoutPanic:
            if state.timeout == nil { state.timeout = line }
        case .panic:
            if state.death == nil, state.pendingPanic == nil { state.pendingPanic = line }
        case .runtimeDeath:
            if state.death == nil { state.death = line }
        case .signal(let name):
            if state.signal == nil { state.signal = (name, line) }
        default:
            if StderrReading.isGoroutineHeader(line) {
                if let panicLine = state.pendingPanic, state.death == nil {
                    state.death = panicLine
                    state.pendingPanic = nil
                }
                // The first goroutine after the alarm's panic is the alarm's own (`testing.(*M).startAlarm`, running);
                // any other on a CPU means a test in a busy loop rather than waiting.
                if state.timeout != nil {
                    state.goroutinesAfterTimeout += 1
                    if state.goroutinesAfterTimeout > 1, line.hasSuffix("[running]:") || line.hasSuffix("[runnable]:") {
                        state.spinning = true
                    }
                }
            }
        }
        if let target, target.headline == nil, GoTestText.isMessage(line) {
            target.headline = line.trimmingCharacters(in: .whitespaces)
        }
    }

    // MARK: - Plain output

    private func handlePlain(_ line: String) {
        // Plain output names no package until its result line: gather into `pendingPlain` until then.
        let state = pendingPlain
        switch GoTestText.classify(line) {
        case .testRun(let name):
            state.currentTest = name
            _ = test(name, in: state)
        case .testResult(let outcome, let name, let elapsed):
            end(name, outcome: outcome, elapsedMs: elapsed, in: state)
            state.currentTest = name
        case .packageResult(let outcome, let name, let elapsed):
            let target = package(name)
            target.outcome = outcome
            target.elapsedMs = elapsed
            merge(state, into: target)
            pendingPlain = PackageState(name: "")
            return
        default:
            break
        }
        // Output under `--- FAIL: TestX` (indented) is that test's; anything else is the binary's.
        let target = state.currentTest.flatMap { name in
            line.hasPrefix("    ") || line.hasPrefix("=== RUN") || line.hasPrefix("--- ") ? state.tests[name] : nil
        }
        read(line, package: state, test: target, testName: state.currentTest)
        if let target { target.tail.append(line + "\n") } else { state.tail.append(line + "\n") }
    }

    private func merge(_ source: PackageState, into target: PackageState) {
        for name in source.testOrder {
            guard let test = source.tests[name] else { continue }
            target.tests[name] = test
            target.testOrder.append(name)
        }
        target.tail = source.tail
        target.death = target.death ?? source.death
        target.pendingPanic = target.pendingPanic ?? source.pendingPanic
        target.signal = target.signal ?? source.signal
        target.timeout = target.timeout ?? source.timeout
        target.timeoutRunningList += source.timeoutRunningList
        target.spinning = target.spinning || source.spinning
    }

    // MARK: - Result

    private func snapshot() -> GoTestRun {
        var records: [GoTestRecord] = []
        var running: [GoTestName] = []
        var timeouts: [GoTestTimeout] = []
        var states = packageOrder.compactMap { packages[$0] }
        // Plain output cut off before a package line (a hang): what was gathered belongs to an unknown package.
        if !pendingPlain.testOrder.isEmpty || pendingPlain.death != nil || pendingPlain.timeout != nil {
            states.append(pendingPlain)
        }
        for state in states where !(state.name.isEmpty && state.testOrder.isEmpty && state.death == nil) {
            let ended = state.outcome != nil
            let died = state.death != nil || state.signal != nil
            var packageOutcome = state.outcome
            var headline: String?
            if state.timeout == nil, died, state.outcome != .pass {
                packageOutcome = .crash
                headline = state.death ?? state.signal?.line
            } else if let timeout = state.timeout {
                headline = timeout
            }
            let unfinished = state.testOrder.filter { state.tests[$0]?.outcome == nil }
            // The binary ended in the middle of a test without a word (measured on Go 1.19 under a seccomp trap: no
            // traceback, no `signal:` line, just `FAIL`): it died, as surely as with a traceback.
            if state.outcome == .fail, state.timeout == nil, !died, let test = unfinished.last {
                packageOutcome = .crash
                headline = "\(GoTestRecord.binaryName(of: state.name)) exited during \(test) without a message"
            }
            if let timeout = state.timeout {
                let named = state.timeoutRunningList.isEmpty ? unfinished : state.timeoutRunningList
                timeouts.append(
                    GoTestTimeout(
                        package: state.name, headline: timeout, running: named,
                        spinning: state.spinning))
            }
            if let packageOutcome {
                records.append(
                    GoTestRecord(
                        package: state.name, test: nil, outcome: packageOutcome,
                        elapsedMs: state.elapsedMs, outputTail: state.tail.text,
                        headline: headline))
            }
            for name in state.testOrder {
                guard let test = state.tests[name] else { continue }
                if let outcome = test.outcome {
                    records.append(
                        GoTestRecord(
                            package: state.name, test: name, outcome: outcome,
                            elapsedMs: test.elapsedMs, outputTail: test.tail.text,
                            headline: outcome == .fail ? test.headline : nil))
                } else if ended {
                    // The binary ended while the test ran (a crash or the timeout's panic): it did not pass.
                    let why = headline ?? test.headline
                    records.append(
                        GoTestRecord(
                            package: state.name, test: name, outcome: .fail,
                            elapsedMs: test.elapsedMs, outputTail: test.tail.text, headline: why))
                } else {
                    running.append(GoTestName(package: state.name, test: name))
                }
            }
        }
        return GoTestRun(
            records: records, running: running, timeouts: timeouts, omittedPassed: omittedPassed,
            json: sawEvent || !sawPlainLine)
    }
}

/// The plain text of a run's stdout, bounded: the first diagnostic lines (so the headline of a crash early in
/// a long run survives) and the last `tailLimit` bytes.
struct PlainTextBuffer {
    static let headLimit = 4096
    let tailLimit: Int
    private var head: [String] = []
    private var headBytes = 0
    private var tail: [UInt8] = []
    private var total = 0

    init(tailLimit: Int) { self.tailLimit = tailLimit }

    /// Appends one line (with its newline); `headline` says whether it is one to keep from the start.
    mutating func append(_ text: String, headline: Bool) {
        total += text.utf8.count
        tail.append(contentsOf: text.utf8)
        if tail.count > 2 * tailLimit { tail.removeFirst(tail.count - tailLimit) }
        if headline, headBytes < PlainTextBuffer.headLimit {
            let line = text.hasSuffix("\n") ? String(text.dropLast()) : text
            head.append(line)
            headBytes += line.utf8.count + 1
        }
    }

    var text: String {
        let tailText = String(decoding: tail.suffix(tailLimit), as: UTF8.self)
        guard total > tailLimit else { return tailText }
        let kept = head.filter { !tailText.contains($0) }
        guard !kept.isEmpty else { return ResultBuilder.tail(tailText, limit: tailLimit) }
        return kept.joined(separator: "\n") + "\n… output omitted …\n" + ResultBuilder.tail(tailText, limit: tailLimit)
    }
}
