import Foundation

/// Why shard run files cannot be combined.
public struct RunFileMergeError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Combines the run files of a sharded matrix (`ghostrun merge`).
public enum RunFileMerge {
    /// One run file holding every result, sorted by scenario name then Go version as `run` sorts them, with the
    /// host of the first file.
    ///
    /// Files written by different ghostrun versions are refused: their outcomes may not mean the same thing. The
    /// same `name@go_version` in two files is refused too: shards are disjoint, so a duplicate means two jobs ran
    /// the same shard (or a file was passed twice) and one of the results would silently hide the other.
    /// `harness` is dropped: it measures one process, and a sum over machines would not.
    public static func merge(_ files: [(path: String, file: RunFile)]) throws -> RunFile {
        guard let first = files.first else { throw RunFileMergeError("no run file to merge") }
        for other in files.dropFirst() where other.file.ghostrun != first.file.ghostrun {
            throw RunFileMergeError(
                "\(other.path) was written by ghostrun \(other.file.ghostrun), \(first.path) by ghostrun "
                    + "\(first.file.ghostrun); merge run files of one version")
        }
        var seen: [String: String] = [:]
        var results: [RunResult] = []
        for (path, file) in files {
            for result in file.results {
                let key = "\(result.name)@\(result.goVersion)"
                if let earlier = seen[key] {
                    throw RunFileMergeError(
                        "\(key) is in both \(earlier) and \(path); each shard's results must be distinct")
                }
                seen[key] = path
                results.append(result)
            }
        }
        results.sort { a, b in
            if a.name != b.name { return a.name < b.name }
            return versionOrder(a.goVersion, b.goVersion)
        }
        let matrix = try checkComplete(files)
        return RunFile(ghostrun: first.file.ghostrun, host: first.file.host, results: results, matrix: matrix)
    }

    /// Proves that the files are every shard of one matrix and hold every entry of it; returns the record of the
    /// merged (whole) matrix, or nil when no file records its matrix (run files of ghostrun before 0.3, which
    /// cannot be checked). A crashed CI job leaves no run file, so a missing shard is named, not ignored.
    static func checkComplete(_ files: [(path: String, file: RunFile)]) throws -> MatrixRecord? {
        let recorded = files.filter { $0.file.matrix != nil }
        guard let reference = recorded.first, let matrix = reference.file.matrix else { return nil }
        if let unrecorded = files.first(where: { $0.file.matrix == nil }) {
            throw RunFileMergeError(
                "\(unrecorded.path) does not record its shard and matrix, \(reference.path) does; "
                    + "rerun that shard with this ghostrun")
        }
        var byShard: [Int: String] = [:]
        var allIds: [String] = []
        for (path, file) in files {
            let record = file.matrix!
            guard record.shardCount == matrix.shardCount, record.size == matrix.size,
                record.digest == matrix.digest
            else {
                throw RunFileMergeError(
                    "\(path) (shard \(record.shard), \(record.size) entries, \(record.digest)) was run against a "
                        + "different matrix than \(reference.path) (shard \(matrix.shard), \(matrix.size) entries, "
                        + "\(matrix.digest)); every shard must run the same scenarios, toolchains and --filter")
            }
            if let earlier = byShard[record.shardIndex] {
                throw RunFileMergeError("shard \(record.shard) is given twice: \(earlier) and \(path)")
            }
            byShard[record.shardIndex] = path
            let got = Set(file.results.map { "\($0.name)@\($0.goVersion)" })
            if let missing = record.entries.first(where: { !got.contains($0) }) {
                throw RunFileMergeError(
                    "\(path) (shard \(record.shard)) has no result for \(missing), which its shard includes")
            }
            let assigned = Set(record.entries)
            if let extra = file.results.first(where: { !assigned.contains("\($0.name)@\($0.goVersion)") }) {
                throw RunFileMergeError(
                    "\(path) (shard \(record.shard)) has a result for \(extra.name)@\(extra.goVersion), which is not "
                        + "in its shard")
            }
            allIds += record.entries
        }
        let missingShards = (1...matrix.shardCount).filter { byShard[$0] == nil }
        if !missingShards.isEmpty {
            throw RunFileMergeError(
                "shard" + (missingShards.count == 1 ? " " : "s ")
                    + missingShards.map { "\($0)/\(matrix.shardCount)" }.joined(separator: ", ")
                    + " of the matrix (\(matrix.size) entries) " + (missingShards.count == 1 ? "is" : "are")
                    + " missing: no run file given for " + (missingShards.count == 1 ? "it" : "them")
                    + " (did that CI job fail before writing its run file?)")
        }
        guard allIds.count == matrix.size, MatrixRecord.digest(of: allIds) == matrix.digest else {
            throw RunFileMergeError(
                "the shards hold \(allIds.count) entries whose digest is \(MatrixRecord.digest(of: allIds)), but the "
                    + "matrix has \(matrix.size) entries with digest \(matrix.digest)")
        }
        return MatrixRecord(allIds: allIds, shardIds: allIds.sorted())
    }

    /// Numeric version order (1.9 before 1.19), as the matrix orders toolchains; text order when unparsable.
    static func versionOrder(_ a: String, _ b: String) -> Bool {
        if let va = GoVersion(a), let vb = GoVersion(b), va != vb { return va < vb }
        return a < b
    }
}
