import ArgumentParser
import Foundation
import GhostrunKit

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a process's restrictions as the kernel reports them (/proc/PID/status, decoded).")

    @Argument(help: "The process to inspect.")
    var pid: Int32

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let report: InspectReport
        do {
            report = try InspectReport.make(pid: pid)
        } catch {
            throw fail("\(error)")
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.text())
        }
    }
}
