import ArgumentParser
import Foundation
import GhostrunKit

/// `ghostrun trace [options] -- CMD ARGS...`: trace (and optionally fault) an ad-hoc command without a scenario
/// file, in the current directory and environment, and print a per-component summary like `strace -c -f`.
struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Trace every syscall of a command's process tree through seccomp user notification.",
        discussion: """
            Runs CMD in the current directory with the current environment, in its own cgroup, and prints the \
            syscalls grouped by toolchain component (go, compile, link, asm, cgo, the built program). \
            `go` as CMD is the toolchain chosen with --go/--go-version (default: the go on PATH).
            Faults: --fault 'openat:EACCES:path=/x/**:process=compile:nth=3' (also every, probability=0.2, \
            delay=50ms; errno optional with delay).
            """)

    @OptionGroup(title: "Toolchain (for `go` as CMD; the first one selected)") var toolchains: ToolchainOptions

    @Option(name: .customLong("fault"), help: "A fault to inject (repeatable), e.g. openat:EACCES:path=/x/**:nth=3.")
    var faults: [String] = []

    @Option(help: "Seed for probability faults.")
    var seed: UInt64 = 0

    @Option(help: "Notify only these syscalls (comma-separated); default: every syscall.")
    var syscalls: String?

    @Option(name: .customLong("trace-out"), help: "Write every notified call as a JSON line to this file.")
    var traceOut: String?

    @Option(help: "Write the result (run file JSON) here.")
    var json: String?

    @Option(help: "How syscalls are traced: bpf (in the kernel), notify (seccomp user notification), auto.")
    var traceBackend: TraceBackendChoice = .automatic

    @Option(help: "Wall-clock limit, e.g. 10m.")
    var timeout: String = "30m"

    @Argument(parsing: .postTerminator, help: "The command and its arguments (after --).")
    var command: [String] = []

    func validate() throws {
        if command.isEmpty { throw ValidationError("give the command after --, e.g. ghostrun trace -- go build ./...") }
        if parseDuration(timeout) == nil { throw ValidationError("--timeout \(timeout): not a duration (e.g. 90s, 10m)") }
    }

    func run() throws {
        let toolchain: Toolchain
        var parsedFaults: [Fault] = []
        do {
            toolchain = try toolchains.selection.resolve()[0]
            parsedFaults = try faults.map(FaultSpec.parse)
            for name in syscalls?.split(separator: ",").map(String.init) ?? [] where SyscallName.number(of: name) == nil {
                throw ToolchainError(message: "--syscalls: unknown syscall `\(name)`")
            }
        } catch {
            throw fail("\(error)")
        }
        var scenario = Scenario(
            name: "trace", run: command,
            location: SourceLocation(file: "<command line>", line: 1),
            scenarioDirectory: FileManager.default.currentDirectoryPath)
        scenario.workdir = FileManager.default.currentDirectoryPath
        scenario.inheritEnvironment = true
        scenario.faults = parsedFaults
        scenario.seed = seed
        scenario.trace = syscalls.map { .syscalls($0.split(separator: ",").map(String.init)) } ?? .all
        scenario.timeout = parseDuration(timeout)!
        scenario.hangAfter = scenario.timeout

        var options = RunnerOptions()
        // Like strace, `trace` runs the user's own command in the user's directory: its writes (a `go build`'s
        // binary) are the point, so it works in the host's file systems, as it gets the whole environment.
        options.hostWrites = true
        options.traceOut = traceOut
        options.traceBackend = try resolveTraceBackend(traceBackend)
        let session = RunSession(options: options)
        session.prepareHost(executable: CommandLine.executablePath)
        let signals = session.handleSignals([SIGINT, SIGTERM])
        defer { signals.cancel() }
        let result = session.run(scenario, toolchain: toolchain)

        FileHandle.standardError.write(Data(result.stderrTail.utf8))
        print(result.stdoutTail, terminator: "")
        print(TerminalReport.line(for: result, color: isatty(STDOUT_FILENO) == 1))
        if let trace = result.evidence.trace { print(trace.render()) }
        if let json {
            let file = RunFile(ghostrun: GhostrunVersion.current, host: HostFacts.current(), results: [result])
            try JSONReport.encode(file).write(to: URL(fileURLWithPath: json))
        }
        throw ExitCode(ExitStatus.forTrace(result))
    }
}


extension TraceBackendChoice: ExpressibleByArgument {}

/// The backend for `--trace-backend`: asking for bpf on a host that cannot load it is bad input (exit 2).
func resolveTraceBackend(_ choice: TraceBackendChoice) throws -> TraceBackendDecision.Backend {
    switch TraceBackend.decide(choice) {
    case .success(let decision): return decision.backend
    case .failure(let error): throw fail("\(error) (hint: --trace-backend notify, or see ghostrun doctor)")
    }
}
