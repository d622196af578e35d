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
        return RunFile(ghostrun: first.file.ghostrun, host: first.file.host, results: results)
    }

    /// Numeric version order (1.9 before 1.19), as the matrix orders toolchains; text order when unparsable.
    static func versionOrder(_ a: String, _ b: String) -> Bool {
        if let va = GoVersion(a), let vb = GoVersion(b), va != vb { return va < vb }
        return a < b
    }
}
