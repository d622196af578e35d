import Foundation

/// A Go runtime death found in stderr: the line that announces it and where it is.
public struct RuntimeDeath: Equatable, Sendable {
    /// The announcing line, e.g. `SIGSYS: bad system call` or `fatal error: runtime: eventfd failed`.
    public var headline: String
    /// Index of `headline` among stderr's lines.
    public var lineIndex: Int
    /// The `# example.com/x` header printed by the go command before a child tool's output, if the
    /// death follows one: then the traceback is the child's, not the go command's.
    public var packageHeader: String?
    /// The toolchain component the traceback's frames belong to (`compile`, `link`, ...), if any.
    public var tool: String?
}

/// Reading the go command's stderr. Pure text functions: the classifier must work on recorded output.
public enum StderrReading {
    /// Splits into lines without the trailing newline, keeping empty lines so indices stay meaningful.
    public static func lines(_ text: String) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
        }
    }

    /// Whether `text` holds nothing but whitespace: such stderr tells the user nothing.
    public static func isBlank(_ text: String) -> Bool {
        text.allSatisfy { $0.isWhitespace }
    }

    // MARK: - Go runtime deaths

    /// Line openings with which the Go runtime announces its own death (runtime/panic.go, signal_unix.go,
    /// runtime/cgo/gcc_libinit.c). They appear at column 0 even when the go command relays a child's stderr.
    static let deathOpenings: [String] = [
        "fatal error:",
        "SIGSYS: bad system call",
        "SIGABRT: abort",
        "SIGSEGV: segmentation violation",
        "SIGBUS: bus error",
        "SIGILL: illegal instruction",
        "SIGFPE: floating-point exception",
        "SIGTRAP: trace trap",
        "runtime/cgo: pthread_create failed",
        "runtime/cgo: out of memory",
        "unexpected signal during runtime execution",
    ]

    /// Finds the first Go runtime death in stderr.
    ///
    /// A `panic:` line counts only when a goroutine trace follows, because programs and tools print
    /// the word "panic:" in ordinary messages too, while a real unrecovered panic always dumps its
    /// goroutine. A `runtime: ...` line counts only when `fatal error` follows: that pair is how the
    /// runtime reports resource failures (`runtime: eventfd failed with ...`, `runtime: failed to create
    /// new OS thread`), and the first line of the pair says more than the `fatal error` line does.
    public static func runtimeDeath(in stderr: String) -> RuntimeDeath? {
        let all = lines(stderr)
        for (index, line) in all.enumerated() {
            let isDeath: Bool
            if deathOpenings.contains(where: { line.hasPrefix($0) }) {
                isDeath = true
            } else if line.hasPrefix("panic: ") || line == "panic:" {
                isDeath = all[(index + 1)...].contains(where: isGoroutineHeader)
            } else if line.hasPrefix("runtime: ") {
                isDeath = all[(index + 1)...].contains(where: { $0.hasPrefix("fatal error") })
            } else {
                isDeath = false
            }
            guard isDeath else { continue }
            let header = packageHeader(before: index, in: all)
            let traceback = all[index...].joined(separator: "\n")
            return RuntimeDeath(
                headline: line, lineIndex: index, packageHeader: header, tool: toolInTraceback(traceback))
        }
        return nil
    }

    /// `goroutine 1 [running]:` or Go 1.23's `goroutine 0 gp=0x... m=0 mp=0x... [idle]:`.
    static func isGoroutineHeader(_ line: String) -> Bool {
        guard line.hasPrefix("goroutine ") else { return false }
        let rest = line.dropFirst("goroutine ".count)
        guard let first = rest.first, first.isNumber else { return false }
        return line.hasSuffix(":")
    }

    /// The nearest `# import/path` header above `index`: the go command prints such a header and then
    /// the failing tool's output verbatim, so a traceback under it is that tool's.
    static func packageHeader(before index: Int, in all: [String]) -> String? {
        var i = index - 1
        while i >= 0 {
            let line = all[i]
            if line.hasPrefix("# ") { return line }
            i -= 1
        }
        return nil
    }

    /// The toolchain component whose frames appear in a traceback (`cmd/compile/internal/...` → `compile`),
    /// because a child's traceback relayed by the go command carries no other name.
    static func toolInTraceback(_ traceback: String) -> String? {
        ["compile", "link", "asm", "cgo", "vet", "cover", "buildid", "pack"].first { tool in
            traceback.contains("cmd/\(tool)/")
        }
    }

    // MARK: - Diagnostics

    /// Progress chatter of the go command that is never the reason for a failure.
    static let chatterOpenings = ["go: downloading ", "go: finding ", "go: extracting ", "go: found "]

    /// Whether a line belongs to a goroutine dump or register dump rather than a message: a dump
    /// only repeats where threads were, it is not something a user can act on.
    static func isDumpLine(_ line: String) -> Bool {
        if line.hasPrefix("\t") || line.hasPrefix("PC=") || line.hasPrefix("created by ")
            || line.hasPrefix("SIGQUIT: quit") || line.hasPrefix("signal arrived during")
            || line.hasPrefix("...additional frames elided...") || line.hasPrefix("-----")
            || line.hasPrefix("[signal ") || isGoroutineHeader(line)
        {
            return true
        }
        // Register dumps after a signal: `rax    0x0`, `rip    0x46b3a1`, `r10    0x8`.
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        if parts.count == 2, parts[1].hasPrefix("0x"), isRegisterName(String(parts[0])) { return true }
        // Function lines of a goroutine trace: `main.main()`, `runtime.goexit({})`, `os/exec.(*Cmd).Start(...)`.
        if line.hasSuffix(")") || line.hasSuffix(", ...)"), !line.contains(" "), line.contains("(") {
            return true
        }
        return false
    }

    /// Register names the runtime prints after a fatal signal on amd64 and arm64 (`r0`…`r29` and `r8`…`r15`
    /// are matched by shape).
    static func isRegisterName(_ name: String) -> Bool {
        let named: Set<String> = [
            "rax", "rbx", "rcx", "rdx", "rdi", "rsi", "rbp", "rsp", "rip", "rflags", "cs", "fs", "gs", "lr", "sp",
            "pc", "fault",
        ]
        if named.contains(name) { return true }
        return name.hasPrefix("r") && name.count <= 3 && name.dropFirst().allSatisfy(\.isNumber) && name.count > 1
    }

    /// Whether the line is only the go command's echo of a child's exit code (`exit status 3`): it adds
    /// nothing to the exit code itself, so stderr holding only this is still "nothing useful".
    static func isExitStatusEcho(_ line: String) -> Bool {
        guard line.hasPrefix("exit status ") else { return false }
        return line.dropFirst("exit status ".count).allSatisfy { $0.isNumber }
    }

    /// The first stderr line that reads like a diagnostic.
    ///
    /// Blank lines, download chatter, dump lines and bare `exit status N` echoes are skipped. A
    /// `# package` header is only context for what follows, so the line after it is preferred; the
    /// header is returned only when nothing follows it. Everything from a goroutine header to the next
    /// blank line is one goroutine's stack, whatever its frames look like.
    public static func firstDiagnostic(in stderr: String) -> String? {
        var pendingHeader: String?
        var inGoroutineStack = false
        for raw in lines(stderr) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty {
                inGoroutineStack = false
                continue
            }
            if isGoroutineHeader(raw) { inGoroutineStack = true }
            if inGoroutineStack || isDumpLine(raw) || isExitStatusEcho(line) { continue }
            if chatterOpenings.contains(where: { line.hasPrefix($0) }) { continue }
            if line.hasPrefix("# ") {
                if pendingHeader == nil { pendingHeader = line }
                continue
            }
            return line
        }
        return pendingHeader
    }

    /// The last non-blank line is `exit status N`: `go run` and `go test` print this after the
    /// program they ran failed, so what precedes it is the program's own output.
    public static func endsWithExitStatusEcho(_ stderr: String) -> Bool {
        guard let last = lines(stderr).last(where: { !isBlank($0) }) else { return false }
        return isExitStatusEcho(last.trimmingCharacters(in: .whitespaces))
    }

    // MARK: - Who failed

    /// The toolchain process a diagnostic names: `fork/exec /…/compile: …` → `compile`,
    /// `/usr/lib/go-1.19/pkg/tool/linux_amd64/link: signal: killed` → `link`, `go tool compile: …` →
    /// `compile`. The go command reports its children's failures on its own stderr, and the user needs
    /// to know that the child, not `go`, is what the restriction hit.
    public static func namedProcess(in text: String) -> String? {
        for line in lines(text) {
            if let range = line.range(of: "fork/exec ") {
                let rest = line[range.upperBound...]
                let path = rest.prefix(while: { $0 != ":" && $0 != " " })
                if let name = path.split(separator: "/").last, !name.isEmpty { return String(name) }
            }
            if let range = line.range(of: "/pkg/tool/") {
                // /pkg/tool/linux_amd64/compile: ...
                let rest = line[range.upperBound...]
                let components = rest.split(separator: "/", maxSplits: 1)
                if components.count == 2 {
                    let name = components[1].prefix(while: { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" })
                    if !name.isEmpty { return String(name) }
                }
            }
            if let range = line.range(of: "go tool ") {
                let name = line[range.upperBound...].prefix(while: { $0.isLetter || $0.isNumber })
                if !name.isEmpty { return String(name) }
            }
            // `/tmp/go-build123/b001/exe/app: signal: killed` from `go run`: the built program.
            if let colon = line.range(of: ": signal: ") ?? line.range(of: ": exit status ") {
                let path = line[..<colon.lowerBound]
                if path.hasPrefix("/"), !path.contains(" "), let name = path.split(separator: "/").last {
                    return String(name)
                }
            }
        }
        return nil
    }
}
