import ArgumentParser
import Foundation
import GhostrunKit

/// `ghostrun record PATH... --output PROFILE.json`: a least-privilege seccomp profile from traced runs, then
/// verified by re-running every scenario under it.
struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record the syscalls of scenarios into a least-privilege OCI seccomp profile, then verify it.",
        discussion: """
            Runs each scenario --runs times with every syscall traced and its own seccomp policy removed (its other \
            restrictions kept), on every selected toolchain, and writes a profile allowing exactly the union, a \
            `comment` per rule naming the toolchains and roles that made the call. Then re-runs every scenario \
            under the profile as runc applies it and as crun does, and exits 1 when an outcome differs from the \
            recorded one.
            """)

    @OptionGroup var selection: MatrixSelection

    @Option(help: "Traced runs per scenario and toolchain.")
    var runs: Int = 3

    @Option(help: "Write the profile here.")
    var output: String

    @Flag(
        help: """
            Restrict the arguments where Go's use is narrow, as moby's default profile does: socket to the address \
            families used, personality to the values used, clone to calls without namespace flags.
            """)
    var args = false

    @Option(help: "The answer to every other syscall: eperm or enosys.")
    var `default`: String = "eperm"

    func validate() throws {
        if selection.paths.isEmpty { throw ValidationError("give at least one scenario file or directory") }
        if runs < 1 { throw ValidationError("--runs must be at least 1") }
        if !["eperm", "enosys"].contains(`default`) { throw ValidationError("--default takes eperm or enosys") }
    }

    func run() throws {
        let entries = try selection.entries()
        if entries.isEmpty { throw fail("no scenario to run (check the paths and --filter)") }
        let session = RunSession(options: RunnerOptions())
        session.prepareHost(executable: CommandLine.executablePath)
        let signals = session.handleSignals([SIGINT, SIGTERM, SIGHUP])
        defer { signals.cancel() }
        func say(_ line: String) { FileHandle.standardError.write(Data(("record: " + line + "\n").utf8)) }

        var recording = ProfileRecording()
        var recorded: [String: Outcome] = [:]
        var ran: [MatrixEntry] = []
        for entry in entries {
            var scenario = entry.scenario
            scenario.sandbox.seccomp = nil
            scenario.trace = .all
            for index in 1...runs {
                let result = session.run(scenario, toolchain: entry.toolchain)
                if let signalNumber = session.interruptedBy { throw ExitCode(128 + signalNumber) }
                say("\(entry.id) run \(index)/\(runs): \(result.outcome.rawValue)")
                if result.outcome == .skipped { break }
                if result.outcome == .harnessError { throw fail("\(entry.id): \(result.reason ?? result.summary)") }
                recording.add(result, entryId: entry.id, toolchain: entry.toolchain.label)
                if index == 1 {
                    recorded[entry.id] = result.outcome
                    ran.append(entry)
                } else if recorded[entry.id] != result.outcome {
                    warn("\(entry.id): outcome \(result.outcome.rawValue) in run \(index), "
                        + "\(recorded[entry.id]!.rawValue) in run 1; verifying against run 1's")
                }
            }
        }
        let errno = ErrnoName.value(of: `default` == "enosys" ? "ENOSYS" : "EPERM")!
        let document: SeccompProfileDocument
        do {
            try recording.profileJSON(defaultErrno: errno, restrictArguments: args)
                .write(to: URL(fileURLWithPath: output))
            document = try BuiltInProfiles.load(output, relativeTo: FileManager.default.currentDirectoryPath)
        } catch {
            throw fail("cannot write or read back \(output): \(error)")
        }
        print("wrote \(output): \(recording.seen.count) syscalls allowed, default errno \(`default`.uppercased())")
        if args {
            for name in TraceSummary.recordedArguments.keys.sorted() where recording.seen[name] != nil {
                let values = recording.argumentValues[name].map { $0.sorted().map { String($0) } } ?? []
                let restricted = recording.unrestricted.contains(name) ? "unconditional (values not all recorded)"
                    : name == "clone" && values.isEmpty == false
                        && recording.argumentValues[name]!.contains(where: {
                            $0 & ProfileRecording.cloneNamespaceFlags != 0 })
                        ? "unconditional (a namespace flag was used)" : "restricted"
                print("  \(name): \(restricted); values seen: \(values.joined(separator: ", "))")
            }
        }
        for (toolchain, size) in recording.sizePerToolchain.sorted(by: { $0.key < $1.key }) {
            print("  go \(toolchain): \(size) syscalls")
        }
        let unstable = recording.unstable
        if !unstable.isEmpty {
            print("seen in only some runs (raise --runs): "
                + unstable.keys.sorted().map { "\($0) (\(unstable[$0]!.joined(separator: ", ")))" }
                    .joined(separator: ", "))
        }

        var differs = false
        print("verification (outcome under the recorded profile, recorded outcome):")
        for entry in ran {
            var cells: [String] = []
            for runtime in [SeccompRuntime.runc, .crun] {
                let scenario = entry.scenario.replacingSeccomp(with: output, document: document, runtime: runtime)
                let result = session.run(scenario, toolchain: entry.toolchain)
                if let signalNumber = session.interruptedBy { throw ExitCode(128 + signalNumber) }
                let same = result.outcome == recorded[entry.id]
                if !same { differs = true }
                var cell = "\(runtime.rawValue) \(result.outcome.rawValue) \(same ? "as recorded" : "DIFFERS")"
                if !same, let denial = result.evidence.denials.first { cell += " (first denial \(denial.syscall))" }
                cells.append(cell)
            }
            print("  \(entry.id) (recorded \(recorded[entry.id]!.rawValue)): " + cells.joined(separator: "; "))
        }
        throw ExitCode(differs ? 1 : 0)
    }
}
