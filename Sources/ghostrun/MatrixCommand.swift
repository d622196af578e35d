import ArgumentParser
import Foundation
import GhostrunKit

struct MatrixCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "matrix",
        abstract: "Print the scenario × toolchain matrix: its entries, or shards for GitHub Actions.")

    /// GitHub Actions refuses a matrix of more than 256 jobs.
    static let maximumShards = 256
    /// Entries per shard when --shards is not given: enough work per job to pay for the job's setup.
    static let entriesPerShard = 8

    @OptionGroup var selection: MatrixSelection

    @Flag(help: "Print {\"include\":[{\"shard\":\"1/N\"},...]} for strategy.matrix (fromJSON).")
    var github = false

    @Flag(help: "Print the matrix entries (scenario@version), one per line.")
    var list = false

    @Option(help: "The number of shards (default: one per 8 entries, at most 256).")
    var shards: Int?

    func validate() throws {
        if github == list { throw ValidationError("give one of --github or --list") }
        if let shards, shards < 1 { throw ValidationError("--shards must be at least 1") }
        if let shards, shards > MatrixCommand.maximumShards {
            throw ValidationError(
                "--shards \(shards): GitHub Actions runs at most \(MatrixCommand.maximumShards) jobs per matrix")
        }
    }

    func run() throws {
        let entries = try selection.entries(defaultPaths: ["scenarios"])
        if list {
            for entry in entries { print(entry.id) }
            return
        }
        if entries.isEmpty { throw fail("no scenario in the matrix (check the paths and --filter)") }
        let wanted = shards ?? min(MatrixCommand.maximumShards,
                                   (entries.count + MatrixCommand.entriesPerShard - 1) / MatrixCommand.entriesPerShard)
        // More shards than entries would leave jobs with nothing to run.
        let count = min(wanted, entries.count)
        if count < wanted {
            warn("\(entries.count) entries: \(count) shards, not \(wanted)")
        }
        let include = (1...count).map { ["shard": "\($0)/\(count)"] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(["include": include]), as: UTF8.self))
    }
}
