import Foundation

/// A process named by what it is, not by its pid: the program and its arguments, with the parts that differ from
/// run to run (the run's temporary root, the go command's `go-build123…` directory) replaced by stable names, and
/// an occurrence number for a second process with the same command line. Two runs of one scenario give the same
/// processes the same identities, whatever pids they got and in whatever order concurrent processes started, so a
/// seeded fault can be decided from it (`CompiledFault.decide`).
///
/// Examples: `compile -p fmt`, `link -o $WORK/tmp/go-build*/b001/exe/a.out ...` (the `b001` numbers come from the go
/// command's action graph, which does not depend on scheduling).
struct ProcessIdentity {
    /// The run's temporary root (its `$WORK` and `GOTMPDIR` live below it) and the toolchain's root.
    let workRoot: String
    let goroot: String
    /// Processes seen per command line: the second one with the same command line is `#2`.
    private var occurrences: [String: Int] = [:]

    init(workRoot: String, goroot: String) {
        self.workRoot = workRoot
        self.goroot = goroot
    }

    /// The identity of a process that has just been seen (or has just exec'd), from its `cmdline` and `exe`.
    mutating func name(arguments: [String], exe: String?) -> String {
        let base = commandLine(arguments: arguments, exe: exe)
        let count = occurrences[base, default: 0] + 1
        occurrences[base] = count
        return count == 1 ? base : base + " #\(count)"
    }

    /// The normalised command line: the program's base name, then each argument with the run's paths replaced. A
    /// toolchain tool that names its package (`compile -p fmt`, `asm -p runtime`) is named by it; another command
    /// line longer than `maxLength` keeps its start and a digest of the whole.
    func commandLine(arguments: [String], exe: String?) -> String {
        let program = (exe ?? arguments.first).map { ($0 as NSString).lastPathComponent } ?? "?"
        let rest = arguments.dropFirst().map(normalised)
        if let flag = rest.firstIndex(of: "-p"), flag + 1 < rest.endIndex {
            return "\(program) -p \(rest[flag + 1])"
        }
        let whole = ([program] + rest).joined(separator: " ")
        guard whole.count > ProcessIdentity.maxLength else { return whole }
        return String(whole.prefix(ProcessIdentity.maxLength)) + "… #"
            + String(FaultMatcher.fnv1a(whole), radix: 16)
    }

    static let maxLength = 160

    func normalised(_ argument: String) -> String {
        var text = argument
        if !workRoot.isEmpty { text = text.replacingOccurrences(of: workRoot, with: "$WORK") }
        if !goroot.isEmpty { text = text.replacingOccurrences(of: goroot, with: "$GOROOT") }
        return ProcessIdentity.replaceBuildDirectories(text)
    }

    /// `go-build1234567890` (the go command's temporary directory, named from a random number) → `go-build*`.
    static func replaceBuildDirectories(_ text: String) -> String {
        guard text.contains("go-build") else { return text }
        var result = ""
        var rest = Substring(text)
        while let range = rest.range(of: "go-build") {
            result += rest[..<range.upperBound]
            rest = rest[range.upperBound...]
            let digits = rest.prefix(while: \.isNumber)
            if !digits.isEmpty {
                result += "*"
                rest = rest.dropFirst(digits.count)
            }
        }
        return result + rest
    }

    /// `/proc/PID/cmdline` split at its NULs (empty for a zombie or a kernel thread).
    static func arguments(pid: Int32) -> [String] {
        guard let text = ProcFiles.read("/proc/\(pid)/cmdline", limit: 256 * 1024) else { return [] }
        return text.split(separator: "\u{0}", omittingEmptySubsequences: false).map(String.init)
            .reversed().drop(while: \.isEmpty).reversed()
    }
}
