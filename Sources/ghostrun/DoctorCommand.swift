import ArgumentParser
import Foundation
import GhostrunKit

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tell what this host supports (seccomp, user notification, cgroups, freeze, audit records, toolchains).")

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let checks = GhostrunKit.Doctor.checks()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(checks), as: UTF8.self))
        } else {
            print(GhostrunKit.Doctor.render(checks))
        }
        if checks.contains(where: { $0.essential && !$0.ok }) { throw ExitCode(1) }
    }
}
