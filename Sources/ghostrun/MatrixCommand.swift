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

    @Option(help: "With --list: only the entries of shard I of N (1-based), as `run --shard I/N` would run them.")
    var shard: String?

    @Option(help: "With --list --shard: a previous run file, to balance shards as `run --timings` does.")
    var timings: String?

    func validate() throws {
        if github == list { throw ValidationError("give one of --github or --list") }
        if shard != nil, !list { throw ValidationError("--shard goes with --list") }
        if timings != nil, shard == nil { throw ValidationError("--timings goes with --list --shard") }
        if let shard, ShardSelection.parse(shard) == nil {
            throw ValidationError("--shard takes I/N with 1 ≤ I ≤ N, e.g. 1/3")
        }
        if let shards, shards < 1 { throw ValidationError("--shards must be at least 1") }
        if let shards, shards > MatrixCommand.maximumShards {
            throw ValidationError(
                "--shards \(shards): GitHub Actions runs at most \(MatrixCommand.maximumShards) jobs per matrix")
        }
    }

    func run() throws {
        let entries = try selection.entries(defaultPaths: ["scenarios"])
        if list {
            var listed = entries
            if let shard, let (index, count) = ShardSelection.parse(shard) {
                var previous: [String: Int]?
                if let timings {
                    do {
                        previous = Matrix.timings(
                            from: try JSONReport.decode(Data(contentsOf: URL(fileURLWithPath: timings))))
                    } catch {
                        throw fail("--timings \(timings): not a readable run file: \(error)")
                    }
                }
                listed = Matrix.shard(entries, index: index, count: count, timings: previous)
            }
            for entry in listed { print(entry.id) }
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
