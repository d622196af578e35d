import ArgumentParser
import Foundation
import GhostrunKit

@main
struct Ghostrun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ghostrun",
        abstract: "Run the Go toolchain under seccomp, capabilities, rlimits and cgroups, and explain what happened.",
        version: GhostrunVersion.current,
        subcommands: [
            Run.self, Check.self, Trace.self, MatrixCommand.self, Merge.self, Inspect.self, Doctor.self,
            ProfileCommand.self, Reap.self, Bisect.self, Record.self, Bundle.self,
        ])

    /// As ArgumentParser's, except that usage errors exit 2, not 64: the contract gives bad input status 2, and a
    /// CI job that tells "bad input" from "expectation failed" by status must see the same number for a bad
    /// option as for a bad scenario file.
    /// The commands that make run cgroups: on a host whose cgroup v2 systemd manages, they work in a cgroup
    /// delegated to ghostrun, and re-exec in one (`systemd-run --scope -p Delegate=yes`) when started elsewhere.
    static let commandsThatRun: Set<String> = ["run", "trace", "record", "bisect", "bundle"]

    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let command = arguments.first, commandsThatRun.contains(command) {
            CgroupDelegation.enterDelegatedScopeIfNeeded(executable: CommandLine.executablePath, arguments: arguments)
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(ExitStatus.harnessError)
            }
            exit(withError: error)
        }
    }
}

/// Bad input: exit status 2 with a message naming file, line and key.
struct UsageFailure: Error, CustomStringConvertible {
    var description: String
}

/// A note on stderr that does not change the exit status.
func warn(_ message: String) {
    FileHandle.standardError.write(Data(("ghostrun: " + message + "\n").utf8))
}

func fail(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data(("ghostrun: " + message + "\n").utf8))
    return ExitCode(2)
}
