import ArgumentParser
import Foundation
import GhostrunKit

/// `ghostrun profile show PROFILE|NAME`: how a seccomp profile resolves on this host.
struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile", abstract: "Explain seccomp profiles as ghostrun applies them.",
        subcommands: [Show.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per syscall, the action a profile gives on this host and the rule that decides it.")

        @Argument(help: "A built-in (docker-default, podman-default, containerd-default) or a profile file.")
        var profile: String

        @Option(
            help: """
                The go command's capabilities: docker-default, podman-default, ALL, none, or names \
                (CAP_SYS_ADMIN,CAP_CHOWN). Default: what ghostrun holds, as for a scenario without `capabilities`.
                """)
        var caps: String?

        @Option(help: "runc (ENOSYS stub above the profile's highest syscall) or crun (as written).")
        var runtime: String = "runc"

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            guard let runtime = SeccompRuntime(rawValue: runtime) else {
                throw fail("--runtime \(self.runtime): unknown runtime (runc or crun)")
            }
            let capabilities: CapabilitySet
            do {
                capabilities = try Self.capabilities(caps)
            } catch {
                throw fail("--caps: \(error)")
            }
            let document: SeccompProfileDocument
            do {
                document = try BuiltInProfiles.load(
                    profile, relativeTo: FileManager.default.currentDirectoryPath)
            } catch {
                throw fail("\(error)")
            }
            let context = ProfileResolutionContext(capabilities: capabilities, runtime: runtime)
            let report = ProfileReport(SeccompProfileResolver.resolve(document, context: context), context: context)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                print(report.text)
            }
        }

        static func capabilities(_ text: String?) throws -> CapabilitySet {
            guard let text else { return CapabilityPlan.available() }
            if let preset = CapabilityPreset(rawValue: text) { return preset.capabilities }
            switch text.uppercased() {
            case "ALL": return .all
            case "NONE", "": return []
            default: break
            }
            var set = CapabilitySet()
            for name in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                guard let number = CapabilityName.number(of: name) else {
                    throw UsageFailure(description: "unknown capability `\(name)`")
                }
                set.insert(CapabilitySet(numbers: [number]))
            }
            return set
        }
    }
}
